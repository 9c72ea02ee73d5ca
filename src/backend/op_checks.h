/* Per-op consistency checks on a decoded graph node: ggml's CPU kernels stop the whole host
 * process (GGML_ASSERT) on shapes, strides or types that a well-behaved ggml graph never
 * has. These run after tensor_validate() and before ggml_backend_dev_supports_op().
 *
 * Only ops with a rule are offloaded at all; others are reported unsupported so that ggml's
 * scheduler keeps them on the guest.
 *
 * Limits: these checks cover what can be known from the graph alone, for the CPU kernels of
 * ggml v0.5.0; another host backend may assert on combinations the CPU accepts. Row indices
 * of GET_ROWS / SET_ROWS are data: index_guard.c checks them before each compute.
 * docs/protocol.md says the same. */
#ifndef APIR_OP_CHECKS_H
#define APIR_OP_CHECKS_H

#include "ggml.h"

#include <stdint.h>

/* APIR_BACKEND_OK when the node may be handed to ggml; ERR_UNSUPPORTED for an op the host
 * does not offload; ERR_INVALID_TENSOR for an inconsistent node */
uint32_t op_check_node(const struct ggml_tensor *node);

#endif
