/* The host's repacked weights (src/backend/repacked_weights.c) on the real ggml CPU backend,
 * for what the end-to-end check (tests/frontend/test_e2e.c, test_repacked_weights) cannot
 * reach from a guest: the room apir.limit.buffer_bytes leaves, a buffer the limit allows
 * taking the copies' room back, a weight refused once not tried again, and a freed buffer's
 * copies going with it. Skipped where this machine's ggml-cpu does not repack Q4_0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend_context.h"
#include "repacked_weights.h"
#include "session_fixture.h"

#include "ggml-backend.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

enum { K = 256, M = 64, N = 5 };

struct fixture {
    ggml_backend_dev_t dev;
    ggml_backend_buffer_type_t *bufts;
    struct ggml_context *ctx;
    struct ggml_tensor *w, *x, *y;
    struct ggml_cgraph *graph;
    ggml_backend_buffer_t buf;
};

static int setup(void **state)
{
    static struct fixture f;
    char path[PATH_MAX];
    sf_pick_cpu(GGML_LIB_DIR, path, sizeof path);
    if (!ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU) && (!path[0] || !ggml_backend_load(path)))
        return -1;
    f.dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    f.bufts = repacked_weights_bufts(f.dev);
    struct ggml_init_params p = {ggml_tensor_overhead() * 8 + ggml_graph_overhead() + 1024, NULL, true};
    f.ctx = ggml_init(p);
    f.w = ggml_new_tensor_2d(f.ctx, GGML_TYPE_Q4_0, K, M);
    f.x = ggml_new_tensor_2d(f.ctx, GGML_TYPE_F32, K, N);
    f.y = ggml_mul_mat(f.ctx, f.w, f.x);
    f.graph = ggml_new_graph(f.ctx);
    ggml_build_forward_expand(f.graph, f.y);
    f.buf = ggml_backend_alloc_ctx_tensors_from_buft(f.ctx, ggml_backend_dev_buffer_type(f.dev));
    if (!f.buf)
        return -1;
    ggml_backend_buffer_clear(f.buf, 0);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ggml_backend_buffer_free(f->buf);
    ggml_free(f->ctx);
    return 0;
}

/* skips unless a copy of the fixture's weight can be made here (and leaves none) */
static void need_repack(struct fixture *f)
{
    struct repacked_weights rw = {0};
    uint32_t n = f->bufts ? repacked_weights_substitute(&rw, f->dev, f->bufts, f->graph, NULL, 0, UINT64_MAX) : 0;
    f->y->src[0] = f->w;
    repacked_weights_free(&rw);
    if (!n)
        skip();
}

static void test_copy_within_room(void **state)
{
    struct fixture *f = *state;
    need_repack(f);
    struct repacked_weights rw = {0};
    /* no room: the node keeps reading the guest's bytes, and the weight is not tried again */
    assert_int_equal(repacked_weights_substitute(&rw, f->dev, f->bufts, f->graph, NULL, 0, 1024), 0);
    assert_ptr_equal(f->y->src[0], f->w);
    assert_int_equal(rw.bytes, 0);
    assert_int_equal(repacked_weights_substitute(&rw, f->dev, f->bufts, f->graph, NULL, 0, UINT64_MAX), 0);
    /* once its buffer goes, it is forgotten: a new one in its place is repacked */
    repacked_weights_forget(&rw, f->buf);
    assert_int_equal(rw.n, 0);
    assert_int_equal(repacked_weights_substitute(&rw, f->dev, f->bufts, f->graph, NULL, 0, UINT64_MAX), 1);
    assert_ptr_not_equal(f->y->src[0], f->w);
    assert_true(rw.bytes >= ggml_nbytes(f->w));
    f->y->src[0] = f->w;
    repacked_weights_forget(&rw, f->buf);
    assert_int_equal(rw.n, 0);
    assert_int_equal(rw.bytes, 0);
    repacked_weights_free(&rw);
}

