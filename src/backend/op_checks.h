/* Per-op consistency checks on a decoded graph node, for the ops whose ggml CPU kernels
 * GGML_ASSERT (abort the host) on shapes, strides or types a well-behaved ggml graph never
 * has. These run after tensor_validate() and before ggml_backend_dev_supports_op().
 *
 * Limits: these checks cover what can be known from the graph alone. Kernels that assert on
 * tensor *contents* (GET_ROWS / SET_ROWS row indices, which may be produced by earlier nodes
 * of the same graph) cannot be fully guarded host-side, and ops without a rule below are
 * only checked generically and by the device's supports_op. docs/protocol.md says the same. */
#ifndef APIR_OP_CHECKS_H
#define APIR_OP_CHECKS_H

#include "ggml.h"

#include <stdbool.h>

/* true when the node may be handed to ggml */
bool op_check_node(const struct ggml_tensor *node);

#endif
