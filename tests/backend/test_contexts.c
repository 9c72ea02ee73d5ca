/* Several contexts at once, in parallel threads: each computes its own MUL_MAT with its own
 * handles and resources while others are created and destroyed; results stay correct and
 * a context never sees another's objects. */
#include "apir_codec.h"
#include "apir_forward.h"
#include "apir_protocol.h"
#include "session_fixture.h"
#include "wire_util.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_THREADS 4
#define ROUNDS 10
#define SHM 4096
static char cpu_path[PATH_MAX];
static uint8_t shm[N_THREADS][SHM]; /* resource id = ctx id, one per context */
static int failures;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

/* a context sees only its own resource */
static void *get_shmem_ptr(uint32_t c, uint32_t res) { return res == c && c >= 100 && c < 100 + N_THREADS ? shm[c - 100] : NULL; }
static uint64_t get_shmem_size(uint32_t c, uint32_t res) { return get_shmem_ptr(c, res) ? SHM : 0; }
static struct virgl_apir_callbacks cbs = {sf_get_config, get_shmem_ptr, get_shmem_size};

static void fail(const char *what, uint32_t ctx)
{
    pthread_mutex_lock(&fail_lock);
    fprintf(stderr, "context %u: %s\n", ctx, what);
    failures++;
    pthread_mutex_unlock(&fail_lock);
}

struct call {
    uint8_t args[4096], reply[256];
    struct apir_encoder a;
    struct apir_decoder r;
};

static uint32_t run(struct call *c, uint32_t ctx, uint32_t cmd)
{
    return sf_call(ctx, &cbs, cmd, c->args, c->a.pos, c->reply, sizeof c->reply, &c->r);
}

static void xfer(struct call *c, uint32_t ctx, uint32_t cmd, uint32_t buf, uint64_t off, uint64_t size, uint64_t shm_off)
{
    apir_encoder_init(&c->a, c->args, sizeof c->args);
    apir_put_u32(&c->a, buf);
    apir_put_u64(&c->a, off);
    apir_put_u64(&c->a, size);
    apir_put_u32(&c->a, ctx);
    apir_put_u64(&c->a, shm_off);
    if (run(c, ctx, cmd) != APIR_BACKEND_OK)
        fail("transfer failed", ctx);
}

static void *worker(void *arg)
{
    uint32_t ctx = (uint32_t)(uintptr_t)arg;
    uint8_t *mem = shm[ctx - 100];
    struct call *c = calloc(1, sizeof *c);
    for (int round = 0; round < ROUNDS; round++) {
        if (apir_backend_initialize(ctx, &cbs) != APIR_BACKEND_INIT_SUCCESS) {
            fail("init failed", ctx);
            break;
        }
        /* the buffer type handle is the first handle of a fresh context */
        uint32_t buft = 1;
        apir_encoder_init(&c->a, c->args, sizeof c->args);
        apir_put_u32(&c->a, buft);
        apir_put_u64(&c->a, 512);
        if (run(c, ctx, APIR_FWD_BUFT_ALLOC_BUFFER) != APIR_BACKEND_OK)
            fail("alloc failed", ctx);
        uint32_t buf = apir_get_u32(&c->r);
        apir_encoder_init(&c->a, c->args, sizeof c->args);
        apir_put_u32(&c->a, 0);
        run(c, ctx, APIR_FWD_BACKEND_INIT);
        uint32_t be = apir_get_u32(&c->r);

        /* a[4x3] = ctx-specific values, b[4x2] = 1: c[i][j] = sum of row i of a */
        float *A = (float *)mem, *B = (float *)(mem + 64), *C = (float *)(mem + 128);
        for (int i = 0; i < 12; i++)
            A[i] = (float)(ctx * 10 + round + i);
        for (int i = 0; i < 8; i++)
            B[i] = 1.0f;
        xfer(c, ctx, APIR_FWD_BUFFER_SET, buf, 0, 48, 0);
        xfer(c, ctx, APIR_FWD_BUFFER_SET, buf, 64, 32, 64);
        struct apir_wire_tensor t[3];
        wt_mul_mat(t, buf);
        uint32_t node = 2;
        apir_encoder_init(&c->a, c->args, sizeof c->args);
        apir_put_u32(&c->a, be);
        wt_put_graph(&c->a, t, 3, &node, 1);
        if (run(c, ctx, APIR_FWD_GRAPH_COMPUTE) != APIR_BACKEND_OK || apir_get_u32(&c->r) != 0)
            fail("compute failed", ctx);
        memset(C, 0, 24);
        xfer(c, ctx, APIR_FWD_BUFFER_GET, buf, 128, 24, 128);
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < 3; i++) {
                float want = A[i * 4] + A[i * 4 + 1] + A[i * 4 + 2] + A[i * 4 + 3];
                if (C[j * 3 + i] != want)
                    fail("wrong result", ctx);
            }
        /* the other contexts' resources are not ours */
        uint32_t other = 100 + (ctx - 100 + 1) % N_THREADS;
        apir_encoder_init(&c->a, c->args, sizeof c->args);
        apir_put_u32(&c->a, buf);
        apir_put_u64(&c->a, 0);
        apir_put_u64(&c->a, 16);
        apir_put_u32(&c->a, other);
        apir_put_u64(&c->a, 0);
        if (run(c, ctx, APIR_FWD_BUFFER_GET) != APIR_BACKEND_ERR_HANDLE)
            fail("read another context's resource", ctx);
        /* disconnect with everything live */
        apir_backend_deinit(ctx);
    }
    free(c);
    return NULL;
}

int main(void)
{
    sf_pick_cpu(GGML_LIB_DIR, cpu_path, sizeof cpu_path);
    sf_single_resource(cpu_path, 0, NULL, 0); /* for sf_get_config; no resource there */
    setenv(APIR_ENV_BACKEND_LOG, "/dev/null", 1);
    pthread_t th[N_THREADS];
    for (uintptr_t i = 0; i < N_THREADS; i++)
        pthread_create(&th[i], NULL, worker, (void *)(100 + i));
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
    if (!failures)
        printf("%d contexts x %d sessions in parallel: ok\n", N_THREADS, ROUNDS);
    return failures ? 1 : 0;
}