static void test_written_weight_not_copied(void **state)
{
    struct fixture *f = *state;
    need_repack(f);
    struct repacked_weights rw = {0};
    uint64_t off = (uint64_t)((char *)f->w->data - (char *)ggml_backend_buffer_get_base(f->buf));
    /* the graph writes one byte of the weight */
    struct write_range wr = {f->buf, off + ggml_nbytes(f->w) - 1, off + ggml_nbytes(f->w)};
    assert_int_equal(repacked_weights_substitute(&rw, f->dev, f->bufts, f->graph, &wr, 1, UINT64_MAX), 0);
    assert_ptr_equal(f->y->src[0], f->w);
    assert_int_equal(rw.n, 0); /* nothing remembered: another graph may read it */
    repacked_weights_free(&rw);
}

/* a buffer the limit allows takes the copies' room back, with the graphs that read them */
static void test_buffer_takes_the_room(void **state)
{
    struct fixture *f = *state;
    need_repack(f);
    static struct backend_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    handle_table_init(&ctx.handles, 0);
    ctx.buffer_bytes_limit = 1u << 20;
    ctx.buffer_bytes = ggml_backend_buffer_get_size(f->buf);
    assert_int_equal(repacked_weights_substitute(&ctx.repacked, f->dev, f->bufts, f->graph, NULL, 0,
                                                 backend_ctx_room(&ctx)),
                     1);
    f->y->src[0] = f->w;
    uint64_t copies = ctx.repacked.bytes;
    assert_int_equal(backend_ctx_room(&ctx), (1u << 20) - ctx.buffer_bytes - copies);
    backend_ctx_make_room(&ctx, backend_ctx_room(&ctx)); /* fits beside the copies */
    assert_int_equal(ctx.repacked.bytes, copies);
    backend_ctx_make_room(&ctx, backend_ctx_room(&ctx) + 1);
    assert_int_equal(ctx.repacked.bytes, 0);
    assert_int_equal(ctx.repacked.n, 0);
    handle_table_fini(&ctx.handles);
}

/* a copy made for MUL_MAT_ID is not read by a MUL_MAT of the same 3-D weight: ggml's CPU
 * backend multiplies it with the plain kernel, the repacked one asserts a 2-D weight */
static void test_copy_only_where_supported(void **state)
{
    struct fixture *f = *state;
    need_repack(f);
    struct ggml_init_params p = {ggml_tensor_overhead() * 8 + 2 * ggml_graph_overhead() + 1024, NULL, true};
    struct ggml_context *ctx = ggml_init(p);
    struct ggml_tensor *w = ggml_new_tensor_3d(ctx, GGML_TYPE_Q4_0, K, M, 4);
    struct ggml_tensor *ids = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, 2, N);
    struct ggml_tensor *ya = ggml_mul_mat_id(ctx, w, ggml_new_tensor_3d(ctx, GGML_TYPE_F32, K, 1, N), ids);
    struct ggml_tensor *yb = ggml_mul_mat(ctx, w, ggml_new_tensor_3d(ctx, GGML_TYPE_F32, K, N, 4));
    struct ggml_cgraph *ga = ggml_new_graph(ctx), *gb = ggml_new_graph(ctx);
    ggml_build_forward_expand(ga, ya);
    ggml_build_forward_expand(gb, yb);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_dev_buffer_type(f->dev));
    assert_non_null(buf);
    ggml_backend_buffer_clear(buf, 0);
    struct repacked_weights rw = {0};
    assert_int_equal(repacked_weights_substitute(&rw, f->dev, f->bufts, ga, NULL, 0, UINT64_MAX), 1);
    assert_int_equal(repacked_weights_substitute(&rw, f->dev, f->bufts, gb, NULL, 0, UINT64_MAX), 0);
    assert_ptr_equal(yb->src[0], w);
    ggml_backend_t be = ggml_backend_dev_init(f->dev, NULL);
    assert_int_equal(ggml_backend_graph_compute(be, gb), GGML_STATUS_SUCCESS);
    ggml_backend_free(be);
    ya->src[0] = w;
    repacked_weights_free(&rw);
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_copy_within_room), cmocka_unit_test(test_written_weight_not_copied),
                                       cmocka_unit_test(test_buffer_takes_the_room),
                                       cmocka_unit_test(test_copy_only_where_supported)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
