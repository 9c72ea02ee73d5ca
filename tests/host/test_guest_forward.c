/* A scripted guest drives every FORWARD command, encoded by the shipped guest encoders
 * (vgpu_rpc, vgpu_graph, vgpu_wire), through apir-server (another process, real
 * socket) against the real ggml CPU backend; then per-context handles and a guest that
 * vanishes mid-session. Run under tests/lib/with-server.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "guest_script.h"
#include "vgpu_wire.h"

#include <ggml.h>

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define K 4 /* shared dimension */
#define M 3 /* rows of A */
#define N 2 /* columns of the product */
#define OFF_A 0
#define OFF_B 256
#define OFF_C 512
#define BUF_SIZE 4096

/* C[j][i] = sum_k A[i][k] * B[j][k]  (ggml: mul_mat(A, B) with A ne = {K, M}, B ne = {K, N}) */
static void expected(const float *a, const float *b, float *c)
{
    for (int j = 0; j < N; j++)
        for (int i = 0; i < M; i++) {
            float s = 0;
            for (int k = 0; k < K; k++)
                s += a[i * K + k] * b[j * K + k];
            c[j * M + i] = s;
        }
}

/* c = mul_mat(a, b) with a, b, c at OFF_A, OFF_B, OFF_C of buffer; returns c */
static struct ggml_tensor *graph(struct guest_graph *gg, uint32_t buffer)
{
    guest_graph_init(gg, buffer);
    struct ggml_tensor *a = guest_tensor(gg, GGML_TYPE_F32, "a", K, M, OFF_A);
    struct ggml_tensor *b = guest_tensor(gg, GGML_TYPE_F32, "b", K, N, OFF_B);
    struct ggml_tensor *c = guest_place(ggml_mul_mat(gg->ctx, a, b), OFF_C);
    ggml_set_name(c, "c");
    guest_graph_add(gg, c);
    return c;
}

static void assert_floats(const float *got, const float *want, int n)
{
    for (int i = 0; i < n; i++)
        assert_float_equal(got[i], want[i], 1e-4);
}

static void open_session(struct guest_session *s) { assert_int_equal(guest_session_open(s, BUF_SIZE), APIR_BACKEND_OK); }

/* GRAPH_RECOMPUTE's keep callback: what it was handed */
static uint32_t kept_n;
static const void *kept_src;
static void record_kept(const struct vgpu_rpc_output *o, uint32_t n)
{
    kept_n = n;
    kept_src = o[0].src;
}

