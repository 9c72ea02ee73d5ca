/* ggml tensors to wire tensors (apir_wire_tensor.h), and the op signature sent with
 * SUPPORTS_OP / BUFT_GET_ALLOC_SIZE, which doubles as the guest-side cache key. */
#ifndef VGPU_WIRE_H
#define VGPU_WIRE_H

#include "apir_forward.h"
#include "apir_wire_tensor.h"

#include <ggml.h>
#include <stddef.h>
#include <stdint.h>

/* Shape, type, op, params, flags, view offset and name; references and placement
 * (src, view_src, buffer, data_offset) are left 0 for the caller. */
void vgpu_wire_from_tensor(struct apir_wire_tensor *w, const struct ggml_tensor *t);

/* u32 n + n tensors: the op's distinct sources first, the op last, src fields pointing into
 * the list; names, views, flags and placement blanked so equal ops give equal bytes. */
#define VGPU_OP_SIG_MAX (4 + APIR_MAX_OP_TENSORS * APIR_WIRE_TENSOR_SIZE)
/* writes into out[VGPU_OP_SIG_MAX]; returns the length */
size_t vgpu_op_signature(const struct ggml_tensor *op, uint8_t *out);

#endif
