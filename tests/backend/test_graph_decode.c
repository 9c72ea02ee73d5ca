/* Graph and tensor decoding against hostile messages. Buffers are real ggml CPU buffers
 * (libggml-base); no backend needed since nothing is computed here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "apir_forward.h"
#include "graph_decode.h"
#include "tensor_validate.h"
#include "ggml-backend-impl.h"
#include "wire_util.h"

#include "ggml-impl.h" /* the decoded graph's use counts */

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUF_H 0x101
#define BUF_SIZE 4096

static ggml_backend_buffer_t cpu_buf;
static char cpu_mem[BUF_SIZE] __attribute__((aligned(64)));

static ggml_backend_buffer_t resolve(void *user, uint32_t h) { return h == BUF_H ? cpu_buf : NULL; }
static const struct buffer_resolver resolver = {NULL, resolve};

static int setup(void **state)
{
    cpu_buf = ggml_backend_cpu_buffer_from_ptr(cpu_mem, BUF_SIZE);
    return cpu_buf ? 0 : -1;
}

static int teardown(void **state)
{
    ggml_backend_buffer_free(cpu_buf);
    return 0;
}

/* a valid MUL_MAT graph: a[4x3] (f32), b[4x2], c = a*b [3x2] */
static void mul_mat_graph(struct apir_wire_tensor t[3]) { wt_mul_mat(t, BUF_H); }

static uint32_t decode_graph(const struct apir_wire_tensor *t, uint32_t n, const uint32_t *nodes, uint32_t n_nodes,
                             size_t truncate, bool trailing)
{
    static uint8_t msg[1 << 16];
    struct apir_encoder enc;
    apir_encoder_init(&enc, msg, sizeof msg);
    wt_put_graph(&enc, t, n, nodes, n_nodes);
    if (trailing)
        apir_put_u8(&enc, 0);
    assert_false(enc.error);
    struct apir_decoder dec;
    apir_decoder_init(&dec, msg, enc.pos - truncate);
    struct decoded_graph g;
    uint32_t st = graph_decode(&dec, &resolver, NULL, &g);
    if (st == APIR_BACKEND_OK) {
        assert_non_null(g.graph);
        assert_int_equal(ggml_graph_n_nodes(g.graph), n_nodes);
        decoded_graph_free(&g);
    } else {
        assert_null(g.ctx);
        assert_null(g.mem);
    }
    return st;
}

static void test_valid_graph(void **state)
{
    struct apir_wire_tensor t[3];
    uint32_t node = 2;
    mul_mat_graph(t);
    assert_int_equal(decode_graph(t, 3, &node, 1, 0, false), APIR_BACKEND_OK);
    /* ggml_cast: a CPY whose destination (src[1]) is the node itself */
    t[2] = wt_make(GGML_TYPE_F16, 4, 3, 1, 1, BUF_H, 128);
    t[2].op = GGML_OP_CPY;
    t[2].src[0] = 1;
    t[2].src[1] = 3;
    assert_int_equal(decode_graph(t, 3, &node, 1, 0, false), APIR_BACKEND_OK);
}

static void test_framing(void **state)
{
    struct apir_wire_tensor t[3];
    uint32_t node = 2, nodes2[2] = {2, 2};
    mul_mat_graph(t);
    for (size_t cut = 1; cut < 40; cut += 3)
        assert_int_equal(decode_graph(t, 3, &node, 1, cut, false), APIR_BACKEND_ERR_DECODE);
    assert_int_equal(decode_graph(t, 3, &node, 1, 0, true), APIR_BACKEND_ERR_DECODE);
    /* n_nodes larger than the node list, node index out of range, no nodes */
    assert_int_equal(decode_graph(t, 3, nodes2, 2, 4, false), APIR_BACKEND_ERR_DECODE);
    uint32_t bad = 3;
    assert_int_equal(decode_graph(t, 3, &bad, 1, 0, false), APIR_BACKEND_ERR_DECODE);
    assert_int_equal(decode_graph(t, 3, &node, 0, 0, false), APIR_BACKEND_ERR_DECODE);

    /* a tensor count far larger than the message is refused before any allocation */
    uint8_t msg[8];
    struct apir_encoder enc;
    apir_encoder_init(&enc, msg, sizeof msg);
    apir_put_u32(&enc, APIR_MAX_GRAPH_TENSORS);
    apir_put_u32(&enc, 1);
    struct apir_decoder dec;
    apir_decoder_init(&dec, msg, enc.pos);
    struct decoded_graph g;
    assert_int_equal(graph_decode(&dec, &resolver, NULL, &g), APIR_BACKEND_ERR_DECODE);
    apir_decoder_init(&dec, msg, 2);
    assert_int_equal(graph_decode(&dec, &resolver, NULL, &g), APIR_BACKEND_ERR_DECODE);
}

