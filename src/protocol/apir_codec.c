#include "apir_codec.h"

#include <string.h>

void *apir_put_reserve(struct apir_encoder *enc, size_t size)
{
    if (enc->error || size > enc->cap - enc->pos) {
        enc->error = true;
        return NULL;
    }
    void *p = enc->buf + enc->pos;
    enc->pos += size;
    return p;
}

void apir_put_bytes(struct apir_encoder *enc, const void *data, size_t size)
{
    void *p = apir_put_reserve(enc, size);
    if (p && size)
        memcpy(p, data, size);
}

void apir_put_u8(struct apir_encoder *enc, uint8_t v) { apir_put_bytes(enc, &v, sizeof v); }
void apir_put_u32(struct apir_encoder *enc, uint32_t v) { apir_put_bytes(enc, &v, sizeof v); }
void apir_put_i32(struct apir_encoder *enc, int32_t v) { apir_put_bytes(enc, &v, sizeof v); }
void apir_put_u64(struct apir_encoder *enc, uint64_t v) { apir_put_bytes(enc, &v, sizeof v); }
void apir_put_i64(struct apir_encoder *enc, int64_t v) { apir_put_bytes(enc, &v, sizeof v); }

void apir_put_str(struct apir_encoder *enc, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > UINT32_MAX) {
        enc->error = true;
        return;
    }
    apir_put_u32(enc, (uint32_t)n);
    apir_put_bytes(enc, s, n);
}

const void *apir_get_view(struct apir_decoder *dec, size_t size)
{
    if (dec->error || size > dec->len - dec->pos) {
        dec->error = true;
        return NULL;
    }
    const void *p = dec->buf + dec->pos;
    dec->pos += size;
    return p;
}

void apir_get_bytes(struct apir_decoder *dec, void *out, size_t size)
{
    const void *p = apir_get_view(dec, size);
    if (p)
        memcpy(out, p, size);
    else
        memset(out, 0, size);
}

uint8_t apir_get_u8(struct apir_decoder *dec) { uint8_t v; apir_get_bytes(dec, &v, sizeof v); return v; }
uint32_t apir_get_u32(struct apir_decoder *dec) { uint32_t v; apir_get_bytes(dec, &v, sizeof v); return v; }
int32_t apir_get_i32(struct apir_decoder *dec) { int32_t v; apir_get_bytes(dec, &v, sizeof v); return v; }
uint64_t apir_get_u64(struct apir_decoder *dec) { uint64_t v; apir_get_bytes(dec, &v, sizeof v); return v; }
int64_t apir_get_i64(struct apir_decoder *dec) { int64_t v; apir_get_bytes(dec, &v, sizeof v); return v; }

void apir_get_str(struct apir_decoder *dec, char *out, size_t cap)
{
    uint32_t n = apir_get_u32(dec);
    const char *p = apir_get_view(dec, n);
    if (cap)
        out[0] = '\0';
    if (!p)
        return;
    if (n >= cap || memchr(p, '\0', n)) {
        dec->error = true;
        return;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}
