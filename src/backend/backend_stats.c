#include "backend_stats.h"

#include "apir_protocol.h"
#include "apir_stats_util.h"
#include "backend_log.h"

#include <stdio.h>

long backend_stats_every;

void backend_stats_init(void)
{
    backend_stats_every = apir_stats_every_from_env(APIR_ENV_BACKEND_STATS);
}

uint64_t backend_stats_now(void) { return apir_stats_now_ns(); }

#define APPEND(...) apir_stats_appendf(buf, sizeof buf, &len, __VA_ARGS__)

static double us_per(uint64_t ns, uint64_t n) { return n ? (double)ns / (double)n / 1e3 : 0.0; }

/* one backend_log call (one line of the rate limit) for the whole table */
static void report(uint32_t ctx_id, const char *title, const struct backend_stats_counts *s)
{
    char buf[4096];
    size_t len = 0;
    const uint64_t *g = s->g;
    APPEND("stats of context %u, %s: %llu graph computes: %llu decoded (GRAPH_COMPUTE), %llu reused the cached "
           "graph (GRAPH_RECOMPUTE)\n",
           ctx_id, title, (unsigned long long)g[BS_GRAPHS], (unsigned long long)g[BS_DECODED],
           (unsigned long long)g[BS_REUSED]);
    APPEND("  per graph compute: decode %.1f us, validate %.1f us, index sync %.1f us, compute %.1f us, "
           "%.2f backend compute calls (%.2f index cuts)\n",
           us_per(g[BS_DECODE_NS], g[BS_GRAPHS]), us_per(g[BS_VALIDATE_NS], g[BS_GRAPHS]),
           us_per(g[BS_SYNC_NS], g[BS_GRAPHS]), us_per(g[BS_COMPUTE_NS], g[BS_GRAPHS]),
           g[BS_GRAPHS] ? (double)g[BS_COMPUTE_CALLS] / (double)g[BS_GRAPHS] : 0.0,
           g[BS_GRAPHS] ? (double)(g[BS_COMPUTE_CALLS] - g[BS_GRAPHS]) / (double)g[BS_GRAPHS] : 0.0);
    APPEND("  index tensors checked before computes: %llu from the write shadow, %llu read from their buffer\n",
           (unsigned long long)g[BS_IDX_SHADOW], (unsigned long long)g[BS_IDX_READ]);
    APPEND("  totals: decode_ms %.3f validate_ms %.3f sync_ms %.3f compute_ms %.3f compute_calls %llu\n",
           (double)g[BS_DECODE_NS] / 1e6, (double)g[BS_VALIDATE_NS] / 1e6, (double)g[BS_SYNC_NS] / 1e6,
           (double)g[BS_COMPUTE_NS] / 1e6, (unsigned long long)g[BS_COMPUTE_CALLS]);
    APPEND("  %-20s %9s %11s %12s\n", "command", "calls", "host_ms", "us_per_call");
    uint64_t calls = 0, ns = 0;
    for (int i = 0; i < APIR_FWD_COUNT; i++) {
        calls += s->calls[i];
        ns += s->ns[i];
        if (s->calls[i])
            APPEND("  %-20s %9llu %11.3f %12.1f\n", apir_forward_cmd_name((uint32_t)i), (unsigned long long)s->calls[i],
                   (double)s->ns[i] / 1e6, us_per(s->ns[i], s->calls[i]));
    }
    APPEND("  %-20s %9llu %11.3f %12.1f", "total", (unsigned long long)calls, (double)ns / 1e6, us_per(ns, calls));
    backend_log("%s", buf);
}

void backend_stats_graph_done(struct backend_stats *s, uint32_t ctx_id)
{
    uint64_t n = s->total.g[BS_GRAPHS];
    if (backend_stats_every < 2 || n % (uint64_t)backend_stats_every)
        return;
    struct backend_stats_counts d = s->total;
    for (int i = 0; i < APIR_FWD_COUNT; i++) {
        d.calls[i] -= s->mark.calls[i];
        d.ns[i] -= s->mark.ns[i];
    }
    for (int f = 0; f < BS_FIELDS; f++)
        d.g[f] -= s->mark.g[f];
    s->mark = s->total;
    char title[64];
    snprintf(title, sizeof title, "graph computes %llu to %llu", (unsigned long long)(n - (uint64_t)backend_stats_every + 1),
             (unsigned long long)n);
    report(ctx_id, title, &d);
}

void backend_stats_report_total(const struct backend_stats *s, uint32_t ctx_id)
{
    uint64_t any = 0;
    for (int i = 0; i < APIR_FWD_COUNT; i++)
        any |= s->total.calls[i];
    if (any)
        report(ctx_id, "released", &s->total);
}
