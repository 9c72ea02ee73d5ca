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

/* t becomes op(tensor 1, tensor 2) of the message */
static inline void wt_op2(struct apir_wire_tensor *t, enum ggml_op op)
{
    t->op = (uint32_t)op;
    t->src[0] = 1;
    t->src[1] = 2;
}

/* a[4x3] at 0, b[4x2] at 64, c = mul_mat(a, b) [3x2] at 128, all f32 in buffer `buffer`:
 * the small valid graph the backend tests and seeds start from */
static inline void wt_mul_mat(struct apir_wire_tensor t[3], uint32_t buffer)
{
    t[0] = wt_make(GGML_TYPE_F32, 4, 3, 1, 1, buffer, 0);
    t[1] = wt_make(GGML_TYPE_F32, 4, 2, 1, 1, buffer, 64);
    t[2] = wt_make(GGML_TYPE_F32, 3, 2, 1, 1, buffer, 128);
    wt_op2(&t[2], GGML_OP_MUL_MAT);
    t[2].flags = GGML_TENSOR_FLAG_COMPUTE; /* ggml's CPU backend skips nodes without it */
}

/* graph message: u32 n_tensors, tensors, u32 n_nodes, (node index, use count 1) each */
static inline void wt_put_graph(struct apir_encoder *enc, const struct apir_wire_tensor *t, uint32_t n,
                                const uint32_t *nodes, uint32_t n_nodes)
{
    apir_put_u32(enc, n);
    for (uint32_t i = 0; i < n; i++)
        apir_wire_tensor_encode(enc, &t[i]);
    apir_put_u32(enc, n_nodes);
    for (uint32_t i = 0; i < n_nodes; i++) {
        apir_put_u32(enc, nodes[i]);
        apir_put_u32(enc, 1);
    }
}

/* BUFFER_SET/GET arguments: size bytes at offset of buffer, through resource res at shm_offset */
static inline void wt_put_transfer(struct apir_encoder *enc, uint32_t buffer, uint64_t offset, uint64_t size,
                                   uint32_t res, uint64_t shm_offset)
{
    apir_put_u32(enc, buffer);
    apir_put_u64(enc, offset);
    apir_put_u64(enc, size);
    apir_put_u32(enc, res);
    apir_put_u64(enc, shm_offset);
}

/* GRAPH_RECOMPUTE arguments: backend handle, graph slot, no outputs read back */
static inline void wt_put_recompute(struct apir_encoder *enc, uint32_t backend, uint32_t slot)
{
    apir_put_u32(enc, backend);
    apir_put_u32(enc, slot);
    apir_put_u32(enc, 0);
}

#endif
