/* Deterministic input data for the op-consistency test and bench-ops: the same (tensor name,
 * shape, seed) gives the same bytes, so both backends get identical inputs. */
#ifndef TOOLS_TENSOR_FILL_H
#define TOOLS_TENSOR_FILL_H

#include <ggml.h>
#include <stdint.h>

/* Writes t's data through ggml_backend_tensor_set, chosen by t's name:
 *   "idx:N"  integers in [0, N) (i32/i64); distinct when the tensor has at most N elements
 *   "pos"    positions 0, 1, 2, ... (i32)
 *   "mask"   causal attention mask (0 or -inf), last row sees everything
 *   other    uniform values in [-1, 1], converted or quantized to the tensor's type
 * 0 on success, -1 on allocation failure. */
int tensor_fill(struct ggml_tensor *t, uint64_t seed);

/* The same data as a malloc'ed buffer of ggml_nbytes(t) bytes (for async uploads, which need
 * it alive until the backend synchronizes); NULL on allocation failure. */
void *tensor_fill_bytes(const struct ggml_tensor *t, uint64_t seed);

#endif
