/* One small builder per case; tolerances from ggml's tests/test-backend-ops.cpp (v0.5.0):
 * default 1e-7, mul_mat 5e-4, rope 1e-3, soft_max 1e-6, flash_attn_ext 5e-4,
 * cpy to another float type 1e-6. */
#include "op_cases.h"

#include <math.h>

static struct ggml_tensor *in(struct ggml_context *ctx, enum ggml_type t, int64_t a, int64_t b,
                              int64_t c, int64_t d, const char *name)
{
    struct ggml_tensor *x = ggml_new_tensor_4d(ctx, t, a, b, c, d);
    ggml_set_name(x, name);
    return x;
}

#define F32 GGML_TYPE_F32
#define F16 GGML_TYPE_F16

static struct ggml_tensor *b_add(struct ggml_context *c)
{
    return ggml_add(c, in(c, F32, 64, 32, 3, 1, "a"), in(c, F32, 64, 32, 3, 1, "b"));
}

static struct ggml_tensor *b_add_bcast(struct ggml_context *c)
{
    return ggml_add(c, in(c, F32, 64, 32, 3, 1, "a"), in(c, F32, 64, 1, 1, 1, "b"));
}

static struct ggml_tensor *b_mul(struct ggml_context *c)
{
    return ggml_mul(c, in(c, F32, 64, 32, 3, 1, "a"), in(c, F32, 64, 1, 3, 1, "b"));
}

static struct ggml_tensor *mul_mat_of(struct ggml_context *c, enum ggml_type ta, int64_t n)
{
    /* K = 256 is one q4_K super-block */
    return ggml_mul_mat(c, in(c, ta, 256, 96, 1, 1, "w"), in(c, F32, 256, n, 1, 1, "x"));
}

static struct ggml_tensor *b_mm_f32(struct ggml_context *c) { return mul_mat_of(c, F32, 17); }
static struct ggml_tensor *b_mm_f16(struct ggml_context *c) { return mul_mat_of(c, F16, 17); }
static struct ggml_tensor *b_mm_q4_0(struct ggml_context *c) { return mul_mat_of(c, GGML_TYPE_Q4_0, 17); }
static struct ggml_tensor *b_mm_q8_0(struct ggml_context *c) { return mul_mat_of(c, GGML_TYPE_Q8_0, 17); }
static struct ggml_tensor *b_mm_q4_K(struct ggml_context *c) { return mul_mat_of(c, GGML_TYPE_Q4_K, 17); }
static struct ggml_tensor *b_mm_q8_0_vec(struct ggml_context *c) { return mul_mat_of(c, GGML_TYPE_Q8_0, 1); }

static struct ggml_tensor *b_mm_f16_batched(struct ggml_context *c)
{
    /* broadcast over dim 2: 2 weight matrices serve 4 batches */
    return ggml_mul_mat(c, in(c, F16, 64, 48, 2, 1, "w"), in(c, F32, 64, 9, 4, 1, "x"));
}

static struct ggml_tensor *b_get_rows(struct ggml_context *c)
{
    return ggml_get_rows(c, in(c, F32, 64, 50, 1, 1, "a"), in(c, GGML_TYPE_I32, 10, 1, 1, 1, "idx:50"));
}

static struct ggml_tensor *b_get_rows_q8_0(struct ggml_context *c)
{
    return ggml_get_rows(c, in(c, GGML_TYPE_Q8_0, 64, 50, 1, 1, "a"),
                         in(c, GGML_TYPE_I32, 10, 1, 1, 1, "idx:50"));
}

static struct ggml_tensor *b_set_rows(struct ggml_context *c)
{
    struct ggml_tensor *dst = in(c, F32, 64, 50, 1, 1, "dst");
    return ggml_set_rows(c, dst, in(c, F32, 64, 10, 1, 1, "src"), in(c, GGML_TYPE_I64, 10, 1, 1, 1, "idx:50"));
}

