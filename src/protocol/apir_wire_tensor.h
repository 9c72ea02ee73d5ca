/* A ggml tensor as it crosses the wire (graphs, supports_op, alloc size). Shapes and
 * strides are 64-bit; references to other tensors are indices into the same message. */
#ifndef APIR_WIRE_TENSOR_H
#define APIR_WIRE_TENSOR_H

#include "apir_codec.h"

#include <stdint.h>

#define APIR_WIRE_MAX_DIMS 4       /* GGML_MAX_DIMS */
#define APIR_WIRE_MAX_SRC 10       /* GGML_MAX_SRC */
#define APIR_WIRE_OP_PARAMS 16     /* GGML_MAX_OP_PARAMS / sizeof(int32_t) */
#define APIR_WIRE_MAX_NAME 64      /* GGML_MAX_NAME */

struct apir_wire_tensor {
    uint32_t type;                 /* enum ggml_type */
    uint32_t op;                   /* enum ggml_op */
    int64_t ne[APIR_WIRE_MAX_DIMS];
    uint64_t nb[APIR_WIRE_MAX_DIMS];
    int32_t op_params[APIR_WIRE_OP_PARAMS];
    int32_t flags;
    uint32_t src[APIR_WIRE_MAX_SRC]; /* index + 1 of an earlier tensor in the message, 0 = none */
    uint32_t view_src;               /* index + 1, 0 = none */
    uint64_t view_offs;
    uint32_t buffer;                 /* buffer handle, 0 = no data (e.g. supports_op) */
    uint64_t data_offset;            /* offset of data from the buffer's start */
    char name[APIR_WIRE_MAX_NAME];   /* always NUL-terminated after decoding */
};

/* fixed encoded size of one tensor */
#define APIR_WIRE_TENSOR_SIZE (4 + 4 + 8 * 4 + 8 * 4 + 4 * 16 + 4 + 4 * 10 + 4 + 8 + 4 + 8 + 64)

void apir_wire_tensor_encode(struct apir_encoder *enc, const struct apir_wire_tensor *t);
/* Decodes one tensor. Only the framing is checked here (the name is NUL-terminated); the
 * host validates every value against ggml and its own objects. */
void apir_wire_tensor_decode(struct apir_decoder *dec, struct apir_wire_tensor *t);

#endif