/* Use counts are the guest's word (ggml fuses on them): any value, a node listed twice, are
 * taken without harm; a count past INT32_MAX is clamped. */
static void test_hostile_use_counts(void **state)
{
    struct apir_wire_tensor t[3];
    mul_mat_graph(t);
    static const uint32_t uses[] = {0, 1, 7, 0x7fffffffu, 0x80000000u, 0xffffffffu};
    for (size_t u = 0; u < sizeof uses / sizeof uses[0]; u++) {
        for (uint32_t twice = 0; twice < 2; twice++) {
            uint8_t msg[1024];
            struct apir_encoder enc;
            apir_encoder_init(&enc, msg, sizeof msg);
            apir_put_u32(&enc, 3);
            for (int i = 0; i < 3; i++)
                apir_wire_tensor_encode(&enc, &t[i]);
            apir_put_u32(&enc, 1 + twice);
            for (uint32_t k = 0; k <= twice; k++) {
                apir_put_u32(&enc, 2);
                apir_put_u32(&enc, uses[u]);
            }
            assert_false(enc.error);
            struct apir_decoder dec;
            apir_decoder_init(&dec, msg, enc.pos);
            struct decoded_graph g;
            assert_int_equal(graph_decode(&dec, &resolver, NULL, &g), APIR_BACKEND_OK);
            int32_t want = uses[u] > 0x7fffffffu ? INT32_MAX : (int32_t)uses[u];
            assert_int_equal(ggml_node_get_use_count(g.graph, 0), want);
            assert_true(g.graph->uid != 0); /* a fresh ggml graph id */
            decoded_graph_free(&g);
        }
    }
}

static void expect_tensor_error(void (*mutate)(struct apir_wire_tensor *t), uint32_t want)
{
    struct apir_wire_tensor t[3];
    uint32_t node = 2;
    mul_mat_graph(t);
    mutate(t);
    assert_int_equal(decode_graph(t, 3, &node, 1, 0, false), want);
}

static void m_type_range(struct apir_wire_tensor *t) { t[0].type = GGML_TYPE_COUNT; }
static void m_type_removed(struct apir_wire_tensor *t) { t[0].type = 4; /* removed Q4_2 */ }
static void m_op_range(struct apir_wire_tensor *t) { t[2].op = GGML_OP_COUNT + 5; }
static void m_unary_range(struct apir_wire_tensor *t) { t[2].op = GGML_OP_UNARY; t[2].op_params[0] = GGML_UNARY_OP_COUNT; }
static void m_unary_neg(struct apir_wire_tensor *t) { t[2].op = GGML_OP_UNARY; t[2].op_params[0] = -1; }
static void m_glu_range(struct apir_wire_tensor *t) { t[2].op = GGML_OP_GLU; t[2].op_params[0] = GGML_GLU_OP_COUNT; }
static void m_ne_zero(struct apir_wire_tensor *t) { t[0].ne[1] = 0; }
static void m_ne_neg(struct apir_wire_tensor *t) { t[1].ne[3] = -1; }
static void m_ne_overflow(struct apir_wire_tensor *t) { t[0].ne[0] = INT64_MAX; t[0].ne[1] = 4; }
static void m_nb_overflow(struct apir_wire_tensor *t) { t[0].nb[3] = UINT64_MAX / 2; t[0].ne[3] = 5; }
static void m_nb_huge(struct apir_wire_tensor *t) { t[0].nb[1] = 1ull << 40; }
static void m_blck(struct apir_wire_tensor *t) { t[0].type = GGML_TYPE_Q4_0; t[0].ne[0] = 33; }
static void m_quant_stride(struct apir_wire_tensor *t) { t[0].type = GGML_TYPE_Q4_0; t[0].ne[0] = 32; t[0].nb[0] = 1; }
static void m_forward_src(struct apir_wire_tensor *t) { t[1].src[0] = 3; }
static void m_self_src(struct apir_wire_tensor *t) { t[2].src[0] = 3; /* allowed, but not as mul_mat's a */ }
static void m_forward_src2(struct apir_wire_tensor *t) { t[0].src[1] = 2; }
static void m_forward_view(struct apir_wire_tensor *t) { t[0].view_src = 1; }
static void m_huge_src(struct apir_wire_tensor *t) { t[2].src[9] = 0xffffffffu; }
static void m_overlapping_rows(struct apir_wire_tensor *t) { t[0].nb[1] = 4; /* rows overlap: smaller than packed */ }
static void m_offset_past(struct apir_wire_tensor *t) { t[2].data_offset = BUF_SIZE - 8; }
static void m_offset_wrap(struct apir_wire_tensor *t) { t[2].data_offset = UINT64_MAX - 4; }
static void m_no_buffer(struct apir_wire_tensor *t) { t[1].buffer = 0; }
static void m_bad_buffer(struct apir_wire_tensor *t) { t[1].buffer = BUF_H + 1; }
static void m_flags(struct apir_wire_tensor *t) { t[1].flags = 1 << 20; }
static void m_mm_k(struct apir_wire_tensor *t) { t[1].ne[0] = 2; }
static void m_mm_dst(struct apir_wire_tensor *t) { t[2].ne[1] = 3; }
/* Shapes ggml's own constructor asserts on: the decoding process (the guest's worker) may
 * end there, or refuse; it must not go on. Run in a child process. */