static struct ggml_tensor *b_set_rows_f16(struct ggml_context *c)
{
    /* the KV-cache store pattern: f32 rows into an f16 cache */
    struct ggml_tensor *dst = in(c, F16, 64, 50, 1, 1, "dst");
    return ggml_set_rows(c, dst, in(c, F32, 64, 10, 1, 1, "src"), in(c, GGML_TYPE_I64, 10, 1, 1, 1, "idx:50"));
}

static struct ggml_tensor *b_rms_norm(struct ggml_context *c)
{
    return ggml_rms_norm(c, in(c, F32, 256, 20, 2, 1, "a"), 1e-5f);
}

static struct ggml_tensor *b_rms_norm_mul(struct ggml_context *c)
{
    return ggml_mul(c, ggml_rms_norm(c, in(c, F32, 256, 20, 1, 1, "a"), 1e-5f),
                    in(c, F32, 256, 1, 1, 1, "w"));
}

static struct ggml_tensor *rope_of(struct ggml_context *c, int mode)
{
    struct ggml_tensor *x = in(c, F32, 64, 8, 10, 1, "x"); /* head dim, heads, tokens */
    return ggml_rope_ext(c, x, in(c, GGML_TYPE_I32, 10, 1, 1, 1, "pos"), NULL, 64, mode, 0,
                         10000.0f, 1.0f, 0.0f, 1.0f, 32.0f, 1.0f);
}

static struct ggml_tensor *b_rope(struct ggml_context *c) { return rope_of(c, 0); }
static struct ggml_tensor *b_rope_neox(struct ggml_context *c) { return rope_of(c, GGML_ROPE_TYPE_NEOX); }

static struct ggml_tensor *b_soft_max(struct ggml_context *c)
{
    return ggml_soft_max(c, in(c, F32, 32, 16, 4, 1, "a"));
}

static struct ggml_tensor *b_soft_max_mask(struct ggml_context *c)
{
    return ggml_soft_max_ext(c, in(c, F32, 32, 16, 4, 1, "a"), in(c, F16, 32, 16, 1, 1, "mask"),
                             0.125f, 0.0f);
}

static struct ggml_tensor *b_cpy_f16(struct ggml_context *c)
{
    return ggml_cpy(c, in(c, F32, 64, 32, 2, 1, "a"), in(c, F16, 64, 32, 2, 1, "b"));
}

static struct ggml_tensor *b_cont_transpose(struct ggml_context *c)
{
    return ggml_cont(c, ggml_transpose(c, in(c, F32, 64, 32, 1, 1, "a")));
}

static struct ggml_tensor *b_permute_cont(struct ggml_context *c)
{
    return ggml_cont(c, ggml_permute(c, in(c, F32, 16, 8, 4, 3, "a"), 0, 2, 1, 3));
}

static struct ggml_tensor *b_view_cont(struct ggml_context *c)
{
    struct ggml_tensor *a = in(c, F32, 32, 16, 1, 1, "a");
    /* an 8x4 window starting at row 3, column 5 */
    struct ggml_tensor *v = ggml_view_2d(c, a, 8, 4, a->nb[1], 3 * a->nb[1] + 5 * sizeof(float));
    return ggml_cont(c, v);
}

static struct ggml_tensor *b_view_add(struct ggml_context *c)
{
    /* a view as an operand, without cont: the remote side must honour the strides */
    struct ggml_tensor *a = in(c, F32, 32, 16, 1, 1, "a");
    struct ggml_tensor *v = ggml_view_2d(c, a, 16, 8, a->nb[1], 2 * a->nb[1]);
    return ggml_add(c, ggml_cont(c, v), in(c, F32, 16, 8, 1, 1, "b"));
}

static struct ggml_tensor *b_scale(struct ggml_context *c)
{
    return ggml_scale(c, in(c, F32, 64, 32, 1, 1, "a"), 0.125f);
}

static struct ggml_tensor *b_silu(struct ggml_context *c)
{
    return ggml_silu(c, in(c, F32, 64, 32, 1, 1, "a"));
}

