/* The APIR component in-process: capsets, command-buffer parsing, reply writing,
 * LOADLIBRARY codes and per-context configuration (apir_context_configure), against the real
 * backend library and the real ggml CPU library when they are built. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "apir_component.h"
#include "apir_forward.h"
#include "apir_codec.h"
#include "apir_protocol.h"

#include <dlfcn.h>
#include <stdbool.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE_SIZE_BYTES 65536
#define REPLY_RES 7
#define NOT_WRITTEN (-1000)

static uint32_t next_ctx = 1000;

struct fixture {
    struct apir_context *ctx;
    uint8_t *page;
};

static const char *backend_lib(void) { return getenv("APIR_TEST_BACKEND_LIB"); }
static const char *cpu_lib(void) { return getenv("APIR_TEST_CPU_LIB"); }
static const char *base_lib(void) { return getenv("APIR_TEST_BASE_LIB"); }
static const char *fake_lib(void) { return getenv("APIR_TEST_FAKE_GGML_LIB"); }

static void clear_env(void)
{
    unsetenv(APIR_ENV_BACKEND_LIBRARY);
    unsetenv(APIR_ENV_GGML_LIBRARY_PATH);
    unsetenv(APIR_ENV_GGML_LIBRARY_REG);
    unsetenv(APIR_ENV_ROUTE_VENUS);
}

static struct fixture open_ctx(uint32_t capset)
{
    struct fixture f;
    f.ctx = apir_context_create(next_ctx++, capset);
    assert_non_null(f.ctx);
    f.page = mmap(NULL, PAGE_SIZE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(f.page != MAP_FAILED);
    assert_int_equal(apir_context_attach_resource(f.ctx, REPLY_RES, f.page, PAGE_SIZE_BYTES), 0);
    return f;
}

static void close_ctx(struct fixture *f)
{
    apir_context_destroy(f->ctx);
    munmap(f->page, PAGE_SIZE_BYTES);
}

static size_t put_header(uint8_t *buf, int32_t type, uint32_t reply)
{
    struct apir_command_header h = {type, 0, reply};
    memcpy(buf, &h, sizeof h);
    return sizeof h;
}

/* submits one command; returns the reply value (word - 1) or NOT_WRITTEN */
static int run(struct fixture *f, const void *cmd, size_t size, int expect_submit)
{
    atomic_store((_Atomic uint32_t *)f->page, 0);
    assert_int_equal(apir_context_submit(f->ctx, cmd, size), expect_submit);
    uint32_t w = atomic_load((_Atomic uint32_t *)f->page);
    return w ? (int)(w - 1) : NOT_WRITTEN;
}

static int load_library(struct fixture *f, uint32_t offset)
{
    uint8_t buf[16];
    size_t n = put_header(buf, (int32_t)(APIR_COMMAND_TYPE_LOADLIBRARY + offset), REPLY_RES);
    return run(f, buf, n, 0);
}

static void test_handshake(void **state)
{
    clear_env();
    struct fixture f = open_ctx(APIR_CAPSET_ID_APIR);
    uint8_t buf[32];
    size_t n = put_header(buf, APIR_COMMAND_TYPE_HANDSHAKE, REPLY_RES);
    uint32_t v[2] = {APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR};
    memcpy(buf + n, v, sizeof v);
    assert_int_equal(run(&f, buf, n + 8, 0), APIR_HANDSHAKE_MAGIC);
    uint32_t host[3];
    memcpy(host, f.page + 4, sizeof host);
    assert_int_equal(host[0], 8); /* payload_len */
    assert_int_equal(host[1], APIR_PROTOCOL_MAJOR);
    assert_int_equal(host[2], APIR_PROTOCOL_MINOR);
    /* another major still answers: the guest decides */
    v[0] = APIR_PROTOCOL_MAJOR + 5;
    memcpy(buf + n, v, sizeof v);
    assert_int_equal(run(&f, buf, n + 8, 0), APIR_HANDSHAKE_MAGIC);
    /* short payload: malformed, no reply */
    assert_int_equal(run(&f, buf, n + 4, -1), NOT_WRITTEN);
    close_ctx(&f);
}

