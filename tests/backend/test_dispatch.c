/* Direct test of libggml-virtgpu-backend.so through its three entry points, on the real ggml
 * CPU backend: initialization errors and their log lines, every FORWARD command, a MUL_MAT
 * computed and recomputed, hostile arguments, handle isolation between contexts, and deinit
 * with live objects (the ASan build checks that nothing leaks). */
#include "apir_codec.h"
#include "apir_forward.h"
#include "apir_protocol.h"
#include "session_fixture.h"
#include "wire_util.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                        \
        }                                                                      \
    } while (0)
#define CHECK_EQ(a, b)                                                                               \
    do {                                                                                             \
        long long _a = (long long)(a), _b = (long long)(b);                                          \
        if (_a != _b) {                                                                              \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, _a, _b); \
            failures++;                                                                              \
        }                                                                                            \
    } while (0)

/* ---- the component's side: configuration and one shared resource ---- */
#define RES_ID 5
#define SHM_SIZE 65536
static const char *cfg_path, *cfg_reg;
static uint8_t *shm;

static const char *get_config(uint32_t ctx, const char *key)
{
    if (!strcmp(key, APIR_KEY_GGML_LIBRARY_PATH))
        return cfg_path;
    if (!strcmp(key, APIR_KEY_GGML_LIBRARY_REG))
        return cfg_reg;
    return NULL;
}
/* and a second resource, larger than the host's stage, for test_queued_write_order */
#define BIG_RES 9
#define BIG_SHM ((size_t)APIR_MAX_QUEUED_SET + 8192)
static uint8_t *big_shm;
static void *get_shmem_ptr(uint32_t ctx, uint32_t res) { return res == RES_ID ? shm : res == BIG_RES ? big_shm : NULL; }
static uint64_t get_shmem_size(uint32_t ctx, uint32_t res)
{
    return res == RES_ID ? SHM_SIZE : res == BIG_RES && big_shm ? BIG_SHM : 0;
}
static struct virgl_apir_callbacks cbs = {get_config, get_shmem_ptr, get_shmem_size};

/* ---- FORWARD calls ---- */
static uint8_t args[1 << 16], reply[4096];
static struct apir_encoder a;
static struct apir_decoder r;

static void begin(void) { apir_encoder_init(&a, args, sizeof args); }

static uint32_t call_cap(uint32_t ctx, uint32_t cmd, size_t cap)
{
    return sf_call(ctx, &cbs, cmd, args, a.pos, reply, cap, &r);
}
static uint32_t call(uint32_t ctx, uint32_t cmd) { return call_cap(ctx, cmd, sizeof reply); }
/* SUPPORTS_OP / BUFT_GET_ALLOC_SIZE arguments: a device or buffer type, then n tensors */
static void begin_op(uint32_t first, const struct apir_wire_tensor *t, uint32_t n)
{
    begin();
    apir_put_u32(&a, first);
    apir_put_u32(&a, n);
    for (uint32_t i = 0; i < n; i++)
        apir_wire_tensor_encode(&a, &t[i]);
}

/* GRAPH_COMPUTE arguments: the backend, then the graph */
static void begin_graph(uint32_t backend, const struct apir_wire_tensor *t, uint32_t n, const uint32_t *nodes,
                        uint32_t n_nodes)
{
    begin();
    apir_put_u32(&a, backend);
    wt_put_graph(&a, t, n, nodes, n_nodes);
}

/* a command whose only argument is one u32 (a handle or a device index) */
static uint32_t call_u32(uint32_t ctx, uint32_t cmd, uint32_t arg)
{
    begin();
    apir_put_u32(&a, arg);
    return call(ctx, cmd);
}

/* GRAPH_RECOMPUTE of a slot, reading no outputs back */
static uint32_t recompute_slot(uint32_t ctx, uint32_t be, uint32_t slot)
{
    begin();
    wt_put_recompute(&a, be, slot);
    return call(ctx, APIR_FWD_GRAPH_RECOMPUTE);
}

/* of slot 0, where the first graph a backend computes is kept */
static uint32_t recompute(uint32_t ctx, uint32_t be) { return recompute_slot(ctx, be, 0); }

/* DEVICE_GET_INFO's reply: name, description, type, four capabilities, the device's buffer
 * type and host buffer type; returns the buffer type */
static uint32_t device_info_reply(char *name, size_t cap, uint32_t *type)
{
    char desc[256];
    apir_get_str(&r, name, cap);
    apir_get_str(&r, desc, sizeof desc);
    *type = apir_get_u32(&r);
    for (int i = 0; i < 4; i++)
        apir_get_u8(&r);
    uint32_t buft = apir_get_u32(&r);
    apir_get_u32(&r);
    CHECK(apir_decoder_done(&r));
    return buft;
}

