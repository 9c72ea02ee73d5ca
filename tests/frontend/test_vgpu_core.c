/* Unit tests of the guest-side logic of libggml-virtgpu.so that needs no host: fake buffer
 * addresses, the op-signature cache, the pointer map, and graph encoding / recompute caching.
 * Graphs are real ggml graphs built with libggml-base. */
#include "apir_forward.h"
#include "apir_wire_tensor.h"
#include "vgpu_fake_addr.h"
#include "vgpu_graph.h"
#include "vgpu_outputs.h"
#include "vgpu_policy.h"
#include "vgpu_ptrmap.h"
#include "vgpu_sig_cache.h"
#include "vgpu_wire.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- fake addresses ---- */

static void fake_addr_aligned_unique_guarded(void **state)
{
    struct vgpu_fake_addr fa = {0};
    uint64_t a = vgpu_fake_addr_alloc(&fa, 1000, 64);
    uint64_t b = vgpu_fake_addr_alloc(&fa, 5000, 1 << 20);
    uint64_t c = vgpu_fake_addr_alloc(&fa, 0, 32);
    uint64_t d = vgpu_fake_addr_alloc(&fa, 1, 32);
    assert_true(a >= VGPU_FAKE_ADDR_START);
    assert_int_equal(a % 64, 0);
    assert_int_equal(b % (1 << 20), 0);
    assert_true(b >= a + 1000 + VGPU_FAKE_ADDR_GUARD);
    assert_true(c >= b + 5000 + VGPU_FAKE_ADDR_GUARD);
    assert_true(d > c); /* a zero-size buffer still has its own base */
    assert_true(d >= c + VGPU_FAKE_ADDR_GUARD);
}

static void fake_addr_rejects_bad_requests(void **state)
{
    struct vgpu_fake_addr fa = {0};
    assert_int_equal(vgpu_fake_addr_alloc(&fa, 10, 48), 0);        /* not a power of two */
    assert_int_equal(vgpu_fake_addr_alloc(&fa, UINT64_MAX, 64), 0); /* would wrap */
    assert_int_equal(vgpu_fake_addr_alloc(&fa, 0xff00000000000000ull, 64), 0); /* beyond the range */
    assert_true(vgpu_fake_addr_alloc(&fa, 1ull << 40, 64) != 0); /* 1 TiB is fine */
    fa.next = UINT64_MAX - 100;                                   /* exhausted */
    assert_int_equal(vgpu_fake_addr_alloc(&fa, 1, 64), 0);
    assert_non_null(vgpu_fake_addr_global_alloc(4096, 4096));
}

/* ---- signature cache ---- */

static void sig_cache_get_put_bounded(void **state)
{
    struct vgpu_sig_cache sc;
    assert_true(vgpu_sig_cache_init(&sc, 4));
    uint64_t v = 0;
    assert_false(vgpu_sig_cache_get(&sc, "abc", 3, &v));
    vgpu_sig_cache_put(&sc, "abc", 3, 1);
    vgpu_sig_cache_put(&sc, "abd", 3, 0);
    vgpu_sig_cache_put(&sc, "ab", 2, 7); /* a prefix is another key */
    assert_true(vgpu_sig_cache_get(&sc, "abc", 3, &v));
    assert_int_equal(v, 1);
    assert_true(vgpu_sig_cache_get(&sc, "abd", 3, &v));
    assert_int_equal(v, 0);
    assert_true(vgpu_sig_cache_get(&sc, "ab", 2, &v));
    assert_int_equal(v, 7);
    vgpu_sig_cache_put(&sc, "abc", 3, 9); /* overwrite does not grow */
    assert_int_equal(vgpu_sig_cache_count(&sc), 3);
    assert_true(vgpu_sig_cache_get(&sc, "abc", 3, &v));
    assert_int_equal(v, 9);
    char key[16];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        vgpu_sig_cache_put(&sc, key, (size_t)n, (uint64_t)i);
        assert_true(vgpu_sig_cache_count(&sc) <= 4);
        assert_true(vgpu_sig_cache_get(&sc, key, (size_t)n, &v)); /* the newest is always there */
        assert_int_equal(v, i);
    }
    assert_true(sc.hits > 0 && sc.misses > 0);
    vgpu_sig_cache_free(&sc);
}

