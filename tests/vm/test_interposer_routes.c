/* The interposer's APIR routing (src/interposer/interposer_routes.c), driven as QEMU drives it:
 * every argument a guest controls through QEMU (blob creation, map/unmap, submissions,
 * attaches, fences) is tried with bad values; each is refused with nothing registered or
 * lost. Each context is served by a worker process; one is killed mid-use and only its own
 * context notices. The backend cases need APIR_TEST_BACKEND_LIB and APIR_TEST_CPU_LIB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "apir_component.h"
#include "apir_forward.h"
#include "apir_protocol.h"
#include "interposer.h"
#include "proc_info.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u

/* what the fence callback saw; calls is stored last (the async fences come from a thread) */
static struct {
    _Atomic int calls;
    uint32_t ctx_id, ring_idx;
    uint64_t fence_id;
} seen;

static void on_context_fence(void *cookie, uint32_t ctx_id, uint32_t ring_idx, uint64_t fence_id)
{
    seen.ctx_id = ctx_id;
    seen.ring_idx = ring_idx;
    seen.fence_id = fence_id;
    atomic_fetch_add(&seen.calls, 1);
}

static char log_path[] = "/tmp/apir-interposer-routes-XXXXXX";

/* the component's log so far */
static char *read_log(void)
{
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
    }
    fclose(f);
    buf[n] = 0;
    return buf;
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
    routes_set_callbacks(NULL, 0, &callbacks);
    seen.ctx_id = seen.ring_idx = 0;
    seen.fence_id = 0;
    atomic_store(&seen.calls, 0);
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