static char log_path[256];
static int log_has(const char *needle)
{
    FILE *f = fopen(log_path, "r");
    char line[1024];
    int found = 0;
    while (f && fgets(line, sizeof line, f))
        found |= strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

static void test_init_errors(const char *cpu)
{
    cfg_path = NULL;
    cfg_reg = NULL;
    CHECK_EQ(apir_backend_initialize(1, &cbs), APIR_BACKEND_INIT_GGML_PATH_MISSING);
    CHECK(log_has("cannot open the GGML library: env var 'APIR_LLAMA_CPP_GGML_LIBRARY_PATH' not defined"));
    cfg_path = "/nonexistent/libggml-nothing.so";
    CHECK_EQ(apir_backend_initialize(1, &cbs), APIR_BACKEND_INIT_GGML_CANNOT_OPEN);
    CHECK(log_has("/nonexistent/libggml-nothing.so"));
    cfg_path = GGML_LIB_DIR "/libggml-base.so"; /* a library without ggml_backend_init */
    CHECK_EQ(apir_backend_initialize(1, &cbs), APIR_BACKEND_INIT_REG_SYMBOL_MISSING);
    CHECK(log_has("cannot register the GGML library: env var 'APIR_LLAMA_CPP_GGML_LIBRARY_REG' not defined"));
    cfg_path = cpu;
    cfg_reg = "ggml_backend_no_such_reg";
    CHECK_EQ(apir_backend_initialize(1, &cbs), APIR_BACKEND_INIT_REG_NAMED_MISSING);
    CHECK(log_has("ggml_backend_no_such_reg"));
    /* a library whose registration fails, has another API version, or has no device */
    cfg_path = FAKE_GGML_LIB;
    cfg_reg = NULL;
    CHECK_EQ(apir_backend_initialize(1, &cbs), APIR_BACKEND_INIT_REG_SYMBOL_MISSING);
    cfg_reg = "fake_reg_null";
    CHECK_EQ(apir_backend_initialize(1, &cbs), APIR_BACKEND_INIT_REG_FAILED);
    cfg_reg = "fake_reg_old_api";
    CHECK_EQ(apir_backend_initialize(1, &cbs), APIR_BACKEND_INIT_API_VERSION);
    CHECK(log_has("version 1") && log_has("v0.5.0"));
    cfg_reg = "fake_reg_no_device";
    CHECK_EQ(apir_backend_initialize(1, &cbs), APIR_BACKEND_INIT_NO_DEVICE);
    cfg_path = cpu;
    cfg_reg = "";
    /* not initialized yet */
    begin();
    CHECK_EQ(call(1, APIR_FWD_GET_INFO), APIR_BACKEND_ERR_NOT_INITIALIZED);
}

static uint32_t alloc_buffer(uint32_t ctx, uint32_t buft, uint64_t size)
{
    begin();
    apir_put_u32(&a, buft);
    apir_put_u64(&a, size);
    uint32_t st = call(ctx, APIR_FWD_BUFT_ALLOC_BUFFER);
    uint32_t h = apir_get_u32(&r);
    uint64_t got = apir_get_u64(&r);
    CHECK(st != APIR_BACKEND_OK || (h && got >= size && apir_decoder_done(&r)));
    return st == APIR_BACKEND_OK ? h : 0;
}

static uint32_t transfer(uint32_t ctx, uint32_t cmd, uint32_t buf, uint64_t off, uint64_t size, uint32_t res,
                         uint64_t shm_off)
{
    begin();
    wt_put_transfer(&a, buf, off, size, res, shm_off);
    return call(ctx, cmd);
}

/* BUFFER_MEMSET in context 1; its arguments stay in the encoder for a call that adds some */
static uint32_t buffer_memset(uint32_t buf, uint64_t off, uint64_t size, uint8_t value)
{
    begin();
    apir_put_u32(&a, buf);
    apir_put_u64(&a, off);
    apir_put_u64(&a, size);
    apir_put_u8(&a, value);
    return call(1, APIR_FWD_BUFFER_MEMSET);
}

static void check_mul_mat(uint32_t ctx, uint32_t buf, const float *A, const float *B)
{
    float *c = (float *)(shm + 1024);
    memset(c, 0, 24);
    CHECK_EQ(transfer(ctx, APIR_FWD_BUFFER_GET, buf, 128, 24, RES_ID, 1024), APIR_BACKEND_OK);
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 3; i++) {
            float want = 0;
            for (int k = 0; k < 4; k++)
                want += A[i * 4 + k] * B[j * 4 + k];
            if (c[j * 3 + i] != want) {
                fprintf(stderr, "c[%d][%d] = %g, expected %g\n", j, i, c[j * 3 + i], want);
                failures++;
            }
        }
}

/* BUFFER_SET_INLINE with `declared` as its size field and n bytes of data; no_reply runs it
 * as the component does for reply_res_id 0 (no reply range at all) */
static uint32_t set_inline(uint32_t ctx, uint32_t buf, uint64_t off, uint32_t declared, const void *data, size_t n,
                           bool no_reply)
{
    begin();
    apir_put_u32(&a, buf);
    apir_put_u64(&a, off);
    apir_put_u32(&a, declared);
    apir_put_bytes(&a, data, n);
    if (!no_reply)
        return call(ctx, APIR_FWD_BUFFER_SET_INLINE);
    char *end = (char *)reply;
    return apir_backend_dispatcher(ctx, &cbs, APIR_FWD_BUFFER_SET_INLINE, (char *)args, (char *)args + a.pos, NULL,
                                   NULL, &end);
}

static uint32_t on_backend(uint32_t ctx, uint32_t cmd, uint32_t be)
{
    begin();
    apir_put_u32(&a, be);
    return call(ctx, cmd);
}