/* ---- pointer map ---- */

static void ptrmap_many(void **state)
{
    struct vgpu_ptrmap m = {0};
    enum { N = 20000 };
    char *base = malloc(N);
    for (uint32_t i = 0; i < N; i++)
        assert_true(vgpu_ptrmap_put(&m, base + i, i * 3));
    assert_int_equal(m.count, N);
    for (uint32_t i = 0; i < N; i++) {
        uint32_t v = 0;
        assert_true(vgpu_ptrmap_get(&m, base + i, &v));
        assert_int_equal(v, i * 3);
    }
    uint32_t v;
    assert_false(vgpu_ptrmap_get(&m, &v, &v));
    vgpu_ptrmap_clear(&m);
    assert_false(vgpu_ptrmap_get(&m, base, &v));
    vgpu_ptrmap_free(&m);
    free(base);
}

/* ---- op signatures ---- */

static struct ggml_context *new_ctx(size_t n_tensors)
{
    struct ggml_init_params p = {
        .mem_size = ggml_tensor_overhead() * n_tensors + ggml_graph_overhead_custom(n_tensors, false) + ggml_graph_overhead() + 4096,
        .mem_buffer = NULL,
        .no_alloc = true,
    };
    return ggml_init(p);
}

static uint32_t sig_count(const uint8_t *sig) { return sig[0] | sig[1] << 8 | sig[2] << 16 | (uint32_t)sig[3] << 24; }

static void op_signature_dedups_and_blanks(void **state)
{
    struct ggml_context *ctx = new_ctx(16);
    struct ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 8, 4);
    ggml_set_name(x, "x");
    struct ggml_tensor *sq = ggml_mul(ctx, x, x);
    ggml_set_name(sq, "first");
    struct ggml_tensor *sq2 = ggml_mul(ctx, x, x);
    ggml_set_name(sq2, "second");
    ggml_set_output(sq2); /* graph flags do not matter either */
    uint8_t s1[VGPU_OP_SIG_MAX], s2[VGPU_OP_SIG_MAX], s3[VGPU_OP_SIG_MAX];
    size_t n1 = vgpu_op_signature(sq, s1);
    size_t n2 = vgpu_op_signature(sq2, s2);
    assert_int_equal(sig_count(s1), 2); /* x once, then the op */
    assert_int_equal(n1, 4 + 2 * APIR_WIRE_TENSOR_SIZE);
    assert_int_equal(n1, n2);
    assert_memory_equal(s1, s2, n1); /* names and flags do not matter */

    struct apir_decoder dec;
    apir_decoder_init(&dec, s1, n1);
    apir_get_u32(&dec);
    struct apir_wire_tensor w;
    apir_wire_tensor_decode(&dec, &w);
    assert_int_equal(w.op, GGML_OP_NONE);
    apir_wire_tensor_decode(&dec, &w);
    assert_int_equal(w.op, GGML_OP_MUL);
    assert_int_equal(w.type, GGML_TYPE_F32);
    assert_int_equal(w.ne[0], 8);
    assert_int_equal(w.ne[1], 4);
    assert_int_equal(w.nb[1], 32);
    assert_int_equal(w.src[0], 1);
    assert_int_equal(w.src[1], 1);
    assert_int_equal(w.src[2], 0);
    assert_int_equal(w.buffer, 0);
    assert_int_equal(w.flags, 0);
    assert_int_equal(w.view_offs, 0);
    assert_string_equal(w.name, "");
    assert_true(apir_decoder_done(&dec));

    /* a different shape is a different signature */
    struct ggml_tensor *y = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 8, 5);
    size_t n3 = vgpu_op_signature(ggml_mul(ctx, y, y), s3);
    assert_int_equal(n3, n1);
    assert_memory_not_equal(s1, s3, n1);
    /* a transposed (non-contiguous) source too */
    struct ggml_tensor *xt = ggml_transpose(ctx, ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 4, 8));
    vgpu_op_signature(ggml_mul(ctx, xt, xt), s3);
    assert_memory_not_equal(s1, s3, n1);
    ggml_free(ctx);
}

