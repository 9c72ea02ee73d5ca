/* Guest writes queued on a backend stream (src/backend/queued_writes.c), against a fake
 * asynchronous backend whose copies run only when it synchronizes, as a GPU stream's do: the
 * bytes must land, in order, whatever happens between the write and the compute (more writes
 * than the stage holds, a compute on another stream, the stream going away), and never before
 * a synchronize (else the queue would not be asynchronous at all). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "apir_forward.h"
#include "backend_context.h"
#include "ggml-backend-impl.h"
#include "queued_writes.h"

#include <stdlib.h>
#include <string.h>

/* a stream: copies recorded by set_tensor_async, run by synchronize */
struct fake_stream {
    struct {
        void *dst;
        const void *src;
        size_t n;
    } pending[256];
    int n;
    int syncs;
};

static void fake_set_async(ggml_backend_t b, struct ggml_tensor *t, const void *data, size_t off, size_t size)
{
    struct fake_stream *f = b->context;
    assert_true(f->n < 256);
    f->pending[f->n].dst = (char *)t->data + off;
    f->pending[f->n].src = data; /* read at synchronize: the stage must still hold the bytes */
    f->pending[f->n].n = size;
    f->n++;
}

static void fake_sync(ggml_backend_t b)
{
    struct fake_stream *f = b->context;
    for (int i = 0; i < f->n; i++)
        memcpy(f->pending[i].dst, f->pending[i].src, f->pending[i].n);
    f->n = 0;
    f->syncs++;
}

/* the device: its buffers and its host (stage) buffers are plain CPU memory */
static ggml_backend_buffer_type_t fake_buft(ggml_backend_dev_t dev)
{
    (void)dev;
    return ggml_backend_cpu_buffer_type();
}

static struct ggml_backend_device fake_dev = {
    .iface = {.get_buffer_type = fake_buft, .get_host_buffer_type = fake_buft},
};

struct fake {
    struct fake_stream f;
    struct ggml_backend backend;
    struct backend_stream s;
};

static void fake_init(struct fake *x)
{
    memset(x, 0, sizeof *x);
    x->backend.iface.set_tensor_async = fake_set_async;
    x->backend.iface.synchronize = fake_sync;
    x->backend.device = &fake_dev;
    x->backend.context = &x->f;
    x->s.backend = &x->backend;
}

#define DST_BYTES (40u << 20)

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

/* a fake stream, an empty queue and a zeroed destination buffer of the fake device's type */
struct fixture {
    struct fake a;
    struct queued_writes q;
    ggml_backend_buffer_t buf;
    uint8_t *base;
};

static void setup(struct fixture *x)
{
    fake_init(&x->a);
    memset(&x->q, 0, sizeof x->q);
    x->buf = ggml_backend_buft_alloc_buffer(ggml_backend_cpu_buffer_type(), DST_BYTES);
    assert_non_null(x->buf);
    x->base = ggml_backend_buffer_get_base(x->buf);
    memset(x->base, 0, DST_BYTES);
}

static void teardown(struct fixture *x)
{
    queued_writes_fini(&x->q);
    ggml_backend_buffer_free(x->buf);
}

static void test_queued_then_settled(void **state)
{
    (void)state;
    struct fixture x;
    setup(&x);
    uint8_t data[4096];
    fill(data, sizeof data, 1);
    /* nothing computed yet: no stream to queue on, the caller writes synchronously */
    assert_false(queued_writes_try(&x.q, x.buf, 0, data, sizeof data, UINT64_MAX));
    queued_writes_after_compute(&x.q, &x.a.s, true);
    assert_true(queued_writes_try(&x.q, x.buf, 100, data, sizeof data, UINT64_MAX));
    /* the caller's bytes may change at once: the queue copied them */
    memset(data, 0xee, sizeof data);
    uint8_t want[4096];
    fill(want, sizeof want, 1);
    assert_int_equal(x.base[100], 0); /* not landed: asynchronous */
    queued_writes_settle(&x.q);
    assert_memory_equal(x.base + 100, want, sizeof want);
    /* a compute that stopped before running (an index refused) left them in flight: landed */
    fill(data, sizeof data, 2);
    assert_true(queued_writes_try(&x.q, x.buf, 8192, data, sizeof data, UINT64_MAX));
    assert_int_equal(x.base[8192], 0);
    queued_writes_after_compute(&x.q, &x.a.s, false);
    assert_memory_equal(x.base + 8192, data, sizeof data);
    teardown(&x);
}

/* more bytes than the stage (APIR_MAX_QUEUED_SET) holds: the queue waits for the stream
 * before reusing it; a single write larger than the stage is the caller's to copy */
static void test_more_than_the_stage(void **state)
{
    (void)state;
    struct fixture x;
    setup(&x);
    queued_writes_after_compute(&x.q, &x.a.s, true);
    enum { N = 40, SIZE = 1u << 20 };
    _Static_assert((size_t)N * SIZE <= DST_BYTES && (size_t)N * SIZE > 2u * APIR_MAX_QUEUED_SET, "sizes");
    static uint8_t data[N][SIZE];
    for (unsigned i = 0; i < N; i++) {
        fill(data[i], sizeof data[i], i + 7);
        assert_true(queued_writes_try(&x.q, x.buf, (uint64_t)i * SIZE, data[i], sizeof data[i], UINT64_MAX));
    }
    assert_true(x.a.f.syncs >= 2); /* 40 MiB through a 16 MiB stage */
    queued_writes_before_compute(&x.q, &x.a.s); /* same stream: stays queued for the compute */
    assert_int_not_equal(x.a.f.n, 0);
    ggml_backend_synchronize(&x.a.backend); /* the compute waits for its stream */
    queued_writes_after_compute(&x.q, &x.a.s, true);
    for (unsigned i = 0; i < N; i++)
        assert_memory_equal(x.base + (size_t)i * SIZE, data[i], sizeof data[i]);
    assert_false(queued_writes_try(&x.q, x.buf, 0, data, APIR_MAX_QUEUED_SET + 1, UINT64_MAX));
    assert_int_equal(x.a.f.n, 0);
    teardown(&x);
}