/* hostile inline writes, and fire-and-forget failures reported at the next waiting command */
static void test_set_inline(uint32_t buf, uint32_t buft, uint32_t be)
{
    uint8_t pat[64], back[64];
    for (int i = 0; i < 64; i++)
        pat[i] = (uint8_t)(0xa0 + i);
    /* with a reply: plain status, nothing deferred */
    CHECK_EQ(set_inline(1, buf, 3000, 64, pat, 64, false), APIR_BACKEND_OK);
    memset(shm + 2048, 0, 64);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 3000, 64, RES_ID, 2048), APIR_BACKEND_OK);
    CHECK(!memcmp(shm + 2048, pat, 64));
    CHECK_EQ(set_inline(1, buf, 3000, 100, pat, 10, false), APIR_BACKEND_ERR_DECODE); /* size > message */
    CHECK_EQ(set_inline(1, buf, 3000, 4, pat, 8, false), APIR_BACKEND_ERR_DECODE);    /* trailing bytes */
    CHECK_EQ(set_inline(1, buf, 3000, APIR_MAX_INLINE_SET + 1, pat, 64, false), APIR_BACKEND_ERR_BOUNDS);
    CHECK_EQ(set_inline(1, buf, 3000, UINT32_MAX, pat, 64, false), APIR_BACKEND_ERR_BOUNDS);
    CHECK_EQ(set_inline(1, buf, 4090, 16, pat, 16, false), APIR_BACKEND_ERR_BOUNDS); /* past the buffer */
    CHECK_EQ(set_inline(1, buf, UINT64_MAX - 1, 16, pat, 16, false), APIR_BACKEND_ERR_BOUNDS);
    CHECK_EQ(set_inline(1, buf + 1000, 0, 16, pat, 16, false), APIR_BACKEND_ERR_HANDLE);
    CHECK_EQ(set_inline(1, buft, 0, 16, pat, 16, false), APIR_BACKEND_ERR_HANDLE);
    CHECK_EQ(set_inline(1, buf, 0, 0, NULL, 0, false), APIR_BACKEND_OK);
    begin();
    apir_put_u32(&a, buf);
    CHECK_EQ(call(1, APIR_FWD_BUFFER_SET_INLINE), APIR_BACKEND_ERR_DECODE); /* short header */
    /* none of those touched the data */
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 3000, 64, RES_ID, 2048), APIR_BACKEND_OK);
    CHECK(!memcmp(shm + 2048, pat, 64));
    CHECK_EQ(recompute(1, be), APIR_BACKEND_OK);

    /* fire-and-forget: a success leaves nothing behind and the data is there */
    for (int i = 0; i < 64; i++)
        pat[i] = (uint8_t)(0x10 + i);
    CHECK_EQ(set_inline(1, buf, 3000, 64, pat, 64, true), APIR_BACKEND_OK);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 3000, 64, RES_ID, 2048), APIR_BACKEND_OK);
    CHECK(!memcmp(shm + 2048, pat, 64));
    /* a stale handle: the next GRAPH_RECOMPUTE returns it instead of running; the first
     * failure wins over a later one; commands that do not wait do not consume it */
    CHECK_EQ(set_inline(1, buf + 1000, 0, 16, pat, 16, true), APIR_BACKEND_ERR_HANDLE);
    CHECK(log_has("BUFFER_SET_INLINE (no reply) failed with status 4"));
    CHECK_EQ(set_inline(1, buf, 4090, 16, pat, 16, true), APIR_BACKEND_ERR_BOUNDS);
    begin();
    CHECK_EQ(call(1, APIR_FWD_GET_INFO), APIR_BACKEND_OK);
    CHECK_EQ(recompute(1, be), APIR_BACKEND_ERR_HANDLE);
    CHECK(log_has("GRAPH_RECOMPUTE not run: returning the deferred error 4"));
    CHECK_EQ(recompute(1, be), APIR_BACKEND_OK); /* cleared */
    CHECK_EQ(apir_get_u32(&r), 0);
    /* ... and at BUFFER_GET, BACKEND_SYNCHRONIZE, GRAPH_COMPUTE */
    CHECK_EQ(set_inline(1, buf, 3000, APIR_MAX_INLINE_SET + 1, pat, 16, true), APIR_BACKEND_ERR_BOUNDS);
    memset(back, 0x5a, sizeof back);
    memcpy(shm + 2048, back, sizeof back);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 3000, 64, RES_ID, 2048), APIR_BACKEND_ERR_BOUNDS);
    CHECK(!memcmp(shm + 2048, back, 64)); /* the GET did not run */
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 3000, 64, RES_ID, 2048), APIR_BACKEND_OK);
    CHECK_EQ(set_inline(1, buf, 0, 100, pat, 10, true), APIR_BACKEND_ERR_DECODE);
    CHECK_EQ(on_backend(1, APIR_FWD_BACKEND_SYNCHRONIZE, be), APIR_BACKEND_ERR_DECODE);
    CHECK_EQ(on_backend(1, APIR_FWD_BACKEND_SYNCHRONIZE, be), APIR_BACKEND_OK);
    CHECK_EQ(set_inline(1, buft, 0, 16, pat, 16, true), APIR_BACKEND_ERR_HANDLE);
    struct apir_wire_tensor t[3];
    uint32_t node = 2;
    wt_mul_mat(t, buf);
    begin_graph(be, t, 3, &node, 1);
    CHECK_EQ(call(1, APIR_FWD_GRAPH_COMPUTE), APIR_BACKEND_ERR_HANDLE);
    CHECK_EQ(call(1, APIR_FWD_GRAPH_COMPUTE), APIR_BACKEND_OK);
}