/* the fast packer writes exactly what the protocol's encoder writes */
static void pack_matches_encoder(void **state)
{
    struct ggml_context *ctx = new_ctx(8);
    struct ggml_tensor *a = ggml_new_tensor_4d(ctx, GGML_TYPE_Q8_0, 64, 3, 2, 5);
    struct ggml_tensor *v = ggml_view_2d(ctx, a, 32, 2, a->nb[1], a->nb[2]);
    struct ggml_tensor *r = ggml_rope_ext(ctx, ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 64, 4, 3),
                                          ggml_new_tensor_1d(ctx, GGML_TYPE_I32, 3), NULL, 64, 0, 4096, 10000.0f,
                                          1.0f, 0.0f, 1.0f, 32.0f, 1.0f);
    ggml_set_name(r, "a name that is longer than sixty-three characters, so it gets cut off at 63!!");
    ggml_set_output(r);
    const struct ggml_tensor *cases[] = {a, v, r};
    for (size_t c = 0; c < 3; c++) {
        const struct ggml_tensor *t = cases[c];
        uint32_t src[APIR_WIRE_MAX_SRC] = {3, 0, 1, 0, 0, 0, 0, 0, 0, 9};
        struct apir_wire_tensor w;
        vgpu_wire_from_tensor(&w, t);
        memcpy(w.src, src, sizeof src);
        w.view_src = 2;
        w.buffer = 0xabcdef;
        w.data_offset = 0x123456789ull;
        uint8_t want[APIR_WIRE_TENSOR_SIZE], got[APIR_WIRE_TENSOR_SIZE + 1];
        struct apir_encoder enc;
        apir_encoder_init(&enc, want, sizeof want);
        apir_wire_tensor_encode(&enc, &w);
        assert_false(enc.error);
        assert_int_equal(enc.pos, APIR_WIRE_TENSOR_SIZE);
        memset(got, 0x55, sizeof got);
        vgpu_wire_pack_tensor(got, t, src, 2, 0xabcdef, 0x123456789ull);
        assert_memory_equal(got, want, APIR_WIRE_TENSOR_SIZE);
        assert_int_equal(got[APIR_WIRE_TENSOR_SIZE], 0x55); /* not one byte more */
    }
    ggml_free(ctx);
}

/* ---- graph encoding ---- */

struct fake_placement {
    const struct ggml_tensor *missing; /* this tensor has no buffer */
    uint64_t shift;                     /* added to every offset: "a tensor moved" */
};

static bool fake_locate(void *user, const struct ggml_tensor *t, uint32_t *buffer, uint64_t *offset)
{
    struct fake_placement *p = user;
    if (t == p->missing)
        return false;
    *buffer = 7;
    *offset = (uint64_t)(uintptr_t)t % 100000 + p->shift;
    return true;
}

/* encodes gf with every tensor placed (offsets moved by shift): a VGPU_GRAPH_* result */
static int encode_placed(struct vgpu_graph_encoder *ge, struct ggml_cgraph *gf, uint64_t shift)
{
    struct fake_placement p = {.shift = shift};
    return vgpu_graph_encode(ge, gf, fake_locate, &p);
}

struct decoded_graph {
    uint32_t n_tensors, n_nodes;
    struct apir_wire_tensor *t;
    uint32_t *nodes, *uses;
};

