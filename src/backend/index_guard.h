/* Ops that read indices from tensor data (GET_ROWS, SET_ROWS, GET_ROWS_BACK, MUL_MAT_ID,
 * ADD_ID, SSM_SCAN) index memory with them, and no ggml kernel can be trusted with an index
 * out of range (some assert, MUL_MAT_ID's CPU kernel does not check at all). The host checks
 * every such index before the kernel that reads it runs:
 *  - indices no earlier node of the graph writes (inputs: llama's KV-slot list) are checked
 *    once before the compute, each distinct index tensor read once;
 *  - indices the graph computes itself (a MoE router's TOP_K / ARGSORT) are checked when they
 *    exist: the compute is cut there, the cut's indices checked, then it goes on. One cut
 *    serves every later read of indices no node writes after it (a MoE layer's gate, up and
 *    down MUL_MAT_ID and its weights' GET_ROWS share one): each cut costs a compute call. */
#ifndef APIR_INDEX_GUARD_H
#define APIR_INDEX_GUARD_H

#include "ggml.h"
#include "write_shadow.h"

#include <stdbool.h>
#include <stdint.h>

struct index_read {
    const struct ggml_tensor *node; /* the op reading the indices */
    const struct ggml_tensor *idx;  /* the index tensor (I32 or I64, any strides) */
    int64_t bound;                  /* each index must be in [0, bound) */
    int pos;                        /* the node's position in the graph */
    int check_at;                   /* dynamic reads: the cut position where they are checked */
};

struct index_guard {
    struct index_read *reads; /* static reads first (sorted by index tensor), then dynamic (by pos) */
    uint32_t n, n_static;
    int *cuts; /* positions where the compute stops for dynamic reads, ascending */
    uint32_t n_cuts;
    /* every byte range the graph's nodes write, sorted by buffer and start, merged: what a
     * compute of it invalidates in the context's write shadow */
    struct write_range *writes;
    uint32_t n_writes;
};

/* Collects the index reads and the written ranges of graph; refuses (apir status) a node whose
 * output overlaps the indices it reads. trust_sorts: indices last written by an ARGSORT or
 * TOP_K over rows no longer than their bound need no check (a MoE router's expert ids): each
 * value is a position in a row. Only for ggml-cuda, whose sorts are sorting networks or radix
 * sorts (they permute whatever the keys) and whose fused top-k router kernel is mirrored here
 * (it writes only part of the sort's output); not for the CPU backend, whose std::sort with
 * NaN keys is undefined behaviour, nor for backends whose fusions were not read. */
uint32_t index_guard_build(struct ggml_cgraph *graph, bool trust_sorts, struct index_guard *out);
/* before a read-back: makes every earlier write visible to it (queued_writes_settle) */
struct index_read_hook {
    void (*before_read)(void *user);
    void *user;
};

/* APIR_BACKEND_OK when every index no node computes is in range right now. Each distinct
 * index tensor is checked from shadow when one record there covers it (counted in
 * *from_shadow), else read from its buffer (counted in *read_back: on a GPU, a synchronizing
 * device-to-host copy, preceded by hook's before_read when hook is not NULL). shadow may be
 * NULL. */
uint32_t index_guard_check_static(const struct index_guard *g, const struct write_shadow *shadow,
                                  const struct index_read_hook *hook, uint64_t *from_shadow, uint64_t *read_back);
/* APIR_BACKEND_OK when every index checked at cut position g->cuts[cut] is in range (call
 * after the nodes before that position ran) */
uint32_t index_guard_check_cut(const struct index_guard *g, uint32_t cut);
/* some index tensor of g that no node computes overlaps [start, end) of buffer */
bool index_guard_reads_static(const struct index_guard *g, const void *buffer, uint64_t start, uint64_t end);
void index_guard_free(struct index_guard *g);

#endif
