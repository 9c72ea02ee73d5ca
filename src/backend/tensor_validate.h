/* Validation of one wire tensor against ggml's rules, before anything is built from it. */
#ifndef APIR_TENSOR_VALIDATE_H
#define APIR_TENSOR_VALIDATE_H

#include "apir_wire_tensor.h"
#include "ggml-backend.h"
#include "ggml.h"

#include <stdint.h>

/* Checks type, op (and unary/glu sub-op), shape, strides and that src/view_src name earlier
 * tensors of the message (index is this tensor's position). On success stores in *extent
 * the number of bytes from the tensor's data pointer to one past the highest byte any
 * element occupies (overflow-checked). Returns an apir_backend_status. */
uint32_t tensor_validate(const struct apir_wire_tensor *t, uint32_t index, uint64_t *extent);

/* a 1-D byte tensor over [offset, offset+size) of buf, for ggml's tensor transfer calls,
 * which work for every backend; the caller has checked the range */
void tensor_byte_view(struct ggml_tensor *t, ggml_backend_buffer_t buf, uint64_t offset, uint64_t size);

/* true when [offset, offset + size) lies within [0, limit) (overflow-safe) */
static inline int range_ok(uint64_t offset, uint64_t size, uint64_t limit)
{
    return offset <= limit && size <= limit - offset;
}

#endif