static void test_every_forward_command(void **state)
{
    struct apir_client *c = guest_open();
    uint32_t version, n_dev;
    assert_int_equal(vgpu_rpc_get_info(c, &version, &n_dev), APIR_BACKEND_OK);
    assert_int_equal(version, APIR_FORWARD_PROTOCOL_VERSION);
    assert_true(n_dev >= 1);

    struct guest_dev dev;
    char name[128];
    assert_int_equal(guest_device_info(c, 0, &dev, name, sizeof name), APIR_BACKEND_OK);
    assert_true(strlen(name) > 0);
    assert_int_not_equal(dev.buft, 0);
    assert_int_equal(guest_device_info(c, n_dev, &dev, name, sizeof name) != APIR_BACKEND_OK, 1);
    assert_int_equal(guest_device_info(c, 0, &dev, name, sizeof name), APIR_BACKEND_OK);

    uint64_t free_mem, total;
    assert_int_equal(vgpu_rpc_device_memory(c, 0, &free_mem, &total), APIR_BACKEND_OK);
    assert_true(total > 0 && free_mem <= total);

    struct vgpu_host_buft_info bi;
    assert_int_equal(vgpu_rpc_buft_info(c, dev.buft, &bi), APIR_BACKEND_OK);
    assert_true(bi.alignment >= 1 && bi.alignment <= OFF_B && bi.max_size >= BUF_SIZE);

    uint32_t buf, buf2;
    assert_int_equal(guest_alloc(c, dev.buft, BUF_SIZE, &buf), APIR_BACKEND_OK);
    assert_int_equal(guest_alloc(c, dev.buft, BUF_SIZE, &buf2), APIR_BACKEND_OK);

    struct guest_graph gg;
    struct ggml_tensor *prod = graph(&gg, buf);
    uint8_t sig[VGPU_OP_SIG_MAX];
    bool ok = false;
    assert_int_equal(vgpu_rpc_supports_op(c, 0, sig, vgpu_op_signature(prod, sig), &ok), APIR_BACKEND_OK);
    assert_true(ok);
    uint64_t need = 0;
    assert_int_equal(vgpu_rpc_buft_alloc_size(c, dev.buft, sig, vgpu_op_signature(prod->src[0], sig), &need),
                     APIR_BACKEND_OK);
    assert_true(need >= K * M * sizeof(float));

    float a[K * M], b[K * N], want[M * N], got[M * N];
    for (int i = 0; i < K * M; i++)
        a[i] = (float)(i + 1) * 0.5f;
    for (int i = 0; i < K * N; i++)
        b[i] = (float)(i % 3) - 1.0f;
    assert_int_equal(vgpu_rpc_buffer_set(c, buf, OFF_A, a, sizeof a), APIR_BACKEND_OK);
    assert_int_equal(vgpu_rpc_buffer_set(c, buf, OFF_B, b, sizeof b), APIR_BACKEND_OK);

    uint32_t backend;
    int32_t st;
    assert_int_equal(vgpu_rpc_backend_init(c, 0, &backend), APIR_BACKEND_OK);
    assert_int_equal(vgpu_rpc_graph_recompute(c, backend, 0, NULL, 0, NULL, &st), APIR_BACKEND_ERR_NO_GRAPH);
    assert_int_equal(guest_graph_compute(c, backend, &gg, &st), APIR_BACKEND_OK);
    assert_int_equal(st, GGML_STATUS_SUCCESS);
    assert_int_equal(vgpu_rpc_backend_synchronize(c, backend, &st), APIR_BACKEND_OK);
    assert_int_equal(st, GGML_STATUS_SUCCESS);
    assert_int_equal(vgpu_rpc_buffer_get(c, buf, OFF_C, got, sizeof got), APIR_BACKEND_OK);
    expected(a, b, want);
    assert_floats(got, want, M * N);

    /* new inputs, same graph: RECOMPUTE does not resend it */
    for (int i = 0; i < K * M; i++)
        a[i] = (float)(K * M - i);
    assert_int_equal(vgpu_rpc_buffer_set(c, buf, OFF_A, a, sizeof a), APIR_BACKEND_OK);
    assert_int_equal(vgpu_rpc_graph_recompute(c, backend, gg.slot, NULL, 0, NULL, &st), APIR_BACKEND_OK);
    assert_int_equal(st, GGML_STATUS_SUCCESS);
    assert_int_equal(vgpu_rpc_buffer_get(c, buf, OFF_C, got, sizeof got), APIR_BACKEND_OK);
    expected(a, b, want);
    assert_floats(got, want, M * N);

    /* RECOMPUTE reading outputs back in the same round trip: the product, and the product's
     * second half again (ranges are copied one after the other) */
    for (int i = 0; i < K * M; i++)
        a[i] = (float)(i % 5) - 2.0f;
    assert_int_equal(vgpu_rpc_buffer_set(c, buf, OFF_A, a, sizeof a), APIR_BACKEND_OK);
    float half[M * N / 2];
    memset(got, 0, sizeof got);
    struct vgpu_rpc_output outs[2] = {
        {buf, OFF_C, sizeof got, NULL},
        {buf, OFF_C + sizeof half, sizeof half, NULL},
    };
    kept_n = 0;
    assert_int_equal(vgpu_rpc_graph_recompute(c, backend, gg.slot, outs, 2, record_kept, &st), APIR_BACKEND_OK);
    assert_int_equal(st, GGML_STATUS_SUCCESS);
    /* left in the data page, one after the other, and handed to keep while the reply was read */
    const struct apir_shmem *page = &c->data;
    assert_int_equal(kept_n, 2);
    assert_ptr_equal(kept_src, page->ptr);
    assert_ptr_equal(outs[0].src, page->ptr);
    assert_ptr_equal(outs[1].src, (const uint8_t *)page->ptr + sizeof got);
    memcpy(got, outs[0].src, sizeof got);
    memcpy(half, outs[1].src, sizeof half);
    expected(a, b, want);
    assert_floats(got, want, M * N);
    assert_floats(half, want + M * N / 2, M * N / 2);
    /* an output outside its buffer, or too many: refused before computing */
    outs[1].offset = BUF_SIZE - 4;
    assert_int_equal(vgpu_rpc_graph_recompute(c, backend, gg.slot, outs, 2, NULL, &st), APIR_BACKEND_ERR_BOUNDS);
    outs[1].offset = OFF_C;
    struct vgpu_rpc_output many[APIR_MAX_RECOMPUTE_OUTPUTS + 1];
    for (int i = 0; i <= (int)APIR_MAX_RECOMPUTE_OUTPUTS; i++)
        many[i] = outs[0];
    assert_int_equal(vgpu_rpc_graph_recompute(c, backend, gg.slot, many, APIR_MAX_RECOMPUTE_OUTPUTS + 1, NULL, &st),
                     APIR_BACKEND_ERR_DECODE);
    /* outputs adding up to more than the data page: refused before computing */
    uint32_t big_out;
    size_t big_out_size = APIR_CLIENT_DATA_PAGE_SIZE / 8 + 64;
    assert_int_equal(guest_alloc(c, dev.buft, big_out_size, &big_out), APIR_BACKEND_OK);
    for (int i = 0; i < (int)APIR_MAX_RECOMPUTE_OUTPUTS; i++)
        many[i] = (struct vgpu_rpc_output){big_out, 0, big_out_size, NULL}; /* never copied */
    assert_int_equal(vgpu_rpc_graph_recompute(c, backend, gg.slot, many, 8, NULL, &st), APIR_BACKEND_ERR_BOUNDS);
    assert_int_equal(vgpu_rpc_buffer_free(c, big_out), APIR_BACKEND_OK);

    /* COPY the product into the second buffer */
    bool done = false;
    assert_int_equal(vgpu_rpc_buffer_copy(c, buf, OFF_C, buf2, 64, sizeof got, &done), APIR_BACKEND_OK);
    assert_true(done);
    memset(got, 0, sizeof got);
    assert_int_equal(vgpu_rpc_buffer_get(c, buf2, 64, got, sizeof got), APIR_BACKEND_OK);
    assert_floats(got, want, M * N);

    /* MEMSET part of it, CLEAR the other buffer */
    assert_int_equal(vgpu_rpc_buffer_memset(c, buf, OFF_C, sizeof got, 0), APIR_BACKEND_OK);
    assert_int_equal(vgpu_rpc_buffer_get(c, buf, OFF_C, got, sizeof got), APIR_BACKEND_OK);
    float zeros[M * N] = {0};
    assert_floats(got, zeros, M * N);
    assert_int_equal(vgpu_rpc_buffer_clear(c, buf2, 0xab), APIR_BACKEND_OK);
    uint8_t bytes[BUF_SIZE];
    assert_int_equal(vgpu_rpc_buffer_get(c, buf2, 0, bytes, sizeof bytes), APIR_BACKEND_OK);
    for (size_t i = 0; i < sizeof bytes; i++)
        assert_int_equal(bytes[i], 0xab);

    /* writes larger than APIR_MAX_INLINE_SET go through the data page (BUFFER_SET) */
    uint32_t big;
    size_t big_size = APIR_MAX_INLINE_SET + BUF_SIZE;
    uint8_t *pattern = malloc(big_size), *back = calloc(1, big_size);
    assert_non_null(pattern);
    assert_non_null(back);
    for (size_t i = 0; i < big_size; i++)
        pattern[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(guest_alloc(c, dev.buft, big_size, &big), APIR_BACKEND_OK);
    assert_int_equal(vgpu_rpc_buffer_set(c, big, 0, pattern, big_size), APIR_BACKEND_OK);
    assert_int_equal(vgpu_rpc_buffer_get(c, big, 0, back, big_size), APIR_BACKEND_OK);
    assert_memory_equal(back, pattern, big_size);
    assert_int_equal(vgpu_rpc_buffer_free(c, big), APIR_BACKEND_OK);
    free(pattern);
    free(back);

    /* out-of-bounds transfers are refused */
    assert_int_equal(vgpu_rpc_buffer_get(c, buf, BUF_SIZE - 4, got, 8), APIR_BACKEND_ERR_BOUNDS);
    assert_int_equal(vgpu_rpc_buffer_memset(c, buf, ~0ull - 2, 8, 0), APIR_BACKEND_ERR_BOUNDS);

    /* FREE, then the handles are stale */
    assert_int_equal(vgpu_rpc_buffer_free(c, buf2), APIR_BACKEND_OK);
    assert_int_equal(vgpu_rpc_buffer_clear(c, buf2, 0), APIR_BACKEND_ERR_HANDLE);
    assert_int_equal(vgpu_rpc_buffer_free(c, buf), APIR_BACKEND_OK);
    assert_int_equal(vgpu_rpc_backend_free(c, backend), APIR_BACKEND_OK);
    assert_int_equal(vgpu_rpc_graph_recompute(c, backend, gg.slot, NULL, 0, NULL, &st), APIR_BACKEND_ERR_HANDLE);
    guest_graph_free(&gg);
    apir_client_close(c);
}

static void test_handles_are_per_context(void **state)
{
    struct guest_session a, b;
    open_session(&a);
    open_session(&b);
    /* b uses a's handles: they name nothing in b's context */
    if (a.buffer != b.buffer)
        assert_int_equal(vgpu_rpc_buffer_clear(b.c, a.buffer, 0), APIR_BACKEND_ERR_HANDLE);
    assert_int_equal(vgpu_rpc_buffer_clear(b.c, a.buffer + 1000, 0), APIR_BACKEND_ERR_HANDLE);
    /* and a's buffer is untouched by b's writes to "the same" handle value */
    float v[4] = {1, 2, 3, 4}, got[4];
    assert_int_equal(vgpu_rpc_buffer_set(a.c, a.buffer, 0, v, sizeof v), APIR_BACKEND_OK);
    assert_int_equal(vgpu_rpc_buffer_clear(b.c, b.buffer, 0), APIR_BACKEND_OK);
    assert_int_equal(vgpu_rpc_buffer_get(a.c, a.buffer, 0, got, sizeof got), APIR_BACKEND_OK);
    assert_floats(got, v, 4);
    /* b's shared page id means nothing in a's context either */
    assert_int_equal(vgpu_rpc_buffer_get(a.c, a.buffer, 0, got, sizeof got), APIR_BACKEND_OK);
    apir_client_close(a.c);
    apir_client_close(b.c);
}

/* Writes sent without a reply wait in the transport and travel with the next submit (vtest:
 * batches of one SUBMIT_CMD2): more of them than one message holds, odd sizes (padded), then
 * one read sees every byte in order, the later write of a range winning. */
static void test_many_writes_without_reply(void **state)
{
    struct guest_session s;
    open_session(&s);
    uint8_t want[BUF_SIZE], got[BUF_SIZE];
    memset(want, 0, sizeof want);
    assert_int_equal(vgpu_rpc_buffer_clear(s.c, s.buffer, 0), APIR_BACKEND_OK);
    for (int i = 0; i < 300; i++) {
        uint8_t bytes[13];
        size_t off = ((size_t)i * 37) % (BUF_SIZE - sizeof bytes), n = 1 + (size_t)i % sizeof bytes;
        for (size_t k = 0; k < n; k++)
            bytes[k] = (uint8_t)(i + k * 3);
        assert_int_equal(vgpu_rpc_buffer_set(s.c, s.buffer, off, bytes, n), APIR_BACKEND_OK);
        memcpy(want + off, bytes, n);
    }
    assert_int_equal(vgpu_rpc_buffer_get(s.c, s.buffer, 0, got, sizeof got), APIR_BACKEND_OK);
    assert_memory_equal(got, want, sizeof want);
    apir_client_close(s.c);
}

/* Larger writes sent without a reply wait in slices of the data page until the next reply:
 * more of them than half the page keeps (so some go the waiting way), a read in between
 * (its bytes go past the kept slices), a write larger than the page; every byte lands in
 * order, the later write of a range winning. */
static void test_large_writes_without_reply(void **state)
{
    enum { SIZE = 48u << 20 };
    struct guest_session s;
    assert_int_equal(guest_session_open(&s, SIZE), APIR_BACKEND_OK);
    uint8_t *want = calloc(1, SIZE), *got = malloc(SIZE), *bytes = malloc(SIZE);
    assert_non_null(want);
    assert_non_null(got);
    assert_non_null(bytes);
    assert_int_equal(vgpu_rpc_buffer_clear(s.c, s.buffer, 0), APIR_BACKEND_OK);
    for (int i = 0; i < 24; i++) {
        size_t n = APIR_MAX_INLINE_SET + 1 + ((size_t)i * 797 * 1031) % (3u << 20);
        size_t off = ((size_t)i * 5 * 1048573) % (SIZE - n);
        for (size_t k = 0; k < n; k++)
            bytes[k] = (uint8_t)(i * 29 + k * 3 + (k >> 9));
        assert_int_equal(vgpu_rpc_buffer_set(s.c, s.buffer, off, bytes, n), APIR_BACKEND_OK);
        memcpy(want + off, bytes, n);
        if (i == 11) { /* a read while writes wait in the page */
            assert_int_equal(vgpu_rpc_buffer_get(s.c, s.buffer, 0, got, SIZE), APIR_BACKEND_OK);
            assert_memory_equal(got, want, SIZE);
        }
    }
    for (size_t k = 0; k < SIZE; k++) /* larger than the data page */
        bytes[k] = (uint8_t)(k * 13 + (k >> 16));
    assert_int_equal(vgpu_rpc_buffer_set(s.c, s.buffer, 0, bytes, SIZE - 4096), APIR_BACKEND_OK);
    memcpy(want, bytes, SIZE - 4096);
    assert_int_equal(vgpu_rpc_buffer_get(s.c, s.buffer, 0, got, SIZE), APIR_BACKEND_OK);
    assert_memory_equal(got, want, SIZE);
    free(want);
    free(got);
    free(bytes);
    apir_client_close(s.c);
}

static void test_disconnect_mid_session(void **state)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* allocate, compute, and vanish without freeing anything */
        struct guest_session s;
        open_session(&s);
        uint32_t more;
        for (int i = 0; i < 8; i++)
            if (guest_alloc(s.c, s.dev.buft, 1 << 20, &more) != APIR_BACKEND_OK)
                _exit(3);
        struct guest_graph gg;
        graph(&gg, s.buffer);
        int32_t st;
        if (guest_graph_compute(s.c, s.backend, &gg, &st) != APIR_BACKEND_OK)
            _exit(4);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* the server still serves */
    struct guest_session s;
    open_session(&s);
    uint32_t v;
    assert_int_equal(vgpu_rpc_get_info(s.c, &v, &v), APIR_BACKEND_OK);
    apir_client_close(s.c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_forward_command),
        cmocka_unit_test(test_handles_are_per_context),
        cmocka_unit_test(test_many_writes_without_reply),
        cmocka_unit_test(test_large_writes_without_reply),
        cmocka_unit_test(test_disconnect_mid_session),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
