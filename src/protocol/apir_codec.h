/* One encoder/decoder for every message: fixed-size little-endian integers and
 * length-prefixed strings/bytes. Both keep a sticky error flag, so a caller encodes or
 * decodes a whole message and checks once at the end. Decoding never reads past the end. */
#ifndef APIR_CODEC_H
#define APIR_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct apir_encoder {
    uint8_t *buf;
    size_t cap;
    size_t pos;
    bool error; /* ran out of room */
};

struct apir_decoder {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    bool error; /* short message or bad value */
};

static inline void apir_encoder_init(struct apir_encoder *enc, void *buf, size_t cap)
{
    enc->buf = buf;
    enc->cap = cap;
    enc->pos = 0;
    enc->error = false;
}

static inline void apir_decoder_init(struct apir_decoder *dec, const void *buf, size_t len)
{
    dec->buf = buf;
    dec->len = len;
    dec->pos = 0;
    dec->error = false;
}

void apir_put_bytes(struct apir_encoder *enc, const void *data, size_t size);
void apir_put_u8(struct apir_encoder *enc, uint8_t v);
void apir_put_u32(struct apir_encoder *enc, uint32_t v);
void apir_put_i32(struct apir_encoder *enc, int32_t v);
void apir_put_u64(struct apir_encoder *enc, uint64_t v);
void apir_put_i64(struct apir_encoder *enc, int64_t v);
/* u32 length + bytes; NULL encodes as the empty string */
void apir_put_str(struct apir_encoder *enc, const char *s);
/* reserve size bytes and return where they are (NULL on overflow) */
void *apir_put_reserve(struct apir_encoder *enc, size_t size);

void apir_get_bytes(struct apir_decoder *dec, void *out, size_t size);
uint8_t apir_get_u8(struct apir_decoder *dec);
uint32_t apir_get_u32(struct apir_decoder *dec);
int32_t apir_get_i32(struct apir_decoder *dec);
uint64_t apir_get_u64(struct apir_decoder *dec);
int64_t apir_get_i64(struct apir_decoder *dec);
/* copies a string into out (cap bytes, always NUL-terminated); too long or containing a NUL
 * byte is an error */
void apir_get_str(struct apir_decoder *dec, char *out, size_t cap);
/* points into the message: size bytes, or NULL (and error) if short */
const void *apir_get_view(struct apir_decoder *dec, size_t size);

static inline size_t apir_decoder_left(const struct apir_decoder *dec) { return dec->len - dec->pos; }
/* a message is well-formed when nothing failed and nothing is left over */
static inline bool apir_decoder_done(const struct apir_decoder *dec) { return !dec->error && dec->pos == dec->len; }

#endif
