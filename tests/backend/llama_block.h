/* A transformer block as llama.cpp builds it (and the ops it does not use), for
 * test_llama_ops, test_mutations and the fuzz seed generator. */
#ifndef TEST_LLAMA_BLOCK_H
#define TEST_LLAMA_BLOCK_H

#include "apir_wire_tensor.h"
#include "vgpu_wire.h"
#include "ggml.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

/* ---- the mutation sweep's view: the graph's tensors as wire records, in dependency order ----
 * (test_mutations changes the records one field at a time; the other users send the bytes of
 * the guest's own encoder, vgpu_graph_encode) */
#define MAX_T 512
static struct ggml_tensor *list[MAX_T];
static int n_list;

static inline int index_of(const struct ggml_tensor *t)
{
    for (int i = 0; i < n_list; i++)
        if (list[i] == t)
            return i;
    return -1;
}

static inline void add_tensor(struct ggml_tensor *t)
{
    if (!t || index_of(t) >= 0)
        return;
    for (int j = 0; j < GGML_MAX_SRC; j++)
        if (t->src[j] != t) /* ggml_cast: src[1] is the result itself */
            add_tensor(t->src[j]);
    add_tensor(t->view_src);
    list[n_list++] = t;
}

/* the guest's record of t (vgpu_wire_from_tensor), with references into list[] and t's
 * place in buffer buf laid out as the native buffer at base */
static inline void wire_of(const struct ggml_tensor *t, struct apir_wire_tensor *w, uint32_t buf, const char *base)
{
    vgpu_wire_from_tensor(w, t);
    for (int j = 0; j < GGML_MAX_SRC; j++)
        w->src[j] = t->src[j] ? (uint32_t)index_of(t->src[j]) + 1 : 0;
    w->view_src = t->view_src ? (uint32_t)index_of(t->view_src) + 1 : 0;
    w->buffer = buf;
    w->data_offset = (uint64_t)((const char *)t->data - base);
}

/* where the guest's graph encoder (vgpu_graph_encode) finds a tensor: in the remote buffer
 * `buffer`, laid out as the native buffer at base */
struct block_place {
    uint32_t buffer;
    const char *base;
};

static inline bool block_locate(void *user, const struct ggml_tensor *t, uint32_t *buffer, uint64_t *offset)
{
    const struct block_place *p = user;
    if (!t->data)
        return false;
    *buffer = p->buffer;
    *offset = (uint64_t)((const char *)t->data - p->base);
    return true;
}

enum { N_EMBD = 64, N_HEAD = 4, HD = 16, N_TOK = 5, N_VOCAB = 32, N_KV = 8, N_FF = 96 };

struct model {
    struct ggml_tensor *ids, *pos, *kidx, *mask, *tok, *norm_w, *wq, *wk, *wv, *wg, *wu, *wd, *kcache;
    struct ggml_tensor *out, *fa, *kupd;
};

static inline struct ggml_cgraph *build(struct ggml_context *ctx, struct model *m)
{
    m->tok = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, N_EMBD, N_VOCAB);
    m->ids = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, N_TOK);
    m->pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, N_TOK);
    m->kidx = ggml_new_tensor_1d(ctx, GGML_TYPE_I64, N_TOK);
    m->mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, N_TOK, N_TOK);
    m->norm_w = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, N_EMBD);
    m->wq = ggml_new_tensor_2d(ctx, GGML_TYPE_Q8_0, N_EMBD, N_EMBD);
    m->wk = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, N_EMBD, N_EMBD);
    m->wv = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, N_EMBD, N_EMBD);
    m->wg = ggml_new_tensor_2d(ctx, GGML_TYPE_Q4_0, N_EMBD, N_FF);
    m->wu = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, N_EMBD, N_FF);
    m->wd = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, N_FF, N_EMBD);
    m->kcache = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, N_EMBD, N_KV);

    struct ggml_tensor *x = ggml_get_rows(ctx, m->tok, m->ids);
    struct ggml_tensor *h = ggml_mul(ctx, ggml_rms_norm(ctx, x, 1e-5f), m->norm_w);
    struct ggml_tensor *q = ggml_reshape_3d(ctx, ggml_mul_mat(ctx, m->wq, h), HD, N_HEAD, N_TOK);
    struct ggml_tensor *k = ggml_reshape_3d(ctx, ggml_mul_mat(ctx, m->wk, h), HD, N_HEAD, N_TOK);
    struct ggml_tensor *v = ggml_reshape_3d(ctx, ggml_mul_mat(ctx, m->wv, h), HD, N_HEAD, N_TOK);
    q = ggml_rope_ext(ctx, q, m->pos, NULL, HD, 0, 0, 10000.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f);
    k = ggml_rope_ext(ctx, k, m->pos, NULL, HD, 2 /* neox */, 0, 10000.0f, 1.0f, 0.0f, 1.0f, 0.0f, 0.0f);
    m->kupd = ggml_set_rows(ctx, m->kcache, ggml_reshape_2d(ctx, k, N_EMBD, N_TOK), m->kidx);

    struct ggml_tensor *Q = ggml_permute(ctx, q, 0, 2, 1, 3);
    struct ggml_tensor *K = ggml_permute(ctx, k, 0, 2, 1, 3);
    struct ggml_tensor *kq = ggml_mul_mat(ctx, K, Q);
    kq = ggml_soft_max_ext(ctx, kq, m->mask, 1.0f / sqrtf(HD), 0.0f);
    struct ggml_tensor *Vt = ggml_cont(ctx, ggml_permute(ctx, v, 1, 2, 0, 3));
    struct ggml_tensor *kqv = ggml_mul_mat(ctx, Vt, kq);
    struct ggml_tensor *o = ggml_cont_2d(ctx, ggml_permute(ctx, kqv, 0, 2, 1, 3), N_EMBD, N_TOK);

    struct ggml_tensor *Kh = ggml_cast(ctx, K, GGML_TYPE_F16);
    struct ggml_tensor *Vh = ggml_cast(ctx, ggml_permute(ctx, v, 0, 2, 1, 3), GGML_TYPE_F16);
    m->fa = ggml_flash_attn_ext(ctx, Q, Kh, Vh, NULL, 1.0f / sqrtf(HD), 0.0f, 0.0f);

    struct ggml_tensor *x2 = ggml_add(ctx, x, o);
    struct ggml_tensor *act = ggml_swiglu_split(ctx, ggml_mul_mat(ctx, m->wg, x2), ggml_mul_mat(ctx, m->wu, x2));
    struct ggml_tensor *y = ggml_add(ctx, x2, ggml_mul_mat(ctx, m->wd, act));
    y = ggml_gelu(ctx, ggml_scale(ctx, y, 0.5f));
    m->out = ggml_silu(ctx, ggml_cont(ctx, ggml_transpose(ctx, y)));

    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, m->out);
    ggml_build_forward_expand(gf, m->fa);
    ggml_build_forward_expand(gf, m->kupd);
    return gf;
}

