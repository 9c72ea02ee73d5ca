/* The interposer's APIR routing (src/interposer/interposer_routes.c), in-process: every
 * argument a guest controls through QEMU (blob creation, map/unmap, submissions, attaches,
 * fences) is tried with bad values; each is refused with nothing registered or lost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "apir_protocol.h"
#include "interposer.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096u

static struct {
    int calls;
    uint32_t ctx_id, ring_idx;
    uint64_t fence_id;
} seen;

static void on_context_fence(void *cookie, uint32_t ctx_id, uint32_t ring_idx, uint64_t fence_id)
{
    seen.calls++;
    seen.ctx_id = ctx_id;
    seen.ring_idx = ring_idx;
    seen.fence_id = fence_id;
}

static struct virgl_renderer_callbacks callbacks = {.version = 3, .write_context_fence = on_context_fence};

static struct virgl_renderer_resource_create_blob_args blob(uint32_t ctx, uint32_t res, uint64_t size)
{
    return (struct virgl_renderer_resource_create_blob_args){
        .res_handle = res, .ctx_id = ctx, .blob_mem = VIRGL_RENDERER_BLOB_MEM_HOST3D,
        .blob_flags = VIRGL_RENDERER_BLOB_FLAG_USE_MAPPABLE, .blob_id = 1, .size = size};
}

static int setup(void **state)
{
    setenv(APIR_ENV_ROUTE_VENUS, "1", 1);
    unsetenv(APIR_ENV_BACKEND_LIBRARY);
    routes_set_callbacks(NULL, 0, &callbacks);
    memset(&seen, 0, sizeof seen);
    return 0;
}

static int teardown(void **state)
{
    routes_reset();
    return 0;
}

static void test_capsets(void **state)
{
    assert_true(routes_wants_capset(APIR_CAPSET_ID_VENUS));
    assert_true(routes_wants_capset(APIR_CAPSET_ID_APIR));
    assert_false(routes_wants_capset(1)); /* virgl stays with virglrenderer */
    unsetenv(APIR_ENV_ROUTE_VENUS);
    assert_false(routes_wants_capset(APIR_CAPSET_ID_VENUS));
    setenv(APIR_ENV_ROUTE_VENUS, "", 1); /* empty counts as unset */
    assert_false(routes_wants_capset(APIR_CAPSET_ID_VENUS));
}

static void test_contexts(void **state)
{
    assert_int_equal(routes_context_create(5, APIR_CAPSET_ID_VENUS, false), 0);
    assert_int_equal(routes_context_create(5, APIR_CAPSET_ID_VENUS, false), EEXIST);
    assert_int_equal(routes_context_state(5), ROUTE_APIR);
    assert_int_equal(routes_context_create(6, 77, false), EINVAL); /* the component refuses the capset */
    assert_int_equal(routes_context_state(6), ROUTE_NONE);
    assert_int_equal(routes_context_destroy(5), ROUTE_APIR);
    assert_int_equal(routes_context_destroy(5), ROUTE_NONE);
    assert_int_equal(routes_context_state(5), ROUTE_NONE);
}

static void test_hostile_blobs(void **state)
{
    assert_int_equal(routes_context_create(7, APIR_CAPSET_ID_VENUS, false), 0);
    struct virgl_renderer_resource_create_blob_args a;
    a = blob(7, 0, PAGE);
    assert_int_equal(routes_create_blob(&a), -EINVAL); /* resource 0 */
    a = blob(7, 10, PAGE);
    a.blob_mem = VIRGL_RENDERER_BLOB_MEM_GUEST;
    assert_int_equal(routes_create_blob(&a), -EINVAL);
    a = blob(7, 10, PAGE);
    a.blob_flags = 0;
    assert_int_equal(routes_create_blob(&a), -EINVAL);
    a = blob(7, 10, PAGE);
    a.num_iovs = 1;
    assert_int_equal(routes_create_blob(&a), -EINVAL);
    a = blob(7, 10, 0);
    assert_int_equal(routes_create_blob(&a), -EINVAL);
    a = blob(7, 10, PAGE + 1);
    assert_int_equal(routes_create_blob(&a), -EINVAL);
    a = blob(7, 10, (1ull << 32) + PAGE);
    assert_int_equal(routes_create_blob(&a), -EINVAL);
    a = blob(8, 10, PAGE); /* no such context */
    assert_int_equal(routes_create_blob(&a), -EINVAL);
    assert_false(routes_has_resource(10));
    /* a good one, then its id again (same or another context) */
    a = blob(7, 10, PAGE);
    assert_int_equal(routes_create_blob(&a), 0);
    assert_int_equal(routes_context_create(9, APIR_CAPSET_ID_VENUS, false), 0);
    a = blob(9, 10, 2 * PAGE);
    assert_int_equal(routes_create_blob(&a), -EINVAL);
    /* the largest allowed size is reserved lazily: it costs no memory until touched */
    a = blob(9, 11, 1ull << 32);
    assert_int_equal(routes_create_blob(&a), 0);
    routes_resource_unref(11);
    assert_false(routes_has_resource(11));
}