static void decode_graph(const uint8_t *bytes, size_t len, struct decoded_graph *g)
{
    struct apir_decoder dec;
    apir_decoder_init(&dec, bytes, len);
    g->n_tensors = apir_get_u32(&dec);
    assert_true(g->n_tensors >= 1 && g->n_tensors <= APIR_MAX_GRAPH_TENSORS);
    g->t = calloc(g->n_tensors, sizeof *g->t);
    for (uint32_t i = 0; i < g->n_tensors; i++) {
        apir_wire_tensor_decode(&dec, &g->t[i]);
        /* every reference names an earlier tensor: one forward pass suffices on the host */
        for (int s = 0; s < APIR_WIRE_MAX_SRC; s++)
            assert_true(g->t[i].src[s] <= i);
        assert_true(g->t[i].view_src <= i);
        assert_int_equal(g->t[i].buffer, 7);
    }
    g->n_nodes = apir_get_u32(&dec);
    assert_true(g->n_nodes >= 1 && g->n_nodes <= g->n_tensors);
    g->nodes = calloc(g->n_nodes, sizeof *g->nodes);
    g->uses = calloc(g->n_nodes, sizeof *g->uses);
    for (uint32_t i = 0; i < g->n_nodes; i++) {
        g->nodes[i] = apir_get_u32(&dec);
        g->uses[i] = apir_get_u32(&dec);
        assert_true(g->nodes[i] < g->n_tensors);
    }
    assert_true(apir_decoder_done(&dec));
}

static void free_decoded(struct decoded_graph *g)
{
    free(g->t);
    free(g->nodes);
    free(g->uses);
}

static void graph_encodes_sources_before_users(void **state)
{
    struct ggml_context *ctx = new_ctx(64);
    struct ggml_tensor *a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 16, 8);
    struct ggml_tensor *b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 16, 4);
    struct ggml_tensor *mm = ggml_mul_mat(ctx, a, b);                        /* 8 x 4 */
    struct ggml_tensor *big = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 8, 8);
    struct ggml_tensor *view = ggml_view_2d(ctx, big, 8, 4, big->nb[1], 4 * big->nb[1]);
    struct ggml_tensor *out = ggml_add(ctx, mm, view);
    ggml_set_name(out, "out");
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, out);

    struct vgpu_graph_encoder ge = {0};
    assert_int_equal(encode_placed(&ge, gf, 0), VGPU_GRAPH_OK);
    struct decoded_graph g;
    decode_graph(ge.bytes, ge.len, &g);
    /* a, b, mm, big, view, out; the view's source is encoded although it is not a node */
    assert_int_equal(g.n_tensors, 6);
    /* every node, in the graph's order: the view too, since out reaches it (the host's
     * backend then sees the node sequence it would natively); each with ggml's use count */
    assert_int_equal(ggml_graph_n_nodes(gf), 3);
    assert_int_equal(g.n_nodes, 3);
    assert_int_equal(g.t[g.nodes[0]].op, GGML_OP_MUL_MAT);
    assert_int_equal(g.t[g.nodes[1]].op, GGML_OP_VIEW);
    assert_int_equal(g.uses[0], 1); /* mm: read by out */
    assert_int_equal(g.uses[1], 1); /* the view: read by out */
    assert_int_equal(g.uses[2], 0); /* out: read by nobody */
    const struct apir_wire_tensor *last = &g.t[g.nodes[g.n_nodes - 1]];
    assert_int_equal(last->op, GGML_OP_ADD);
    assert_string_equal(last->name, "out");
    const struct apir_wire_tensor *mmw = &g.t[last->src[0] - 1];
    assert_int_equal(mmw->op, GGML_OP_MUL_MAT);
    assert_int_equal(g.t[mmw->src[0] - 1].ne[1], 8);
    const struct apir_wire_tensor *vw = &g.t[last->src[1] - 1];
    assert_true(vw->view_src != 0);
    assert_int_equal(vw->view_offs, 4 * big->nb[1]);
    assert_int_equal(g.t[vw->view_src - 1].ne[1], 8);
    free_decoded(&g);

    /* a tensor without a buffer fails the whole graph and is named */
    struct fake_placement p = {.missing = b};
    assert_int_equal(vgpu_graph_encode(&ge, gf, fake_locate, &p), VGPU_GRAPH_NO_BUFFER);
    assert_ptr_equal(ge.bad_tensor, b);
    vgpu_graph_encoder_free(&ge);
    ggml_free(ctx);
}

