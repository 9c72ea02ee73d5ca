/* Index checks from the write shadow (src/backend/write_shadow.h): the host checks indices no
 * node computes from the bytes it wrote itself with BUFFER_SET_INLINE, without reading them
 * back. Each attack writes indices in range inline, computes, then makes them out of range
 * in a way the shadow did not record (BUFFER_COPY, CLEAR, MEMSET, SET through a shared
 * resource, a partial inline write, a later node of the graph, a graph of another stream);
 * the GRAPH_RECOMPUTE that follows must be refused with ERR_BOUNDS. Each runs in a child
 * process, as a guest's worker would: a crash, a ggml assertion (GET_ROWS's kernel asserts
 * its indices) or a sanitizer report fails the case. Then, in the test's own process, the
 * host's statistics (VIRGL_APIR_STATS) must say that steady-state computes were checked from
 * the shadow (indices written inline, or through the shared resource over indices a kept graph
 * reads, which the host keeps a copy of) and that the one after a BUFFER_COPY read the indices
 * from the buffer. */
#include "apir_codec.h"
#include "apir_forward.h"
#include "apir_protocol.h"
#include "apir_wire_tensor.h"
#include "ggml.h"
#include "session_fixture.h"
#include "wire_util.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CTX 43
#define RES 5
#define SHM_SIZE (1u << 16)
#define BUF_SIZE (1u << 20)
#define IDX_OFF 8192u    /* the indices of the GET_ROWS graph */
#define SPARE_OFF 65536u /* bytes a BUFFER_COPY copies from */
#define EXIT_BASE 100

static uint8_t *args, reply[256], *shm;
static struct apir_encoder a;
static struct apir_decoder r;
static struct virgl_apir_callbacks *cbs;
static uint32_t be_a, be_b, buf_h;
static int failures;

static const int32_t good[4] = {0, 1, 1, 0}, bad[4] = {0, 1, 7, 0};

static void begin(void) { apir_encoder_init(&a, args, 1u << 20); }
static uint32_t call(uint32_t cmd) { return sf_call(CTX, cbs, cmd, args, a.pos, reply, sizeof reply, &r); }

static uint32_t set_inline(uint64_t offset, const void *data, uint32_t size)
{
    begin();
    apir_put_u32(&a, buf_h);
    apir_put_u64(&a, offset);
    apir_put_u32(&a, size);
    apir_put_bytes(&a, data, size);
    return call(APIR_FWD_BUFFER_SET_INLINE);
}

/* BUFFER_SET of data through the shared resource (its start) */
static uint32_t set_shared(uint64_t offset, const void *data, uint64_t size)
{
    memcpy(shm, data, size);
    begin();
    wt_put_transfer(&a, buf_h, offset, size, RES, 0);
    return call(APIR_FWD_BUFFER_SET);
}

/* the status of a compute: the command's, or ERR_BACKEND when ggml's failed */
static uint32_t compute_status(uint32_t st)
{
    return st == APIR_BACKEND_OK && apir_get_u32(&r) != GGML_STATUS_SUCCESS ? APIR_BACKEND_ERR_BACKEND : st;
}

/* the slot where each backend's last graph is kept (GRAPH_COMPUTE's reply), by handle */
static uint32_t slot_of[64];

/* BUFFER_COPY of size bytes from the spare area over the indices */
static uint32_t copy_spare_to_indices(uint64_t size)
{
    begin();
    apir_put_u32(&a, buf_h);
    apir_put_u64(&a, SPARE_OFF);
    apir_put_u32(&a, buf_h);
    apir_put_u64(&a, IDX_OFF);
    apir_put_u64(&a, size);
    return call(APIR_FWD_BUFFER_COPY);
}

/* GRAPH_RECOMPUTE of the graph be computed last, reading no outputs back */
static uint32_t recompute(uint32_t be)
{
    begin();
    wt_put_recompute(&a, be, slot_of[be % 64]);
    return compute_status(call(APIR_FWD_GRAPH_RECOMPUTE));
}

static uint32_t compute(uint32_t be, const struct apir_wire_tensor *t, uint32_t n, const uint32_t *nodes, uint32_t n_nodes)
{
    begin();
    apir_put_u32(&a, be);
    wt_put_graph(&a, t, n, nodes, n_nodes);
    uint32_t st = compute_status(call(APIR_FWD_GRAPH_COMPUTE));
    if (st == APIR_BACKEND_OK)
        slot_of[be % 64] = apir_get_u32(&r);
    return st;
}

static struct apir_wire_tensor at(enum ggml_type type, int64_t ne0, uint64_t offset)
{
    return wt_make(type, ne0, 1, 1, 1, buf_h, offset);
}

static void node(struct apir_wire_tensor *t, enum ggml_op op, uint32_t s0, uint32_t s1)
{
    t->op = (uint32_t)op;
    t->flags = GGML_TENSOR_FLAG_COMPUTE;
    t->src[0] = s0;
    t->src[1] = s1;
}

