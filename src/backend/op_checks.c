#include "op_checks.h"

#include "apir_forward.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef bool (*op_check_fn)(const struct ggml_tensor *t);

struct op_rule {
    bool known;        /* the host validates this op; any other op is not offloaded */
    unsigned n_src;    /* sources that must be present */
    bool strided;      /* nb[0] != type size allowed for sources and dst (copies) */
    bool no_compute;   /* view-like: the kernel does nothing */
    op_check_fn check; /* op-specific check, or NULL */
};

static bool same_shape(const struct ggml_tensor *a, const struct ggml_tensor *b)
{
    for (int i = 0; i < GGML_MAX_DIMS; i++)
        if (a->ne[i] != b->ne[i])
            return false;
    return true;
}

/* b can be broadcast (repeated) to a's shape; dims are >= 1 after validation */
static bool can_repeat(const struct ggml_tensor *b, const struct ggml_tensor *a)
{
    for (int i = 0; i < GGML_MAX_DIMS; i++)
        if (a->ne[i] % b->ne[i] != 0)
            return false;
    return true;
}

/* the byte ranges of a and b do not overlap (true when either has no data: SUPPORTS_OP).
 * Copy kernels memcpy rows, and a memcpy between overlapping ranges is undefined. */
static bool disjoint(const struct ggml_tensor *a, const struct ggml_tensor *b)
{
    if (!a->buffer || !b->buffer || a->buffer != b->buffer)
        return true;
    uintptr_t a0 = (uintptr_t)a->data, b0 = (uintptr_t)b->data;
    return a0 + ggml_nbytes(a) <= b0 || b0 + ggml_nbytes(b) <= a0;
}

static bool is_float(enum ggml_type t) { return t == GGML_TYPE_F32 || t == GGML_TYPE_F16 || t == GGML_TYPE_BF16; }
static bool is_int(enum ggml_type t)
{
    return t == GGML_TYPE_I8 || t == GGML_TYPE_I16 || t == GGML_TYPE_I32 || t == GGML_TYPE_I64;
}
/* types a kernel can dequantize rows of: floats and block-quantized types */
static bool is_row_type(enum ggml_type t) { return is_float(t) || (ggml_is_quantized(t) && !is_int(t)); }
/* types the CPU can quantize rows into (KV-cache types): the others have no from_float */
static bool is_store_type(enum ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32:
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16:
    case GGML_TYPE_Q4_0:
    case GGML_TYPE_Q4_1:
    case GGML_TYPE_Q5_0:
    case GGML_TYPE_Q5_1:
    case GGML_TYPE_Q8_0:
    case GGML_TYPE_IQ4_NL:
        return true;
    default:
        return false;
    }
}

static bool check_binary(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0], *b = t->src[1];
    if (!can_repeat(b, a) || !same_shape(a, t))
        return false;
    /* the type combinations the CPU kernels have: any other one aborts */
    if (!is_float(a->type) || !is_float(b->type) || !is_float(t->type))
        return false;
    return (b->type == a->type || b->type == GGML_TYPE_F32) && (t->type == a->type || t->type == GGML_TYPE_F32);
}

static bool check_add1(const struct ggml_tensor *t)
{
    /* the f32 kernel reads the scalar as a float: it must be one */
    const struct ggml_tensor *a = t->src[0], *b = t->src[1];
    return ggml_nelements(b) == 1 && same_shape(t, a) && t->type == a->type && is_float(a->type) &&
           (b->type == GGML_TYPE_F32 || (b->type == a->type && a->type != GGML_TYPE_F32));
}

static bool check_mul_mat(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0], *b = t->src[1];
    if (a->ne[0] != b->ne[0] || b->ne[2] % a->ne[2] != 0 || b->ne[3] % a->ne[3] != 0)
        return false;
    if (t->ne[0] != a->ne[1] || t->ne[1] != b->ne[1] || t->ne[2] != b->ne[2] || t->ne[3] != b->ne[3])
        return false;
    /* op_params[1]: a hint; the Hadamard one runs a transform with its own size rules, which
     * this host does not validate */
    if (t->op_params[1] != GGML_HINT_NONE)
        return false;
    /* ggml_mul_mat refuses a transposed a; the kernel writes f32 rows in increasing strides */
    if (!is_row_type(a->type) || !is_float(b->type) || t->type != GGML_TYPE_F32 || ggml_is_transposed(a))
        return false;
    return t->nb[0] <= t->nb[1] && t->nb[1] <= t->nb[2] && t->nb[2] <= t->nb[3];
}

