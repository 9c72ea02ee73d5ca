/* make-tiny-llama: writes a small llama-architecture GGUF with random weights (fixed seed) and a
 * generated SPM vocabulary, loadable by libllama v0.5.0. Used by the end-to-end tests and the
 * benchmarks: the same seed always gives the same file.
 *
 * Usage: make-tiny-llama -o FILE [--type f32|f16|q8_0|q4_0] [--embd N] [--layers N] [--ff N]
 *                        [--heads N] [--heads-kv N] [--ctx N] [--seed N]
 *                        [--experts N --experts-used K] [--vocab N]
 * With --experts the feed-forward blocks are a mixture of N experts of which K are used per
 * token (the Mixtral layout of llama: ffn_gate_inp and the *_exps tensors), so the model runs
 * MUL_MAT_ID, ARGSORT/TOP_K and the other routing ops. --vocab pads the generated vocabulary
 * (about 1.3k pieces) to N tokens, so that the output layer has a real model's size. */
#include "tiny_vocab.h"

#include <ggml.h>
#include <gguf.h>

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct params {
    const char *out;
    enum ggml_type wtype; /* type of the 2-D weight matrices */
    int embd, layers, ff, heads, heads_kv, ctx;
    int experts, experts_used; /* 0: dense feed-forward */
    int vocab;                 /* 0: the generated vocabulary as it is */
    uint64_t seed;
};

/* splitmix64: tiny, good enough for weights, identical on every platform */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* uniform in [-a, a] */
static float rng_uniform(uint64_t *s, float a)
{
    double u = (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
    return (float)((2.0 * u - 1.0) * a);
}

static void usage(void)
{
    fprintf(stderr, "usage: make-tiny-llama -o FILE [--type f32|f16|q8_0|q4_0] [--embd N] [--layers N] "
                    "[--ff N] [--heads N] [--heads-kv N] [--ctx N] [--seed N] "
                    "[--experts N --experts-used K] [--vocab N]\n");
}

/* the weight type named v (ggml's name of one of the types offered); false if none */
static bool parse_type(const char *v, enum ggml_type *out)
{
    static const enum ggml_type offered[] = {GGML_TYPE_F32, GGML_TYPE_F16, GGML_TYPE_Q8_0, GGML_TYPE_Q4_0};
    for (size_t k = 0; k < sizeof offered / sizeof offered[0]; k++) {
        if (!strcmp(v, ggml_type_name(offered[k]))) {
            *out = offered[k];
            return true;
        }
    }
    return false;
}

static int parse_args(int argc, char **argv, struct params *p)
{
    *p = (struct params){ NULL, GGML_TYPE_F16, 512, 4, 1408, 8, 4, 2048, 0, 0, 0, 42 };
    const struct {
        const char *name;
        int *value;
    } ints[] = {{"--embd", &p->embd}, {"--layers", &p->layers}, {"--ff", &p->ff},
                {"--heads", &p->heads}, {"--heads-kv", &p->heads_kv}, {"--ctx", &p->ctx},
                {"--experts", &p->experts}, {"--experts-used", &p->experts_used}, {"--vocab", &p->vocab}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return -1;
        i++;
        size_t k = 0;
        while (k < sizeof ints / sizeof ints[0] && strcmp(a, ints[k].name))
            k++;
        if (k < sizeof ints / sizeof ints[0])
            *ints[k].value = atoi(v);
        else if (!strcmp(a, "-o"))
            p->out = v;
        else if (!strcmp(a, "--type")) {
            if (!parse_type(v, &p->wtype))
                return -1;
        } else if (!strcmp(a, "--seed"))
            p->seed = strtoull(v, NULL, 0);
        else
            return -1;
    }
    if (!p->out || p->embd <= 0 || p->layers <= 0 || p->ff <= 0 || p->heads <= 0 ||
        p->heads_kv <= 0 || p->ctx <= 0 || p->embd % p->heads || p->heads % p->heads_kv ||
        p->embd % 32 || p->ff % 32 || p->experts < 0 || p->experts_used < 0 ||
        p->experts_used > p->experts || p->vocab < 0 || (p->experts > 0) != (p->experts_used > 0))
        return -1;
    return 0;
}

/* Fills a tensor with uniform weights of standard deviation std (amplitude std*sqrt(3)),
 * quantizing or converting from f32 rows as its type needs. */
static void fill_matrix(struct ggml_tensor *t, uint64_t *rng, float std, float *row)
{
    const int64_t n = t->ne[0], rows = ggml_nrows(t);
    const float a = std * sqrtf(3.0f);
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t i = 0; i < n; i++)
            row[i] = rng_uniform(rng, a);
        char *dst = (char *)t->data + r * t->nb[1];
        if (t->type == GGML_TYPE_F32)
            memcpy(dst, row, n * sizeof(float));
        else if (t->type == GGML_TYPE_F16)
            ggml_fp32_to_fp16_row(row, (ggml_fp16_t *)dst, n);
        else
            ggml_quantize_chunk(t->type, row, dst, 0, 1, n, NULL);
    }
}