static void test_session(const char *cpu)
{
    cfg_path = cpu;
    ggml_log_callback before_cb, cb;
    void *before_ud, *ud;
    ggml_log_get(&before_cb, &before_ud);
    CHECK(!apir_backend_computes_off_cpu(1)); /* no context yet */
    CHECK_EQ(apir_backend_initialize(1, &cbs), APIR_BACKEND_INIT_SUCCESS);
    CHECK_EQ(apir_backend_initialize(1, &cbs), APIR_BACKEND_INIT_ALREADY);
    /* a CPU: the worker must not poll for commands on cores its compute threads need */
    CHECK(!apir_backend_computes_off_cpu(1));
    /* the host ggml's own log goes to the backend library's log while a context lives */
    ggml_log_get(&cb, &ud);
    CHECK(cb != before_cb);
    cb(GGML_LOG_LEVEL_INFO, "a line from the host ggml\n", ud);
    CHECK(log_has("a line from the host ggml"));

    /* framing: unknown command, trailing bytes, short reply page */
    begin();
    CHECK_EQ(call(1, APIR_FWD_COUNT), APIR_BACKEND_ERR_UNKNOWN_CMD);
    CHECK_EQ(call(1, 0xffffffffu), APIR_BACKEND_ERR_UNKNOWN_CMD);
    CHECK_EQ(call(1, APIR_FWD_GET_INFO), APIR_BACKEND_OK);
    CHECK_EQ(apir_get_u32(&r), APIR_FORWARD_PROTOCOL_VERSION);
    uint32_t n_dev = apir_get_u32(&r);
    CHECK(n_dev >= 1 && apir_decoder_done(&r));
    CHECK_EQ(call_cap(1, APIR_FWD_GET_INFO, 4), APIR_BACKEND_ERR_REPLY_TOO_SMALL);
    apir_put_u8(&a, 0);
    CHECK_EQ(call(1, APIR_FWD_GET_INFO), APIR_BACKEND_ERR_DECODE);

    /* device */
    CHECK_EQ(call_u32(1, APIR_FWD_DEVICE_GET_INFO, 0), APIR_BACKEND_OK);
    char name[128];
    uint32_t type;
    uint32_t buft = device_info_reply(name, sizeof name, &type);
    CHECK(type == 0 /* GGML_BACKEND_DEVICE_TYPE_CPU */ && buft != 0 && !strcmp(name, "CPU"));
    CHECK_EQ(call_cap(1, APIR_FWD_DEVICE_GET_INFO, 6), APIR_BACKEND_ERR_REPLY_TOO_SMALL);
    CHECK_EQ(call(1, APIR_FWD_DEVICE_GET_MEMORY), APIR_BACKEND_OK);
    CHECK_EQ(call_u32(1, APIR_FWD_DEVICE_GET_INFO, n_dev), APIR_BACKEND_ERR_HANDLE);
    begin();
    apir_put_u8(&a, 0); /* short */
    CHECK_EQ(call(1, APIR_FWD_DEVICE_GET_INFO), APIR_BACKEND_ERR_DECODE);

    CHECK_EQ(call_u32(1, APIR_FWD_BUFT_GET_INFO, buft), APIR_BACKEND_OK);
    apir_get_str(&r, name, sizeof name);
    uint64_t align = apir_get_u64(&r);
    apir_get_u64(&r);
    CHECK(apir_get_u8(&r) == 1 && align >= 1 && apir_decoder_done(&r));
    CHECK_EQ(call_u32(1, APIR_FWD_BUFT_GET_INFO, buft + 1000), APIR_BACKEND_ERR_HANDLE);

    /* buffers */
    CHECK_EQ(alloc_buffer(1, buft, 0), 0);
    CHECK_EQ(alloc_buffer(1, 0, 4096), 0);
    CHECK_EQ(alloc_buffer(1, 0xdeadbeef, 4096), 0);
    begin();
    apir_put_u32(&a, buft);
    apir_put_u64(&a, 4096);
    CHECK_EQ(call_cap(1, APIR_FWD_BUFT_ALLOC_BUFFER, 8), APIR_BACKEND_ERR_REPLY_TOO_SMALL);
    /* more than the host has: refused before any allocation */
    begin();
    apir_put_u32(&a, buft);
    apir_put_u64(&a, 1ull << 50);
    CHECK_EQ(call(1, APIR_FWD_BUFT_ALLOC_BUFFER), APIR_BACKEND_ERR_OUT_OF_MEMORY);
    uint32_t buf = alloc_buffer(1, buft, 4096);
    CHECK(buf != 0);

    float A[12], B[8];
    for (int i = 0; i < 12; i++)
        A[i] = (float)(i + 1);
    for (int i = 0; i < 8; i++)
        B[i] = (float)(i % 3) - 0.5f;
    memcpy(shm, A, sizeof A);
    memcpy(shm + 256, B, sizeof B);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_SET, buf, 0, sizeof A, RES_ID, 0), APIR_BACKEND_OK);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_SET, buf, 64, sizeof B, RES_ID, 256), APIR_BACKEND_OK);
    /* hostile transfers */
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_SET, buf, 4090, 16, RES_ID, 0), APIR_BACKEND_ERR_BOUNDS);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_SET, buf, UINT64_MAX - 1, 16, RES_ID, 0), APIR_BACKEND_ERR_BOUNDS);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 0, 16, RES_ID, SHM_SIZE - 8), APIR_BACKEND_ERR_BOUNDS);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 0, 16, RES_ID, UINT64_MAX - 4), APIR_BACKEND_ERR_BOUNDS);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 0, 16, RES_ID + 1, 0), APIR_BACKEND_ERR_HANDLE);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buft, 0, 16, RES_ID, 0), APIR_BACKEND_ERR_HANDLE);

    /* backend + graph */
    CHECK_EQ(call_u32(1, APIR_FWD_BACKEND_INIT, 0), APIR_BACKEND_OK);
    uint32_t be = apir_get_u32(&r);
    CHECK(be != 0);
    CHECK_EQ(recompute(1, be), APIR_BACKEND_ERR_NO_GRAPH);

    struct apir_wire_tensor t[3];
    uint32_t node = 2;
    wt_mul_mat(t, buf);
    begin_graph(be, t, 3, &node, 1);
    size_t full = a.pos;
    a.pos = full - 3; /* truncated */
    CHECK_EQ(call(1, APIR_FWD_GRAPH_COMPUTE), APIR_BACKEND_ERR_DECODE);
    a.pos = full;
    CHECK_EQ(call(1, APIR_FWD_GRAPH_COMPUTE), APIR_BACKEND_OK);
    CHECK_EQ(apir_get_u32(&r), 0 /* GGML_STATUS_SUCCESS */);
    check_mul_mat(1, buf, A, B);

    /* new input, same graph: RECOMPUTE */
    for (int i = 0; i < 8; i++)
        B[i] = (float)i * 0.25f;
    memcpy(shm + 256, B, sizeof B);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_SET, buf, 64, sizeof B, RES_ID, 256), APIR_BACKEND_OK);
    CHECK_EQ(recompute(1, be), APIR_BACKEND_OK);
    CHECK_EQ(apir_get_u32(&r), 0);
    check_mul_mat(1, buf, A, B);
    CHECK_EQ(call_u32(1, APIR_FWD_BACKEND_SYNCHRONIZE, be), APIR_BACKEND_OK);
    test_set_inline(buf, buft, be);
    check_mul_mat(1, buf, A, B);

    /* GET_ROWS: indices are checked before each compute, never reaching ggml's assert */
    {
        struct apir_wire_tensor g[3];
        int32_t idx[2] = {2, 0};
        g[0] = wt_make(GGML_TYPE_F32, 4, 3, 1, 1, buf, 0); /* A's rows */
        g[1] = wt_make(GGML_TYPE_I32, 2, 1, 1, 1, buf, 1024);
        g[2] = wt_make(GGML_TYPE_F32, 4, 2, 1, 1, buf, 1088);
        wt_op2(&g[2], GGML_OP_GET_ROWS);
        g[2].flags = GGML_TENSOR_FLAG_COMPUTE;
        memcpy(shm + 512, idx, sizeof idx);
        CHECK_EQ(transfer(1, APIR_FWD_BUFFER_SET, buf, 1024, 8, RES_ID, 512), APIR_BACKEND_OK);
        uint32_t gnode = 2;
        begin_graph(be, g, 3, &gnode, 1);
        CHECK_EQ(call(1, APIR_FWD_GRAPH_COMPUTE), APIR_BACKEND_OK);
        CHECK_EQ(apir_get_u32(&r), GGML_STATUS_SUCCESS);
        uint32_t gslot = apir_get_u32(&r); /* the mul_mat graph keeps slot 0 */
        CHECK(gslot != 0 && gslot < APIR_GRAPH_SLOTS);
        CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 1088, 32, RES_ID, 600), APIR_BACKEND_OK);
        CHECK(!memcmp(shm + 600, A + 8, 16) && !memcmp(shm + 616, A, 16));
        int32_t bad[3][2] = {{0, 3}, {-1, 0}, {0, 0x7fffffff}};
        for (int i = 0; i < 3; i++) {
            memcpy(shm + 512, bad[i], sizeof bad[i]);
            CHECK_EQ(transfer(1, APIR_FWD_BUFFER_SET, buf, 1024, 8, RES_ID, 512), APIR_BACKEND_OK);
            CHECK_EQ(recompute_slot(1, be, gslot), APIR_BACKEND_ERR_BOUNDS);
        }
        /* the mul_mat graph is still kept; a slot past the last is malformed */
        CHECK_EQ(recompute_slot(1, be, 0), APIR_BACKEND_OK);
        CHECK_EQ(recompute_slot(1, be, APIR_GRAPH_SLOTS), APIR_BACKEND_ERR_DECODE);
        /* back to the mul_mat graph */
        begin_graph(be, t, 3, &node, 1);
        CHECK_EQ(call(1, APIR_FWD_GRAPH_COMPUTE), APIR_BACKEND_OK);
    }

    /* supports_op and alloc size on the op alone (no buffers) */
    for (int i = 0; i < 3; i++)
        t[i].buffer = 0;
    begin_op(0, t, 3);
    CHECK_EQ(call(1, APIR_FWD_DEVICE_SUPPORTS_OP), APIR_BACKEND_OK);
    CHECK_EQ(apir_get_u8(&r), 1);
    begin_op(buft, t, 3);
    CHECK_EQ(call(1, APIR_FWD_BUFT_GET_ALLOC_SIZE), APIR_BACKEND_OK);
    CHECK_EQ(apir_get_u64(&r), 24);

    /* copy / memset / clear */
    begin();
    apir_put_u32(&a, buf);
    apir_put_u64(&a, 0);
    apir_put_u32(&a, buf);
    apir_put_u64(&a, 2048);
    apir_put_u64(&a, sizeof A);
    CHECK_EQ(call(1, APIR_FWD_BUFFER_COPY), APIR_BACKEND_OK);
    CHECK_EQ(apir_get_u8(&r), 1);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 2048, sizeof A, RES_ID, 4096), APIR_BACKEND_OK);
    CHECK(!memcmp(shm + 4096, A, sizeof A));
    begin(); /* overlapping copy in one buffer */
    apir_put_u32(&a, buf);
    apir_put_u64(&a, 0);
    apir_put_u32(&a, buf);
    apir_put_u64(&a, 8);
    apir_put_u64(&a, 16);
    CHECK_EQ(call(1, APIR_FWD_BUFFER_COPY), APIR_BACKEND_ERR_BOUNDS);
    CHECK_EQ(buffer_memset(buf, 4000, 96, 0xab), APIR_BACKEND_OK);
    apir_put_u8(&a, 0); /* trailing byte */
    CHECK_EQ(call(1, APIR_FWD_BUFFER_MEMSET), APIR_BACKEND_ERR_DECODE);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 4000, 96, RES_ID, 8192), APIR_BACKEND_OK);
    CHECK(shm[8192] == 0xab && shm[8192 + 95] == 0xab);
    CHECK_EQ(buffer_memset(buf, 4000, 97, 0xab), APIR_BACKEND_ERR_BOUNDS);
    begin();
    apir_put_u32(&a, buf);
    apir_put_u8(&a, 0);
    CHECK_EQ(call(1, APIR_FWD_BUFFER_CLEAR), APIR_BACKEND_OK);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 4000, 96, RES_ID, 8192), APIR_BACKEND_OK);
    CHECK(shm[8192] == 0 && shm[8192 + 95] == 0);

    /* a second context: its own handles; ours do not resolve there */
    CHECK_EQ(apir_backend_initialize(2, &cbs), APIR_BACKEND_INIT_SUCCESS);
    CHECK_EQ(transfer(2, APIR_FWD_BUFFER_GET, buf, 0, 16, RES_ID, 0), APIR_BACKEND_ERR_HANDLE);
    CHECK_EQ(recompute(2, be), APIR_BACKEND_ERR_HANDLE);
    CHECK_EQ(call_u32(2, APIR_FWD_BUFFER_FREE, buf), APIR_BACKEND_ERR_HANDLE);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 0, 16, RES_ID, 0), APIR_BACKEND_OK);
    uint32_t buf2 = alloc_buffer(2, buft, 1024);
    CHECK(buf2 != 0);

    /* freeing a buffer drops the cached graph (it points into it); the handle goes stale */
    CHECK_EQ(call_u32(1, APIR_FWD_BUFFER_FREE, buf), APIR_BACKEND_OK);
    CHECK_EQ(call(1, APIR_FWD_BUFFER_FREE), APIR_BACKEND_ERR_HANDLE);
    CHECK_EQ(recompute(1, be), APIR_BACKEND_ERR_NO_GRAPH);
    uint32_t buf3 = alloc_buffer(1, buft, 4096);
    CHECK(buf3 != 0 && buf3 != buf);
    CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf, 0, 16, RES_ID, 0), APIR_BACKEND_ERR_HANDLE);

    /* no argument bytes and no reply page at all (NULL ranges) */
    {
        char *end = (char *)1;
        CHECK_EQ(apir_backend_dispatcher(1, &cbs, APIR_FWD_GET_INFO, NULL, NULL, NULL, NULL, &end),
                 APIR_BACKEND_ERR_REPLY_TOO_SMALL);
        CHECK(end == NULL);
        CHECK_EQ(apir_backend_dispatcher(1, NULL, APIR_FWD_BACKEND_FREE, NULL, NULL, NULL, NULL, NULL),
                 APIR_BACKEND_ERR_DECODE);
        /* that failure had no reply: the next waiting command reports it, once */
        CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf3, 0, 16, RES_ID, 0), APIR_BACKEND_ERR_DECODE);
        CHECK_EQ(transfer(1, APIR_FWD_BUFFER_GET, buf3, 0, 16, RES_ID, 0), APIR_BACKEND_OK);
        begin();
        apir_put_u32(&a, buf3);
        apir_put_u8(&a, 7);
        CHECK_EQ(apir_backend_dispatcher(1, NULL, APIR_FWD_BUFFER_CLEAR, (char *)args, (char *)args + a.pos, NULL, NULL,
                                         NULL),
                 APIR_BACKEND_OK);
    }

    /* leave a computed graph, a backend and buffers live, then disconnect both contexts */
    wt_mul_mat(t, buf3);
    begin_graph(be, t, 3, &node, 1);
    CHECK_EQ(call(1, APIR_FWD_GRAPH_COMPUTE), APIR_BACKEND_OK);
    CHECK_EQ(call_u32(2, APIR_FWD_BACKEND_INIT, 0), APIR_BACKEND_OK);
    apir_backend_deinit(1);
    apir_backend_deinit(2);
    apir_backend_deinit(2); /* unknown: harmless */
    begin();
    CHECK_EQ(call(1, APIR_FWD_GET_INFO), APIR_BACKEND_ERR_NOT_INITIALIZED);

    /* the library stays loaded and shared: a new context works at once */
    CHECK_EQ(apir_backend_initialize(1, &cbs), APIR_BACKEND_INIT_SUCCESS);
    CHECK_EQ(call(1, APIR_FWD_GET_INFO), APIR_BACKEND_OK);
    apir_backend_deinit(1);
    /* the last context gone, ggml's logger is what it was */
    ggml_log_get(&cb, &ud);
    CHECK(cb == before_cb && ud == before_ud);
}