/* Leaves that are not nodes: only view_src is followed, not their own sources. */
static void graph_does_not_follow_sources_of_leaves(void **state)
{
    struct ggml_context *ctx = new_ctx(64);
    struct ggml_tensor *a = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 32);
    struct ggml_tensor *prev = ggml_scale(ctx, a, 2.0f); /* computed by an earlier graph */
    struct ggml_tensor *out = ggml_add(ctx, prev, prev);
    struct ggml_cgraph *gf = ggml_new_graph_custom(ctx, 16, false);
    ggml_graph_add_node(gf, out);
    struct vgpu_graph_encoder ge = {0};
    struct fake_placement p = {.missing = a}; /* a lives elsewhere: irrelevant here */
    assert_int_equal(vgpu_graph_encode(&ge, gf, fake_locate, &p), VGPU_GRAPH_OK);
    struct decoded_graph g;
    decode_graph(ge.bytes, ge.len, &g);
    assert_int_equal(g.n_tensors, 2);
    assert_int_equal(g.t[0].op, GGML_OP_SCALE);
    assert_int_equal(g.t[0].src[0], 0);
    assert_int_equal(g.t[1].src[0], 1);
    assert_int_equal(g.t[1].src[1], 1);
    free_decoded(&g);
    vgpu_graph_encoder_free(&ge);
    ggml_free(ctx);
}

/* A long dependency chain whose nodes are listed last-first: a recursive encoder would need a
 * stack frame per link; the explicit stack handles it. */
static void graph_deep_chain_is_iterative(void **state)
{
    enum { N = 100000 };
    struct ggml_context *ctx = new_ctx(N + 8);
    struct ggml_tensor **chain = malloc(N * sizeof *chain);
    chain[0] = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 4);
    for (int i = 1; i < N; i++)
        chain[i] = ggml_neg(ctx, chain[i - 1]);
    struct ggml_cgraph *gf = ggml_new_graph_custom(ctx, N, false);
    for (int i = N - 1; i >= 1; i--)
        ggml_graph_add_node(gf, chain[i]);
    struct vgpu_graph_encoder ge = {0};
    assert_int_equal(encode_placed(&ge, gf, 0), VGPU_GRAPH_OK);
    struct decoded_graph g;
    decode_graph(ge.bytes, ge.len, &g);
    assert_int_equal(g.n_tensors, N);
    assert_int_equal(g.n_nodes, N - 1);
    assert_int_equal(g.t[0].op, GGML_OP_NONE);
    assert_int_equal(g.nodes[0], N - 1); /* the first listed node is the end of the chain */
    free_decoded(&g);
    vgpu_graph_encoder_free(&ge);
    free(chain);
    ggml_free(ctx);
}

/* ggml_cast makes the result its own src[1]: encoded as a reference to itself, not a cycle */
static void graph_cast_self_reference(void **state)
{
    struct ggml_context *ctx = new_ctx(16);
    struct ggml_tensor *a = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 32);
    struct ggml_tensor *c = ggml_cast(ctx, a, GGML_TYPE_F16);
    assert_ptr_equal(c->src[1], c);
    struct ggml_tensor *out = ggml_cpy(ctx, c, ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 32));
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, out);
    struct vgpu_graph_encoder ge = {0};
    assert_int_equal(encode_placed(&ge, gf, 0), VGPU_GRAPH_OK);
    struct apir_decoder dec;
    apir_decoder_init(&dec, ge.bytes, ge.len);
    uint32_t n = apir_get_u32(&dec);
    bool seen_cast = false;
    for (uint32_t i = 0; i < n; i++) {
        struct apir_wire_tensor w;
        apir_wire_tensor_decode(&dec, &w);
        if (w.op == GGML_OP_CPY && w.type == GGML_TYPE_F16) { /* the cast */
            assert_int_equal(w.src[1], i + 1);
            assert_true(w.src[0] >= 1 && w.src[0] <= i);
            seen_cast = true;
        } else {
            for (int s = 0; s < APIR_WIRE_MAX_SRC; s++)
                assert_true(w.src[s] <= i);
        }
    }
    assert_true(seen_cast);
    vgpu_graph_encoder_free(&ge);
    ggml_free(ctx);
}

