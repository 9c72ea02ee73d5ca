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

/* Writes t's wire encoding (exactly APIR_WIRE_TENSOR_SIZE bytes, the same bytes as
 * apir_wire_tensor_encode) straight from the ggml tensor: graph encoding does this for every
 * tensor of every compute, so it avoids the field-by-field encoder. */
void vgpu_wire_pack_tensor(uint8_t *out, const struct ggml_tensor *t, const uint32_t src[APIR_WIRE_MAX_SRC],
                           uint32_t view_src, uint32_t buffer, uint64_t data_offset);

/* u32 n + n tensors: the op's distinct sources first, the op last, src fields pointing into
 * the list; names, views, flags and placement blanked so equal ops give equal bytes. */
#define VGPU_OP_SIG_MAX (4 + APIR_MAX_OP_TENSORS * APIR_WIRE_TENSOR_SIZE)
/* writes into out[VGPU_OP_SIG_MAX]; returns the length */
size_t vgpu_op_signature(const struct ggml_tensor *op, uint8_t *out);

#endif