/* ---- a GPU-like host: fake_reg_async queues writes until its stream synchronizes ---- */

static int all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

/* The CPU backend never queues a write, so this order is pinned here: a BUFFER_SET that
 * cannot queue (larger than the stage) lands after the queued ones before it, not under them;
 * a queued SET holds the resource's bytes as they were when it ran. Then the resource is read
 * once for indices a kept graph reads. */
static void test_queued_write_order(void)
{
    cfg_path = FAKE_GGML_LIB;
    cfg_reg = "fake_reg_async";
    big_shm = calloc(1, BIG_SHM);
    CHECK_EQ(apir_backend_initialize(7, &cbs), APIR_BACKEND_INIT_SUCCESS);
    void *lib = dlopen(FAKE_GGML_LIB, RTLD_NOW | RTLD_NOLOAD);
    int (*pending)(void) = lib ? (int (*)(void))dlsym(lib, "fake_async_pending") : NULL;
    CHECK(pending != NULL);
    CHECK_EQ(call_u32(7, APIR_FWD_DEVICE_GET_INFO, 0), APIR_BACKEND_OK);
    char name[128];
    uint32_t type;
    uint32_t buft = device_info_reply(name, sizeof name, &type);
    CHECK_EQ(type, 1 /* GGML_BACKEND_DEVICE_TYPE_GPU */);
    CHECK(apir_backend_computes_off_cpu(7)); /* a GPU-type device: the worker may poll */
    CHECK_EQ(call_u32(7, APIR_FWD_BACKEND_INIT, 0), APIR_BACKEND_OK);
    uint32_t be = apir_get_u32(&r);
    uint32_t buf = alloc_buffer(7, buft, BIG_SHM);
    CHECK(buf != 0);
    /* a compute first: writes queue on the stream that computed last */
    struct apir_wire_tensor t[3];
    wt_mul_mat(t, buf);
    uint32_t node = 2;
    begin_graph(be, t, 3, &node, 1);
    CHECK_EQ(call(7, APIR_FWD_GRAPH_COMPUTE), APIR_BACKEND_OK);

    memset(big_shm, 'A', 4096);
    CHECK_EQ(transfer(7, APIR_FWD_BUFFER_SET, buf, 0, 4096, BIG_RES, 0), APIR_BACKEND_OK);
    CHECK(pending && pending() > 0); /* queued, not landed */
    memset(big_shm, 'X', 4096);      /* the guest reuses its page at once */
    memset(big_shm + 4096, 'B', APIR_MAX_QUEUED_SET + 1);
    CHECK_EQ(transfer(7, APIR_FWD_BUFFER_SET, buf, 0, APIR_MAX_QUEUED_SET + 1, BIG_RES, 4096), APIR_BACKEND_OK);
    CHECK_EQ(transfer(7, APIR_FWD_BUFFER_GET, buf, 0, 4096, BIG_RES, 0), APIR_BACKEND_OK);
    CHECK(all_bytes(big_shm, 4096, 'B'));

    memset(big_shm, 'C', 4096);
    CHECK_EQ(transfer(7, APIR_FWD_BUFFER_SET, buf, APIR_MAX_QUEUED_SET + 4096, 4096, BIG_RES, 0), APIR_BACKEND_OK);
    CHECK(pending && pending() > 0);
    memset(big_shm, 'Y', 4096);
    CHECK_EQ(transfer(7, APIR_FWD_BUFFER_GET, buf, APIR_MAX_QUEUED_SET + 4096, 4096, BIG_RES, 0), APIR_BACKEND_OK);
    CHECK(all_bytes(big_shm, 4096, 'C'));

    /* Indices a kept graph reads, written through the resource: the host copies them once
     * into its write shadow and writes the buffer from that copy, so a guest that changes the
     * resource while the host copies cannot make the buffer hold what was not checked. A
     * GET_ROWS graph with its indices at IDX, computed and kept; then, with writes synchronous,
     * each buffer write first overwrites the resource with out-of-range indices. */
    enum { IDX = 8192 };
    static const int32_t good[4] = {0, 1, 1, 0}, bad[4] = {0, 1, 7, 0};
    t[0] = wt_make(GGML_TYPE_F32, 4, 2, 1, 1, buf, 0);
    t[1] = wt_make(GGML_TYPE_I32, 4, 1, 1, 1, buf, IDX);
    t[2] = wt_make(GGML_TYPE_F32, 4, 4, 1, 1, buf, 2 * IDX);
    wt_op2(&t[2], GGML_OP_GET_ROWS);
    t[2].flags = GGML_TENSOR_FLAG_COMPUTE;
    memcpy(big_shm, good, sizeof good);
    CHECK_EQ(transfer(7, APIR_FWD_BUFFER_SET, buf, IDX, sizeof good, BIG_RES, 0), APIR_BACKEND_OK);
    begin_graph(be, t, 3, &node, 1);
    CHECK_EQ(call(7, APIR_FWD_GRAPH_COMPUTE), APIR_BACKEND_OK);
    void (*scribble)(void *, const void *, size_t) =
        lib ? (void (*)(void *, const void *, size_t))dlsym(lib, "fake_async_scribble") : NULL;
    CHECK(scribble != NULL);
    if (scribble)
        scribble(big_shm, bad, sizeof bad);
    memcpy(big_shm, good, sizeof good);
    CHECK_EQ(transfer(7, APIR_FWD_BUFFER_SET, buf, IDX, sizeof good, BIG_RES, 0), APIR_BACKEND_OK);
    CHECK(!memcmp(big_shm, bad, sizeof bad)); /* the resource did change during the write */
    if (scribble)
        scribble(NULL, NULL, 0);
    CHECK_EQ(transfer(7, APIR_FWD_BUFFER_GET, buf, IDX, sizeof good, BIG_RES, 4096), APIR_BACKEND_OK);
    CHECK(!memcmp(big_shm + 4096, good, sizeof good));
    apir_backend_deinit(7);
    free(big_shm);
    big_shm = NULL;
}

