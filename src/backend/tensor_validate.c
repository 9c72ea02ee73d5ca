#include "tensor_validate.h"

#include "apir_forward.h"
#include "ggml.h"

#include <string.h>

#define KNOWN_FLAGS (GGML_TENSOR_FLAG_INPUT | GGML_TENSOR_FLAG_OUTPUT | GGML_TENSOR_FLAG_PARAM | \
                     GGML_TENSOR_FLAG_LOSS | GGML_TENSOR_FLAG_COMPUTE)

/* the sub-op that selects a kernel must be in range, or ggml indexes its tables with it */
static int sub_op_ok(const struct apir_wire_tensor *t)
{
    if (t->op == GGML_OP_UNARY)
        return t->op_params[0] >= 0 && t->op_params[0] < GGML_UNARY_OP_COUNT;
    if (t->op == GGML_OP_GLU)
        return t->op_params[0] >= 0 && t->op_params[0] < GGML_GLU_OP_COUNT;
    return 1;
}

static uint32_t check_shape(const struct apir_wire_tensor *t, uint64_t *extent)
{
    /* removed types (Q4_2...) keep a slot in the enum with size 0: reject them too */
    size_t tsize = ggml_type_size((enum ggml_type)t->type);
    int64_t blck = ggml_blck_size((enum ggml_type)t->type);
    if (tsize == 0 || blck <= 0)
        return APIR_BACKEND_ERR_INVALID_TENSOR;

    /* no negative dimension, element count fits int64 */
    int64_t nel = 1;
    for (int i = 0; i < APIR_WIRE_MAX_DIMS; i++) {
        if (t->ne[i] < 0 || __builtin_mul_overflow(nel, t->ne[i], &nel))
            return APIR_BACKEND_ERR_INVALID_TENSOR;
    }
    if (t->ne[0] % blck != 0)
        return APIR_BACKEND_ERR_INVALID_TENSOR;
    /* an empty tensor (ggml builds them: a zero-row view, a batch of nothing) occupies no
     * byte; ggml's backends skip empty nodes */
    if (nel == 0) {
        *extent = 0;
        return APIR_BACKEND_OK;
    }

    /* highest byte touched: first-dimension span, plus (ne[i]-1)*nb[i] for the others; a
     * block-quantized row must be packed (nb[0] == block size) */
    uint64_t ext;
    int first = 1;
    if (blck > 1) {
        if (t->nb[0] != tsize)
            return APIR_BACKEND_ERR_INVALID_TENSOR;
        if (__builtin_mul_overflow((uint64_t)(t->ne[0] / blck), (uint64_t)tsize, &ext))
            return APIR_BACKEND_ERR_INVALID_TENSOR;
    } else {
        ext = tsize;
        first = 0;
    }
    for (int i = first; i < APIR_WIRE_MAX_DIMS; i++) {
        uint64_t span;
        if (__builtin_mul_overflow((uint64_t)(t->ne[i] - 1), t->nb[i], &span) ||
            __builtin_add_overflow(ext, span, &ext))
            return APIR_BACKEND_ERR_INVALID_TENSOR;
    }
    if (ext > (uint64_t)SIZE_MAX || ext > (uint64_t)INT64_MAX)
        return APIR_BACKEND_ERR_INVALID_TENSOR;
    /* the extent must cover the packed size: a kernel that treats the tensor as contiguous
     * (ggml_nelements * element size from data) then stays inside it too. Only tensors with
     * overlapping strides, which ggml never builds, fail this. The packed size is bounded
     * too (2^56 bytes, more than any buffer), so that ggml's own size arithmetic on tensors
     * that need no buffer (SUPPORTS_OP: CONCAT's sum of extents...) cannot overflow. */
    uint64_t packed, rest;
    if (__builtin_mul_overflow((uint64_t)tsize, (uint64_t)(t->ne[0] / blck), &packed) ||
        __builtin_mul_overflow((uint64_t)t->ne[1] * (uint64_t)t->ne[2], (uint64_t)t->ne[3], &rest) ||
        __builtin_mul_overflow(packed, rest, &packed) || packed > ext || packed > ((uint64_t)1 << 56))
        return APIR_BACKEND_ERR_INVALID_TENSOR;
    *extent = ext;
    return APIR_BACKEND_OK;
}

uint32_t tensor_validate(const struct apir_wire_tensor *t, uint32_t index, uint64_t *extent)
{
    if (t->type >= GGML_TYPE_COUNT || t->op >= GGML_OP_COUNT || !sub_op_ok(t))
        return APIR_BACKEND_ERR_INVALID_TENSOR;
    if (t->flags & ~KNOWN_FLAGS)
        return APIR_BACKEND_ERR_INVALID_TENSOR;
    /* references are index + 1 of an earlier tensor: value <= index. A source may also be
     * the tensor itself (index + 1): ggml_cast/ggml_cpy into a new tensor set src[1] to the
     * result. Nothing later is reachable, so decoding needs no recursion. */
    for (int j = 0; j < APIR_WIRE_MAX_SRC; j++) {
        if (t->src[j] > index + 1)
            return APIR_BACKEND_ERR_INVALID_TENSOR;
    }
    if (t->view_src > index)
        return APIR_BACKEND_ERR_INVALID_TENSOR;
    return check_shape(t, extent);
}

void tensor_byte_view(struct ggml_tensor *t, ggml_backend_buffer_t buf, uint64_t offset, uint64_t size)
{
    memset(t, 0, sizeof *t);
    t->type = GGML_TYPE_I8;
    t->ne[0] = (int64_t)size;
    t->ne[1] = t->ne[2] = t->ne[3] = 1;
    t->nb[0] = 1;
    t->nb[1] = t->nb[2] = t->nb[3] = (size_t)size;
    t->buffer = buf;
    t->data = (char *)ggml_backend_buffer_get_base(buf) + offset;
}
