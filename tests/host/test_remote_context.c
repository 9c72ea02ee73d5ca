/* The component's worker-process contexts (apir_remote_context_*), as a hypervisor uses them:
 * commands run in a forked worker that maps sealed memfds, loads the libraries and sandboxes
 * itself; a worker that dies ends only its own context; unsealed memory is refused. The
 * backend cases need APIR_TEST_BACKEND_LIB and APIR_TEST_CPU_LIB (skipped otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "apir_component.h"
#include "apir_forward.h"
#include "apir_protocol.h"
#include "proc_info.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 65536
#define REPLY_RES 3

static uint32_t next_ctx = 5000;

struct remote {
    struct apir_remote_context *r;
    int fd;
    uint8_t *page;
};

static struct remote open_remote(void)
{
    struct remote x;
    x.r = apir_remote_context_create(next_ctx++, APIR_CAPSET_ID_APIR);
    assert_non_null(x.r);
    void *p;
    x.fd = apir_shared_memory_create("test-reply", PAGE, &p);
    assert_true(x.fd >= 0);
    x.page = p;
    assert_int_equal(apir_remote_context_attach_resource(x.r, REPLY_RES, x.fd, PAGE), 0);
    return x;
}

static void close_remote(struct remote *x)
{
    apir_remote_context_destroy(x->r);
    munmap(x->page, PAGE);
    close(x->fd);
}

/* submits one command and waits (5 s at most) for its reply word; the value or -1000 */
static int call(struct remote *x, uint32_t type, const void *payload, size_t len)
{
    uint8_t buf[256];
    struct apir_command_header h = {(int32_t)type, 0, REPLY_RES};
    memcpy(buf, &h, sizeof h);
    if (len)
        memcpy(buf + sizeof h, payload, len);
    atomic_store((_Atomic uint32_t *)x->page, 0);
    if (apir_remote_context_submit(x->r, buf, sizeof h + len) != 0)
        return -1001;
    for (int i = 0; i < 5000; i++) {
        uint32_t w = atomic_load((_Atomic uint32_t *)x->page);
        if (w)
            return (int)(w - 1);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return -1000;
}

static int handshake(struct remote *x)
{
    uint32_t v[2] = {APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR};
    return call(x, APIR_COMMAND_TYPE_HANDSHAKE, v, sizeof v);
}

static bool have_backend(void)
{
    const char *b = getenv("APIR_TEST_BACKEND_LIB"), *c = getenv("APIR_TEST_CPU_LIB");
    if (!b || !*b || !c || !*c)
        return false;
    setenv(APIR_ENV_BACKEND_LIBRARY, b, 1);
    setenv(APIR_ENV_GGML_LIBRARY_PATH, c, 1);
    return true;
}

static void test_handshake_in_a_worker(void **state)
{
    struct remote x = open_remote();
    assert_int_equal(handshake(&x), APIR_HANDSHAKE_MAGIC);
    uint32_t host[2];
    memcpy(host, x.page + APIR_REPLY_HEADER_SIZE, sizeof host);
    assert_int_equal(host[0], APIR_PROTOCOL_MAJOR);
    assert_true(apir_remote_context_pid(x.r) != getpid());
    close_remote(&x);
}

static void test_refusals(void **state)
{
    unsetenv(APIR_ENV_ROUTE_VENUS);
    assert_null(apir_remote_context_create(next_ctx++, APIR_CAPSET_ID_VENUS));
    struct remote x = open_remote();
    /* unsealed memory could be shrunk under the worker */
    int plain = memfd_create("unsealed", MFD_CLOEXEC);
    assert_true(plain >= 0);
    assert_int_equal(ftruncate(plain, 4096), 0);
    assert_int_equal(apir_remote_context_attach_resource(x.r, 9, plain, 4096), -1);
    close(plain);
    assert_int_equal(apir_remote_context_configure(x.r, APIR_KEY_LIMIT_BLOBS, "many"), -1);
    assert_int_equal(apir_remote_context_configure(x.r, "no.such.key", "1"), -1);
    assert_int_equal(apir_remote_context_configure(x.r, APIR_KEY_LIMIT_BLOBS, "2"), 0);
    /* the limit now holds in the worker: the reply page is one, a second fits, a third not */
    void *p;
    int fd = apir_shared_memory_create("more", 4096, &p);
    assert_int_equal(apir_remote_context_attach_resource(x.r, 10, fd, 4096), 0);
    assert_int_equal(apir_remote_context_attach_resource(x.r, 11, fd, 4096), 0); /* refused there, logged */
    assert_int_equal(handshake(&x), APIR_HANDSHAKE_MAGIC);                        /* still serving */
    munmap(p, 4096);
    close(fd);
    close_remote(&x);
}

/* LOADLIBRARY and a FORWARD in the worker; the worker is sandboxed, this process loaded nothing */
static void test_backend_in_a_sandboxed_worker(void **state)
{
    if (!have_backend())
        skip();
    struct remote x = open_remote();
    assert_int_equal(call(&x, APIR_COMMAND_TYPE_LOADLIBRARY, NULL, 0), APIR_LOAD_LIBRARY_SUCCESS);
    uint32_t index = APIR_FWD_GET_INFO;
    assert_int_equal(call(&x, APIR_COMMAND_TYPE_FORWARD, &index, sizeof index),
                     APIR_FORWARD_BASE_INDEX + APIR_BACKEND_OK);
    pid_t w = apir_remote_context_pid(x.r);
    assert_int_equal(proc_status_field(w, "Seccomp"), 2);
    assert_int_equal(proc_status_field(w, "NoNewPrivs"), 1);
    assert_true(proc_maps_contain(w, "libggml-virtgpu-backend"));
    assert_false(proc_maps_contain(getpid(), "libggml-virtgpu-backend"));
    assert_true(atomic_load(&apir_remote_context_activity(x.r)->sandboxed) == 1);
    close_remote(&x);
}

/* one worker killed: its context reports it, the other context keeps running */
static void test_worker_death_is_contained(void **state)
{
    struct remote a = open_remote(), b = open_remote();
    assert_int_equal(handshake(&a), APIR_HANDSHAKE_MAGIC);
    kill(apir_remote_context_pid(a.r), SIGKILL);
    int status = 0;
    for (int i = 0; i < 500 && !apir_remote_context_poll(a.r, &status); i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_true(call(&a, APIR_COMMAND_TYPE_HANDSHAKE, (uint32_t[2]){1, 0}, 8) < 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(handshake(&b), APIR_HANDSHAKE_MAGIC);
    close_remote(&a);
    close_remote(&b);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_in_a_worker),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_backend_in_a_sandboxed_worker),
        cmocka_unit_test(test_worker_death_is_contained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