/* many large blobs: bounded in number and in reserved bytes, and freed ones count no more */
static void test_blob_limits(void **state)
{
    assert_int_equal(routes_context_create(90, APIR_CAPSET_ID_VENUS, false), 0);
    struct virgl_renderer_resource_create_blob_args a;
    uint32_t res = 1000;
    for (int i = 0; i < 64; i++) { /* 64 x 4 GiB = 256 GiB */
        a = blob(90, res++, 1ull << 32);
        assert_int_equal(routes_create_blob(&a), 0);
    }
    a = blob(90, res, PAGE);
    assert_int_equal(routes_create_blob(&a), -EINVAL);
    routes_resource_unref(1000);
    assert_int_equal(routes_create_blob(&a), 0);
    for (uint32_t r = 1001; r <= res; r++)
        routes_resource_unref(r);
    /* the count: 4096 small ones, then no more */
    for (uint32_t i = 0; i < 4096; i++) {
        a = blob(90, 2000 + i, PAGE);
        assert_int_equal(routes_create_blob(&a), 0);
    }
    a = blob(90, 9000, PAGE);
    assert_int_equal(routes_create_blob(&a), -EINVAL);
}

static void test_map_lifetime(void **state)
{
    assert_int_equal(routes_context_create(12, APIR_CAPSET_ID_VENUS, false), 0);
    struct virgl_renderer_resource_create_blob_args a = blob(12, 20, 2 * PAGE);
    assert_int_equal(routes_create_blob(&a), 0);
    void *p = NULL;
    uint64_t size = 0;
    assert_int_equal(routes_resource_unmap(20), -EINVAL); /* not mapped */
    assert_int_equal(routes_resource_map(20, &p, &size), 0);
    assert_int_equal(size, 2 * PAGE);
    void *q;
    assert_int_equal(routes_resource_map(20, &q, &size), -EINVAL); /* twice */
    assert_int_equal(routes_resource_map(21, &q, &size), -EINVAL); /* unknown */
    struct virgl_renderer_resource_info info;
    assert_int_equal(routes_resource_info(20, &info), 0);
    assert_int_equal(info.fd, -1);
    assert_int_equal(routes_resource_info(21, &info), -EINVAL);
    /* the context goes and the resource is unreferenced while QEMU still maps it into the
     * guest: the memory must stay until the unmap */
    assert_int_equal(routes_context_destroy(12), ROUTE_APIR);
    routes_resource_unref(20);
    memset(p, 0xab, 2 * PAGE);
    assert_int_equal(routes_resource_map(20, &q, &size), -EINVAL); /* no new mapping of it */
    assert_int_equal(routes_resource_unmap(20), 0);
    assert_false(routes_has_resource(20));
}

/* one HANDSHAKE through a routed context, its reply landing in a blob */
static void test_submit_through_blob(void **state)
{
    assert_int_equal(routes_context_create(30, APIR_CAPSET_ID_VENUS, false), 0);
    struct virgl_renderer_resource_create_blob_args a = blob(30, 40, PAGE);
    assert_int_equal(routes_create_blob(&a), 0);
    void *page;
    uint64_t size;
    assert_int_equal(routes_resource_map(40, &page, &size), 0);
    uint32_t cmd[5] = {APIR_COMMAND_TYPE_HANDSHAKE + APIR_VENUS_CMD_OFFSET, 0, 40, APIR_PROTOCOL_MAJOR,
                       APIR_PROTOCOL_MINOR};
    assert_int_equal(routes_submit(30, cmd, 5), 0);
    assert_int_equal(atomic_load((_Atomic uint32_t *)page), APIR_HANDSHAKE_MAGIC + 1);
    /* hostile word counts, unknown contexts, garbage */
    assert_int_equal(routes_submit(30, cmd, 0), EINVAL);
    assert_int_equal(routes_submit(30, cmd, -3), EINVAL);
    assert_int_equal(routes_submit(31, cmd, 5), EINVAL);
    uint32_t junk[3] = {0xffffffffu, 3, 40};
    assert_int_equal(routes_submit(30, junk, 3), EINVAL);
    /* another APIR context may be given the blob; a real virglrenderer resource is ignored */
    assert_int_equal(routes_context_create(32, APIR_CAPSET_ID_VENUS, false), 0);
    routes_attach(32, 40);
    routes_attach(32, 40); /* twice: no harm */
    routes_attach(32, 999);
    atomic_store((_Atomic uint32_t *)page, 0);
    assert_int_equal(routes_submit(32, cmd, 5), 0);
    assert_int_equal(atomic_load((_Atomic uint32_t *)page), APIR_HANDSHAKE_MAGIC + 1);
    /* detached: the reply has nowhere to go */
    routes_detach(32, 40);
    atomic_store((_Atomic uint32_t *)page, 0);
    assert_int_equal(routes_submit(32, cmd, 5), 0);
    assert_int_equal(atomic_load((_Atomic uint32_t *)page), 0);
    assert_int_equal(routes_resource_unmap(40), 0);
}

