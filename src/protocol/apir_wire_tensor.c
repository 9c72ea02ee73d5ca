#include "apir_wire_tensor.h"

#include <string.h>

void apir_wire_tensor_encode(struct apir_encoder *enc, const struct apir_wire_tensor *t)
{
    apir_put_u32(enc, t->type);
    apir_put_u32(enc, t->op);
    for (int i = 0; i < APIR_WIRE_MAX_DIMS; i++)
        apir_put_i64(enc, t->ne[i]);
    for (int i = 0; i < APIR_WIRE_MAX_DIMS; i++)
        apir_put_u64(enc, t->nb[i]);
    for (int i = 0; i < APIR_WIRE_OP_PARAMS; i++)
        apir_put_i32(enc, t->op_params[i]);
    apir_put_i32(enc, t->flags);
    for (int i = 0; i < APIR_WIRE_MAX_SRC; i++)
        apir_put_u32(enc, t->src[i]);
    apir_put_u32(enc, t->view_src);
    apir_put_u64(enc, t->view_offs);
    apir_put_u32(enc, t->buffer);
    apir_put_u64(enc, t->data_offset);
    char name[APIR_WIRE_MAX_NAME] = {0};
    size_t n = strnlen(t->name, sizeof name - 1);
    memcpy(name, t->name, n);
    apir_put_bytes(enc, name, sizeof name);
}

void apir_wire_tensor_decode(struct apir_decoder *dec, struct apir_wire_tensor *t)
{
    t->type = apir_get_u32(dec);
    t->op = apir_get_u32(dec);
    for (int i = 0; i < APIR_WIRE_MAX_DIMS; i++)
        t->ne[i] = apir_get_i64(dec);
    for (int i = 0; i < APIR_WIRE_MAX_DIMS; i++)
        t->nb[i] = apir_get_u64(dec);
    for (int i = 0; i < APIR_WIRE_OP_PARAMS; i++)
        t->op_params[i] = apir_get_i32(dec);
    t->flags = apir_get_i32(dec);
    for (int i = 0; i < APIR_WIRE_MAX_SRC; i++)
        t->src[i] = apir_get_u32(dec);
    t->view_src = apir_get_u32(dec);
    t->view_offs = apir_get_u64(dec);
    t->buffer = apir_get_u32(dec);
    t->data_offset = apir_get_u64(dec);
    apir_get_bytes(dec, t->name, sizeof t->name);
    t->name[sizeof t->name - 1] = '\0';
}