static void fill_ones(struct ggml_tensor *t)
{
    float *d = t->data;
    for (int64_t i = 0; i < ggml_nelements(t); i++)
        d[i] = 1.0f;
}

static struct ggml_tensor *new_tensor3(struct ggml_context *ctx, struct gguf_context *g,
                                       enum ggml_type type, int64_t ne0, int64_t ne1,
                                       int64_t ne2, const char *name)
{
    struct ggml_tensor *t = ne2 ? ggml_new_tensor_3d(ctx, type, ne0, ne1, ne2)
                          : ne1 ? ggml_new_tensor_2d(ctx, type, ne0, ne1)
                                : ggml_new_tensor_1d(ctx, type, ne0);
    ggml_set_name(t, name);
    gguf_add_tensor(g, t);
    return t;
}

static struct ggml_tensor *new_tensor(struct ggml_context *ctx, struct gguf_context *g,
                                      enum ggml_type type, int64_t ne0, int64_t ne1,
                                      const char *name)
{
    return new_tensor3(ctx, g, type, ne0, ne1, 0, name);
}

/* llama_ftype of the weight type: 0 all f32, 1 mostly f16, 2 mostly q4_0, 7 mostly q8_0 */
static uint32_t file_type(enum ggml_type t)
{
    switch (t) {
    case GGML_TYPE_F32: return 0;
    case GGML_TYPE_F16: return 1;
    case GGML_TYPE_Q4_0: return 2;
    default: return 7;
    }
}

static void set_hparams(struct gguf_context *g, const struct params *p, uint32_t n_vocab)
{
    gguf_set_val_str(g, "general.architecture", "llama");
    gguf_set_val_str(g, "general.name", "tiny-llama (random weights, ggml-virtgpu tests)");
    gguf_set_val_u32(g, "general.quantization_version", 2);
    gguf_set_val_u32(g, "general.file_type", file_type(p->wtype));
    gguf_set_val_u32(g, "llama.vocab_size", n_vocab);
    gguf_set_val_u32(g, "llama.context_length", (uint32_t)p->ctx);
    gguf_set_val_u32(g, "llama.embedding_length", (uint32_t)p->embd);
    gguf_set_val_u32(g, "llama.block_count", (uint32_t)p->layers);
    gguf_set_val_u32(g, "llama.feed_forward_length", (uint32_t)p->ff);
    gguf_set_val_u32(g, "llama.attention.head_count", (uint32_t)p->heads);
    gguf_set_val_u32(g, "llama.attention.head_count_kv", (uint32_t)p->heads_kv);
    gguf_set_val_u32(g, "llama.rope.dimension_count", (uint32_t)(p->embd / p->heads));
    gguf_set_val_f32(g, "llama.rope.freq_base", 10000.0f);
    gguf_set_val_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    if (p->experts > 0) {
        gguf_set_val_u32(g, "llama.expert_count", (uint32_t)p->experts);
        gguf_set_val_u32(g, "llama.expert_used_count", (uint32_t)p->experts_used);
    }
}

static void set_vocab(struct gguf_context *g, const struct tiny_vocab *v)
{
    gguf_set_val_str(g, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(g, "tokenizer.ggml.tokens", (const char **)v->tokens, v->n);
    gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v->scores, v->n);
    gguf_set_arr_data(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v->types, v->n);
    gguf_set_val_u32(g, "tokenizer.ggml.bos_token_id", TV_BOS_ID);
    gguf_set_val_u32(g, "tokenizer.ggml.eos_token_id", TV_EOS_ID);
    gguf_set_val_u32(g, "tokenizer.ggml.unknown_token_id", TV_UNK_ID);
    gguf_set_val_bool(g, "tokenizer.ggml.add_bos_token", true);
    gguf_set_val_bool(g, "tokenizer.ggml.add_eos_token", false);
}