static bool check_get_rows(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0], *b = t->src[1];
    if (b->type != GGML_TYPE_I32 || a->ne[2] != b->ne[1] || b->ne[3] != 1)
        return false;
    if (t->ne[0] != a->ne[0] || t->ne[1] != b->ne[0] || t->ne[2] != b->ne[1] || t->ne[3] != b->ne[2])
        return false;
    if (!disjoint(t, a))
        return false;
    if (a->type == GGML_TYPE_I32)
        return t->type == GGML_TYPE_I32;
    return is_row_type(a->type) && t->type == GGML_TYPE_F32;
}

static bool check_set_rows(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0], *b = t->src[1];
    if (b->type != GGML_TYPE_I32 && b->type != GGML_TYPE_I64)
        return false;
    /* a's rows are scattered into dst (ne[0] elements each) at b's indices */
    if (a->ne[0] != t->ne[0] || a->ne[1] != b->ne[0] || a->ne[2] % b->ne[1] != 0 || a->ne[3] % b->ne[2] != 0)
        return false;
    return b->ne[3] == 1 && t->ne[2] == a->ne[2] && t->ne[3] == a->ne[3] && a->type == GGML_TYPE_F32 &&
           is_store_type(t->type) && disjoint(t, a);
}

/* DUP/CPY/CONT: same element count and a conversion the CPU copy kernels have */
static bool check_copy(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0];
    if (ggml_nelements(t) != ggml_nelements(a) || !disjoint(t, a))
        return false;
    /* same type: a byte copy; for block types only the packed case is row-for-row safe */
    if (a->type == t->type)
        return ggml_blck_size(a->type) == 1 || (ggml_is_contiguous(a) && ggml_is_contiguous(t));
    if (is_float(a->type) && is_float(t->type))
        return true;
    if ((a->type == GGML_TYPE_I32 && t->type == GGML_TYPE_F32) || (a->type == GGML_TYPE_F32 && t->type == GGML_TYPE_I32))
        return true;
    /* quantizing needs packed rows on both sides; dequantizing goes to f32 only */
    if (is_float(a->type) && is_store_type(t->type))
        return ggml_is_contiguous(t) && a->nb[0] == ggml_type_size(a->type);
    if (is_row_type(a->type) && !is_float(a->type))
        return t->type == GGML_TYPE_F32;
    return false;
}

static bool check_reshape(const struct ggml_tensor *t) { return ggml_nelements(t) == ggml_nelements(t->src[0]); }

/* f32 kernels over rows, dst shaped like src0 */
static bool check_f32_rows(const struct ggml_tensor *t)
{
    return same_shape(t, t->src[0]) && t->type == GGML_TYPE_F32 && t->src[0]->type == GGML_TYPE_F32 &&
           ggml_is_contiguous_1(t->src[0]) && ggml_is_contiguous_1(t);
}

/* NORM / RMS_NORM: op_params[0] is eps, which the kernels assert is >= 0 (NaN fails too) */
static bool check_norm(const struct ggml_tensor *t)
{
    float eps;
    memcpy(&eps, &t->op_params[0], sizeof eps);
    return check_f32_rows(t) && eps >= 0.0f;
}

static bool check_unary(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0];
    return same_shape(t, a) && is_float(t->type) && t->type == a->type && ggml_is_contiguous_1(a) &&
           ggml_is_contiguous_1(t);
}

static bool check_glu(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0], *b = t->src[1];
    if (!is_float(a->type) || t->type != a->type || !ggml_is_contiguous_1(a) || !ggml_is_contiguous_1(t))
        return false;
    if (b) /* split form: gate and value in two tensors */
        return same_shape(a, b) && same_shape(a, t) && b->type == a->type && ggml_is_contiguous_1(b);
    return t->ne[0] * 2 == a->ne[0] && t->ne[1] == a->ne[1] && t->ne[2] == a->ne[2] && t->ne[3] == a->ne[3];
}

static bool check_soft_max(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0], *m = t->src[1], *sinks = t->src[2];
    if (!same_shape(a, t) || t->type != GGML_TYPE_F32 || a->type != GGML_TYPE_F32 || !ggml_is_contiguous(a))
        return false;
    if (m && (m->ne[0] != a->ne[0] || m->ne[1] < a->ne[1] || a->ne[2] % m->ne[2] != 0 || a->ne[3] % m->ne[3] != 0 ||
              (m->type != GGML_TYPE_F32 && m->type != GGML_TYPE_F16) || !ggml_is_contiguous(m)))
        return false;
    return !sinks || (sinks->type == GGML_TYPE_F32 && sinks->ne[0] >= a->ne[2]);
}

