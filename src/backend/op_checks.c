#include "op_checks.h"

#include "apir_forward.h"
#include "ggml-backend.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* the byte ranges of a and b do not overlap (true when either has no data: SUPPORTS_OP) */
static bool disjoint(const struct ggml_tensor *a, const struct ggml_tensor *b)
{
    if (!a->buffer || !b->buffer || a->buffer != b->buffer)
        return true;
    uintptr_t a0 = (uintptr_t)a->data, b0 = (uintptr_t)b->data;
    return a0 + ggml_nbytes(a) <= b0 || b0 + ggml_nbytes(b) <= a0;
}

/* Kernels that assume packed rows read ne[0] * type size bytes from each row start; that
 * stays inside the tensor's extent (checked at decode) when nb[0] >= type size. A smaller
 * nb[0] (0: a broadcast, or overlapping elements) is something ggml never builds. */
static bool rows_ok(const struct ggml_tensor *t) { return t->ne[0] == 1 || t->nb[0] >= ggml_type_size(t->type); }

/* the tensor a kernel writes (in place into a source for CPY / SET_ROWS) */
static bool is_destination(const struct ggml_tensor *node, int j)
{
    return (node->op == GGML_OP_CPY && j == 1) || (node->op == GGML_OP_SET_ROWS && j == 2);
}

/* a quantized type a kernel reads must have a row decoder in ggml's type traits (Q8_1 and
 * Q8_K have none: a kernel would call a NULL function) */
static bool readable_type(enum ggml_type t) { return !ggml_is_quantized(t) || ggml_get_type_traits(t)->to_float; }

/* ACC / SET view the destination with strides and an offset taken from op_params (int32,
 * bytes) and write src1 there; the view must lie inside the destination */
static bool acc_view_ok(const struct ggml_tensor *node)
{
    const struct ggml_tensor *b = node->src[1];
    int32_t p[4];
    memcpy(p, node->op_params, sizeof p);
    uint64_t end = p[3];
    if (p[0] < 0 || p[1] < 0 || p[2] < 0 || p[3] < 0)
        return false;
    uint64_t span = (uint64_t)b->ne[0] * ggml_type_size(node->type);
    for (int i = 1; i < 4; i++) {
        uint64_t s;
        if (__builtin_mul_overflow((uint64_t)(b->ne[i] - 1), (uint64_t)p[i - 1], &s) || __builtin_add_overflow(end, s, &end))
            return false;
    }
    return !__builtin_add_overflow(end, span, &end) && end <= ggml_nbytes(node);
}

/* f32 and the types ggml can decode have a CPU dot product; integer types have none */
static bool has_dot(enum ggml_type t) { return t == GGML_TYPE_F32 || ggml_get_type_traits(t)->to_float; }

static bool kernel_bounds_ok(const struct ggml_tensor *n)
{
    const struct ggml_tensor *a = n->src[0];
    switch (n->op) {
    case GGML_OP_MUL_MAT:
    case GGML_OP_MUL_MAT_ID:
        /* the kernel calls the weight type's dot product: integer types have none (a jump to
         * NULL); f32 and the types ggml can decode have one */
        return has_dot(a->type);
    case GGML_OP_ACC:
    case GGML_OP_SET:
        return acc_view_ok(n);
    case GGML_OP_ROPE:
    case GGML_OP_ROPE_BACK: {
        /* The kernel rotates pairs up to ne[0] and reads one frequency factor per pair,
         * ne[0]/2 floats, although ggml asks only n_dims/2 of the tensor (and llama.cpp's own
         * tests give no more). Reading past the tensor into the guest's own buffer is what
         * the native backend does too; past the buffer's end it would be host memory. */
        if (a->ne[0] % 2 != 0)
            return false;
        /* the rotated dims [n_offs, n_offs + n_dims) and the copied rest of each row are
         * indexed from n_dims: a negative n_dims (ggml does not check it) walks before the
         * row, writing, and n_dims = 0 never leaves the copy loop (i0 += n_dims - 2) */
        int64_t n_dims = n->op_params[1], n_offs = n->op_params[15];
        if (n_dims <= 0 || n_dims % 2 != 0 || n_offs < 0 || n_offs % 2 != 0 || n_dims + n_offs > a->ne[0])
            return false;
        const struct ggml_tensor *ff = n->src[2];
        if (ff && ff->buffer) {
            uint64_t start = (uint64_t)((const char *)ff->data - (const char *)ggml_backend_buffer_get_base(ff->buffer));
            uint64_t need = (uint64_t)(a->ne[0] / 2) * sizeof(float);
            if (start > ggml_backend_buffer_get_size(ff->buffer) || need > ggml_backend_buffer_get_size(ff->buffer) - start)
                return false;
        }
        /* and divides by the sum of the m-rope sections: a zero sum is a SIGFPE, not an assert */
        int32_t mode = n->op_params[2];
        if (mode & GGML_ROPE_TYPE_MROPE) {
            int64_t sum = 0;
            for (int i = 11; i < 15; i++) {
                if (n->op_params[i] < 0)
                    return false;
                sum += n->op_params[i];
            }
            if (sum <= 0 || sum > a->ne[0])
                return false;
        }
        return true;
    }
    case GGML_OP_FLASH_ATTN_EXT: {
        /* ggml checks K against Q but leaves V to the kernel ("TODO" in ggml.c): the kernel
         * reads a V row per K row and maps Q heads onto V heads by q->ne[2] / v->ne[2] (a
         * division by zero when V has more heads, a read past V when they do not divide);
         * one mask row (of n_kv entries) per query row */
        const struct ggml_tensor *q = n->src[0], *k = n->src[1], *v = n->src[2], *mask = n->src[3];
        if (!has_dot(k->type) || !has_dot(v->type)) /* K's dot product, V's row decoder */
            return false;
        if (v->ne[1] != k->ne[1] || q->ne[2] % v->ne[2] != 0 || q->ne[3] % v->ne[3] != 0)
            return false;
        return !mask || (mask->ne[0] >= k->ne[1] && mask->ne[1] >= q->ne[1]);
    }
    default:
        return true;
    }
}

uint32_t op_check_node(struct node_rebuild *rb, const struct ggml_tensor *node)
{
    uint32_t st = node_rebuild_check(rb, node);
    if (st != APIR_BACKEND_OK || node_is_view_op(node->op) || ggml_is_empty(node))
        return st; /* views and empty nodes compute nothing */
    if (!rows_ok(node))
        return APIR_BACKEND_ERR_INVALID_TENSOR;
    for (int j = 0; j < GGML_MAX_SRC; j++) {
        const struct ggml_tensor *src = node->src[j];
        if (!src || src == node)
            continue;
        if (!rows_ok(src))
            return APIR_BACKEND_ERR_INVALID_TENSOR;
        if (!is_destination(node, j) && !readable_type(src->type))
            return APIR_BACKEND_ERR_INVALID_TENSOR;
        /* a source is read from elsewhere or in place (ggml-alloc reuses a source's memory at
         * the same address); a partial overlap makes the kernels' row copies undefined */
        if (src->data != node->data && !disjoint(src, node))
            return APIR_BACKEND_ERR_INVALID_TENSOR;
    }
    return kernel_bounds_ok(node) ? APIR_BACKEND_OK : APIR_BACKEND_ERR_INVALID_TENSOR;
}
