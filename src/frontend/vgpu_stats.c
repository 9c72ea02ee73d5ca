#include "vgpu_stats.h"

#include "apir_forward.h"
#include "apir_stats_util.h"
#include "guest_log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

long vgpu_stats_every;

enum { C_CALLS, C_WAITED, C_WAIT_NS, C_SENT, C_RECEIVED, C_FIELDS };
enum { G_ENCODE_NS = VGPU_STATS_GRAPH_KINDS, G_TOTAL_NS, G_FIELDS };

/* the counters; a plain copy of them is a snapshot */
struct counts {
    uint64_t cmd[APIR_FWD_COUNT][C_FIELDS];
    uint64_t graph[G_FIELDS];
};

/* commands of one client run one at a time, but a process may have several clients and
 * graphs run on several backends: relaxed atomic adds (only when on) */
static _Atomic uint64_t live_cmd[APIR_FWD_COUNT][C_FIELDS];
static _Atomic uint64_t live_graph[G_FIELDS];
static _Atomic uint64_t live_graphs;

static pthread_mutex_t mark_lock = PTHREAD_MUTEX_INITIALIZER;
static struct counts mark; /* at the last periodic report */

__attribute__((constructor)) static void vgpu_stats_init(void)
{
    vgpu_stats_every = apir_stats_every_from_env("GGML_VIRTGPU_STATS");
}

uint64_t vgpu_stats_now(void) { return apir_stats_now_ns(); }

static void add(_Atomic uint64_t *p, uint64_t v) { atomic_fetch_add_explicit(p, v, memory_order_relaxed); }

void vgpu_stats_command(uint32_t cmd, size_t sent, size_t received, bool waited, uint64_t wait_ns)
{
    if (cmd >= APIR_FWD_COUNT)
        return;
    add(&live_cmd[cmd][C_CALLS], 1);
    add(&live_cmd[cmd][C_SENT], sent);
    add(&live_cmd[cmd][C_RECEIVED], received);
    if (waited) {
        add(&live_cmd[cmd][C_WAITED], 1);
        add(&live_cmd[cmd][C_WAIT_NS], wait_ns);
    }
}

void vgpu_stats_data(uint32_t cmd, size_t bytes)
{
    if (cmd == APIR_FWD_BUFFER_SET)
        add(&live_cmd[cmd][C_SENT], bytes);
    else if (cmd == APIR_FWD_BUFFER_GET || cmd == APIR_FWD_GRAPH_RECOMPUTE)
        add(&live_cmd[cmd][C_RECEIVED], bytes);
}

static void snapshot(struct counts *s)
{
    for (int i = 0; i < APIR_FWD_COUNT; i++)
        for (int f = 0; f < C_FIELDS; f++)
            s->cmd[i][f] = atomic_load_explicit(&live_cmd[i][f], memory_order_relaxed);
    for (int f = 0; f < G_FIELDS; f++)
        s->graph[f] = atomic_load_explicit(&live_graph[f], memory_order_relaxed);
}

static void subtract(struct counts *s, const struct counts *base)
{
    for (int i = 0; i < APIR_FWD_COUNT; i++)
        for (int f = 0; f < C_FIELDS; f++)
            s->cmd[i][f] -= base->cmd[i][f];
    for (int f = 0; f < G_FIELDS; f++)
        s->graph[f] -= base->graph[f];
}

#define APPEND(...) apir_stats_appendf(buf, sizeof buf, &len, __VA_ARGS__)

/* one log call for the whole table, so that lines of other threads do not interleave */
static void report(const char *title, const struct counts *s)
{
    char buf[4096];
    size_t len = 0;
    uint64_t graphs = 0;
    for (int k = 0; k < VGPU_STATS_GRAPH_KINDS; k++)
        graphs += s->graph[k];
    uint64_t tot[C_FIELDS] = {0};
    APPEND("stats, %s: %llu graph computes: %llu sent (GRAPH_COMPUTE), %llu recomputed (GRAPH_RECOMPUTE), "
           "%llu recompute refused then sent, %llu empty, %llu failed\n",
           title, (unsigned long long)graphs, (unsigned long long)s->graph[VGPU_STATS_GRAPH_SENT],
           (unsigned long long)s->graph[VGPU_STATS_GRAPH_RECOMPUTE],
           (unsigned long long)s->graph[VGPU_STATS_GRAPH_FALLBACK], (unsigned long long)s->graph[VGPU_STATS_GRAPH_EMPTY],
           (unsigned long long)s->graph[VGPU_STATS_GRAPH_FAILED]);
    APPEND("  %-20s %9s %9s %11s %13s %13s\n", "command", "calls", "waited", "wait_ms", "sent_bytes", "recv_bytes");
    for (int i = 0; i < APIR_FWD_COUNT; i++) {
        const uint64_t *c = s->cmd[i];
        for (int f = 0; f < C_FIELDS; f++)
            tot[f] += c[f];
        if (!c[C_CALLS])
            continue;
        APPEND("  %-20s %9llu %9llu %11.3f %13llu %13llu\n", apir_forward_cmd_name((uint32_t)i),
               (unsigned long long)c[C_CALLS], (unsigned long long)c[C_WAITED], (double)c[C_WAIT_NS] / 1e6,
               (unsigned long long)c[C_SENT], (unsigned long long)c[C_RECEIVED]);
    }
    APPEND("  %-20s %9llu %9llu %11.3f %13llu %13llu\n", "total", (unsigned long long)tot[C_CALLS],
           (unsigned long long)tot[C_WAITED], (double)tot[C_WAIT_NS] / 1e6, (unsigned long long)tot[C_SENT],
           (unsigned long long)tot[C_RECEIVED]);
    if (graphs) {
        double g = (double)graphs;
        APPEND("  per graph compute: %.2f commands, %.2f waits, %.1f us waiting, %.0f bytes sent, %.0f received, "
               "%.1f us encoding, %.1f us in graph_compute\n",
               (double)tot[C_CALLS] / g, (double)tot[C_WAITED] / g, (double)tot[C_WAIT_NS] / g / 1e3,
               (double)tot[C_SENT] / g, (double)tot[C_RECEIVED] / g, (double)s->graph[G_ENCODE_NS] / g / 1e3,
               (double)s->graph[G_TOTAL_NS] / g / 1e3);
    }
    GUEST_LOG_INFO("%s", buf);
}

void vgpu_stats_graph(enum vgpu_stats_graph_kind kind, uint64_t encode_ns, uint64_t total_ns)
{
    add(&live_graph[kind], 1);
    add(&live_graph[G_ENCODE_NS], encode_ns);
    add(&live_graph[G_TOTAL_NS], total_ns);
    uint64_t n = atomic_fetch_add_explicit(&live_graphs, 1, memory_order_relaxed) + 1;
    if (vgpu_stats_every < 2 || n % (uint64_t)vgpu_stats_every)
        return;
    struct counts now;
    pthread_mutex_lock(&mark_lock);
    snapshot(&now);
    struct counts since = now;
    subtract(&since, &mark);
    mark = now;
    char title[64];
    snprintf(title, sizeof title, "graph computes %llu to %llu", (unsigned long long)(n - (uint64_t)vgpu_stats_every + 1),
             (unsigned long long)n);
    report(title, &since);
    pthread_mutex_unlock(&mark_lock);
}

void vgpu_stats_report_total(void)
{
    if (!vgpu_stats_on())
        return;
    struct counts now;
    snapshot(&now);
    uint64_t any = 0;
    for (int i = 0; i < APIR_FWD_COUNT; i++)
        any |= now.cmd[i][C_CALLS];
    if (any)
        report("process total", &now);
}