static bool check_rope(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0], *pos = t->src[1], *ff = t->src[2];
    int n_dims = t->op_params[1], mode = t->op_params[2];
    if (!same_shape(a, t) || pos->type != GGML_TYPE_I32 || t->type != a->type ||
        (a->type != GGML_TYPE_F32 && a->type != GGML_TYPE_F16))
        return false;
    /* op_params[15]: offset of the rotated dims in a row (the kernel asserts it fits) */
    int64_t n_offs = t->op_params[15];
    if (n_dims <= 0 || n_dims % 2 != 0 || n_offs < 0 || n_offs + n_dims > a->ne[0])
        return false;
    /* the kernel aborts on any other mode */
    if (mode != 0 && mode != GGML_ROPE_TYPE_NEOX && mode != GGML_ROPE_TYPE_MROPE && mode != GGML_ROPE_TYPE_VISION &&
        mode != GGML_ROPE_TYPE_IMROPE)
        return false;
    /* multi-section rope (mode bit 8) reads 4 positions per row and takes a modulo by the
     * sum of its sections (op_params[11..14]); vision rope asserts n_dims == ne0 / 2 */
    int64_t per = (mode & GGML_ROPE_TYPE_MROPE) ? 4 : 1;
    if (mode & GGML_ROPE_TYPE_MROPE) {
        int64_t sum = 0;
        for (int i = 11; i < 15; i++) {
            if (t->op_params[i] < 0)
                return false;
            sum += t->op_params[i];
        }
        if (sum <= 0 || sum > a->ne[0]) /* the kernel asserts sum <= ne0 */
            return false;
    }
    if (mode == GGML_ROPE_TYPE_VISION && n_dims * 2 != a->ne[0])
        return false;
    if (!ggml_is_contiguous(pos) || pos->ne[0] < a->ne[2] * per)
        return false;
    return !ff || (ff->type == GGML_TYPE_F32 && ff->ne[0] >= n_dims / 2);
}

static bool check_flash_attn(const struct ggml_tensor *t)
{
    const struct ggml_tensor *q = t->src[0], *k = t->src[1], *v = t->src[2], *mask = t->src[3], *sinks = t->src[4];
    if (q->ne[0] != k->ne[0] || k->ne[1] != v->ne[1] || q->ne[2] % k->ne[2] != 0 || q->ne[3] % k->ne[3] != 0 ||
        q->ne[2] % v->ne[2] != 0 || q->ne[3] % v->ne[3] != 0)
        return false;
    if (t->ne[0] != v->ne[0] || t->ne[1] != q->ne[2] || t->ne[2] != q->ne[1] || t->ne[3] != q->ne[3])
        return false;
    /* f32 K/V have no to_float in ggml's type traits: only f16, bf16 and quantized caches */
    if (q->type != GGML_TYPE_F32 || t->type != GGML_TYPE_F32 || !is_row_type(k->type) || !is_row_type(v->type) ||
        k->type == GGML_TYPE_F32 || v->type == GGML_TYPE_F32)
        return false;
    if (t->nb[0] > t->nb[1] || t->nb[1] > t->nb[2] || t->nb[2] > t->nb[3])
        return false;
    /* op_params[3]: precision, the kernel knows two */
    if (t->op_params[3] != GGML_PREC_DEFAULT && t->op_params[3] != GGML_PREC_F32)
        return false;
    /* the kernel reads one f16 mask row of n_kv entries per query */
    if (mask && (mask->type != GGML_TYPE_F16 || mask->ne[0] < k->ne[1] || mask->ne[1] < q->ne[1] ||
                 q->ne[2] % mask->ne[2] != 0 || q->ne[3] % mask->ne[3] != 0))
        return false;
    return !sinks || (sinks->type == GGML_TYPE_F32 && sinks->ne[0] >= q->ne[2]);
}

static bool check_scale(const struct ggml_tensor *t) { return check_f32_rows(t) && ggml_is_contiguous(t->src[0]) && ggml_is_contiguous(t); }

static bool check_sum_rows(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0];
    return t->ne[0] == 1 && t->ne[1] == a->ne[1] && t->ne[2] == a->ne[2] && t->ne[3] == a->ne[3] &&
           a->type == GGML_TYPE_F32 && t->type == GGML_TYPE_F32;
}

static bool check_repeat(const struct ggml_tensor *t)
{
    return can_repeat(t->src[0], t) && t->type == t->src[0]->type && is_float(t->type) && disjoint(t, t->src[0]);
}

static bool check_concat(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0], *b = t->src[1];
    int dim = t->op_params[0];
    /* the generic kernel copies ne0 elements of type_size bytes: block types would overrun */
    if (dim < 0 || dim >= GGML_MAX_DIMS || a->type != b->type || t->type != a->type || !disjoint(t, a) ||
        !disjoint(t, b) || ggml_blck_size(a->type) != 1)
        return false;
    for (int d = 0; d < GGML_MAX_DIMS; d++) {
        int64_t want = d == dim ? a->ne[d] + b->ne[d] : a->ne[d];
        if ((d != dim && b->ne[d] != a->ne[d]) || t->ne[d] != want)
            return false;
    }
    return true;
}