static void expect_refused_or_assert(void (*mutate)(struct apir_wire_tensor *t), uint32_t want)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        setenv("GGML_NO_BACKTRACE", "1", 1);
        struct apir_wire_tensor t[3];
        uint32_t node = 2;
        mul_mat_graph(t);
        mutate(t);
        _exit((int)decode_graph(t, 3, &node, 1, 0, false));
    }
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    if (WIFSIGNALED(ws))
        assert_int_equal(WTERMSIG(ws), SIGABRT);
    else
        assert_int_equal(WEXITSTATUS(ws), want);
}

static void m_mm_missing_src(struct apir_wire_tensor *t) { t[2].src[1] = 0; }
static void m_mm_dst_type(struct apir_wire_tensor *t)
{
    t[2] = wt_make(GGML_TYPE_I32, 3, 2, 1, 1, BUF_H, 128);
    wt_op2(&t[2], GGML_OP_MUL_MAT);
}
static void m_add_shape(struct apir_wire_tensor *t)
{
    t[1] = wt_make(GGML_TYPE_F32, 3, 3, 1, 1, BUF_H, 64); /* 4 % 3 != 0: not repeatable */
    t[2] = wt_make(GGML_TYPE_F32, 4, 3, 1, 1, BUF_H, 128);
    wt_op2(&t[2], GGML_OP_ADD);
}
static void m_cpy_nel(struct apir_wire_tensor *t)
{
    t[2] = wt_make(GGML_TYPE_F32, 5, 1, 1, 1, BUF_H, 128);
    wt_op2(&t[2], GGML_OP_CPY);
}
static void m_get_rows_type(struct apir_wire_tensor *t)
{
    t[2] = wt_make(GGML_TYPE_F32, 4, 4, 1, 1, BUF_H, 128);
    t[2].op = GGML_OP_GET_ROWS;
    t[2].src[0] = 1;
    t[2].src[1] = 2; /* indices must be I32 */
}
static void m_view_mismatch(struct apir_wire_tensor *t)
{
    t[1].view_src = 1; /* claims to be a view of t[0] at offset 0, but lives at 64 */
}

/* custom ops carry host function pointers: never run for a guest */
static void m_unknown_op(struct apir_wire_tensor *t) { t[2].op = GGML_OP_MAP_CUSTOM1; }