/* waits (5 s at most) for the worker to write the reply word; its value, 0 if none came */
static uint32_t wait_word(void *page)
{
    for (int i = 0; i < 5000; i++) {
        uint32_t w = atomic_load((_Atomic uint32_t *)page);
        if (w)
            return w;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* waits (5 s at most) until the fence callback has run n times, polling like QEMU's timer
 * unless the fences are asynchronous */
static bool wait_fences(int n, bool poll)
{
    for (int i = 0; i < 5000 && atomic_load(&seen.calls) < n; i++) {
        if (poll)
            routes_signal_fences();
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return atomic_load(&seen.calls) >= n;
}

static const uint32_t handshake_cmd[5] = {APIR_COMMAND_TYPE_HANDSHAKE + APIR_VENUS_CMD_OFFSET, 0, 0,
                                          APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR};

/* one HANDSHAKE to the context's worker, its reply in resource res (mapped at page) */
static uint32_t handshake(uint32_t ctx, uint32_t res, void *page)
{
    uint32_t cmd[5];
    memcpy(cmd, handshake_cmd, sizeof cmd);
    cmd[2] = res;
    atomic_store((_Atomic uint32_t *)page, 0);
    if (routes_submit(ctx, cmd, 5) != 0)
        return 0;
    return wait_word(page);
}

/* one HANDSHAKE through a routed context, its reply landing in a blob the worker mapped */
static void test_submit_through_blob(void **state)
{
    assert_int_equal(routes_context_create(30, APIR_CAPSET_ID_VENUS, false), 0);
    pid_t w = routes_context_worker(30);
    assert_true(w > 0 && w != getpid());
    struct virgl_renderer_resource_create_blob_args a = blob(30, 40, PAGE);
    assert_int_equal(routes_create_blob(&a), 0);
    void *page;
    uint64_t size;
    assert_int_equal(routes_resource_map(40, &page, &size), 0);
    assert_int_equal(handshake(30, 40, page), APIR_HANDSHAKE_MAGIC + 1);
    assert_true(proc_maps_contain(w, "memfd:apir-blob")); /* the worker's own view of it */
    /* hostile word counts, unknown contexts, garbage: refused, the worker keeps serving */
    uint32_t cmd[5];
    memcpy(cmd, handshake_cmd, sizeof cmd);
    cmd[2] = 40;
    assert_int_equal(routes_submit(30, cmd, 0), EINVAL);
    assert_int_equal(routes_submit(30, cmd, -3), EINVAL);
    assert_int_equal(routes_submit(30, cmd, INT32_MAX), EINVAL);
    assert_int_equal(routes_submit(31, cmd, 5), EINVAL);
    uint32_t junk[3] = {0xffffffffu, 3, 40};
    assert_int_equal(routes_submit(30, junk, 3), 0); /* queued; the worker refuses it (logged) */
    assert_int_equal(handshake(30, 40, page), APIR_HANDSHAKE_MAGIC + 1);
    /* another APIR context may be given the blob; a real virglrenderer resource is ignored */
    assert_int_equal(routes_context_create(32, APIR_CAPSET_ID_VENUS, false), 0);
    routes_attach(32, 40);
    routes_attach(32, 40); /* twice: no harm */
    routes_attach(32, 999);
    assert_int_equal(handshake(32, 40, page), APIR_HANDSHAKE_MAGIC + 1);
    /* detached: the reply has nowhere to go. The fence says when the worker has run it. */
    routes_detach(32, 40);
    atomic_store((_Atomic uint32_t *)page, 0);
    assert_int_equal(routes_submit(32, cmd, 5), 0);
    routes_fence(32, 0, 1);
    assert_true(wait_fences(1, true));
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
    /* nothing submitted: signalled at the next poll, merged per (context, ring) */
    routes_fence(50, 0, 3);
    routes_fence(50, 0, 5);
    routes_fence(50, 0, 4);
    assert_int_equal(atomic_load(&seen.calls), 0);
    routes_signal_fences();
    assert_int_equal(atomic_load(&seen.calls), 1);
    assert_int_equal(seen.ctx_id, 50);
    assert_int_equal(seen.fence_id, 5);
    routes_signal_fences();
    assert_int_equal(atomic_load(&seen.calls), 1);
    /* a fence after a submission waits for the worker to have run it: stopped, it has not */
    struct virgl_renderer_resource_create_blob_args a = blob(50, 51, PAGE);
    assert_int_equal(routes_create_blob(&a), 0);
    void *page;
    uint64_t size;
    assert_int_equal(routes_resource_map(51, &page, &size), 0);
    pid_t w = routes_context_worker(50);
    assert_int_equal(kill(w, SIGSTOP), 0);
    uint32_t cmd[5];
    memcpy(cmd, handshake_cmd, sizeof cmd);
    cmd[2] = 51;
    atomic_store((_Atomic uint32_t *)page, 0);
    assert_int_equal(routes_submit(50, cmd, 5), 0);
    routes_fence(50, 1, 6);
    for (int i = 0; i < 50; i++) {
        routes_signal_fences();
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&seen.calls), 1);
    assert_int_equal(kill(w, SIGCONT), 0);
    assert_true(wait_fences(2, true));
    assert_int_equal(seen.ring_idx, 1);
    assert_int_equal(seen.fence_id, 6);
    assert_int_equal(atomic_load((_Atomic uint32_t *)page), APIR_HANDSHAKE_MAGIC + 1); /* its work is done */
    /* ASYNC_FENCE_CB: the VMM does not poll; the interposer's thread signals it */
    routes_set_callbacks(NULL, VIRGL_RENDERER_ASYNC_FENCE_CB, &callbacks);
    assert_int_equal(routes_submit(50, cmd, 5), 0);
    routes_fence(50, 2, 9);
    assert_true(wait_fences(3, false));
    assert_int_equal(seen.ring_idx, 2);
    assert_int_equal(seen.fence_id, 9);
    /* callbacks without write_context_fence (version 2): nothing is called, nothing breaks */
    struct virgl_renderer_callbacks old = {.version = 2};
    routes_set_callbacks(NULL, 0, &old);
    routes_fence(50, 0, 11);
    routes_signal_fences();
    assert_int_equal(atomic_load(&seen.calls), 3);
    /* a destroyed context's fence signals, even when a new context takes its id at once */
    routes_set_callbacks(NULL, 0, &callbacks);
    int before = atomic_load(&seen.calls);
    w = routes_context_worker(50);
    assert_int_equal(kill(w, SIGSTOP), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(routes_submit(50, cmd, 5), 0);
    routes_fence(50, 0, 12);
    assert_int_equal(routes_context_destroy(50), ROUTE_APIR);
    assert_int_equal(kill(w, SIGCONT), 0);
    assert_int_equal(routes_context_create(50, APIR_CAPSET_ID_VENUS, false), 0);
    routes_signal_fences();
    assert_int_equal(atomic_load(&seen.calls), before + 1);
    assert_int_equal(seen.fence_id, 12);
    assert_int_equal(routes_resource_unmap(51), 0);
}

/* the worker of one context is killed mid-use: this process (QEMU's) carries on, that
 * context's commands fail with a log line, its fences signal, another context still serves,
 * and no worker outlives its context */
static void test_worker_killed(void **state)
{
    bool backend = getenv(APIR_ENV_BACKEND_LIBRARY) != NULL;
    print_message("%s\n", backend ? "backend library: LOADLIBRARY and GET_INFO through the workers too"
                                   : "no backend library (APIR_TEST_BACKEND_LIB): HANDSHAKE only");
    void *pa, *pb;
    uint64_t size;
    struct virgl_renderer_resource_create_blob_args a = blob(100, 110, PAGE);
    assert_int_equal(routes_context_create(100, APIR_CAPSET_ID_VENUS, false), 0);
    assert_int_equal(routes_create_blob(&a), 0);
    assert_int_equal(routes_resource_map(110, &pa, &size), 0);
    /* created after blob 110: its worker must not inherit another guest's memory */
    assert_int_equal(routes_context_create(101, APIR_CAPSET_ID_VENUS, false), 0);
    pid_t wa = routes_context_worker(100), wb = routes_context_worker(101);
    assert_false(proc_maps_contain(wb, "memfd:apir-blob"));
    a = blob(101, 111, PAGE);
    assert_int_equal(routes_create_blob(&a), 0);
    assert_int_equal(routes_resource_map(111, &pb, &size), 0);
    assert_int_equal(handshake(100, 110, pa), APIR_HANDSHAKE_MAGIC + 1);
    assert_int_equal(handshake(101, 111, pb), APIR_HANDSHAKE_MAGIC + 1);
    if (backend) { /* ctx 100 has loaded the backend library, this process has not */
        uint32_t load[3] = {APIR_COMMAND_TYPE_LOADLIBRARY + APIR_VENUS_CMD_OFFSET, 0, 110};
        atomic_store((_Atomic uint32_t *)pa, 0);
        assert_int_equal(routes_submit(100, load, 3), 0);
        assert_int_equal(wait_word(pa), APIR_LOAD_LIBRARY_SUCCESS + 1);
        assert_false(proc_maps_contain(getpid(), "libggml-virtgpu-backend"));
    }

    assert_int_equal(kill(wa, SIGKILL), 0);
    routes_fence(100, 0, 20);
    int rc = 0;
    for (int i = 0; i < 500 && rc == 0; i++) { /* the first submits may still be queued */
        rc = routes_submit(100, handshake_cmd, 5);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(rc, EINVAL);
    assert_int_equal(routes_submit(100, handshake_cmd, 5), EINVAL); /* and stays lost */
    assert_true(wait_fences(1, true));                             /* its fence is not left hanging */
    assert_int_equal(seen.ctx_id, 100);
    assert_int_equal(routes_context_state(100), ROUTE_APIR);       /* until the guest destroys it */

    /* the other context computes as before: with the backend, GET_INFO through ggml */
    for (int i = 0; i < 20; i++)
        assert_int_equal(handshake(101, 111, pb), APIR_HANDSHAKE_MAGIC + 1);
    if (backend) {
        uint32_t load[3] = {APIR_COMMAND_TYPE_LOADLIBRARY + APIR_VENUS_CMD_OFFSET, 0, 111};
        atomic_store((_Atomic uint32_t *)pb, 0);
        assert_int_equal(routes_submit(101, load, 3), 0);
        assert_int_equal(wait_word(pb), APIR_LOAD_LIBRARY_SUCCESS + 1);
        uint32_t info[4] = {APIR_COMMAND_TYPE_FORWARD + APIR_VENUS_CMD_OFFSET, 0, 111, APIR_FWD_GET_INFO};
        atomic_store((_Atomic uint32_t *)pb, 0);
        assert_int_equal(routes_submit(101, info, 4), 0);
        assert_int_equal(wait_word(pb), APIR_FORWARD_BASE_INDEX + APIR_BACKEND_OK + 1);
        uint32_t version, n_devices;
        memcpy(&version, (uint8_t *)pb + APIR_REPLY_HEADER_SIZE, 4);
        memcpy(&n_devices, (uint8_t *)pb + APIR_REPLY_HEADER_SIZE + 4, 4);
        assert_true(n_devices >= 1);
    }

    assert_int_equal(routes_context_destroy(100), ROUTE_APIR);
    assert_int_equal(routes_context_destroy(101), ROUTE_APIR);
    assert_int_equal(routes_resource_unmap(110), 0);
    assert_int_equal(routes_resource_unmap(111), 0);
    routes_reset(); /* waits for the workers' ends */
    assert_int_equal(kill(wa, 0), -1);
    assert_int_equal(kill(wb, 0), -1);
    /* the log says what happened, and to whom */
    char *log = read_log();
    char want[160];
    snprintf(want, sizeof want, "ctx 100: worker %d killed by signal 9", (int)wa);
    assert_non_null(strstr(log, want));
    snprintf(want, sizeof want, "ctx 100: its worker ended (worker %d): the guest's device is lost", (int)wa);
    assert_non_null(strstr(log, want));
    assert_non_null(strstr(log, "ctx 100: command refused: the device is lost"));
    assert_null(strstr(log, "ctx 101: its worker ended"));
    /* every other worker of these tests ended cleanly (a leak under ASan would exit 23), but
     * the one that refused capset 77 in test_contexts */
    int unclean = 0;
    for (const char *p = strstr(log, "exited with status"); p; p = strstr(p + 1, "exited with status"))
        unclean++;
    assert_int_equal(unclean, 1);
    assert_non_null(strstr(log, "exited with status 2"));
    free(log);
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
    signal(SIGPIPE, SIG_IGN); /* as QEMU: a dead worker's socket answers EPIPE */
    int fd = mkstemp(log_path);
    if (fd < 0)
        return 1;
    close(fd);
    setenv("VIRGL_APIR_LOG_TO_FILE", log_path, 1); /* before the first line opens it */
    const char *b = getenv("APIR_TEST_BACKEND_LIB"), *c = getenv("APIR_TEST_CPU_LIB");
    if (b && *b && c && *c) {
        setenv(APIR_ENV_BACKEND_LIBRARY, b, 1);
        setenv(APIR_ENV_GGML_LIBRARY_PATH, c, 1);
    } else {
        unsetenv(APIR_ENV_BACKEND_LIBRARY);
    }
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
        cmocka_unit_test_setup_teardown(test_worker_killed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reset, setup, teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    unlink(log_path);
    return failed;
}