static void test_capsets(void **state)
{
    clear_env();
    assert_null(apir_context_create(next_ctx++, APIR_CAPSET_ID_VENUS));
    assert_null(apir_context_create(next_ctx++, 99));
    setenv(APIR_ENV_ROUTE_VENUS, "1", 1);
    struct fixture f = open_ctx(APIR_CAPSET_ID_VENUS);
    uint8_t buf[32];
    /* in a Venus context command types carry the +331 offset */
    size_t n = put_header(buf, APIR_COMMAND_TYPE_HANDSHAKE + APIR_VENUS_CMD_OFFSET, REPLY_RES);
    uint32_t v[2] = {APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR};
    memcpy(buf + n, v, sizeof v);
    assert_int_equal(run(&f, buf, n + 8, 0), APIR_HANDSHAKE_MAGIC);
    /* without the offset it is an unknown command */
    n = put_header(buf, APIR_COMMAND_TYPE_HANDSHAKE, REPLY_RES);
    assert_int_equal(run(&f, buf, n + 8, -1), NOT_WRITTEN);
    close_ctx(&f);
    clear_env();
}

static void test_duplicate_ctx_id(void **state)
{
    clear_env();
    struct apir_context *a = apir_context_create(42, APIR_CAPSET_ID_APIR);
    assert_non_null(a);
    assert_null(apir_context_create(42, APIR_CAPSET_ID_APIR));
    apir_context_destroy(a);
    a = apir_context_create(42, APIR_CAPSET_ID_APIR);
    assert_non_null(a);
    apir_context_destroy(a);
}

static void test_malformed_buffers(void **state)
{
    clear_env();
    struct fixture f = open_ctx(APIR_CAPSET_ID_APIR);
    uint8_t buf[64] = {0};
    /* truncated header */
    assert_int_equal(run(&f, buf, 5, -1), NOT_WRITTEN);
    /* unknown and negative types */
    size_t n = put_header(buf, 77, REPLY_RES);
    assert_int_equal(run(&f, buf, n, -1), NOT_WRITTEN);
    n = put_header(buf, -1, REPLY_RES);
    assert_int_equal(run(&f, buf, n, -1), NOT_WRITTEN);
    /* FORWARD without a command index */
    n = put_header(buf, APIR_COMMAND_TYPE_FORWARD, REPLY_RES);
    assert_int_equal(run(&f, buf, n + 2, 0), APIR_FORWARD_BASE_INDEX + APIR_BACKEND_ERR_DECODE);
    /* FORWARD before LOADLIBRARY: no dispatch function */
    uint32_t idx = APIR_FWD_GET_INFO;
    memcpy(buf + n, &idx, 4);
    assert_int_equal(run(&f, buf, n + 4, 0), APIR_FORWARD_NO_DISPATCH_FCT);
    /* reply to an unknown resource, to none, and to a too-small page: dropped */
    n = put_header(buf, APIR_COMMAND_TYPE_LOADLIBRARY, 999);
    assert_int_equal(run(&f, buf, n, 0), NOT_WRITTEN);
    n = put_header(buf, APIR_COMMAND_TYPE_LOADLIBRARY, 0);
    assert_int_equal(run(&f, buf, n, 0), NOT_WRITTEN);
    uint8_t tiny[4] = {0};
    assert_int_equal(apir_context_attach_resource(f.ctx, 8, tiny, sizeof tiny), 0);
    assert_int_equal(apir_context_attach_resource(f.ctx, 8, tiny, sizeof tiny), -1);
    n = put_header(buf, APIR_COMMAND_TYPE_LOADLIBRARY, 8);
    assert_int_equal(run(&f, buf, n, 0), NOT_WRITTEN);
    assert_int_equal(tiny[0], 0);
    apir_context_detach_resource(f.ctx, 8);
    /* several commands in one buffer: both run, the last reply wins */
    n = put_header(buf, APIR_COMMAND_TYPE_HANDSHAKE, REPLY_RES);
    uint32_t v[2] = {APIR_PROTOCOL_MAJOR, 0};
    memcpy(buf + n, v, 8);
    n += 8;
    n += put_header(buf + n, APIR_COMMAND_TYPE_LOADLIBRARY, REPLY_RES);
    assert_int_equal(run(&f, buf, n, 0), APIR_LOAD_LIBRARY_ENV_VAR_MISSING);
    close_ctx(&f);
}