static void graph_empty_is_not_sent(void **state)
{
    struct ggml_context *ctx = new_ctx(8);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    struct vgpu_graph_encoder ge = {0};
    assert_int_equal(encode_placed(&ge, gf, 0), VGPU_GRAPH_EMPTY);
    vgpu_graph_encoder_free(&ge);
    ggml_free(ctx);
}

static void graph_cache_decision(void **state)
{
    struct ggml_context *ctx = new_ctx(32);
    struct ggml_tensor *a = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 32);
    struct ggml_tensor *out = ggml_sqr(ctx, a);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, out);
    struct vgpu_graph_encoder ge = {0};
    struct vgpu_graph_cache gc = {0};

    assert_int_equal(encode_placed(&ge, gf, 0), VGPU_GRAPH_OK);
    assert_false(vgpu_graph_cache_matches(&gc, ge.bytes, ge.len)); /* nothing sent yet */
    vgpu_graph_cache_store(&gc, ge.bytes, ge.len);

    assert_int_equal(encode_placed(&ge, gf, 0), VGPU_GRAPH_OK);
    assert_true(vgpu_graph_cache_matches(&gc, ge.bytes, ge.len)); /* same graph: recompute */

    /* tensors moved within their buffer: resend */
    assert_int_equal(encode_placed(&ge, gf, 64), VGPU_GRAPH_OK);
    assert_false(vgpu_graph_cache_matches(&gc, ge.bytes, ge.len));

    out->op_params[0] = 1; /* any byte of any tensor counts */
    assert_int_equal(encode_placed(&ge, gf, 0), VGPU_GRAPH_OK);
    assert_false(vgpu_graph_cache_matches(&gc, ge.bytes, ge.len));
    out->op_params[0] = 0;

    assert_int_equal(encode_placed(&ge, gf, 0), VGPU_GRAPH_OK);
    assert_true(vgpu_graph_cache_matches(&gc, ge.bytes, ge.len));
    vgpu_graph_cache_invalidate(&gc); /* e.g. the last compute failed */
    assert_false(vgpu_graph_cache_matches(&gc, ge.bytes, ge.len));

    vgpu_graph_cache_free(&gc);
    vgpu_graph_encoder_free(&ge);
    ggml_free(ctx);
}

/* ---- device policy ---- */

static void device_type_mapping(void **state)
{
    /* a host CPU must not look like the local CPU to llama.cpp */
    assert_int_equal(vgpu_device_type_from_host(GGML_BACKEND_DEVICE_TYPE_CPU), GGML_BACKEND_DEVICE_TYPE_GPU);
    assert_int_equal(vgpu_device_type_from_host(GGML_BACKEND_DEVICE_TYPE_GPU), GGML_BACKEND_DEVICE_TYPE_GPU);
    assert_int_equal(vgpu_device_type_from_host(GGML_BACKEND_DEVICE_TYPE_IGPU), GGML_BACKEND_DEVICE_TYPE_IGPU);
    assert_int_equal(vgpu_device_type_from_host(GGML_BACKEND_DEVICE_TYPE_ACCEL), GGML_BACKEND_DEVICE_TYPE_ACCEL);
    assert_int_equal(vgpu_device_type_from_host(12345), GGML_BACKEND_DEVICE_TYPE_GPU);
}

static void offload_heuristic(void **state)
{
    struct ggml_context *ctx = new_ctx(32);
    struct ggml_tensor *w = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 64, 64);
    struct ggml_tensor *x1 = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 64, 1);
    struct ggml_tensor *x32 = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 64, 32);
    assert_false(vgpu_offload_op_heuristic(ggml_mul_mat(ctx, w, x1))); /* one token */
    assert_true(vgpu_offload_op_heuristic(ggml_mul_mat(ctx, w, x32)));  /* a batch */
    struct ggml_tensor *ids = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, 40);
    assert_false(vgpu_offload_op_heuristic(ggml_get_rows(ctx, w, ids)));
    /* MUL_MAT_ID: experts in dimension 1, tokens in dimension 2 */
    struct ggml_tensor *experts = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 64, 16, 8);
    struct ggml_tensor *xb = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 64, 2, 40);
    struct ggml_tensor *sel = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, 2, 40);
    assert_true(vgpu_offload_op_heuristic(ggml_mul_mat_id(ctx, experts, xb, sel)));
    struct ggml_tensor *xs = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, 64, 2, 1);
    struct ggml_tensor *sels = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, 2, 1);
    assert_false(vgpu_offload_op_heuristic(ggml_mul_mat_id(ctx, experts, xs, sels)));
    ggml_free(ctx);
}


