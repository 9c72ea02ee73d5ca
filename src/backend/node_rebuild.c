#include "node_rebuild.h"

#include "apir_forward.h"
#include "fpe_guard.h"

#include <stdlib.h>
#include <string.h>

/* a constructor builds one result, plus at most a shape holder or an inner view */
#define SCRATCH_TENSORS 16

struct ggml_context *owned_ctx_new(size_t size, void **mem)
{
    *mem = malloc(size);
    if (!*mem)
        return NULL;
    struct ggml_init_params p = {.mem_size = size, .mem_buffer = *mem, .no_alloc = true};
    struct ggml_context *ctx = ggml_init(p);
    if (!ctx) {
        free(*mem);
        *mem = NULL;
    }
    return ctx;
}

bool node_rebuild_init(struct node_rebuild *rb)
{
    rb->ctx = owned_ctx_new(SCRATCH_TENSORS * ggml_tensor_overhead() + 256, &rb->mem);
    return rb->ctx != NULL;
}

void node_rebuild_fini(struct node_rebuild *rb)
{
    if (rb->ctx)
        ggml_free(rb->ctx);
    free(rb->mem);
    memset(rb, 0, sizeof *rb);
}

bool node_is_view_op(enum ggml_op op)
{
    return op == GGML_OP_NONE || op == GGML_OP_VIEW || op == GGML_OP_RESHAPE || op == GGML_OP_PERMUTE ||
           op == GGML_OP_TRANSPOSE;
}

static int32_t pi(const struct ggml_tensor *t, int i)
{
    int32_t v;
    memcpy(&v, (const char *)t->op_params + 4 * i, 4);
    return v;
}

static float pf(const struct ggml_tensor *t, int i)
{
    float v;
    memcpy(&v, (const char *)t->op_params + 4 * i, 4);
    return v;
}

/* the constructors take non-const sources; they only point at them */
#define S(i) ((struct ggml_tensor *)n->src[i])
/* the in-place variant when the guest's node is a view of its destination */
#define IP(fn, ...) (ip ? fn##_inplace(c, __VA_ARGS__) : fn(c, __VA_ARGS__))

static bool has_srcs(const struct ggml_tensor *n, int count)
{
    for (int i = 0; i < count; i++)
        if (!n->src[i])
            return false;
    return true;
}