/* Word padding (virtio-gpu counts words): the pad announced in cmd_flags is skipped, so a
 * FORWARD's arguments do not grow by it; a pad larger than what is left is malformed. */
static void test_word_padding(void **state)
{
    clear_env();
    struct fixture f = open_ctx(APIR_CAPSET_ID_APIR);
    uint8_t buf[48] = {0};
    /* FORWARD with a 2-byte index: 12 + 2 bytes padded to 16; the pad must not complete the index */
    struct apir_command_header h = {APIR_COMMAND_TYPE_FORWARD, 2, REPLY_RES};
    memcpy(buf, &h, sizeof h);
    assert_int_equal(run(&f, buf, 16, 0), APIR_FORWARD_BASE_INDEX + APIR_BACKEND_ERR_DECODE);
    /* a whole index plus 2 pad bytes: the index arrives (no library yet: no dispatch function) */
    uint32_t idx = APIR_FWD_GET_INFO;
    memcpy(buf + 12, &idx, 4);
    assert_int_equal(run(&f, buf, 18, 0), APIR_FORWARD_NO_DISPATCH_FCT);
    /* HANDSHAKE (fixed payload) + 3 pad bytes, then another command: the pad is skipped */
    h = (struct apir_command_header){APIR_COMMAND_TYPE_HANDSHAKE, 3, REPLY_RES};
    memcpy(buf, &h, sizeof h);
    uint32_t v[2] = {APIR_PROTOCOL_MAJOR, 0};
    memcpy(buf + 12, v, 8);
    size_t n = 20 + 3;
    n += put_header(buf + n, APIR_COMMAND_TYPE_LOADLIBRARY, REPLY_RES);
    assert_int_equal(run(&f, buf, n, 0), APIR_LOAD_LIBRARY_ENV_VAR_MISSING);
    /* more pad than bytes left: malformed, nothing runs */
    h = (struct apir_command_header){APIR_COMMAND_TYPE_LOADLIBRARY, 3, REPLY_RES};
    memcpy(buf, &h, sizeof h);
    assert_int_equal(run(&f, buf, 14, -1), NOT_WRITTEN);
    close_ctx(&f);
}

static void test_configure_keys(void **state)
{
    clear_env();
    struct fixture f = open_ctx(APIR_CAPSET_ID_APIR);
    assert_int_equal(apir_context_configure(f.ctx, "no.such.key", "x"), -1);
    assert_int_equal(apir_context_configure(f.ctx, APIR_KEY_GGML_LIBRARY_REG, "x"), 0);
    assert_int_equal(apir_context_configure(f.ctx, APIR_KEY_GGML_LIBRARY_REG, NULL), 0);
    close_ctx(&f);
}

static void test_load_library_component_codes(void **state)
{
    clear_env();
    struct fixture f = open_ctx(APIR_CAPSET_ID_APIR);
    assert_int_equal(load_library(&f, 0), APIR_LOAD_LIBRARY_ENV_VAR_MISSING);
    apir_context_configure(f.ctx, APIR_KEY_LOAD_LIBRARY_PATH, "/nonexistent/libnothing.so");
    assert_int_equal(load_library(&f, 0), APIR_LOAD_LIBRARY_CANNOT_OPEN);
    if (base_lib()) {
        /* a real library without the apir_backend_* entry points */
        apir_context_configure(f.ctx, APIR_KEY_LOAD_LIBRARY_PATH, base_lib());
        assert_int_equal(load_library(&f, 0), APIR_LOAD_LIBRARY_SYMBOL_MISSING);
    }
    close_ctx(&f);
    /* the environment fills the table at creation */
    setenv(APIR_ENV_BACKEND_LIBRARY, "/nonexistent/libfromenv.so", 1);
    f = open_ctx(APIR_CAPSET_ID_APIR);
    assert_int_equal(load_library(&f, 0), APIR_LOAD_LIBRARY_CANNOT_OPEN);
    /* and the hypervisor's configure overrides it */
    apir_context_configure(f.ctx, APIR_KEY_LOAD_LIBRARY_PATH, NULL);
    assert_int_equal(load_library(&f, 0), APIR_LOAD_LIBRARY_ENV_VAR_MISSING);
    close_ctx(&f);
    clear_env();
}

