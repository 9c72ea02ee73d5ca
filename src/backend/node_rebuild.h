/* Validation derived from ggml: each computed node of a guest graph is rebuilt with ggml's
 * own constructor for its op (ggml_mul_mat, ggml_rope_ext, ggml_view_4d...) from its decoded
 * sources and op_params, in a no-alloc scratch context, and the guest's node must have the
 * type, shape and strides (and, for views and in-place results, the view source and offset)
 * that ggml produced. The host therefore accepts exactly the nodes ggml itself can build,
 * with no hand-written list of shape rules to keep up with ggml.
 *
 * An input that violates one of ggml's own GGML_ASSERTs in a constructor aborts the process
 * that decodes it: the worker serving this guest only (docs/architecture.md, "Isolation"). */
#ifndef APIR_NODE_REBUILD_H
#define APIR_NODE_REBUILD_H

#include "ggml.h"

#include <stdbool.h>
#include <stdint.h>

/* a no-alloc ggml context in memory of our own, so that failing to get it is an error, not
 * an abort inside ggml; NULL (and *mem NULL) on failure, else ggml_free it, then free *mem */
struct ggml_context *owned_ctx_new(size_t size, void **mem);

/* a scratch context reused for every node of a graph (reset per node) */
struct node_rebuild {
    void *mem;
    struct ggml_context *ctx;
};

bool node_rebuild_init(struct node_rebuild *rb);
void node_rebuild_fini(struct node_rebuild *rb);

/* true for ops whose node computes nothing (views of their source) */
bool node_is_view_op(enum ggml_op op);

/* APIR_BACKEND_OK when ggml builds exactly this node from its sources and op_params;
 * ERR_UNSUPPORTED for ops the host never runs for a guest (custom ops: function pointers);
 * ERR_INVALID_TENSOR when the guest's node differs from ggml's. */
uint32_t node_rebuild_check(struct node_rebuild *rb, const struct ggml_tensor *node);

#endif