/* minimum number of sources each op's constructor dereferences */
static int required_srcs(enum ggml_op op)
{
    switch (op) {
    case GGML_OP_ARANGE:
        return 0;
    case GGML_OP_ADD: case GGML_OP_ADD1: case GGML_OP_ACC: case GGML_OP_SUB: case GGML_OP_MUL: case GGML_OP_DIV:
    case GGML_OP_COUNT_EQUAL: case GGML_OP_CONCAT: case GGML_OP_SILU_BACK: case GGML_OP_RMS_NORM_BACK:
    case GGML_OP_MUL_MAT: case GGML_OP_OUT_PROD: case GGML_OP_SET: case GGML_OP_CPY: case GGML_OP_GET_ROWS:
    case GGML_OP_SOFT_MAX_BACK: case GGML_OP_ROPE: case GGML_OP_ROPE_BACK: case GGML_OP_CONV_TRANSPOSE_1D:
    case GGML_OP_IM2COL: case GGML_OP_IM2COL_BACK: case GGML_OP_IM2COL_3D: case GGML_OP_CONV_2D:
    case GGML_OP_CONV_3D: case GGML_OP_CONV_2D_DW: case GGML_OP_CONV_TRANSPOSE_2D: case GGML_OP_POOL_2D_BACK:
    case GGML_OP_SSM_CONV: case GGML_OP_SOLVE_TRI: case GGML_OP_CROSS_ENTROPY_LOSS: case GGML_OP_DSV4_HC_PRE:
    case GGML_OP_GET_ROWS_BACK:
        return 2;
    case GGML_OP_ADD_ID: case GGML_OP_MUL_MAT_ID: case GGML_OP_SET_ROWS: case GGML_OP_ADD_REL_POS:
    case GGML_OP_CROSS_ENTROPY_LOSS_BACK: case GGML_OP_OPT_STEP_SGD: case GGML_OP_LIGHTNING_INDEXER:
    case GGML_OP_FLASH_ATTN_EXT: case GGML_OP_DSV4_HC_COMB: case GGML_OP_DSV4_HC_POST:
        return 3;
    case GGML_OP_FLASH_ATTN_BACK:
        return 4;
    case GGML_OP_OPT_STEP_ADAMW: case GGML_OP_GATED_LINEAR_ATTN:
        return 5;
    case GGML_OP_RWKV_WKV6: case GGML_OP_GATED_DELTA_NET:
        return 6;
    case GGML_OP_SSM_SCAN: case GGML_OP_RWKV_WKV7:
        return 7;
    default:
        return 1;
    }
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
/* ggml's constructor for n's op, called with n's sources and parameters; NULL for ops the
 * host does not run for a guest */
static struct ggml_tensor *rebuild(struct ggml_context *c, const struct ggml_tensor *n)
{
    const bool ip = n->view_src != NULL;
    const int64_t *ne = n->ne;
    struct ggml_tensor *r;
    switch (n->op) {
    case GGML_OP_DUP: return IP(ggml_dup, S(0));
    case GGML_OP_ADD:
        if (n->type != n->src[0]->type && !ip)
            return ggml_add_cast(c, S(0), S(1), n->type);
        return IP(ggml_add, S(0), S(1));
    case GGML_OP_ADD_ID: return ggml_add_id(c, S(0), S(1), S(2));
    case GGML_OP_ADD1: return IP(ggml_add1, S(0), S(1));
    case GGML_OP_ACC:
        return IP(ggml_acc, S(0), S(1), (size_t)pi(n, 0), (size_t)pi(n, 1), (size_t)pi(n, 2), (size_t)pi(n, 3));
    case GGML_OP_SUB: return IP(ggml_sub, S(0), S(1));
    case GGML_OP_MUL: return IP(ggml_mul, S(0), S(1));
    case GGML_OP_DIV: return IP(ggml_div, S(0), S(1));
    case GGML_OP_SQR: return IP(ggml_sqr, S(0));
    case GGML_OP_SQRT: return IP(ggml_sqrt, S(0));
    case GGML_OP_LOG: return IP(ggml_log, S(0));
    case GGML_OP_SIN: return IP(ggml_sin, S(0));
    case GGML_OP_COS: return IP(ggml_cos, S(0));
    case GGML_OP_SUM: return ggml_sum(c, S(0));
    case GGML_OP_SUM_ROWS: return ggml_sum_rows(c, S(0));
    case GGML_OP_CUMSUM: return ggml_cumsum(c, S(0));
    case GGML_OP_MEAN: return ggml_mean(c, S(0));
    case GGML_OP_ARGMAX: return ggml_argmax(c, S(0));
    case GGML_OP_COUNT_EQUAL: return ggml_count_equal(c, S(0), S(1));
    case GGML_OP_REPEAT: return ggml_repeat_4d(c, S(0), ne[0], ne[1], ne[2], ne[3]);
    case GGML_OP_REPEAT_BACK:
        return ggml_repeat_back(c, S(0), ggml_new_tensor(c, n->src[0]->type, GGML_MAX_DIMS, ne));
    case GGML_OP_CONCAT: return ggml_concat(c, S(0), S(1), pi(n, 0));
    case GGML_OP_SILU_BACK: return ggml_silu_back(c, S(0), S(1));
    case GGML_OP_NORM: return IP(ggml_norm, S(0), pf(n, 0));
    case GGML_OP_RMS_NORM: return IP(ggml_rms_norm, S(0), pf(n, 0));
    case GGML_OP_RMS_NORM_BACK: return ggml_rms_norm_back(c, S(0), S(1), pf(n, 0));
    case GGML_OP_GROUP_NORM: return IP(ggml_group_norm, S(0), pi(n, 0), pf(n, 1));
    case GGML_OP_L2_NORM: return IP(ggml_l2_norm, S(0), pf(n, 0));
    case GGML_OP_MUL_MAT: return ggml_mul_mat(c, S(0), S(1));
    case GGML_OP_MUL_MAT_ID: return ggml_mul_mat_id(c, S(0), S(1), S(2));
    case GGML_OP_OUT_PROD: return ggml_out_prod(c, S(0), S(1));
    case GGML_OP_SCALE: return IP(ggml_scale_bias, S(0), pf(n, 0), pf(n, 1));
    case GGML_OP_SET:
        return IP(ggml_set, S(0), S(1), (size_t)pi(n, 0), (size_t)pi(n, 1), (size_t)pi(n, 2), (size_t)pi(n, 3));
    case GGML_OP_CPY:
        /* ggml_cast makes a new tensor whose src[1] is itself; ggml_cpy a view of src[1] */
        return n->src[1] == n ? ggml_cast(c, S(0), n->type) : ggml_cpy(c, S(0), S(1));
    case GGML_OP_CONT: return ggml_cont_4d(c, S(0), ne[0], ne[1], ne[2], ne[3]);
    case GGML_OP_RESHAPE: return ggml_reshape_4d(c, S(0), ne[0], ne[1], ne[2], ne[3]);
    case GGML_OP_VIEW: {
        size_t offset;
        memcpy(&offset, n->op_params, sizeof offset);
        return ggml_view_4d(c, S(0), ne[0], ne[1], ne[2], ne[3], n->nb[1], n->nb[2], n->nb[3], offset);
    }
    case GGML_OP_PERMUTE: return ggml_permute(c, S(0), pi(n, 0), pi(n, 1), pi(n, 2), pi(n, 3));
    case GGML_OP_TRANSPOSE: return ggml_transpose(c, S(0));
    case GGML_OP_GET_ROWS: return ggml_get_rows(c, S(0), S(1));
    case GGML_OP_GET_ROWS_BACK:
        return ggml_get_rows_back(c, S(0), S(1), ggml_new_tensor_2d(c, GGML_TYPE_F32, ne[0], ne[1]));
    case GGML_OP_SET_ROWS: return ggml_set_rows(c, S(2), S(0), S(1));
    case GGML_OP_DIAG: return ggml_diag(c, S(0));
    case GGML_OP_DIAG_MASK_INF: return IP(ggml_diag_mask_inf, S(0), pi(n, 0));
    case GGML_OP_DIAG_MASK_ZERO: return IP(ggml_diag_mask_zero, S(0), pi(n, 0));
    case GGML_OP_SOFT_MAX:
        r = IP(ggml_soft_max_ext, S(0), S(1), pf(n, 0), pf(n, 1));
        ggml_soft_max_add_sinks(r, S(2));
        return r;
    case GGML_OP_SOFT_MAX_BACK: return IP(ggml_soft_max_ext_back, S(0), S(1), pf(n, 0), pf(n, 1));
    case GGML_OP_ROPE:
    case GGML_OP_ROPE_BACK: {
        int sections[GGML_MROPE_SECTIONS] = {pi(n, 11), pi(n, 12), pi(n, 13), pi(n, 14)};
        int n_dims = pi(n, 1), mode = pi(n, 2), n_ctx_orig = pi(n, 4);
        float f[6] = {pf(n, 5), pf(n, 6), pf(n, 7), pf(n, 8), pf(n, 9), pf(n, 10)};
        bool multi = mode & GGML_ROPE_TYPE_MROPE;
        if (n->op == GGML_OP_ROPE_BACK)
            r = multi ? ggml_rope_multi_back(c, S(0), S(1), S(2), n_dims, sections, mode, n_ctx_orig, f[0], f[1], f[2],
                                             f[3], f[4], f[5])
                      : ggml_rope_ext_back(c, S(0), S(1), S(2), n_dims, mode, n_ctx_orig, f[0], f[1], f[2], f[3], f[4],
                                           f[5]);
        else if (multi)
            r = IP(ggml_rope_multi, S(0), S(1), S(2), n_dims, sections, mode, n_ctx_orig, f[0], f[1], f[2], f[3], f[4],
                   f[5]);
        else
            r = IP(ggml_rope_ext, S(0), S(1), S(2), n_dims, mode, n_ctx_orig, f[0], f[1], f[2], f[3], f[4], f[5]);
        if (pi(n, 15))
            ggml_rope_set_offset(r, pi(n, 15));
        return r;
    }
    case GGML_OP_CLAMP: return IP(ggml_clamp, S(0), pf(n, 0), pf(n, 1));
    case GGML_OP_CONV_TRANSPOSE_1D: return ggml_conv_transpose_1d(c, S(0), S(1), pi(n, 0), pi(n, 1), pi(n, 2));
    case GGML_OP_IM2COL:
        return ggml_im2col(c, S(0), S(1), pi(n, 0), pi(n, 1), pi(n, 2), pi(n, 3), pi(n, 4), pi(n, 5), pi(n, 6) != 0,
                           n->type);
    case GGML_OP_IM2COL_BACK: {
        int64_t shape[4] = {ne[0], ne[1], ne[2], ne[3]};
        return ggml_im2col_back(c, S(0), S(1), shape, pi(n, 0), pi(n, 1), pi(n, 2), pi(n, 3), pi(n, 4), pi(n, 5),
                                pi(n, 6) != 0);
    }
    case GGML_OP_IM2COL_3D:
        return ggml_im2col_3d(c, S(0), S(1), pi(n, 9), pi(n, 0), pi(n, 1), pi(n, 2), pi(n, 3), pi(n, 4), pi(n, 5),
                              pi(n, 6), pi(n, 7), pi(n, 8), n->type);
    case GGML_OP_COL2IM_1D: return ggml_col2im_1d(c, S(0), pi(n, 0), pi(n, 1), pi(n, 2));
    case GGML_OP_CONV_2D:
        return ggml_conv_2d_direct(c, S(0), S(1), pi(n, 0), pi(n, 1), pi(n, 2), pi(n, 3), pi(n, 4), pi(n, 5));
    case GGML_OP_CONV_3D:
        return ggml_conv_3d_direct(c, S(0), S(1), pi(n, 0), pi(n, 1), pi(n, 2), pi(n, 3), pi(n, 4), pi(n, 5), pi(n, 6),
                                   pi(n, 7), pi(n, 8), pi(n, 9), pi(n, 10), pi(n, 11));
    case GGML_OP_CONV_2D_DW:
        return ggml_conv_2d_dw_direct(c, S(0), S(1), pi(n, 0), pi(n, 1), pi(n, 2), pi(n, 3), pi(n, 4), pi(n, 5));
    case GGML_OP_CONV_TRANSPOSE_2D: return ggml_conv_transpose_2d_p0(c, S(0), S(1), pi(n, 0));
    case GGML_OP_POOL_1D: return ggml_pool_1d(c, S(0), (enum ggml_op_pool)pi(n, 0), pi(n, 1), pi(n, 2), pi(n, 3));
    case GGML_OP_POOL_2D:
        return ggml_pool_2d(c, S(0), (enum ggml_op_pool)pi(n, 0), pi(n, 1), pi(n, 2), pi(n, 3), pi(n, 4),
                            (float)pi(n, 5), (float)pi(n, 6));
    case GGML_OP_POOL_2D_BACK:
        return ggml_pool_2d_back(c, S(0), S(1), (enum ggml_op_pool)pi(n, 0), pi(n, 1), pi(n, 2), pi(n, 3), pi(n, 4),
                                 (float)pi(n, 5), (float)pi(n, 6));
    case GGML_OP_UPSCALE: return ggml_interpolate(c, S(0), ne[0], ne[1], ne[2], ne[3], (uint32_t)pi(n, 0));
    case GGML_OP_PAD:
        if (pi(n, 8))
            return ggml_pad_ext_circular(c, S(0), pi(n, 0), pi(n, 1), pi(n, 2), pi(n, 3), pi(n, 4), pi(n, 5), pi(n, 6),
                                         pi(n, 7));
        return ggml_pad_ext(c, S(0), pi(n, 0), pi(n, 1), pi(n, 2), pi(n, 3), pi(n, 4), pi(n, 5), pi(n, 6), pi(n, 7));
    case GGML_OP_PAD_REFLECT_1D: return ggml_pad_reflect_1d(c, S(0), pi(n, 0), pi(n, 1));
    case GGML_OP_ROLL: return ggml_roll(c, S(0), pi(n, 0), pi(n, 1), pi(n, 2), pi(n, 3));
    case GGML_OP_ARANGE: return ggml_arange(c, pf(n, 0), pf(n, 1), pf(n, 2));
    case GGML_OP_TIMESTEP_EMBEDDING: return ggml_timestep_embedding(c, S(0), pi(n, 0), pi(n, 1));
    case GGML_OP_ARGSORT: return ggml_argsort(c, S(0), (enum ggml_sort_order)pi(n, 0));
    case GGML_OP_TOP_K: return ne[0] > INT32_MAX ? NULL : ggml_top_k(c, S(0), (int)ne[0]);
    case GGML_OP_LEAKY_RELU: return ggml_leaky_relu(c, S(0), pf(n, 0), ip);
    case GGML_OP_TRI: return ggml_tri(c, S(0), (enum ggml_tri_type)pi(n, 0));
    case GGML_OP_FILL: return IP(ggml_fill, S(0), pf(n, 0));
    case GGML_OP_FLASH_ATTN_EXT:
        r = ggml_flash_attn_ext(c, S(0), S(1), S(2), S(3), pf(n, 0), pf(n, 1), pf(n, 2));
        ggml_flash_attn_ext_add_sinks(r, S(4));
        return r;
    case GGML_OP_FLASH_ATTN_BACK: return ggml_flash_attn_back(c, S(0), S(1), S(2), S(3), pi(n, 0) != 0);
    case GGML_OP_SSM_CONV: return ggml_ssm_conv(c, S(0), S(1));
    case GGML_OP_SSM_SCAN: return ggml_ssm_scan(c, S(0), S(1), S(2), S(3), S(4), S(5), S(6), pi(n, 0));
    case GGML_OP_WIN_PART: return ggml_win_part(c, S(0), pi(n, 2));
    case GGML_OP_WIN_UNPART:
        return ne[1] > INT32_MAX || ne[2] > INT32_MAX ? NULL
                                                       : ggml_win_unpart(c, S(0), (int)ne[1], (int)ne[2], pi(n, 0));
    case GGML_OP_GET_REL_POS:
        return ne[1] > INT32_MAX || ne[2] > INT32_MAX ? NULL : ggml_get_rel_pos(c, S(0), (int)ne[2], (int)ne[1]);
    case GGML_OP_ADD_REL_POS: return IP(ggml_add_rel_pos, S(0), S(1), S(2));
    case GGML_OP_RWKV_WKV6: return ggml_rwkv_wkv6(c, S(0), S(1), S(2), S(3), S(4), S(5));
    case GGML_OP_GATED_LINEAR_ATTN: return ggml_gated_linear_attn(c, S(0), S(1), S(2), S(3), S(4), pf(n, 0));
    case GGML_OP_RWKV_WKV7: return ggml_rwkv_wkv7(c, S(0), S(1), S(2), S(3), S(4), S(5), S(6));
    case GGML_OP_SOLVE_TRI: return ggml_solve_tri(c, S(0), S(1), true, true, false);
    case GGML_OP_GATED_DELTA_NET: return ggml_gated_delta_net(c, S(0), S(1), S(2), S(3), S(4), S(5), pi(n, 0));
    case GGML_OP_LIGHTNING_INDEXER: return ggml_lightning_indexer(c, S(0), S(1), S(2), S(3));
    case GGML_OP_DSV4_HC_COMB: return ggml_dsv4_hc_comb(c, S(0), S(1), S(2), pf(n, 0), pi(n, 1));
    case GGML_OP_DSV4_HC_PRE:
        return pi(n, 1) ? ggml_dsv4_hc_pre_gated(c, S(0), S(1), pf(n, 0)) : ggml_dsv4_hc_pre(c, S(0), S(1));
    case GGML_OP_DSV4_HC_POST: return ggml_dsv4_hc_post(c, S(0), S(1), S(2), S(3));
    case GGML_OP_UNARY: return IP(ggml_unary, S(0), (enum ggml_unary_op)pi(n, 0));
    case GGML_OP_GLU:
        if (n->src[1])
            return ggml_glu_split(c, S(0), S(1), (enum ggml_glu_op)pi(n, 0));
        return ggml_glu(c, S(0), (enum ggml_glu_op)pi(n, 0), pi(n, 1) != 0);
    case GGML_OP_CROSS_ENTROPY_LOSS: return ggml_cross_entropy_loss(c, S(0), S(1));
    case GGML_OP_CROSS_ENTROPY_LOSS_BACK: return ggml_cross_entropy_loss_back(c, S(0), S(1), S(2));
    case GGML_OP_OPT_STEP_ADAMW: return ggml_opt_step_adamw(c, S(0), S(1), S(2), S(3), S(4));
    case GGML_OP_OPT_STEP_SGD: return ggml_opt_step_sgd(c, S(0), S(1), S(2));
    default:
        /* MAP_CUSTOM*, CUSTOM: their op_params hold host function pointers */
        return NULL;
    }
}
#pragma GCC diagnostic pop

static bool same_layout(const struct ggml_tensor *a, const struct ggml_tensor *b)
{
    if (a->type != b->type || a->op != b->op)
        return false;
    for (int i = 0; i < GGML_MAX_DIMS; i++)
        if (a->ne[i] != b->ne[i] || a->nb[i] != b->nb[i])
            return false;
    return true;
}

/* ggml's constructors divide by some source extents (broadcast checks written as a % b):
 * an empty source there is a division by zero, not an assertion, so it is refused first */
static bool nonzero(const struct ggml_tensor *t, int d)
{
    return !t || t->ne[d] != 0;
}

static bool divisors_nonzero(const struct ggml_tensor *n)
{
    const struct ggml_tensor *const *s = (const struct ggml_tensor *const *)n->src;
    switch (n->op) {
    case GGML_OP_MUL_MAT:
    case GGML_OP_OUT_PROD: return nonzero(s[0], 2) && nonzero(s[0], 3);
    case GGML_OP_MUL_MAT_ID: return nonzero(s[1], 1);
    case GGML_OP_SET_ROWS: return nonzero(s[1], 1) && nonzero(s[1], 2);
    case GGML_OP_SOFT_MAX: return nonzero(s[1], 2) && nonzero(s[1], 3);
    case GGML_OP_FLASH_ATTN_EXT:
        return nonzero(s[1], 2) && nonzero(s[1], 3) && nonzero(s[3], 2) && nonzero(s[3], 3);
    case GGML_OP_LIGHTNING_INDEXER: return nonzero(s[3], 3);
    default: return true;
    }
}

uint32_t node_rebuild_check(struct node_rebuild *rb, const struct ggml_tensor *n)
{
    if (n->op == GGML_OP_NONE)
        return APIR_BACKEND_OK; /* nothing computed: its extent is all there is to check */
    if (!has_srcs(n, required_srcs(n->op)))
        return APIR_BACKEND_ERR_INVALID_TENSOR;
    /* a node may name itself only as ggml_cast does (CPY's src[1]) */
    for (int j = 0; j < GGML_MAX_SRC; j++)
        if (n->src[j] == n && !(n->op == GGML_OP_CPY && j == 1))
            return APIR_BACKEND_ERR_INVALID_TENSOR;
    if (!divisors_nonzero(n))
        return APIR_BACKEND_ERR_INVALID_TENSOR;
    fpe_guard_install();
    sigjmp_buf fault;
    if (sigsetjmp(fault, 0)) {
        fpe_guard_target = NULL;
        return APIR_BACKEND_ERR_INVALID_TENSOR; /* ggml divided by a zero the guest chose */
    }
    fpe_guard_target = &fault;
    ggml_reset(rb->ctx);
    const struct ggml_tensor *r = rebuild(rb->ctx, n);
    fpe_guard_target = NULL;
    if (!r)
        return APIR_BACKEND_ERR_UNSUPPORTED;
    if (!same_layout(r, n))
        return APIR_BACKEND_ERR_INVALID_TENSOR;
    /* a view (or in-place result) must alias what ggml's aliases, at the same offset. A
     * SUPPORTS_OP question about a view whose source the guest did not name (protocol 1
     * guests) touches no memory: its shape and strides are all there is to compare. */
    bool unplaced_view = r->view_src && !n->view_src && !n->buffer && node_is_view_op(n->op);
    if (!unplaced_view && (r->view_src != n->view_src || (r->view_src && r->view_offs != n->view_offs)))
        return APIR_BACKEND_ERR_INVALID_TENSOR;
    /* no source the kernel would read beyond those the constructor set */
    for (int j = 0; j < GGML_MAX_SRC; j++) {
        bool self = r->src[j] == r && n->src[j] == n; /* ggml_cast */
        if (r->src[j] != n->src[j] && !self)
            return APIR_BACKEND_ERR_INVALID_TENSOR;
    }
    return APIR_BACKEND_OK;
}