/* a compute on another stream, or the stream going away, first lands what is queued */
static void test_other_stream_and_forget(void **state)
{
    (void)state;
    struct fixture x;
    setup(&x);
    struct fake b;
    fake_init(&b);
    uint8_t data[512];
    fill(data, sizeof data, 3);
    queued_writes_after_compute(&x.q, &x.a.s, true);
    assert_true(queued_writes_try(&x.q, x.buf, 0, data, sizeof data, UINT64_MAX));
    queued_writes_before_compute(&x.q, &b.s);
    assert_memory_equal(x.base, data, sizeof data);
    /* b computed: later writes go to b; forgetting b lands them and leaves no target */
    queued_writes_after_compute(&x.q, &b.s, true);
    fill(data, sizeof data, 4);
    assert_true(queued_writes_try(&x.q, x.buf, 4096, data, sizeof data, UINT64_MAX));
    assert_int_equal(b.f.n, 1);
    queued_writes_forget(&x.q, &b.s);
    assert_int_equal(b.f.n, 0);
    assert_memory_equal(x.base + 4096, data, sizeof data);
    assert_false(queued_writes_try(&x.q, x.buf, 0, data, sizeof data, UINT64_MAX));
    teardown(&x);
}

/* a backend without set_tensor_async (the CPU backend): never queued */
static void test_no_async_backend(void **state)
{
    (void)state;
    struct fixture x;
    setup(&x);
    x.a.backend.iface.set_tensor_async = NULL;
    queued_writes_after_compute(&x.q, &x.a.s, true);
    uint8_t data[16] = {1};
    assert_false(queued_writes_try(&x.q, x.buf, 0, data, sizeof data, UINT64_MAX));
    teardown(&x);
}

/* apir.limit.buffer_bytes covers the write shadow and the stage as well as the guest's
 * buffers: they take only what the buffers leave, and give way to a buffer the limit allows */
static void test_within_the_buffer_limit(void **state)
{
    (void)state;
    struct fixture x;
    setup(&x);
    static struct backend_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    const uint64_t MiB = 1u << 20;
    ctx.buffer_bytes_limit = 20 * MiB;
    ctx.buffer_bytes = 2 * MiB;
    static uint8_t data[2u << 20];
    fill(data, sizeof data, 5);
    assert_non_null(write_shadow_keep(&ctx.shadow, x.buf, 0, data, MiB, backend_ctx_room(&ctx)));
    queued_writes_after_compute(&ctx.writes, &x.a.s, true);
    /* 17 MiB left: the 16 MiB stage fits */
    assert_true(queued_writes_try(&ctx.writes, x.buf, 8 * MiB, data, 4096, backend_ctx_room(&ctx)));
    assert_int_equal(queued_writes_stage_bytes(&ctx.writes), APIR_MAX_QUEUED_SET);
    assert_int_equal(backend_ctx_room(&ctx), 20 * MiB - 2 * MiB - MiB - APIR_MAX_QUEUED_SET);
    /* a 2 MiB record: the older 1 MiB one goes to make room */
    assert_non_null(write_shadow_keep(&ctx.shadow, x.buf, 4 * MiB, data, 2 * MiB, backend_ctx_room(&ctx)));
    assert_null(write_shadow_find(&ctx.shadow, x.buf, 0, 1));
    assert_int_equal(ctx.shadow.bytes + queued_writes_stage_bytes(&ctx.writes) + ctx.buffer_bytes, 20 * MiB);
    /* a 2 MiB buffer: the shadow gives way */
    backend_ctx_make_room(&ctx, 2 * MiB);
    assert_int_equal(ctx.shadow.bytes, 0);
    assert_int_equal(queued_writes_stage_bytes(&ctx.writes), APIR_MAX_QUEUED_SET);
    ctx.buffer_bytes += 2 * MiB;
    /* 3 MiB more: so does the stage, landing what it held */
    backend_ctx_make_room(&ctx, 3 * MiB);
    assert_int_equal(queued_writes_stage_bytes(&ctx.writes), 0);
    assert_memory_equal(x.base + 8 * MiB, data, 4096);
    ctx.buffer_bytes += 3 * MiB;
    /* 13 MiB left: no stage, the write is the caller's to copy */
    assert_false(queued_writes_try(&ctx.writes, x.buf, 8 * MiB, data, 4096, backend_ctx_room(&ctx)));
    queued_writes_fini(&ctx.writes);
    write_shadow_free(&ctx.shadow);
    teardown(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queued_then_settled),
        cmocka_unit_test(test_more_than_the_stage),
        cmocka_unit_test(test_other_stream_and_forget),
        cmocka_unit_test(test_no_async_backend),
        cmocka_unit_test(test_within_the_buffer_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
