/* Helpers for tests: build wire tensors and FORWARD messages like a guest would. */
#ifndef TEST_WIRE_UTIL_H
#define TEST_WIRE_UTIL_H

#include "apir_codec.h"
#include "apir_wire_tensor.h"
#include "ggml.h"

#include <string.h>

/* a packed tensor of the given type and shape, in buffer `buffer` at `offset` */
static inline struct apir_wire_tensor wt_make(enum ggml_type type, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3,
                                              uint32_t buffer, uint64_t offset)
{
    struct apir_wire_tensor t;
    memset(&t, 0, sizeof t);
    t.type = (uint32_t)type;
    t.op = GGML_OP_NONE;
    t.ne[0] = ne0;
    t.ne[1] = ne1;
    t.ne[2] = ne2;
    t.ne[3] = ne3;
    t.nb[0] = ggml_type_size(type);
    t.nb[1] = t.nb[0] * (uint64_t)(ne0 / ggml_blck_size(type));
    t.nb[2] = t.nb[1] * (uint64_t)ne1;
    t.nb[3] = t.nb[2] * (uint64_t)ne2;
    t.buffer = buffer;
    t.data_offset = offset;
    return t;
}

/* graph message: u32 n_tensors, tensors, u32 n_nodes, node indices */
static inline void wt_put_graph(struct apir_encoder *enc, const struct apir_wire_tensor *t, uint32_t n,
                                const uint32_t *nodes, uint32_t n_nodes)
{
    apir_put_u32(enc, n);
    for (uint32_t i = 0; i < n; i++)
        apir_wire_tensor_encode(enc, &t[i]);
    apir_put_u32(enc, n_nodes);
    for (uint32_t i = 0; i < n_nodes; i++)
        apir_put_u32(enc, nodes[i]);
}

#endif