int main(int argc, char **argv)
{
    struct params p;
    if (parse_args(argc, argv, &p)) {
        usage();
        return 2;
    }
    struct tiny_vocab voc;
    if (tiny_vocab_build(&voc) || tiny_vocab_pad(&voc, (size_t)p.vocab)) {
        fprintf(stderr, "make-tiny-llama: out of memory\n");
        return 1;
    }
    const int64_t n_vocab = (int64_t)voc.n, E = p.embd, F = p.ff;
    const int64_t head = E / p.heads, ekv = head * p.heads_kv;

    /* exact data size: per-layer matrices + norms, embeddings and output */
    size_t mat = 0;
    mat += 2 * ggml_row_size(p.wtype, E) * (size_t)n_vocab;                 /* embd + output */
    const size_t n_ffn = p.experts > 0 ? (size_t)p.experts : 1;     /* feed-forward copies */
    size_t per_layer = ggml_row_size(p.wtype, E) * (size_t)(E + 2 * ekv) +
                       ggml_row_size(p.wtype, E) * (size_t)E +                /* attn_output */
                       n_ffn * ggml_row_size(p.wtype, E) * (size_t)F * 2 +    /* ffn_gate, up */
                       n_ffn * ggml_row_size(p.wtype, F) * (size_t)E +        /* ffn_down */
                       (size_t)E * (size_t)p.experts * sizeof(float) +        /* router */
                       2 * (size_t)E * sizeof(float);                         /* norms */
    size_t n_tensors = 3 + 10 * (size_t)p.layers;
    size_t mem = mat + per_layer * (size_t)p.layers + (size_t)E * sizeof(float) +
                 n_tensors * (ggml_tensor_overhead() + 64);
    struct ggml_context *ctx = ggml_init((struct ggml_init_params){ mem, NULL, false });
    struct gguf_context *g = gguf_init_empty();
    float *row = malloc(sizeof(float) * (size_t)(E > F ? (E > n_vocab ? E : n_vocab) : F));
    if (!ctx || !g || !row) {
        fprintf(stderr, "make-tiny-llama: cannot allocate %zu bytes\n", mem);
        return 1;
    }
    set_hparams(g, &p, (uint32_t)n_vocab);
    set_vocab(g, &voc);

    uint64_t rng = p.seed;
    const float in_std = 1.0f / sqrtf((float)E);
    /* token embeddings: unit scale (rms_norm follows); the output projection is scaled up so
     * that greedy choices have clear margins and do not flip on rounding differences. */
    fill_matrix(new_tensor(ctx, g, p.wtype, E, n_vocab, "token_embd.weight"), &rng, 1.0f, row);
    fill_ones(new_tensor(ctx, g, GGML_TYPE_F32, E, 0, "output_norm.weight"));
    fill_matrix(new_tensor(ctx, g, p.wtype, E, n_vocab, "output.weight"), &rng, 4.0f * in_std, row);
    for (int l = 0; l < p.layers; l++) {
        char name[64];
#define T(suffix) (snprintf(name, sizeof name, "blk.%d." suffix ".weight", l), name)
        fill_ones(new_tensor(ctx, g, GGML_TYPE_F32, E, 0, T("attn_norm")));
        fill_matrix(new_tensor(ctx, g, p.wtype, E, E, T("attn_q")), &rng, in_std, row);
        fill_matrix(new_tensor(ctx, g, p.wtype, E, ekv, T("attn_k")), &rng, in_std, row);
        fill_matrix(new_tensor(ctx, g, p.wtype, E, ekv, T("attn_v")), &rng, in_std, row);
        fill_matrix(new_tensor(ctx, g, p.wtype, E, E, T("attn_output")), &rng, in_std, row);
        fill_ones(new_tensor(ctx, g, GGML_TYPE_F32, E, 0, T("ffn_norm")));
        if (p.experts == 0) {
            fill_matrix(new_tensor(ctx, g, p.wtype, E, F, T("ffn_gate")), &rng, in_std, row);
            fill_matrix(new_tensor(ctx, g, p.wtype, E, F, T("ffn_up")), &rng, in_std, row);
            fill_matrix(new_tensor(ctx, g, p.wtype, F, E, T("ffn_down")), &rng,
                        1.0f / sqrtf((float)F), row);
        } else {
            const int64_t X = p.experts;
            /* the router stays f32 (as in converted models); a wide spread of router logits
             * keeps the top-k choice clear of rounding differences between backends */
            fill_matrix(new_tensor(ctx, g, GGML_TYPE_F32, E, X, T("ffn_gate_inp")), &rng,
                        4.0f * in_std, row);
            fill_matrix(new_tensor3(ctx, g, p.wtype, E, F, X, T("ffn_gate_exps")), &rng, in_std, row);
            fill_matrix(new_tensor3(ctx, g, p.wtype, E, F, X, T("ffn_up_exps")), &rng, in_std, row);
            fill_matrix(new_tensor3(ctx, g, p.wtype, F, E, X, T("ffn_down_exps")), &rng,
                        1.0f / sqrtf((float)F), row);
        }
#undef T
    }
    bool ok = gguf_write_to_file(g, p.out, false);
    if (!ok)
        fprintf(stderr, "make-tiny-llama: cannot write %s\n", p.out);
    else {
        printf("wrote %s: %lld tokens, embd %d, %d layers, ff %d, heads %d/%d, %s weights",
               p.out, (long long)n_vocab, p.embd, p.layers, p.ff, p.heads, p.heads_kv,
               ggml_type_name(p.wtype));
        if (p.experts)
            printf(", %d experts (%d used)", p.experts, p.experts_used);
        printf("\n");
    }
    free(row);
    gguf_free(g);
    ggml_free(ctx);
    tiny_vocab_free(&voc);
    return ok ? 0 : 1;
}