/* rows [16 x 2] at 0, indices [4] at IDX_OFF, out = GET_ROWS [16 x 4] at 12288; with
 * with_overwrite, a later node (ARGSORT of {0, 1, 2, 3} descending) writes {3, 2, 1, 0}
 * over the indices after GET_ROWS read them */
static uint32_t compute_get_rows(uint32_t be, bool with_overwrite)
{
    struct apir_wire_tensor t[5];
    t[0] = wt_make(GGML_TYPE_F32, 16, 2, 1, 1, buf_h, 0);
    t[1] = at(GGML_TYPE_I32, 4, IDX_OFF);
    t[2] = wt_make(GGML_TYPE_F32, 16, 4, 1, 1, buf_h, 12288);
    node(&t[2], GGML_OP_GET_ROWS, 1, 2);
    t[3] = at(GGML_TYPE_F32, 4, 16384);
    t[4] = at(GGML_TYPE_I32, 4, IDX_OFF);
    node(&t[4], GGML_OP_ARGSORT, 4, 0);
    t[4].op_params[0] = GGML_SORT_ORDER_DESC;
    uint32_t nodes[2] = {2, 4};
    return compute(be, t, with_overwrite ? 5 : 3, nodes, with_overwrite ? 2 : 1);
}

/* on another stream: only the ARGSORT over the indices */
static uint32_t compute_overwrite_only(uint32_t be)
{
    struct apir_wire_tensor t[2];
    t[0] = at(GGML_TYPE_F32, 4, 16384);
    t[1] = at(GGML_TYPE_I32, 4, IDX_OFF);
    node(&t[1], GGML_OP_ARGSORT, 1, 0);
    t[1].op_params[0] = GGML_SORT_ORDER_DESC;
    uint32_t n = 1;
    return compute(be, t, 2, &n, 1);
}

enum attack { COPY, CLEAR, MEMSET, SET_SHARED, PARTIAL_INLINE, LATER_NODE, OTHER_STREAM, INLINE_BAD, IN_RANGE };

static const char *const names[] = {
    "BUFFER_COPY over the indices",      "BUFFER_CLEAR of their buffer",     "BUFFER_MEMSET over them",
    "BUFFER_SET through a resource",    "an inline write over part of them", "a later node of the graph",
    "a graph of another stream",        "an inline write out of range",     "in range (the shadow's own)",
};

#define STEP(expr)                                                                                 \
    do {                                                                                           \
        if ((expr) != APIR_BACKEND_OK)                                                             \
            _exit(1 + __LINE__ % 90); /* a setup step failed: below EXIT_BASE */                  \
    } while (0)

/* in the child: indices in range written inline and computed once, then the attack, then
 * the recompute whose status is the exit code */
static void run_attack(enum attack k)
{
    STEP(set_inline(IDX_OFF, good, sizeof good));
    float ramp[4] = {0, 1, 2, 3};
    STEP(set_inline(16384, ramp, sizeof ramp));
    STEP(compute_get_rows(be_a, k == LATER_NODE));
    switch (k) {
    case COPY:
        STEP(set_inline(SPARE_OFF, bad, sizeof bad));
        STEP(copy_spare_to_indices(sizeof bad));
        break;
    case CLEAR: /* 0xff bytes: every index -1 */
        begin();
        apir_put_u32(&a, buf_h);
        apir_put_u8(&a, 0xff);
        STEP(call(APIR_FWD_BUFFER_CLEAR));
        break;
    case MEMSET:
        begin();
        apir_put_u32(&a, buf_h);
        apir_put_u64(&a, IDX_OFF + 9); /* two bytes of the third index */
        apir_put_u64(&a, 2);
        apir_put_u8(&a, 0x7f);
        STEP(call(APIR_FWD_BUFFER_MEMSET));
        break;
    case SET_SHARED:
        STEP(set_shared(IDX_OFF, bad, sizeof bad));
        break;
    case PARTIAL_INLINE:
        STEP(set_inline(IDX_OFF + 8, &bad[2], 4));
        break;
    case LATER_NODE: /* the compute above left {3, 2, 1, 0} there */
        break;
    case OTHER_STREAM:
        STEP(compute_overwrite_only(be_b));
        break;
    case INLINE_BAD:
        STEP(set_inline(IDX_OFF, bad, sizeof bad));
        break;
    case IN_RANGE:
        STEP(set_inline(IDX_OFF, good, sizeof good));
        break;
    }
    _exit(EXIT_BASE + (int)recompute(be_a));
}

