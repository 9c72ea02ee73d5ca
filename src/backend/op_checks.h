/* What the host requires of a guest node before ggml sees it:
 *  1. ggml itself builds exactly this node from its sources and op_params (node_rebuild.c:
 *     type, shape, strides, view source and offset, sources);
 *  2. the few facts ggml's constructors leave to the kernels and that a kernel would turn
 *     into a read or write outside the node's tensors (below);
 * and then the host backend's own supports_op (graph_decode.c, cmd_device.c). Row indices
 * that ops read from tensor data are checked before each compute (index_guard.c).
 * docs/protocol.md says the same. */
#ifndef APIR_OP_CHECKS_H
#define APIR_OP_CHECKS_H

#include "node_rebuild.h"
#include "ggml.h"

#include <stdint.h>

/* APIR_BACKEND_OK when the node may be handed to the host backend's supports_op;
 * ERR_UNSUPPORTED for an op the host never runs for a guest; ERR_INVALID_TENSOR for a node
 * ggml would not build or that would make a kernel leave its tensors */
uint32_t op_check_node(struct node_rebuild *rb, const struct ggml_tensor *node);

#endif
