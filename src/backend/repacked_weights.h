/* Weights the CPU backend multiplies in its own layout. Natively llama.cpp loads the weights
 * of a CPU device into ggml-cpu's extra buffer types (CPU_REPACK: Q4_0 rows interleaved eight
 * at a time for AVX2, and the like), whose matrix kernels are faster; a guest's weights arrive
 * in the device's plain buffer type, since a remote device offers llama.cpp no such type. So
 * the host keeps a repacked copy of each weight a MUL_MAT / MUL_MAT_ID of a decoded graph
 * reads, made when the graph is decoded, and the node reads the copy. The guest's bytes stay
 * as they are (it may read them back, copy them, use them in any other op).
 *
 * A copy is only made where ggml-cpu's kernels hold for the node (ggml's supports_op of the
 * extra type, plus the shapes its kernels assert on: contiguous F32 activations, at most 3
 * dimensions), never for a weight the same graph writes, and within what apir.limit.buffer_bytes
 * leaves. Every write into a weight's bytes (a transfer, COPY, CLEAR, MEMSET, a graph's node)
 * marks its copy stale; stale copies are repacked again before the next compute. */
#ifndef APIR_REPACKED_WEIGHTS_H
#define APIR_REPACKED_WEIGHTS_H

#include "ggml-backend.h"
#include "write_shadow.h"

#include <stdbool.h>
#include <stdint.h>

#define REPACKED_WEIGHTS_MAX 4096u /* copies and refusals remembered per context */

struct repacked_weight {
    ggml_backend_buffer_t buffer; /* the guest's buffer holding the weight */
    uint64_t offset, size;
    enum ggml_type type;
    int64_t ne[GGML_MAX_DIMS];
    ggml_backend_buffer_t copy; /* NULL: this weight is not repacked (not tried again) */
    struct ggml_tensor *t;      /* the copy, in ctx */
    struct ggml_context *ctx;
    void *ctx_mem;
    bool stale;
};

struct repacked_weights {
    struct repacked_weight *w;
    size_t n, cap;
    /* the distinct buffers of w's copies: every write and every compute asks whether its
     * ranges touch a copy, and that answer mostly is "not this buffer" */
    ggml_backend_buffer_t *bufs;
    size_t n_bufs, bufs_cap;
    uint64_t bytes; /* of the copies */
    bool any_stale, logged_first, logged_limit;
};

/* the extra buffer types of a CPU device (NULL-terminated, ggml's), NULL for any other device */
ggml_backend_buffer_type_t *repacked_weights_bufts(ggml_backend_dev_t dev);

/* Points the MUL_MAT / MUL_MAT_ID nodes of graph that can use a repacked weight at its copy
 * (made now when there is none). writes: the ranges graph writes (index_guard's, sorted);
 * room: bytes the copies may still take (backend_ctx_room). Returns how many nodes read copies. */
uint32_t repacked_weights_substitute(struct repacked_weights *rw, ggml_backend_dev_t dev,
                                     ggml_backend_buffer_type_t *bufts, struct ggml_cgraph *graph,
                                     const struct write_range *writes, uint32_t n_writes, uint64_t room);
/* bytes [offset, offset+size) of buffer changed (size UINT64_MAX: to its end) */
void repacked_weights_invalidate(struct repacked_weights *rw, const void *buffer, uint64_t offset, uint64_t size);
/* the same for every range of w */
void repacked_weights_invalidate_ranges(struct repacked_weights *rw, const struct write_range *w, uint32_t n);
/* repacks every stale copy from the guest's bytes (before a compute; writes settled) */
void repacked_weights_refresh(struct repacked_weights *rw);
/* buffer is going away: its copies go too. Graphs reading them must be gone already. */
void repacked_weights_forget(struct repacked_weights *rw, const void *buffer);
/* frees every copy (graphs reading them gone already) */
void repacked_weights_free(struct repacked_weights *rw);

#endif