static void attack(enum attack k)
{
    uint32_t want = k == IN_RANGE ? APIR_BACKEND_OK : APIR_BACKEND_ERR_BOUNDS;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        run_attack(k);
    }
    int ws = 0;
    if (pid < 0 || waitpid(pid, &ws, 0) != pid) {
        fprintf(stderr, "FAIL %s: fork/wait\n", names[k]);
        failures++;
        return;
    }
    if (WIFSIGNALED(ws)) {
        fprintf(stderr, "FAIL %s: worker killed by signal %d\n", names[k], WTERMSIG(ws));
        failures++;
    } else if (!WIFEXITED(ws) || WEXITSTATUS(ws) < EXIT_BASE) {
        fprintf(stderr, "FAIL %s: worker exited with %d (a setup step, or a sanitizer report)\n", names[k],
                WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
        failures++;
    } else if ((uint32_t)(WEXITSTATUS(ws) - EXIT_BASE) != want) {
        fprintf(stderr, "FAIL %s: status %d, want %u\n", names[k], WEXITSTATUS(ws) - EXIT_BASE, want);
        failures++;
    }
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL line %d: %s\n", __LINE__, #cond);                                \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* the counters of the stats report the context's release wrote into the log */
static bool stats_counts(const char *log, unsigned long long *shadow, unsigned long long *read)
{
    FILE *f = fopen(log, "r");
    char line[512];
    bool found = false;
    while (f && fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "index tensors checked before computes: ");
        if (p && sscanf(p, "index tensors checked before computes: %llu from the write shadow, %llu read", shadow,
                        read) == 2)
            found = true;
    }
    if (f)
        fclose(f);
    return found;
}

int main(void)
{
    char cpu_path[PATH_MAX], log[] = "/tmp/test_index_shadow_XXXXXX";
    sf_pick_cpu(GGML_LIB_DIR, cpu_path, sizeof cpu_path);
    int fd = mkstemp(log);
    if (!cpu_path[0] || fd < 0)
        return 1;
    close(fd);
    setenv(APIR_ENV_BACKEND_LOG, log, 1);
    setenv(APIR_ENV_BACKEND_STATS, "1", 1);
    setenv("GGML_NO_BACKTRACE", "1", 1);
    shm = calloc(1, SHM_SIZE);
    cbs = sf_single_resource(cpu_path, RES, shm, SHM_SIZE);
    args = malloc(1u << 20);
    if (!shm || !args || apir_backend_initialize(CTX, cbs) != 0)
        return 1;
    uint32_t *be[2] = {&be_a, &be_b};
    for (int i = 0; i < 2; i++) {
        begin();
        apir_put_u32(&a, 0);
        if (call(APIR_FWD_BACKEND_INIT) != APIR_BACKEND_OK)
            return 1;
        *be[i] = apir_get_u32(&r);
    }
    begin();
    apir_put_u32(&a, 1); /* the CPU buffer type: first handle of a fresh context */
    apir_put_u64(&a, BUF_SIZE);
    if (call(APIR_FWD_BUFT_ALLOC_BUFFER) != APIR_BACKEND_OK)
        return 1;
    buf_h = apir_get_u32(&r);

    for (int k = COPY; k <= IN_RANGE; k++)
        attack((enum attack)k);

    /* steady state as llama.cpp runs it: inputs written inline before each compute */
    CHECK(set_inline(IDX_OFF, good, sizeof good) == APIR_BACKEND_OK);
    CHECK(compute_get_rows(be_a, false) == APIR_BACKEND_OK);
    for (int i = 0; i < 3; i++) {
        CHECK(set_inline(IDX_OFF, good, sizeof good) == APIR_BACKEND_OK);
        CHECK(recompute(be_a) == APIR_BACKEND_OK);
    }
    /* indices a kept graph reads, written through the shared resource (llama.cpp's V-cache
     * slots without flash attention are too large to go inline): kept in the shadow too; the
     * guest changing the resource afterwards changes nothing the host checked or wrote */
    for (int i = 0; i < 2; i++) {
        CHECK(set_shared(IDX_OFF, good, sizeof good) == APIR_BACKEND_OK);
        memcpy(shm, bad, sizeof bad);
        CHECK(recompute(be_a) == APIR_BACKEND_OK);
    }
    /* bytes the shadow did not see: read from the buffer */
    CHECK(set_inline(SPARE_OFF, good, sizeof good) == APIR_BACKEND_OK);
    CHECK(copy_spare_to_indices(sizeof good) == APIR_BACKEND_OK);
    CHECK(recompute(be_a) == APIR_BACKEND_OK);
    apir_backend_deinit(CTX); /* writes the stats report */

    unsigned long long from_shadow = 0, read = 0;
    CHECK(stats_counts(log, &from_shadow, &read));
    CHECK(from_shadow == 6 && read == 1);
    if (from_shadow != 6 || read != 1)
        fprintf(stderr, "index checks: %llu from the shadow (want 6), %llu read (want 1)\n", from_shadow, read);
    unlink(log);
    free(args);
    free(shm);
    if (failures) {
        fprintf(stderr, "%d case(s) failed\n", failures);
        return 1;
    }
    printf("index shadow: every attack refused with ERR_BOUNDS; steady state checked from the shadow\n");
    return 0;
}
