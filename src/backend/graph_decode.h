/* Decoding of tensors and graphs sent by the guest into ggml objects. One forward pass over
 * the message with work bounded by its size; no recursion. Every tensor is validated
 * (tensor_validate), placed inside its buffer, and every node checked (op_checks) before
 * ggml sees it. */
#ifndef APIR_GRAPH_DECODE_H
#define APIR_GRAPH_DECODE_H

#include "apir_codec.h"
#include "index_guard.h"
#include "node_rebuild.h"
#include "ggml-backend.h"
#include "ggml.h"

#include <stdbool.h>
#include <stdint.h>

/* how buffer handles are resolved (the context's handle table, or a test's) */
struct buffer_resolver {
    void *user;
    ggml_backend_buffer_t (*resolve)(void *user, uint32_t handle); /* NULL if unknown */
};

/* ggml objects built from a message; the context memory is ours so that a failure to get it
 * is an error, not an abort inside ggml */
struct decoded_graph {
    void *mem;
    struct ggml_context *ctx;
    struct ggml_cgraph *graph;    /* graphs only */
    struct ggml_tensor *last;     /* the last tensor decoded (the op of SUPPORTS_OP) */
    struct index_guard indices;   /* graphs only: row indices to check before each compute */
    /* graphs whose nodes read indices other nodes compute: the graph cut before each such
     * node (index_guard.h), parts[i] starting at node part_start[i]; n_parts 0 otherwise */
    struct ggml_cgraph *part_graphs; /* views of graph (ggml_graph_view) */
    struct ggml_tensor **part_nodes; /* their node lists: own copies, each ending in sentinels */
    struct ggml_cgraph **parts;
    int *part_start;
    uint32_t n_parts;
    /* decoding scratch, owned here so that decoded_graph_free releases it whatever point
     * decoding stopped at (the fuzzers leave a ggml assertion by longjmp) */
    struct ggml_tensor **scratch_tensors;
    struct node_rebuild rebuild;
    /* time graph_decode spent, when VIRGL_APIR_STATS is on (backend_stats.h): the tensors,
     * then the node checks and index-guard analysis */
    uint64_t decode_ns, validate_ns;
};

/* GRAPH_COMPUTE arguments after the backend handle: u32 n_tensors, tensors, u32 n_nodes,
 * n_nodes (u32 tensor index, u32 use count); the message must end there. Every tensor needs a buffer. When dev is not
 * NULL, every buffer must be usable by it and every node supported by it. Returns an
 * apir_backend_status; on success *out owns the graph (decoded_graph_free). */
uint32_t graph_decode(struct apir_decoder *dec, const struct buffer_resolver *bufs, ggml_backend_dev_t dev,
                      struct decoded_graph *out);

/* SUPPORTS_OP / BUFT_GET_ALLOC_SIZE: u32 n (1..APIR_MAX_OP_TENSORS), n tensors; buffers are
 * optional (resolved when given). The message must end there. */
uint32_t op_tensors_decode(struct apir_decoder *dec, const struct buffer_resolver *bufs, struct decoded_graph *out);

void decoded_graph_free(struct decoded_graph *g);

#endif