static struct ggml_tensor *b_gelu(struct ggml_context *c)
{
    return ggml_gelu(c, in(c, F32, 64, 32, 1, 1, "a"));
}

static struct ggml_tensor *b_flash_attn(struct ggml_context *c)
{
    const int64_t d = 64, n_q = 8, n_kv = 32, h = 4, h_kv = 2;
    struct ggml_tensor *q = in(c, F32, d, n_q, h, 1, "q");
    struct ggml_tensor *k = in(c, F16, d, n_kv, h_kv, 1, "k");
    struct ggml_tensor *v = in(c, F16, d, n_kv, h_kv, 1, "v");
    struct ggml_tensor *m = in(c, F16, n_kv, n_q, 1, 1, "mask");
    struct ggml_tensor *r = ggml_flash_attn_ext(c, q, k, v, m, 1.0f / sqrtf((float)d), 0.0f, 0.0f);
    ggml_prec_set_acc(r, GGML_PREC_F32);
    return r;
}

/* A llama feed-forward block: several ops in one graph, weights in f16 like a real model. */
static struct ggml_tensor *b_ffn_block(struct ggml_context *c)
{
    struct ggml_tensor *x = in(c, F32, 128, 6, 1, 1, "x");
    struct ggml_tensor *h = ggml_mul(c, ggml_rms_norm(c, x, 1e-5f), in(c, F32, 128, 1, 1, 1, "norm"));
    struct ggml_tensor *g = ggml_silu(c, ggml_mul_mat(c, in(c, F16, 128, 256, 1, 1, "gate"), h));
    struct ggml_tensor *u = ggml_mul_mat(c, in(c, F16, 128, 256, 1, 1, "up"), h);
    struct ggml_tensor *d = ggml_mul_mat(c, in(c, F16, 256, 128, 1, 1, "down"), ggml_mul(c, g, u));
    return ggml_add(c, x, d);
}

const struct op_case op_cases[] = {
    { "add", 1e-7, b_add },
    { "add_broadcast", 1e-7, b_add_bcast },
    { "mul_broadcast", 1e-7, b_mul },
    { "mul_mat_f32", 5e-4, b_mm_f32 },
    { "mul_mat_f16", 5e-4, b_mm_f16 },
    { "mul_mat_q4_0", 5e-4, b_mm_q4_0 },
    { "mul_mat_q8_0", 5e-4, b_mm_q8_0 },
    { "mul_mat_q4_K", 5e-4, b_mm_q4_K },
    { "mul_mat_q8_0_vec", 5e-4, b_mm_q8_0_vec },
    { "mul_mat_f16_batched", 5e-4, b_mm_f16_batched },
    { "get_rows_f32", 1e-7, b_get_rows },
    { "get_rows_q8_0", 1e-7, b_get_rows_q8_0 },
    { "set_rows_f32", 1e-7, b_set_rows },
    { "set_rows_f16", 1e-7, b_set_rows_f16 },
    { "rms_norm", 1e-7, b_rms_norm },
    { "rms_norm_mul", 1e-7, b_rms_norm_mul },
    { "rope", 1e-3, b_rope },
    { "rope_neox", 1e-3, b_rope_neox },
    { "soft_max", 1e-6, b_soft_max },
    { "soft_max_mask", 1e-6, b_soft_max_mask },
    { "cpy_f32_f16", 1e-6, b_cpy_f16 },
    { "cont_transpose", 1e-7, b_cont_transpose },
    { "permute_cont", 1e-7, b_permute_cont },
    { "view_cont", 1e-7, b_view_cont },
    { "view_add", 1e-7, b_view_add },
    { "scale", 1e-7, b_scale },
    { "silu", 1e-7, b_silu },
    { "gelu", 1e-7, b_gelu },
    { "flash_attn_ext", 5e-4, b_flash_attn },
    { "ffn_block", 5e-4, b_ffn_block },
};
const size_t op_cases_count = sizeof op_cases / sizeof op_cases[0];
