/* Per-context time accounting of the backend library, for finding where a token's time goes
 * on the host (docs/configuration.md, VIRGL_APIR_STATS): per FORWARD command its calls and
 * handler time; per graph compute the time spent decoding the guest's graph, validating it
 * (node checks, index-guard analysis), reading indices back to check them (a synchronizing
 * read on a GPU), and in ggml_backend_graph_compute, the number of compute calls (index cuts
 * add one each), how many index tensors were checked from the bytes the host itself wrote
 * (write_shadow.h) and how many were read from their buffer, and whether the compute reused the cached decoded graph (GRAPH_RECOMPUTE:
 * the same ggml_cgraph handed to the backend again). Printed through backend_log when the
 * context is released, and every N graph computes with VIRGL_APIR_STATS=N. Off, each hook is
 * one predictable branch and no clock call. Counters are under the context's call_lock. */
#ifndef APIR_BACKEND_STATS_H
#define APIR_BACKEND_STATS_H

#include "apir_forward.h"

#include <stdbool.h>
#include <stdint.h>

enum {
    BS_GRAPHS,      /* graph computes (GRAPH_COMPUTE and GRAPH_RECOMPUTE that ran) */
    BS_DECODED,     /* ... of which GRAPH_COMPUTE: decoded from the message */
    BS_REUSED,      /* ... of which GRAPH_RECOMPUTE: the cached decoded graph reused */
    BS_DECODE_NS,   /* wire tensors into ggml tensors (with their per-tensor checks) */
    BS_VALIDATE_NS, /* node checks (rebuild, supports_op) and index-guard analysis */
    BS_SYNC_NS,     /* index checks: reading indices before the compute and at cuts */
    BS_COMPUTE_NS,  /* ggml_backend_graph_compute */
    BS_COMPUTE_CALLS,
    BS_IDX_SHADOW,  /* index tensors checked before a compute from the write shadow ... */
    BS_IDX_READ,    /* ... and read from their buffer (on a GPU, a device-to-host copy each) */
    BS_FIELDS
};

struct backend_stats_counts {
    uint64_t calls[APIR_FWD_COUNT];
    uint64_t ns[APIR_FWD_COUNT];
    uint64_t g[BS_FIELDS];
};

struct backend_stats {
    struct backend_stats_counts total;
    struct backend_stats_counts mark; /* at the last periodic report */
};

/* 0: off; 1: at release; N > 1: also every N graph computes. Set by backend_stats_init. */
extern long backend_stats_every;

static inline bool backend_stats_on(void) { return __builtin_expect(backend_stats_every != 0, 0); }

/* reads VIRGL_APIR_STATS (once per context: it may differ between processes, not contexts) */
void backend_stats_init(void);
uint64_t backend_stats_now(void);
/* after a graph compute was counted: the periodic report, when due */
void backend_stats_graph_done(struct backend_stats *s, uint32_t ctx_id);
/* the totals, when the context is released (nothing if no command was counted) */
void backend_stats_report_total(const struct backend_stats *s, uint32_t ctx_id);

#endif