/* GRAPH_RECOMPUTE arguments reading n outputs back into resource res (put_output each) */
static void begin_recompute_outputs(uint32_t be, uint32_t slot, uint32_t n, uint32_t res)
{
    begin();
    apir_put_u32(&a, be);
    apir_put_u32(&a, slot);
    apir_put_u32(&a, n);
    apir_put_u32(&a, res);
}

static void put_output(uint32_t buf, uint64_t offset, uint64_t size)
{
    apir_put_u32(&a, buf);
    apir_put_u64(&a, offset);
    apir_put_u64(&a, size);
}

/* a compute, so that writes queue on its stream and reads go through the stage; the slot the
 * host kept its graph in */
static uint32_t compute_kept_mul_mat(uint32_t ctx, uint32_t be, uint32_t buf)
{
    struct apir_wire_tensor t[3];
    uint32_t node = 2;
    wt_mul_mat(t, buf);
    begin_graph(be, t, 3, &node, 1);
    CHECK_EQ(call(ctx, APIR_FWD_GRAPH_COMPUTE), APIR_BACKEND_OK);
    apir_get_u32(&r);
    return apir_get_u32(&r);
}

/* A recompute's outputs on a GPU-like host: one too large for the stage is read after the
 * compute through the same stage, one small enough is read behind the compute into it; the
 * staged bytes must reach the resource before the large read reuses the stage. */