/* the graph's outputs kept with the compute (docs/frontend.md, "Device lost") */
static void *bytes_of(uint8_t fill, size_t n)
{
    uint8_t *p = malloc(n);
    memset(p, fill, n);
    return p;
}

static void outputs_served_until_written(void **state)
{
    (void)state;
    uint8_t out[64];
    vgpu_outputs_reset();
    assert_true(vgpu_outputs_wanted(7, 4096, 256));
    assert_true(vgpu_outputs_put(7, 4096, bytes_of(0x11, 256), 256));
    /* any range inside the entry, nothing outside it or in another buffer */
    assert_true(vgpu_outputs_get(7, 4096 + 16, out, sizeof out));
    assert_int_equal(out[0], 0x11);
    assert_int_equal(out[63], 0x11);
    assert_false(vgpu_outputs_get(7, 4096 + 200, out, sizeof out));
    assert_false(vgpu_outputs_get(7, 4000, out, sizeof out));
    assert_false(vgpu_outputs_get(8, 4096, out, sizeof out));
    /* a write next to it keeps it, a write into it drops it */
    vgpu_outputs_invalidate(7, 4096 + 256, 100);
    vgpu_outputs_invalidate(7, 0, 4096);
    assert_true(vgpu_outputs_get(7, 4096, out, sizeof out));
    vgpu_outputs_invalidate(7, 4096 + 255, 1);
    assert_false(vgpu_outputs_get(7, 4096, out, sizeof out));
    /* a whole-buffer invalidation (free, clear) */
    assert_true(vgpu_outputs_put(7, 0, bytes_of(0x22, 64), 64));
    vgpu_outputs_invalidate(7, 0, UINT64_MAX);
    assert_false(vgpu_outputs_get(7, 0, out, sizeof out));
    /* a new compute drops everything */
    assert_true(vgpu_outputs_put(9, 0, bytes_of(0x33, 64), 64));
    vgpu_outputs_reset();
    assert_false(vgpu_outputs_get(9, 0, out, sizeof out));
    vgpu_outputs_free();
}

/* outputs left in the data page by GRAPH_RECOMPUTE: served from there, copied out before the
 * page changes (the client's page hook), never freed as ours */
static void outputs_in_page_copied_before_it_changes(void **state)
{
    (void)state;
    uint8_t page[512], out[64];
    memset(page, 0x44, sizeof page);
    vgpu_outputs_reset();
    assert_true(vgpu_outputs_put_in_page(5, 0, page, 256));
    assert_true(vgpu_outputs_put_in_page(5, 4096, page + 256, 256));
    /* served from the page itself while it is unchanged */
    page[16] = 0x45;
    assert_true(vgpu_outputs_get(5, 16, out, sizeof out));
    assert_int_equal(out[0], 0x45);
    /* the page is about to change: both are copied out, and later bytes in the page are not theirs */
    vgpu_outputs_page_changing();
    memset(page, 0x99, sizeof page);
    assert_true(vgpu_outputs_get(5, 16, out, sizeof out));
    assert_int_equal(out[0], 0x45);
    assert_int_equal(out[1], 0x44);
    assert_true(vgpu_outputs_get(5, 4096, out, sizeof out));
    assert_int_equal(out[0], 0x44);
    /* a second change copies nothing again (they are ours now); invalidation still drops */
    vgpu_outputs_page_changing();
    vgpu_outputs_invalidate(5, 0, 1);
    assert_false(vgpu_outputs_get(5, 0, out, sizeof out));
    assert_true(vgpu_outputs_get(5, 4096, out, sizeof out));
    /* in-page entries dropped by a new compute, an invalidation or the unload are not freed
     * (ASan would see a free of this stack array) */
    assert_true(vgpu_outputs_put_in_page(6, 0, page, 64));
    assert_true(vgpu_outputs_put_in_page(6, 64, page + 64, 64));
    vgpu_outputs_invalidate(6, 0, 64);
    vgpu_outputs_reset();
    assert_false(vgpu_outputs_get(6, 64, out, sizeof out));
    assert_true(vgpu_outputs_put_in_page(6, 0, page, 64));
    vgpu_outputs_free();
    /* the budget and empty outputs */
    assert_false(vgpu_outputs_put_in_page(6, 0, page, 0));
    assert_false(vgpu_outputs_put_in_page(6, 0, NULL, 64));
    vgpu_outputs_free();
}