/* one context per configuration variation, all against the real backend library */
static int load_with(const char *ggml_path, const char *reg)
{
    struct fixture f = open_ctx(APIR_CAPSET_ID_APIR);
    apir_context_configure(f.ctx, APIR_KEY_LOAD_LIBRARY_PATH, backend_lib());
    apir_context_configure(f.ctx, APIR_KEY_GGML_LIBRARY_PATH, ggml_path);
    apir_context_configure(f.ctx, APIR_KEY_GGML_LIBRARY_REG, reg);
    int rc = load_library(&f, 0);
    close_ctx(&f);
    return rc;
}

static void test_load_library_backend_codes(void **state)
{
    if (!backend_lib() || !cpu_lib() || !base_lib())
        skip();
    clear_env();
    assert_int_equal(load_with(cpu_lib(), NULL), APIR_LOAD_LIBRARY_SUCCESS);
    assert_int_equal(load_with(cpu_lib(), APIR_DEFAULT_REG_SYMBOL), APIR_LOAD_LIBRARY_SUCCESS);
    assert_int_equal(load_with(NULL, NULL), APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INIT_GGML_PATH_MISSING);
    assert_int_equal(load_with("/nonexistent/libggml-x.so", NULL),
                     APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INIT_GGML_CANNOT_OPEN);
    assert_int_equal(load_with(base_lib(), NULL), APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INIT_REG_SYMBOL_MISSING);
    assert_int_equal(load_with(cpu_lib(), "no_such_reg_function"),
                     APIR_LOAD_LIBRARY_INIT_BASE_INDEX + APIR_BACKEND_INIT_REG_NAMED_MISSING);
    /* already loaded, and FORWARD reaches the backend once loaded */
    struct fixture f = open_ctx(APIR_CAPSET_ID_APIR);
    apir_context_configure(f.ctx, APIR_KEY_LOAD_LIBRARY_PATH, backend_lib());
    apir_context_configure(f.ctx, APIR_KEY_GGML_LIBRARY_PATH, cpu_lib());
    assert_int_equal(load_library(&f, 0), APIR_LOAD_LIBRARY_SUCCESS);
    assert_int_equal(load_library(&f, 0), APIR_LOAD_LIBRARY_ALREADY_LOADED);
    uint8_t buf[32];
    size_t n = put_header(buf, APIR_COMMAND_TYPE_FORWARD, REPLY_RES);
    uint32_t idx = APIR_FWD_GET_INFO;
    memcpy(buf + n, &idx, 4);
    assert_int_equal(run(&f, buf, n + 4, 0), APIR_FORWARD_BASE_INDEX + APIR_BACKEND_OK);
    uint32_t reply[3];
    memcpy(reply, f.page + 4, sizeof reply);
    assert_int_equal(reply[0], 8);
    assert_int_equal(reply[1], APIR_FORWARD_PROTOCOL_VERSION);
    assert_true(reply[2] >= 1);
    /* an unknown FORWARD command is the backend's error, not a crash */
    idx = 100000;
    memcpy(buf + n, &idx, 4);
    assert_int_equal(run(&f, buf, n + 4, 0), APIR_FORWARD_BASE_INDEX + APIR_BACKEND_ERR_UNKNOWN_CMD);
    /* a second context shares the loaded library; destroying one keeps the other working */
    struct fixture g = open_ctx(APIR_CAPSET_ID_APIR);
    apir_context_configure(g.ctx, APIR_KEY_LOAD_LIBRARY_PATH, backend_lib());
    apir_context_configure(g.ctx, APIR_KEY_GGML_LIBRARY_PATH, cpu_lib());
    assert_int_equal(load_library(&g, 0), APIR_LOAD_LIBRARY_SUCCESS);
    close_ctx(&f);
    idx = APIR_FWD_GET_INFO;
    memcpy(buf + n, &idx, 4);
    assert_int_equal(run(&g, buf, n + 4, 0), APIR_FORWARD_BASE_INDEX + APIR_BACKEND_OK);
    close_ctx(&g);
}