static void test_hostile_tensors(void **state)
{
    expect_tensor_error(m_unknown_op, APIR_BACKEND_ERR_UNSUPPORTED);
    expect_tensor_error(m_type_range, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_type_removed, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_op_range, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_unary_range, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_unary_neg, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_glu_range, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_ne_zero, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_ne_neg, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_ne_overflow, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_nb_overflow, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_nb_huge, APIR_BACKEND_ERR_BOUNDS);
    expect_tensor_error(m_blck, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_quant_stride, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_forward_src, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_self_src, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_forward_src2, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_forward_view, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_huge_src, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_offset_past, APIR_BACKEND_ERR_BOUNDS);
    expect_tensor_error(m_overlapping_rows, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_offset_wrap, APIR_BACKEND_ERR_BOUNDS);
    expect_tensor_error(m_no_buffer, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_bad_buffer, APIR_BACKEND_ERR_HANDLE);
    expect_tensor_error(m_flags, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_refused_or_assert(m_mm_k, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_refused_or_assert(m_mm_dst, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_mm_missing_src, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_mm_dst_type, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_refused_or_assert(m_add_shape, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_refused_or_assert(m_cpy_nel, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_refused_or_assert(m_get_rows_type, APIR_BACKEND_ERR_INVALID_TENSOR);
    expect_tensor_error(m_view_mismatch, APIR_BACKEND_ERR_INVALID_TENSOR);
}

/* a[4x3] rows, idx[2] (I32), dst[4x2] = get_rows(a, idx) */
static void get_rows_graph(struct apir_wire_tensor t[3], uint64_t dst_offset)
{
    t[0] = wt_make(GGML_TYPE_F32, 4, 3, 1, 1, BUF_H, 0);
    t[1] = wt_make(GGML_TYPE_I32, 2, 1, 1, 1, BUF_H, 64);
    t[2] = wt_make(GGML_TYPE_F32, 4, 2, 1, 1, BUF_H, dst_offset);
    wt_op2(&t[2], GGML_OP_GET_ROWS);
}

/* indices a node of the same graph writes are checked when they exist: the compute is cut
 * before the node that reads them (index_guard.h) */
static void test_index_aliasing(void **state)
{
    struct apir_wire_tensor t[4];
    uint32_t node = 2, nodes[2] = {3, 2};
    get_rows_graph(t, 128);
    assert_int_equal(decode_graph(t, 3, &node, 1, 0, false), APIR_BACKEND_OK);
    get_rows_graph(t, 60); /* its own output overlaps its indices: refused as a partial overlap */
    assert_int_equal(decode_graph(t, 3, &node, 1, 0, false), APIR_BACKEND_ERR_INVALID_TENSOR);
    get_rows_graph(t, 128);
    t[3] = wt_make(GGML_TYPE_F32, 1, 1, 1, 1, BUF_H, 68); /* another node writes idx[1] */
    t[3].op = GGML_OP_SUM;
    t[3].src[0] = 1;
    assert_int_equal(decode_graph(t, 4, nodes, 2, 0, false), APIR_BACKEND_OK);
    /* after the GET_ROWS has read them, the memory may be reused (ggml-alloc does) */
    uint32_t after[2] = {2, 3};
    assert_int_equal(decode_graph(t, 4, after, 2, 0, false), APIR_BACKEND_OK);
    t[3].data_offset = 256; /* elsewhere: fine */
    assert_int_equal(decode_graph(t, 4, nodes, 2, 0, false), APIR_BACKEND_OK);
    /* strided indices (a view) are read by their strides */
    get_rows_graph(t, 128);
    t[1].nb[1] = t[1].nb[2] = t[1].nb[3] = 16;
    t[1].ne[0] = 1;
    t[1].ne[1] = 2;
    t[2].ne[1] = 1;
    t[2].ne[2] = 2;
    t[2].nb[2] = t[2].nb[1];
    t[2].nb[3] = t[2].nb[2] * 2;
    t[0].ne[2] = 2;
    t[0].ne[1] = 1;
    t[0].nb[2] = t[0].nb[1];
    t[0].nb[3] = t[0].nb[2] * 2;
    assert_int_equal(decode_graph(t, 3, &node, 1, 0, false), APIR_BACKEND_OK);
}

/* a CUDA-named device that runs everything: where index_guard trusts a sort's output */
static const char *cuda_reg_name(ggml_backend_reg_t reg) { return "CUDA"; }
static struct ggml_backend_reg fake_cuda_reg = {.iface = {.get_name = cuda_reg_name}};
static const char *gpu_name(ggml_backend_dev_t dev) { return "fake-gpu"; }
static enum ggml_backend_dev_type gpu_type(ggml_backend_dev_t dev) { return GGML_BACKEND_DEVICE_TYPE_GPU; }
static bool gpu_yes_op(ggml_backend_dev_t dev, const struct ggml_tensor *op) { return true; }
static bool gpu_yes_buft(ggml_backend_dev_t dev, ggml_backend_buffer_type_t buft) { return true; }
static struct ggml_backend_device fake_gpu = {
    .iface = {.get_name = gpu_name, .get_type = gpu_type, .supports_op = gpu_yes_op, .supports_buft = gpu_yes_buft},
    .reg = &fake_cuda_reg,
};

/* decodes a graph on dev into *g (the caller frees it) */
static void decode_on(ggml_backend_dev_t dev, const struct apir_wire_tensor *t, uint32_t n, const uint32_t *nodes,
                      uint32_t n_nodes, struct decoded_graph *g)
{
    static uint8_t msg[1 << 16];
    struct apir_encoder enc;
    apir_encoder_init(&enc, msg, sizeof msg);
    wt_put_graph(&enc, t, n, nodes, n_nodes);
    struct apir_decoder dec;
    apir_decoder_init(&dec, msg, enc.pos);
    assert_int_equal(graph_decode(&dec, &resolver, dev, g), APIR_BACKEND_OK);
}

/* the index cuts of a decoded graph on dev */
static uint32_t cuts_on(ggml_backend_dev_t dev, const struct apir_wire_tensor *t, uint32_t n, const uint32_t *nodes,
                        uint32_t n_nodes)
{
    struct decoded_graph g;
    decode_on(dev, t, n, nodes, n_nodes, &g);
    uint32_t cuts = g.indices.n_cuts;
    decoded_graph_free(&g);
    return cuts;
}

/* probs[8] at 0, ids = ARGSORT(probs) [8] (I32) at 64, rows[4 x n_rows] at 256, dst = get_rows(rows,
 * ids) [4 x 8] at 1024: a MoE router's shape */
static void sorted_ids_graph(struct apir_wire_tensor t[5], int64_t n_rows)
{
    t[0] = wt_make(GGML_TYPE_F32, 8, 1, 1, 1, BUF_H, 0);
    t[1] = wt_make(GGML_TYPE_I32, 8, 1, 1, 1, BUF_H, 64);
    t[1].op = GGML_OP_ARGSORT;
    t[1].src[0] = 1;
    t[1].op_params[0] = GGML_SORT_ORDER_DESC;
    t[1].flags = GGML_TENSOR_FLAG_COMPUTE; /* ggml's backends skip a node without it */
    t[2] = wt_make(GGML_TYPE_F32, 4, n_rows, 1, 1, BUF_H, 256);
    t[3] = wt_make(GGML_TYPE_F32, 4, 8, 1, 1, BUF_H, 1024);
    t[3].op = GGML_OP_GET_ROWS;
    t[3].src[0] = 3;
    t[3].src[1] = 2;
    t[4] = wt_make(GGML_TYPE_F32, 1, 1, 1, 1, BUF_H, 68); /* writes ids[1] when a node */
    t[4].op = GGML_OP_SUM;
    t[4].src[0] = 1;
}

/* indices an ARGSORT just wrote are positions in its rows: on a device whose sorts only
 * permute, no cut (a MoE layer's expert ids cost a synchronizing cut each otherwise); the CPU
 * backend (NULL here: no device checks) keeps it, and so does anything short of "the last
 * writer is a sort over rows no longer than the bound, covering every index" */
static void test_sorted_indices(void **state)
{
    struct apir_wire_tensor t[5];
    uint32_t nodes[3] = {1, 3}, rewritten[3] = {1, 4, 3};
    sorted_ids_graph(t, 8);
    assert_int_equal(cuts_on(&fake_gpu, t, 4, nodes, 2), 0);
    assert_int_equal(cuts_on(NULL, t, 4, nodes, 2), 1);
    sorted_ids_graph(t, 4); /* rows of 8 sorted, 4 rows to index */
    assert_int_equal(cuts_on(&fake_gpu, t, 4, nodes, 2), 1);
    sorted_ids_graph(t, 8); /* another node writes ids[1] after the sort */
    assert_int_equal(cuts_on(&fake_gpu, t, 5, rewritten, 3), 1);
    sorted_ids_graph(t, 8); /* the sort wrote only half of the indices read */
    t[1].ne[0] = 4;
    t[1].nb[1] = t[1].nb[2] = t[1].nb[3] = 16;
    t[0].ne[0] = 4;
    t[0].nb[1] = t[0].nb[2] = t[0].nb[3] = 16;
    t[4] = t[3];
    t[4].src[1] = 4;
    t[3] = wt_make(GGML_TYPE_I32, 8, 1, 1, 1, BUF_H, 64); /* the indices read: a leaf over them */
    uint32_t half[2] = {1, 4};
    assert_int_equal(cuts_on(&fake_gpu, t, 5, half, 2), 1);
    sorted_ids_graph(t, 8); /* a sort the backend skips (no COMPUTE flag) writes nothing */
    t[1].flags = 0;
    assert_int_equal(cuts_on(&fake_gpu, t, 4, nodes, 2), 1);
    sorted_ids_graph(t, 8); /* indices read misaligned inside the sort's output */
    t[3] = wt_make(GGML_TYPE_I32, 4, 1, 1, 1, BUF_H, 66);
    t[4] = wt_make(GGML_TYPE_F32, 4, 4, 1, 1, BUF_H, 1024);
    t[4].op = GGML_OP_GET_ROWS;
    t[4].src[0] = 3;
    t[4].src[1] = 4;
    assert_int_equal(cuts_on(&fake_gpu, t, 5, half, 2), 1);
    /* a biased router (ADD before the sort): ggml-cuda's fused kernel does not sanitise a NaN
     * bias and may then pick a padding lane, an id past the experts */
    struct apir_wire_tensor u[6];
    u[0] = wt_make(GGML_TYPE_F32, 8, 1, 1, 1, BUF_H, 0);
    u[1] = wt_make(GGML_TYPE_F32, 8, 1, 1, 1, BUF_H, 32);
    u[2] = wt_make(GGML_TYPE_F32, 8, 1, 1, 1, BUF_H, 128);
    wt_op2(&u[2], GGML_OP_ADD);
    u[2].flags = GGML_TENSOR_FLAG_COMPUTE;
    sorted_ids_graph(t, 8);
    u[3] = t[1];
    u[3].src[0] = 3;
    u[4] = t[2];
    u[5] = t[3];
    u[5].src[0] = 5;
    u[5].src[1] = 4;
    uint32_t biased[3] = {2, 3, 5};
    assert_int_equal(cuts_on(&fake_gpu, u, 6, biased, 3), 1);
    u[2].op = GGML_OP_MUL; /* the same graph without an ADD: trusted */
    assert_int_equal(cuts_on(&fake_gpu, u, 6, biased, 3), 0);
}

/* sorted_ids_graph plus, as nodes right after the ARGSORT, a VIEW of its first k columns at
 * column `col` (t[5]) and GET_ROWS(rows, view) (t[6]): the shape ggml-cuda fuses into one
 * top-k MoE kernel, which writes only the view's columns */
static void fused_router_graph(struct apir_wire_tensor t[8], int64_t k, int64_t col)
{
    sorted_ids_graph(t, 8);
    t[5] = wt_make(GGML_TYPE_I32, k, 1, 1, 1, BUF_H, 64 + 4 * (uint64_t)col);
    t[5].op = GGML_OP_VIEW;
    t[5].src[0] = t[5].view_src = 2;
    t[5].view_offs = 4 * (uint64_t)col;
    size_t offs = 4 * (size_t)col;
    memcpy(t[5].op_params, &offs, sizeof offs);
    t[5].nb[1] = t[5].nb[2] = t[5].nb[3] = 32; /* the sort's row */
    t[6] = wt_make(GGML_TYPE_F32, 4, k, 1, 1, BUF_H, 1024);
    t[6].op = GGML_OP_GET_ROWS;
    t[6].src[0] = 3;
    t[6].src[1] = 6;
}

/* Where CUDA may fuse the router, the sort's other columns are never written: indices are
 * trusted only inside the view's columns, as few as the weights node may have (a node at a
 * weights position counts when it is fed as ggml-cuda's matcher requires) */
static void test_fused_router_indices(void **state)
{
    struct apir_wire_tensor t[8];
    uint32_t fused[3] = {1, 5, 6};
    fused_router_graph(t, 2, 0); /* llama's router: GET_ROWS (and MUL_MAT_ID) read the view */
    assert_int_equal(cuts_on(&fake_gpu, t, 7, fused, 3), 0);
    fused_router_graph(t, 2, 3); /* a view of columns 3-4: a fused kernel writes 0-1 */
    assert_int_equal(cuts_on(&fake_gpu, t, 7, fused, 3), 1);
    fused_router_graph(t, 2, 0); /* the whole sort read while a view of 2 columns follows it */
    t[6] = wt_make(GGML_TYPE_F32, 4, 8, 1, 1, BUF_H, 1024);
    t[6].op = GGML_OP_GET_ROWS;
    t[6].src[0] = 3;
    t[6].src[1] = 2;
    assert_int_equal(cuts_on(&fake_gpu, t, 7, fused, 3), 1);
    fused_router_graph(t, 2, 0); /* a SCALE of the GET_ROWS at +3: the weights, as wide as the view */
    t[7] = wt_make(GGML_TYPE_F32, 4, 2, 1, 1, BUF_H, 2048);
    t[7].op = GGML_OP_SCALE;
    t[7].src[0] = 7;
    float one = 1.0f;
    memcpy(t[7].op_params, &one, sizeof one);
    uint32_t scaled[4] = {1, 5, 6, 7};
    assert_int_equal(cuts_on(&fake_gpu, t, 8, scaled, 4), 0);
    t[7] = wt_make(GGML_TYPE_F32, 8, 1, 1, 1, BUF_H, 2048); /* a SCALE of something else: no say */
    t[7].op = GGML_OP_SCALE;
    t[7].src[0] = 1;
    memcpy(t[7].op_params, &one, sizeof one);
    assert_int_equal(cuts_on(&fake_gpu, t, 8, scaled, 4), 0);
}

/* ggml-cuda's delayed-softmax router (ARGSORT, VIEW, GET_ROWS, RESHAPE, SOFT_MAX, RESHAPE) with
 * 2 rows of 8 experts: the last RESHAPE is the fused kernel's weights, and its ne[1] is how
 * many ids it writes per row. Reshaped to [1, 16] it would write 16 ids into rows of 8 (into
 * the next row, and ids past the experts): the indices keep their cut */
static void test_fused_router_too_wide(void **state)
{
    struct apir_wire_tensor t[8];
    float one = 1.0f;
    size_t zero = 0;
    t[0] = wt_make(GGML_TYPE_F32, 8, 2, 1, 1, BUF_H, 0); /* logits */
    t[1] = wt_make(GGML_TYPE_I32, 8, 2, 1, 1, BUF_H, 64);
    t[1].op = GGML_OP_ARGSORT;
    t[1].src[0] = 1;
    t[1].op_params[0] = GGML_SORT_ORDER_DESC;
    t[1].flags = GGML_TENSOR_FLAG_COMPUTE;
    t[2] = wt_make(GGML_TYPE_F32, 1, 8, 2, 1, BUF_H, 256); /* probabilities as [1, 8, 2] */
    t[3] = wt_make(GGML_TYPE_I32, 8, 2, 1, 1, BUF_H, 64);  /* the view: all 8 columns */
    t[3].op = GGML_OP_VIEW;
    t[3].src[0] = t[3].view_src = 2;
    memcpy(t[3].op_params, &zero, sizeof zero);
    t[4] = wt_make(GGML_TYPE_F32, 1, 8, 2, 1, BUF_H, 1024);
    t[4].op = GGML_OP_GET_ROWS;
    t[4].src[0] = 3;
    t[4].src[1] = 4;
    t[5] = wt_make(GGML_TYPE_F32, 8, 2, 1, 1, BUF_H, 1024);
    t[5].op = GGML_OP_RESHAPE;
    t[5].src[0] = t[5].view_src = 5;
    t[6] = wt_make(GGML_TYPE_F32, 8, 2, 1, 1, BUF_H, 2048);
    t[6].op = GGML_OP_SOFT_MAX;
    t[6].src[0] = 6;
    memcpy(t[6].op_params, &one, sizeof one);
    t[7] = wt_make(GGML_TYPE_F32, 1, 8, 2, 1, BUF_H, 2048);
    t[7].op = GGML_OP_RESHAPE;
    t[7].src[0] = t[7].view_src = 7;
    uint32_t nodes[6] = {1, 3, 4, 5, 6, 7};
    assert_int_equal(cuts_on(&fake_gpu, t, 8, nodes, 6), 0); /* [1, 8, 2]: 8 ids a row, trusted */
    t[7].ne[1] = 4; /* [1, 4, 4]: 4 ids a row written, 8 read */
    t[7].ne[2] = 4;
    t[7].nb[2] = 16;
    t[7].nb[3] = 64;
    assert_int_equal(cuts_on(&fake_gpu, t, 8, nodes, 6), 1);
    t[7] = wt_make(GGML_TYPE_F32, 1, 16, 1, 1, BUF_H, 2048);
    t[7].op = GGML_OP_RESHAPE;
    t[7].src[0] = t[7].view_src = 7;
    assert_int_equal(cuts_on(&fake_gpu, t, 8, nodes, 6), 1);
}


static void assert_sentinels(const struct ggml_cgraph *g)
{
    for (int i = 0; i < 4; i++) {
        const struct ggml_tensor *s = g->nodes[g->n_nodes + i];
        assert_non_null(s);
        assert_int_equal(s->op, GGML_OP_NONE);
        for (int j = 0; j < GGML_MAX_SRC; j++)
            assert_null(s->src[j]);
    }
}

/* ggml-cuda's fusion matchers read past a graph's last node: every decoded graph, and every
 * part of one cut for indices, ends in nodes with no op and no sources (not the next part's
 * nodes, nor the uninitialised leaf array) */
static void test_sentinels_after_last_node(void **state)
{
    struct apir_wire_tensor t[8];
    uint32_t nodes[2] = {1, 3};
    sorted_ids_graph(t, 8);
    struct decoded_graph g;
    decode_on(NULL, t, 4, nodes, 2, &g); /* no device: the computed indices cut the graph */
    assert_int_equal(g.n_parts, 2);
    assert_sentinels(g.graph);
    for (uint32_t i = 0; i < g.n_parts; i++)
        assert_sentinels(g.parts[i]);
    decoded_graph_free(&g);
    decode_on(&fake_gpu, t, 4, nodes, 2, &g); /* trusted: one graph, no parts */
    assert_int_equal(g.n_parts, 0);
    assert_sentinels(g.graph);
    decoded_graph_free(&g);
}

/* x[16x2x3] (f32), pos[3] (i32), rope(x, pos) */
static uint32_t rope_case(int n_dims, int mode, int64_t n_pos, int section)
{
    struct apir_wire_tensor t[3];
    uint32_t node = 2;
    t[0] = wt_make(GGML_TYPE_F32, 16, 2, 3, 1, BUF_H, 0);
    t[1] = wt_make(GGML_TYPE_I32, n_pos, 1, 1, 1, BUF_H, 512);
    t[2] = wt_make(GGML_TYPE_F32, 16, 2, 3, 1, BUF_H, 1024);
    wt_op2(&t[2], GGML_OP_ROPE);
    t[2].op_params[1] = n_dims;
    t[2].op_params[2] = mode;
    for (int i = 11; i < 15; i++)
        t[2].op_params[i] = section;
    return decode_graph(t, 3, &node, 1, 0, false);
}

static void test_rope(void **state)
{
    assert_int_equal(rope_case(16, 0, 3, 0), APIR_BACKEND_OK);
    assert_int_equal(rope_case(8, 2, 3, 0), APIR_BACKEND_OK);
    assert_int_equal(rope_case(16, GGML_ROPE_TYPE_MROPE, 12, 2), APIR_BACKEND_OK);
    assert_int_equal(rope_case(16, GGML_ROPE_TYPE_MROPE, 12, 0), APIR_BACKEND_ERR_INVALID_TENSOR); /* x % 0 */
    assert_int_equal(rope_case(16, GGML_ROPE_TYPE_MROPE, 12, -1), APIR_BACKEND_ERR_INVALID_TENSOR);
    assert_int_equal(rope_case(8, GGML_ROPE_TYPE_VISION, 12, 2), APIR_BACKEND_OK);
}

static void test_extent(void **state)
{
    uint64_t ext;
    struct apir_wire_tensor t = wt_make(GGML_TYPE_F32, 4, 3, 2, 1, 0, 0);
    assert_int_equal(tensor_validate(&t, 0, &ext), APIR_BACKEND_OK);
    assert_int_equal(ext, 4 * 3 * 2 * 4);
    t = wt_make(GGML_TYPE_Q4_0, 64, 2, 1, 1, 0, 0);
    assert_int_equal(tensor_validate(&t, 0, &ext), APIR_BACKEND_OK);
    assert_int_equal(ext, 2 * ggml_row_size(GGML_TYPE_Q4_0, 64));
    /* a transposed view: extent follows the strides, not ne0*ne1 packed */
    t = wt_make(GGML_TYPE_F32, 3, 4, 1, 1, 0, 0);
    t.nb[0] = 16;
    t.nb[1] = 4;
    assert_int_equal(tensor_validate(&t, 0, &ext), APIR_BACKEND_OK);
    assert_int_equal(ext, 4 + 2 * 16 + 3 * 4);
    assert_true(range_ok(0, 0, 0));
    assert_false(range_ok(1, UINT64_MAX, UINT64_MAX));
    assert_false(range_ok(UINT64_MAX, 2, UINT64_MAX));
}

static uint32_t decode_op(const struct apir_wire_tensor *t, uint32_t n, int32_t n_override)
{
    uint8_t msg[APIR_WIRE_TENSOR_SIZE * 16];
    struct apir_encoder enc;
    apir_encoder_init(&enc, msg, sizeof msg);
    apir_put_u32(&enc, n_override >= 0 ? (uint32_t)n_override : n);
    for (uint32_t i = 0; i < n; i++)
        apir_wire_tensor_encode(&enc, &t[i]);
    struct apir_decoder dec;
    apir_decoder_init(&dec, msg, enc.pos);
    struct decoded_graph g;
    uint32_t st = op_tensors_decode(&dec, &resolver, &g);
    if (st == APIR_BACKEND_OK) {
        assert_non_null(g.last);
        assert_int_equal(g.last->op, t[n - 1].op);
        decoded_graph_free(&g);
    }
    return st;
}

static void test_op_tensors(void **state)
{
    struct apir_wire_tensor t[12];
    mul_mat_graph(t);
    /* no buffers needed */
    for (int i = 0; i < 3; i++)
        t[i].buffer = 0;
    assert_int_equal(decode_op(t, 3, -1), APIR_BACKEND_OK);
    assert_int_equal(decode_op(t, 3, 0), APIR_BACKEND_ERR_DECODE);
    assert_int_equal(decode_op(t, 3, 4), APIR_BACKEND_ERR_DECODE);
    assert_int_equal(decode_op(t, 3, 2), APIR_BACKEND_ERR_DECODE);
    for (int i = 3; i < 12; i++)
        t[i] = t[0];
    assert_int_equal(decode_op(t, 12, -1), APIR_BACKEND_ERR_DECODE);
    t[1].buffer = 0x999; /* a given buffer must resolve */
    assert_int_equal(decode_op(t, 3, -1), APIR_BACKEND_ERR_HANDLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_graph),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_hostile_use_counts),
        cmocka_unit_test(test_hostile_tensors),
        cmocka_unit_test(test_extent),
        cmocka_unit_test(test_index_aliasing),
        cmocka_unit_test(test_sorted_indices),
        cmocka_unit_test(test_fused_router_indices),
        cmocka_unit_test(test_fused_router_too_wide),
        cmocka_unit_test(test_sentinels_after_last_node),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_op_tensors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