/* per-context routing: the first command decides; only APIR types (331 + n) make it APIR */
static void test_decide(void **state)
{
    bool decided;
    uint32_t apir_cmd[5] = {APIR_COMMAND_TYPE_HANDSHAKE + APIR_VENUS_CMD_OFFSET, 0, 0, APIR_PROTOCOL_MAJOR, 0};
    uint32_t venus_cmd[4] = {188, 0, 0, 0};
    uint32_t past_apir[3] = {APIR_VENUS_CMD_OFFSET + APIR_COMMAND_TYPE_COUNT, 0, 0};
    assert_int_equal(routes_context_create(80, APIR_CAPSET_ID_VENUS, true), 0);
    assert_int_equal(routes_context_state(80), ROUTE_UNDECIDED);
    assert_int_equal(routes_decide(80, apir_cmd, 5, &decided), ROUTE_APIR);
    assert_true(decided);
    assert_int_equal(routes_decide(80, venus_cmd, 4, &decided), ROUTE_APIR); /* decided once */
    assert_false(decided);
    assert_int_equal(routes_context_create(81, APIR_CAPSET_ID_VENUS, true), 0);
    assert_int_equal(routes_decide(81, venus_cmd, 4, &decided), ROUTE_NONE);
    assert_true(decided);
    assert_int_equal(routes_context_state(81), ROUTE_NONE); /* the component's context is gone */
    assert_int_equal(routes_context_create(82, APIR_CAPSET_ID_VENUS, true), 0);
    assert_int_equal(routes_decide(82, past_apir, 3, &decided), ROUTE_NONE);
    assert_int_equal(routes_context_create(83, APIR_CAPSET_ID_VENUS, true), 0);
    assert_int_equal(routes_decide(83, apir_cmd, 0, &decided), ROUTE_NONE); /* empty: not APIR */
    assert_int_equal(routes_decide(84, apir_cmd, 5, &decided), ROUTE_NONE); /* unknown context */
    assert_false(decided);
    /* an undecided context being destroyed says so: the caller destroys Venus's twin too */
    assert_int_equal(routes_context_create(85, APIR_CAPSET_ID_VENUS, true), 0);
    assert_int_equal(routes_context_destroy(85), ROUTE_UNDECIDED);
}

static void test_fences(void **state)
{
    assert_int_equal(routes_context_create(50, APIR_CAPSET_ID_VENUS, false), 0);
    /* synchronous callbacks: signalled at the next poll, merged per (context, ring) */
    routes_fence(50, 0, 3);
    routes_fence(50, 0, 5);
    routes_fence(50, 0, 4);
    assert_int_equal(seen.calls, 0);
    routes_signal_fences();
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.ctx_id, 50);
    assert_int_equal(seen.fence_id, 5);
    routes_signal_fences();
    assert_int_equal(seen.calls, 1);
    /* ASYNC_FENCE_CB: the VMM defers the work itself, so the fence signals at once */
    routes_set_callbacks(NULL, VIRGL_RENDERER_ASYNC_FENCE_CB, &callbacks);
    routes_fence(50, 2, 9);
    assert_int_equal(seen.calls, 2);
    assert_int_equal(seen.ring_idx, 2);
    /* callbacks without write_context_fence (version 2): nothing is called, nothing breaks */
    struct virgl_renderer_callbacks old = {.version = 2};
    routes_set_callbacks(NULL, 0, &old);
    routes_fence(50, 0, 11);
    routes_signal_fences();
    assert_int_equal(seen.calls, 2);
}

static void test_reset(void **state)
{
    assert_int_equal(routes_context_create(60, APIR_CAPSET_ID_VENUS, false), 0);
    struct virgl_renderer_resource_create_blob_args a = blob(60, 70, PAGE);
    assert_int_equal(routes_create_blob(&a), 0);
    a = blob(60, 71, PAGE);
    assert_int_equal(routes_create_blob(&a), 0);
    void *p;
    uint64_t size;
    assert_int_equal(routes_resource_map(71, &p, &size), 0);
    routes_reset();
    assert_int_equal(routes_context_state(60), ROUTE_NONE);
    assert_false(routes_has_resource(70));
    /* the mapped one survives until it is unmapped */
    assert_true(routes_has_resource(71));
    memset(p, 1, PAGE);
    assert_int_equal(routes_resource_unmap(71), 0);
    assert_false(routes_has_resource(71));
}

int main(void)
{
    /* these tests are about the interposer's own bounds on the VMM's memory: lift the
     * component's per-guest blob quotas (tested in tests/host) so they do not answer first */
    setenv("VIRGL_APIR_MAX_BLOBS", "0", 1);
    setenv("VIRGL_APIR_MAX_BLOB_BYTES", "0", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_capsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_contexts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_lifetime, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_through_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decide, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fences, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