static void outputs_unread_are_skipped_until_asked(void **state)
{
    (void)state;
    uint8_t out[32];
    vgpu_outputs_reset();
    /* compute 1: logits (read) and embeddings (never read) */
    assert_true(vgpu_outputs_put(1, 0, bytes_of(1, 32), 32));
    assert_true(vgpu_outputs_put(1, 1024, bytes_of(2, 32), 32));
    assert_true(vgpu_outputs_get(1, 0, out, sizeof out));
    vgpu_outputs_reset();
    /* compute 2 and later: only the one that was read is fetched */
    assert_true(vgpu_outputs_wanted(1, 0, 32));
    assert_false(vgpu_outputs_wanted(1, 1024, 32));
    assert_true(vgpu_outputs_put(1, 0, bytes_of(1, 32), 32));
    vgpu_outputs_reset();
    assert_false(vgpu_outputs_wanted(1, 1024, 32));
    /* the application reads it after all (on demand): fetched again from the next compute */
    assert_false(vgpu_outputs_get(1, 1024, out, sizeof out));
    assert_true(vgpu_outputs_wanted(1, 1024, 32));
    /* the budget */
    assert_false(vgpu_outputs_wanted(2, 0, (uint64_t)VGPU_OUTPUTS_MAX_BYTES + 1));
    vgpu_outputs_free();
}

static void outputs_memory_is_reused(void **state)
{
    (void)state;
    vgpu_outputs_reset();
    uint8_t *logits = vgpu_outputs_alloc(128000);
    assert_non_null(logits);
    memset(logits, 5, 128000);
    assert_true(vgpu_outputs_put(3, 0, logits, 128000));
    vgpu_outputs_reset();
    /* the next compute's logits land in the same memory (had it been freed, this malloc would
     * likely take it); another size does not take it */
    void *taker = malloc(128000);
    assert_non_null(taker); /* (also keeps the compiler from dropping the malloc) */
    void *other = vgpu_outputs_alloc(64);
    assert_ptr_not_equal(other, logits);
    vgpu_outputs_release(other, 64);
    assert_ptr_equal(vgpu_outputs_alloc(128000), logits);
    vgpu_outputs_release(logits, 128000);
    free(taker);
    vgpu_outputs_free();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fake_addr_aligned_unique_guarded),
        cmocka_unit_test(fake_addr_rejects_bad_requests),
        cmocka_unit_test(sig_cache_get_put_bounded),
        cmocka_unit_test(ptrmap_many),
        cmocka_unit_test(op_signature_dedups_and_blanks),
        cmocka_unit_test(pack_matches_encoder),
        cmocka_unit_test(graph_encodes_sources_before_users),
        cmocka_unit_test(graph_does_not_follow_sources_of_leaves),
        cmocka_unit_test(graph_deep_chain_is_iterative),
        cmocka_unit_test(graph_cast_self_reference),
        cmocka_unit_test(graph_empty_is_not_sent),
        cmocka_unit_test(graph_cache_decision),
        cmocka_unit_test(device_type_mapping),
        cmocka_unit_test(offload_heuristic),
        cmocka_unit_test(outputs_served_until_written),
        cmocka_unit_test(outputs_in_page_copied_before_it_changes),
        cmocka_unit_test(outputs_unread_are_skipped_until_asked),
        cmocka_unit_test(outputs_memory_is_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
