/* Per-process counters of the guest's traffic with the host, for finding where a token's time
 * goes (docs/frontend.md, "Where a token's time goes"). GGML_VIRTGPU_STATS=1 turns them on
 * and prints them through ggml's log when the library unloads; =N also prints the counts of
 * every N graph computes as they complete. Off (unset or 0), each hook costs one predictable
 * branch and no clock call. */
#ifndef VGPU_STATS_H
#define VGPU_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 0: off; 1: totals at unload; N > 1: also every N graph computes. Set once at load. */
extern long vgpu_stats_every;

static inline bool vgpu_stats_on(void) { return __builtin_expect(vgpu_stats_every != 0, 0); }

uint64_t vgpu_stats_now(void);

/* one FORWARD command: request bytes sent, reply bytes received, and, when waited for, the
 * time from submit to reply */
void vgpu_stats_command(uint32_t cmd, size_t sent, size_t received, bool waited, uint64_t wait_ns);
/* tensor bytes a transfer moved, through the data page or a host buffer's blob (BUFFER_SET:
 * sent, BUFFER_GET: received) */
void vgpu_stats_data(uint32_t cmd, size_t bytes);

/* one ggml graph_compute of the VirtGPU backend: time spent encoding and comparing the graph
 * with the last one sent, and in the whole call (outputs read back included) */
enum vgpu_stats_graph_kind {
    VGPU_STATS_GRAPH_EMPTY,     /* views only: nothing sent */
    VGPU_STATS_GRAPH_SENT,      /* GRAPH_COMPUTE */
    VGPU_STATS_GRAPH_RECOMPUTE, /* GRAPH_RECOMPUTE: the host's cached graph reused */
    VGPU_STATS_GRAPH_FALLBACK,  /* GRAPH_RECOMPUTE refused (no cached graph), then sent */
    VGPU_STATS_GRAPH_FAILED,
    VGPU_STATS_GRAPH_KINDS
};
void vgpu_stats_graph(enum vgpu_stats_graph_kind kind, uint64_t encode_ns, uint64_t total_ns);

/* logs the counts of the whole process (at unload); nothing if nothing was counted */
void vgpu_stats_report_total(void);

#endif