/* one FORWARD: cmd, then args; returns the backend status, the reply payload in f->page + 8 */
static int forward(struct fixture *f, uint32_t cmd, const void *args, size_t n_args)
{
    uint8_t buf[128];
    size_t n = put_header(buf, APIR_COMMAND_TYPE_FORWARD, REPLY_RES);
    memcpy(buf + n, &cmd, 4);
    memcpy(buf + n + 4, args, n_args);
    return run(f, buf, n + 4 + n_args, 0) - APIR_FORWARD_BASE_INDEX;
}

/* The component tells the backend before a resource goes (apir_backend_resource_detach): a
 * resource the backend pinned for the device is unpinned while it is still mapped. On the
 * fake GGML library's GPU-like device, which pins as ggml-cuda does. */
static void test_detach_unpins(void **state)
{
    if (!backend_lib() || !fake_lib())
        skip();
    clear_env();
    struct fixture f = open_ctx(APIR_CAPSET_ID_APIR);
    apir_context_configure(f.ctx, APIR_KEY_LOAD_LIBRARY_PATH, backend_lib());
    apir_context_configure(f.ctx, APIR_KEY_GGML_LIBRARY_PATH, fake_lib());
    apir_context_configure(f.ctx, APIR_KEY_GGML_LIBRARY_REG, "fake_reg_async");
    assert_int_equal(load_library(&f, 0), APIR_LOAD_LIBRARY_SUCCESS);
    void *lib = dlopen(fake_lib(), RTLD_NOW | RTLD_NOLOAD);
    assert_non_null(lib);
    void (*device_memory)(bool) = (void (*)(bool))dlsym(lib, "fake_async_device_memory");
    int (*pinned)(void) = (int (*)(void))dlsym(lib, "fake_pinned_count");
    assert_true(device_memory && pinned);
    device_memory(true);

    uint32_t dev = 0;
    assert_int_equal(forward(&f, APIR_FWD_DEVICE_GET_INFO, &dev, 4), APIR_BACKEND_OK);
    uint32_t len;
    memcpy(&len, f.page + 4, 4);
    struct apir_decoder d;
    apir_decoder_init(&d, f.page + 8, len);
    char s[256];
    apir_get_str(&d, s, sizeof s);
    apir_get_str(&d, s, sizeof s);
    apir_get_u32(&d);
    for (int i = 0; i < 4; i++)
        apir_get_u8(&d);
    uint32_t buft = apir_get_u32(&d);
    assert_false(d.error);

    enum { BIG = 2 << 20, RES = 42 };
    uint8_t args[40];
    struct apir_encoder e;
    apir_encoder_init(&e, args, sizeof args);
    apir_put_u32(&e, buft);
    apir_put_u64(&e, BIG);
    assert_int_equal(forward(&f, APIR_FWD_BUFT_ALLOC_BUFFER, args, e.pos), APIR_BACKEND_OK);
    uint32_t buf;
    memcpy(&buf, f.page + 8, 4);
    uint8_t *res = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(res != MAP_FAILED);
    assert_int_equal(apir_context_attach_resource(f.ctx, RES, res, BIG), 0);
    apir_encoder_init(&e, args, sizeof args);
    apir_put_u32(&e, buf);
    apir_put_u64(&e, 0);
    apir_put_u64(&e, BIG);
    apir_put_u32(&e, RES);
    apir_put_u64(&e, 0);
    assert_int_equal(forward(&f, APIR_FWD_BUFFER_SET, args, e.pos), APIR_BACKEND_OK);
    assert_int_equal(pinned(), 1);
    apir_context_detach_resource(f.ctx, RES);
    assert_int_equal(pinned(), 0); /* before the caller unmaps it */
    munmap(res, BIG);
    device_memory(false);
    close_ctx(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_capsets),
        cmocka_unit_test(test_duplicate_ctx_id),
        cmocka_unit_test(test_malformed_buffers),
        cmocka_unit_test(test_word_padding),
        cmocka_unit_test(test_configure_keys),
        cmocka_unit_test(test_load_library_component_codes),
        cmocka_unit_test(test_load_library_backend_codes),
        cmocka_unit_test(test_detach_unpins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