static void test_outputs_staged_and_read_after(void)
{
    enum { SMALL = 4096 };
    const size_t large = (size_t)APIR_MAX_QUEUED_SET + 64;
    cfg_path = FAKE_GGML_LIB;
    cfg_reg = "fake_reg_async";
    big_shm = calloc(1, BIG_SHM);
    uint8_t *expect = malloc(BIG_SHM);
    CHECK(big_shm && expect);
    if (!big_shm || !expect)
        return;
    CHECK_EQ(apir_backend_initialize(10, &cbs), APIR_BACKEND_INIT_SUCCESS);
    CHECK_EQ(call_u32(10, APIR_FWD_DEVICE_GET_INFO, 0), APIR_BACKEND_OK);
    char name[128];
    uint32_t type;
    uint32_t buft = device_info_reply(name, sizeof name, &type);
    CHECK_EQ(call_u32(10, APIR_FWD_BACKEND_INIT, 0), APIR_BACKEND_OK);
    uint32_t be = apir_get_u32(&r);
    uint32_t buf = alloc_buffer(10, buft, BIG_SHM);
    for (size_t i = 0; i < BIG_SHM; i++)
        expect[i] = big_shm[i] = (uint8_t)(i * 13 + i / 4099);
    CHECK_EQ(transfer(10, APIR_FWD_BUFFER_SET, buf, 0, BIG_SHM, BIG_RES, 0), APIR_BACKEND_OK);
    uint32_t slot = compute_kept_mul_mat(10, be, buf);
    memcpy(shm, expect, SMALL); /* the same bytes again, queued: makes the stage */
    CHECK_EQ(transfer(10, APIR_FWD_BUFFER_SET, buf, 0, SMALL, RES_ID, 0), APIR_BACKEND_OK);
    memset(big_shm, 0, BIG_SHM);
    begin_recompute_outputs(be, slot, 2, BIG_RES);
    put_output(buf, 0, large);
    put_output(buf, BIG_SHM - SMALL, SMALL);
    CHECK_EQ(call(10, APIR_FWD_GRAPH_RECOMPUTE), APIR_BACKEND_OK);
    CHECK(!memcmp(big_shm, expect, large));
    CHECK(!memcmp(big_shm + large, expect + BIG_SHM - SMALL, SMALL));
    apir_backend_deinit(10);
    free(expect);
    free(big_shm);
    big_shm = NULL;
}

