/* The smallest graph a frontend test computes on VirtGPU0: y = x*x of n floats, y a graph
 * output (read back with the compute, as llama.cpp's logits are). Shared by the tests that
 * check a device still computes right after a cache hit or a reconnection. */
#ifndef TESTS_FRONTEND_SQR_GRAPH_H
#define TESTS_FRONTEND_SQR_GRAPH_H

#include <ggml.h>

#include <stdint.h>

struct sqr_graph {
    struct ggml_context *ctx; /* no_alloc: ggml_backend_alloc_ctx_tensors places x and y */
    struct ggml_tensor *x, *y;
    struct ggml_cgraph *gf;
};

static inline struct sqr_graph sqr_graph_new(int64_t n)
{
    struct ggml_init_params p = {ggml_tensor_overhead() * 4 + ggml_graph_overhead() + 1024, NULL, true};
    struct sqr_graph g = {ggml_init(p), NULL, NULL, NULL};
    g.x = ggml_new_tensor_1d(g.ctx, GGML_TYPE_F32, n);
    g.y = ggml_sqr(g.ctx, g.x);
    ggml_set_output(g.y);
    g.gf = ggml_new_graph(g.ctx);
    ggml_build_forward_expand(g.gf, g.y);
    return g;
}

#endif