static bool check_argsort(const struct ggml_tensor *t)
{
    int order = t->op_params[0]; /* GGML_SORT_ORDER_ASC / DESC */
    return same_shape(t, t->src[0]) && t->src[0]->type == GGML_TYPE_F32 && t->type == GGML_TYPE_I32 &&
           (order == GGML_SORT_ORDER_ASC || order == GGML_SORT_ORDER_DESC);
}

/* Only the ops below are offloaded: for each, the host knows which shapes, types and strides
 * the CPU kernels accept. A guest asking about any other op is told it is unsupported, so
 * ggml's scheduler keeps it on the guest. */
static const struct op_rule rules[GGML_OP_COUNT] = {
    [GGML_OP_NONE] = {true, 0, true, true, NULL},
    [GGML_OP_DUP] = {true, 1, true, false, check_copy},
    [GGML_OP_CPY] = {true, 2, true, false, check_copy},
    [GGML_OP_CONT] = {true, 1, true, false, check_copy},
    [GGML_OP_ADD] = {true, 2, false, false, check_binary},
    [GGML_OP_ADD1] = {true, 2, false, false, check_add1},
    [GGML_OP_SUB] = {true, 2, false, false, check_binary},
    [GGML_OP_MUL] = {true, 2, false, false, check_binary},
    [GGML_OP_DIV] = {true, 2, false, false, check_binary},
    [GGML_OP_SQR] = {true, 1, false, false, check_f32_rows},
    [GGML_OP_SQRT] = {true, 1, false, false, check_f32_rows},
    [GGML_OP_SUM_ROWS] = {true, 1, false, false, check_sum_rows},
    [GGML_OP_MEAN] = {true, 1, false, false, check_sum_rows},
    [GGML_OP_REPEAT] = {true, 1, false, false, check_repeat},
    [GGML_OP_CONCAT] = {true, 2, false, false, check_concat},
    [GGML_OP_NORM] = {true, 1, false, false, check_norm},
    [GGML_OP_RMS_NORM] = {true, 1, false, false, check_norm},
    [GGML_OP_MUL_MAT] = {true, 2, false, false, check_mul_mat},
    [GGML_OP_SCALE] = {true, 1, false, false, check_scale},
    [GGML_OP_RESHAPE] = {true, 1, true, true, check_reshape},
    [GGML_OP_VIEW] = {true, 1, true, true, NULL},
    [GGML_OP_PERMUTE] = {true, 1, true, true, NULL},
    [GGML_OP_TRANSPOSE] = {true, 1, true, true, NULL},
    [GGML_OP_GET_ROWS] = {true, 2, false, false, check_get_rows},
    [GGML_OP_SET_ROWS] = {true, 2, false, false, check_set_rows},
    [GGML_OP_SOFT_MAX] = {true, 1, false, false, check_soft_max},
    [GGML_OP_ROPE] = {true, 2, false, false, check_rope},
    [GGML_OP_ARGSORT] = {true, 1, false, false, check_argsort},
    [GGML_OP_FLASH_ATTN_EXT] = {true, 3, false, false, check_flash_attn},
    [GGML_OP_UNARY] = {true, 1, false, false, check_unary},
    [GGML_OP_GLU] = {true, 1, false, false, check_glu},
};

uint32_t op_check_node(const struct ggml_tensor *node)
{
    const struct op_rule *r = &rules[node->op];
    if (!r->known)
        return APIR_BACKEND_ERR_UNSUPPORTED;
    for (unsigned j = 0; j < r->n_src; j++)
        if (!node->src[j])
            return APIR_BACKEND_ERR_INVALID_TENSOR;
    if (!r->no_compute && !r->strided) {
        /* computing kernels write packed elements and (mostly) read packed rows */
        if (node->nb[0] != ggml_type_size(node->type))
            return APIR_BACKEND_ERR_INVALID_TENSOR;
        for (int j = 0; j < GGML_MAX_SRC; j++)
            if (node->src[j] && node->src[j]->nb[0] != ggml_type_size(node->src[j]->type))
                return APIR_BACKEND_ERR_INVALID_TENSOR;
    }
    /* a computing node reads each source either from elsewhere or in place (ggml-alloc
     * reuses a source's memory, same address); a partial overlap makes the kernels' row
     * memcpys undefined */
    for (int j = 0; j < GGML_MAX_SRC && !r->no_compute; j++) {
        const struct ggml_tensor *src = node->src[j];
        if (src && src != node && src->data != node->data && !disjoint(src, node))
            return APIR_BACKEND_ERR_INVALID_TENSOR;
    }
    if (r->check && !r->check(node))
        return APIR_BACKEND_ERR_INVALID_TENSOR;
    return APIR_BACKEND_OK;
}