/* Pinned resources on a GPU-like host that offers pinning (as ggml-cuda does, read-only for
 * the device): a large write from a resource pins it and lands; a read into a pinned resource
 * never has the device write it (CUDA fails such a copy: the guest's worker would abort),
 * through the stage or without one, nor do a recompute's outputs; a small write pins nothing;
 * the component's detach hook and deinit unpin. */
static void test_pinned_resources(void)
{
    enum { BIG = 2 << 20 };
    cfg_path = FAKE_GGML_LIB;
    cfg_reg = "fake_reg_async";
    big_shm = calloc(1, BIG_SHM);
    void *lib = dlopen(FAKE_GGML_LIB, RTLD_NOW | RTLD_NOLOAD);
    void (*device_memory)(bool) = lib ? (void (*)(bool))dlsym(lib, "fake_async_device_memory") : NULL;
    int (*pinned)(void) = lib ? (int (*)(void))dlsym(lib, "fake_pinned_count") : NULL;
    int (*violations)(void) = lib ? (int (*)(void))dlsym(lib, "fake_pin_violations") : NULL;
    int (*syncs)(void) = lib ? (int (*)(void))dlsym(lib, "fake_async_syncs") : NULL;
    CHECK(device_memory && pinned && violations && syncs);
    if (!device_memory || !pinned || !violations || !syncs)
        return;
    device_memory(true);
    CHECK_EQ(apir_backend_initialize(8, &cbs), APIR_BACKEND_INIT_SUCCESS);
    CHECK_EQ(call_u32(8, APIR_FWD_DEVICE_GET_INFO, 0), APIR_BACKEND_OK);
    char name[128];
    uint32_t type;
    uint32_t buft = device_info_reply(name, sizeof name, &type);
    uint32_t buf = alloc_buffer(8, buft, 2 * BIG);
    CHECK(buf != 0);
    for (size_t i = 0; i < BIG; i++)
        big_shm[i] = (uint8_t)(i * 7);
    CHECK_EQ(transfer(8, APIR_FWD_BUFFER_SET, buf, 0, BIG, BIG_RES, 0), APIR_BACKEND_OK);
    CHECK_EQ(pinned(), 1);
    CHECK_EQ(transfer(8, APIR_FWD_BUFFER_GET, buf, 0, BIG, BIG_RES, BIG), APIR_BACKEND_OK);
    CHECK(!memcmp(big_shm, big_shm + BIG, BIG));
    CHECK_EQ(violations(), 0);
    memset(shm, 'S', 4096);
    CHECK_EQ(transfer(8, APIR_FWD_BUFFER_SET, buf, BIG, 4096, RES_ID, 0), APIR_BACKEND_OK);
    CHECK_EQ(pinned(), 1); /* a small write from the other resource: not worth pinning it */
    CHECK_EQ(call_u32(8, APIR_FWD_BACKEND_INIT, 0), APIR_BACKEND_OK);
    uint32_t be = apir_get_u32(&r);
    uint32_t slot = compute_kept_mul_mat(8, be, buf);
    CHECK_EQ(transfer(8, APIR_FWD_BUFFER_SET, buf, BIG, 4096, RES_ID, 0), APIR_BACKEND_OK); /* makes the stage */
    memset(big_shm + BIG, 0, BIG);
    CHECK_EQ(transfer(8, APIR_FWD_BUFFER_GET, buf, 0, BIG, BIG_RES, BIG), APIR_BACKEND_OK);
    CHECK(!memcmp(big_shm, big_shm + BIG, BIG));
    begin_recompute_outputs(be, slot, 1, BIG_RES);
    put_output(buf, BIG, 4096);
    int syncs_before = syncs();
    CHECK_EQ(call(8, APIR_FWD_GRAPH_RECOMPUTE), APIR_BACKEND_OK);
    CHECK(all_bytes(big_shm, 4096, 'S'));
    /* the output was read behind the compute on its stream: one synchronization for both */
    CHECK_EQ(syncs() - syncs_before, 1);
    CHECK_EQ(violations(), 0);
    apir_backend_resource_detach(8, BIG_RES);
    CHECK_EQ(pinned(), 0);
    CHECK_EQ(transfer(8, APIR_FWD_BUFFER_SET, buf, 0, BIG, BIG_RES, 0), APIR_BACKEND_OK);
    CHECK_EQ(pinned(), 1);
    apir_backend_deinit(8); /* unpins what is left */
    CHECK_EQ(pinned(), 0);
    CHECK_EQ(violations(), 0);
    device_memory(false);
    free(big_shm);
    big_shm = NULL;
}

int main(void)
{
    char cpu[PATH_MAX];
    sf_pick_cpu(GGML_LIB_DIR, cpu, sizeof cpu);
    if (!cpu[0]) {
        fprintf(stderr, "no usable libggml-cpu-*.so in %s\n", GGML_LIB_DIR);
        return 1;
    }
    snprintf(log_path, sizeof log_path, "/tmp/test_backend_dispatch.%d.log", (int)getpid());
    setenv(APIR_ENV_BACKEND_LOG, log_path, 1);
    shm = calloc(1, SHM_SIZE);
    test_init_errors(cpu);
    test_session(cpu);
    test_queued_write_order();
    test_outputs_staged_and_read_after();
    test_pinned_resources();
    free(shm);
    unlink(log_path);
    if (failures)
        fprintf(stderr, "%d check(s) failed\n", failures);
    else
        printf("backend dispatch: all checks passed\n");
    return failures ? 1 : 0;
}