/* The offloaded ops the block does not use (sub, div, repeat, sqr, sqrt, norm, concat,
 * sum_rows, mean, argsort, fused geglu, dup, soft_max with sinks, flash attention with mask
 * and sinks, multi-section rope), for the hostile-graph sweep. */
static inline struct ggml_cgraph *build_misc(struct ggml_context *ctx)
{
    struct ggml_tensor *a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 8, 6);
    struct ggml_tensor *b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 8, 6);
    struct ggml_tensor *c = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 8);
    struct ggml_tensor *x = ggml_div(ctx, ggml_sub(ctx, a, b), ggml_repeat(ctx, c, a));
    struct ggml_tensor *n = ggml_norm(ctx, ggml_sqrt(ctx, ggml_sqr(ctx, x)), 1e-5f);
    struct ggml_tensor *cat = ggml_concat(ctx, n, a, 1);
    struct ggml_tensor *sum = ggml_sum_rows(ctx, cat);
    struct ggml_tensor *mean = ggml_mean(ctx, cat);
    struct ggml_tensor *order = ggml_argsort(ctx, cat, GGML_SORT_ORDER_DESC);
    struct ggml_tensor *gl = ggml_dup(ctx, ggml_geglu(ctx, cat));

    struct ggml_tensor *kq = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 6, 5, 2);
    struct ggml_tensor *sinks = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 2);
    struct ggml_tensor *sm = ggml_soft_max_ext(ctx, kq, NULL, 0.5f, 0.0f);
    ggml_soft_max_add_sinks(sm, sinks);

    struct ggml_tensor *q = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, 16, 5, 2, 1);
    struct ggml_tensor *k = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, 16, 8, 2, 1);
    struct ggml_tensor *v = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, 16, 8, 2, 1);
    struct ggml_tensor *mask = ggml_new_tensor_2d(ctx, GGML_TYPE_F16, 8, 64);
    struct ggml_tensor *fa = ggml_flash_attn_ext(ctx, q, k, v, mask, 0.25f, 0.0f, 0.0f);
    ggml_flash_attn_ext_add_sinks(fa, sinks);

    struct ggml_tensor *h = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 16, 2, 5);
    struct ggml_tensor *pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, 20);
    int sections[GGML_MROPE_SECTIONS] = {2, 2, 2, 2};
    struct ggml_tensor *mr = ggml_rope_multi(ctx, h, pos, NULL, 16, sections, GGML_ROPE_TYPE_MROPE, 0, 10000.0f, 1.0f,
                                             0.0f, 1.0f, 0.0f, 0.0f);

    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    struct ggml_tensor *outs[] = {sum, mean, order, gl, sm, fa, mr};
    for (unsigned i = 0; i < sizeof outs / sizeof *outs; i++) {
        ggml_set_output(outs[i]);
        ggml_build_forward_expand(gf, outs[i]);
    }
    return gf;
}

#endif
