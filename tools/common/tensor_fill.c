#include "tensor_fill.h"

#include <ggml-backend.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float uniform(uint64_t *s)
{
    return (float)((double)(next(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

/* Integers: "idx:N" draws from [0, N), distinct while there are enough values (a partial
 * Fisher-Yates shuffle), so set_rows never writes one row twice; "pos" counts up. */
static void fill_ints(const struct ggml_tensor *t, int64_t n, uint64_t *rng, int64_t *out)
{
    if (strcmp(t->name, "pos") == 0) {
        for (int64_t i = 0; i < n; i++)
            out[i] = i;
        return;
    }
    int64_t range = strncmp(t->name, "idx:", 4) == 0 ? atoll(t->name + 4) : 1;
    if (range < 1)
        range = 1;
    int64_t *perm = malloc(sizeof *perm * (size_t)range);
    for (int64_t i = 0; i < range && perm; i++)
        perm[i] = i;
    for (int64_t i = 0; i < n; i++) {
        if (perm && i < range) {
            int64_t j = i + (int64_t)(next(rng) % (uint64_t)(range - i));
            int64_t tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
            out[i] = perm[i];
        } else {
            out[i] = (int64_t)(next(rng) % (uint64_t)range);
        }
    }
    free(perm);
}

/* causal mask over [n_kv, n_q]: query row r sees keys 0 .. r + (n_kv - n_q) */
static void fill_mask(const struct ggml_tensor *t, float *f)
{
    const int64_t n_kv = t->ne[0], n_q = t->ne[1];
    for (int64_t r = 0; r < ggml_nrows(t); r++)
        for (int64_t k = 0; k < n_kv; k++)
            f[r * n_kv + k] = k <= (r % n_q) + (n_kv - n_q) ? 0.0f : -INFINITY;
}

static void to_type(const struct ggml_tensor *t, const float *f, void *dst)
{
    const int64_t n = ggml_nelements(t);
    switch (t->type) {
    case GGML_TYPE_F32:
        memcpy(dst, f, (size_t)n * sizeof(float));
        break;
    case GGML_TYPE_F16:
        ggml_fp32_to_fp16_row(f, dst, n);
        break;
    default:
        ggml_quantize_chunk(t->type, f, dst, 0, ggml_nrows(t), t->ne[0], NULL);
        break;
    }
}

void *tensor_fill_bytes(const struct ggml_tensor *t, uint64_t seed)
{
    const int64_t n = ggml_nelements(t);
    uint64_t rng = seed;
    for (const char *p = t->name; *p; p++)
        rng = rng * 131 + (uint8_t)*p;
    void *bytes = malloc(ggml_nbytes(t));
    float *f = malloc(sizeof(float) * (size_t)n);
    int64_t *ints = malloc(sizeof(int64_t) * (size_t)n);
    if (!bytes || !f || !ints) {
        free(bytes);
        bytes = NULL;
        goto out;
    }
    if (t->type == GGML_TYPE_I32 || t->type == GGML_TYPE_I64) {
        fill_ints(t, n, &rng, ints);
        for (int64_t i = 0; i < n; i++) {
            if (t->type == GGML_TYPE_I32)
                ((int32_t *)bytes)[i] = (int32_t)ints[i];
            else
                ((int64_t *)bytes)[i] = ints[i];
        }
    } else {
        if (strcmp(t->name, "mask") == 0)
            fill_mask(t, f);
        else
            for (int64_t i = 0; i < n; i++)
                f[i] = uniform(&rng);
        to_type(t, f, bytes);
    }
out:
    free(f);
    free(ints);
    return bytes;
}

int tensor_fill(struct ggml_tensor *t, uint64_t seed)
{
    void *bytes = tensor_fill_bytes(t, seed);
    if (!bytes)
        return -1;
    ggml_backend_tensor_set(t, bytes, 0, ggml_nbytes(t));
    free(bytes);
    return 0;
}
