#include "op_checks.h"

#include <stddef.h>

typedef bool (*op_check_fn)(const struct ggml_tensor *t);

struct op_rule {
    unsigned n_src;    /* sources that must be present */
    bool strided;      /* nb[0] != type size allowed for sources and dst (copies, views) */
    bool no_compute;   /* view-like: the kernel does nothing, dst may be strided */
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

static bool is_float(enum ggml_type t) { return t == GGML_TYPE_F32 || t == GGML_TYPE_F16 || t == GGML_TYPE_BF16; }

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

static bool check_mul_mat(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0], *b = t->src[1];
    if (a->ne[0] != b->ne[0] || b->ne[2] % a->ne[2] != 0 || b->ne[3] % a->ne[3] != 0)
        return false;
    if (t->ne[0] != a->ne[1] || t->ne[1] != b->ne[1] || t->ne[2] != b->ne[2] || t->ne[3] != b->ne[3])
        return false;
    /* ggml_mul_mat refuses a transposed a; the kernel writes f32 rows in increasing strides */
    if (a->nb[0] > a->nb[1] || t->type != GGML_TYPE_F32)
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
    return t->type == GGML_TYPE_F32 || t->type == a->type;
}

static bool check_set_rows(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0], *b = t->src[1];
    if (b->type != GGML_TYPE_I32 && b->type != GGML_TYPE_I64)
        return false;
    /* dst rows of ne[0] elements; a's rows are scattered into dst at b's indices */
    if (a->ne[0] != t->ne[0] || a->ne[1] != b->ne[0] || a->ne[2] % b->ne[1] != 0 || a->ne[3] % b->ne[2] != 0)
        return false;
    return b->ne[3] == 1 && t->ne[2] == a->ne[2] && t->ne[3] == a->ne[3];
}

static bool check_same_nelements(const struct ggml_tensor *t) { return ggml_nelements(t) == ggml_nelements(t->src[0]); }

static bool check_same_shape_src0(const struct ggml_tensor *t) { return same_shape(t, t->src[0]); }

static bool check_unary(const struct ggml_tensor *t)
{
    return same_shape(t, t->src[0]) && is_float(t->type) && is_float(t->src[0]->type);
}

static bool check_glu(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0], *b = t->src[1];
    if (b) /* split form: gate and value side by side in two tensors */
        return same_shape(a, b) && same_shape(a, t);
    return t->ne[0] * 2 == a->ne[0] && t->ne[1] == a->ne[1] && t->ne[2] == a->ne[2] && t->ne[3] == a->ne[3];
}

static bool check_soft_max(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0], *m = t->src[1];
    if (!same_shape(a, t) || t->type != GGML_TYPE_F32 || a->type != GGML_TYPE_F32)
        return false;
    if (m && (m->ne[0] != a->ne[0] || m->ne[1] < a->ne[1] || a->ne[2] % m->ne[2] != 0 || a->ne[3] % m->ne[3] != 0))
        return false;
    return !m || m->type == GGML_TYPE_F32 || m->type == GGML_TYPE_F16;
}

static bool check_rope(const struct ggml_tensor *t)
{
    const struct ggml_tensor *a = t->src[0], *pos = t->src[1], *ff = t->src[2];
    int n_dims = t->op_params[1], mode = t->op_params[2];
    if (!same_shape(a, t) || pos->type != GGML_TYPE_I32)
        return false;
    if (n_dims <= 0 || n_dims > a->ne[0] || n_dims % 2 != 0)
        return false;
    /* multi-section rope (mode bit 8) reads 4 positions per row */
    int64_t per = (mode & GGML_ROPE_TYPE_MROPE) ? 4 : 1;
    if (pos->ne[0] < a->ne[2] * per)
        return false;
    return !ff || (ff->type == GGML_TYPE_F32 && ff->ne[0] >= n_dims / 2);
}

static bool check_flash_attn(const struct ggml_tensor *t)
{
    const struct ggml_tensor *q = t->src[0], *k = t->src[1], *v = t->src[2];
    if (q->ne[0] != k->ne[0] || k->ne[1] != v->ne[1] || q->ne[2] % k->ne[2] != 0 || q->ne[3] % k->ne[3] != 0)
        return false;
    return t->ne[0] == v->ne[0] && t->ne[1] == q->ne[2] && t->ne[2] == q->ne[1] && t->ne[3] == q->ne[3];
}

/* ops missing from this table get only the generic node rules and supports_op */
static const struct op_rule rules[GGML_OP_COUNT] = {
    [GGML_OP_NONE] = {0, true, true, NULL},
    [GGML_OP_DUP] = {1, true, false, check_same_nelements},
    [GGML_OP_CPY] = {2, true, false, check_same_nelements},
    [GGML_OP_CONT] = {1, true, false, check_same_nelements},
    [GGML_OP_ADD] = {2, false, false, check_binary},
    [GGML_OP_SUB] = {2, false, false, check_binary},
    [GGML_OP_MUL] = {2, false, false, check_binary},
    [GGML_OP_DIV] = {2, false, false, check_binary},
    [GGML_OP_MUL_MAT] = {2, false, false, check_mul_mat},
    [GGML_OP_GET_ROWS] = {2, false, false, check_get_rows},
    [GGML_OP_SET_ROWS] = {2, false, false, check_set_rows},
    [GGML_OP_SCALE] = {1, false, false, check_same_shape_src0},
    [GGML_OP_SQR] = {1, false, false, check_unary},
    [GGML_OP_SQRT] = {1, false, false, check_unary},
    [GGML_OP_UNARY] = {1, false, false, check_unary},
    [GGML_OP_GLU] = {1, false, false, check_glu},
    [GGML_OP_NORM] = {1, false, false, check_same_shape_src0},
    [GGML_OP_RMS_NORM] = {1, false, false, check_same_shape_src0},
    [GGML_OP_SOFT_MAX] = {1, false, false, check_soft_max},
    [GGML_OP_ROPE] = {2, false, false, check_rope},
    [GGML_OP_FLASH_ATTN_EXT] = {3, false, false, check_flash_attn},
    [GGML_OP_RESHAPE] = {1, true, true, check_same_nelements},
    [GGML_OP_VIEW] = {1, true, true, NULL},
    [GGML_OP_PERMUTE] = {1, true, true, NULL},
    [GGML_OP_TRANSPOSE] = {1, true, true, NULL},
};

bool op_check_node(const struct ggml_tensor *node)
{
    const struct op_rule *r = &rules[node->op];
    for (unsigned j = 0; j < r->n_src; j++)
        if (!node->src[j])
            return false;
    if (!r->no_compute && !r->strided) {
        /* computing kernels write packed elements and (mostly) read packed rows */
        if (node->nb[0] != ggml_type_size(node->type))
            return false;
        for (int j = 0; j < GGML_MAX_SRC; j++)
            if (node->src[j] && node->src[j]->nb[0] != ggml_type_size(node->src[j]->type))
                return false;
    }
    return !r->check || r->check(node);
}
