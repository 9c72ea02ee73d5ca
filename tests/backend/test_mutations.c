/* Hostile-graph sweep: a real transformer block (llama_block.h) is sent to the backend
 * library over and over with one field of one tensor changed each time (type, op, shape,
 * strides, op parameters, sources, offsets). Each attempt runs in a child process, as a
 * guest's worker does: it must end in a status code, or in a ggml assertion (SIGABRT: that
 * guest's worker ends, which the isolation model allows). Any other signal, or a sanitizer
 * report (ASan/UBSan exit with status 1) — a read or write outside the tensors — fails the
 * test and names the mutation. The real CPU backend computes every graph the host accepts. */
#include "apir_codec.h"
#include "apir_forward.h"
#include "apir_protocol.h"
#include "apir_wire_tensor.h"
#include "ggml-alloc.h"
#include "graph_decode.h"
#include "ggml-backend.h"
#include "llama_block.h"
#include "preflight.h"
#include "session_fixture.h"
#include "wire_util.h"

#include <limits.h>
#include <setjmp.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define CTX 31
#define RES 9
#define SHM_SIZE (1u << 20)
static char cpu_path[PATH_MAX];
static uint8_t *shm;
static struct virgl_apir_callbacks *cbs;

static uint8_t *args, reply[256];
static struct apir_encoder a;
static struct apir_decoder r;
static uint32_t call(uint32_t cmd)
{
    return sf_call(CTX, cbs, cmd, args, a.pos, reply, sizeof reply, &r);
}

static char current[256];
static void on_signal(int sig)
{
    char msg[400];
    int n = snprintf(msg, sizeof msg, "\nsignal %d while running mutation: %s\n", sig, current);
    /* (ggml's own message above names the kernel that gave up) */
    if (write(2, msg, (size_t)n) < 0)
        _exit(3);
    _exit(2);
}

static struct apir_wire_tensor wire[MAX_T];
static uint32_t nodes[MAX_T], n_wire, n_nodes, backend_h;
static unsigned counts[16], runs;

/* Shared with the parent: a child sweeps until a ggml assertion ends it; the parent then
 * starts a new child that skips the attempts already made (the sweep is deterministic). */
struct progress {
    unsigned counts[16], runs, aborts;
    char current[256];
};
static struct progress *prog;
static unsigned attempt, skip;

static void ggml_assertion(const char *message)
{
    (void)message;
    preflight_on_abort(); /* a constructor's assertion: the graph is not sent (preflight.h) */
    /* returning lets ggml abort(): the parent starts the next child */
}

static void send_graph(void)
{
    if (attempt++ < skip)
        return;
    apir_encoder_init(&a, args, 1u << 20);
    apir_put_u32(&a, backend_h);
    wt_put_graph(&a, wire, n_wire, nodes, n_nodes);
    memcpy(prog->current, current, sizeof current);
    if (preflight_asserts(APIR_FWD_GRAPH_COMPUTE, args, a.pos)) {
        prog->aborts++;
        prog->runs = attempt;
        runs++;
        return;
    }
    uint32_t st = call(APIR_FWD_GRAPH_COMPUTE);
    counts[st < 16 ? st : 15]++;
    prog->counts[st < 16 ? st : 15]++;
    prog->runs = attempt;
    runs++;
}

static uint32_t seed = 12345;
static uint32_t rnd(void)
{
    seed = seed * 1664525u + 1013904223u;
    return seed >> 8;
}

/* every mutation of one graph (laid out in gbuf by ggml-alloc, guest side) */
/* MUTATION_STRIDE=N mutates every Nth tensor and runs 1/N of the random rounds: the
 * sanitizer build runs the sweep about ten times slower */
static uint32_t stride = 1;

static int sweep(const char *what, struct ggml_cgraph *gf, ggml_backend_buffer_t gbuf, int quick)
{
    const char *base = ggml_backend_buffer_get_base(gbuf);
    size_t size = ggml_backend_buffer_get_size(gbuf);
    apir_encoder_init(&a, args, 1u << 20);
    apir_put_u32(&a, 1); /* the CPU buffer type: first handle of a fresh context */
    apir_put_u64(&a, size);
    if (call(APIR_FWD_BUFT_ALLOC_BUFFER) != APIR_BACKEND_OK)
        return 1;
    uint32_t buf = apir_get_u32(&r);
    /* small valid-looking contents: zeros, so every row index is 0 */

    n_list = 0;
    n_nodes = (uint32_t)ggml_graph_n_nodes(gf);
    for (uint32_t i = 0; i < n_nodes; i++)
        add_tensor(ggml_graph_node(gf, i));
    n_wire = (uint32_t)n_list;
    for (uint32_t i = 0; i < n_wire; i++)
        wire_of(list[i], &wire[i], buf, base);
    for (uint32_t i = 0; i < n_nodes; i++)
        nodes[i] = (uint32_t)index_of(ggml_graph_node(gf, i));

    unsigned ok_before = counts[APIR_BACKEND_OK];
    snprintf(current, sizeof current, "unmodified %s", what);
    send_graph();
    if (attempt > skip && counts[APIR_BACKEND_OK] != ok_before + 1) {
        fprintf(stderr, "the unmodified %s was refused\n", what);
        return 1;
    }

    for (uint32_t i = 0; i < n_wire; i += stride) {
        struct apir_wire_tensor saved = wire[i];
        char nm[128];
        snprintf(nm, sizeof nm, "%s' (%s", list[i]->name, ggml_op_name((enum ggml_op)saved.op));
        for (uint32_t ty = 0; ty < GGML_TYPE_COUNT; ty++) {
            snprintf(current, sizeof current, "tensor %u '%s) type %u", i, nm, ty);
            wire[i].type = ty;
            send_graph();
            wire[i] = saved;
        }
        for (uint32_t op = 0; op < GGML_OP_COUNT; op += quick ? 7 : 1) {
            snprintf(current, sizeof current, "tensor %u '%s) op %u", i, nm, op);
            wire[i].op = op;
            send_graph();
            wire[i] = saved;
        }
        for (int d = 0; d < 4; d++) {
            int64_t ne_vals[] = {saved.ne[d] + 1, saved.ne[d] * 2, 1, saved.ne[d] > 1 ? saved.ne[d] - 1 : 2, 32};
            for (unsigned k = 0; k < sizeof ne_vals / sizeof *ne_vals; k++) {
                snprintf(current, sizeof current, "tensor %u '%s) ne[%d] = %lld", i, nm, d, (long long)ne_vals[k]);
                wire[i].ne[d] = ne_vals[k];
                send_graph();
                wire[i] = saved;
            }
            uint64_t nb_vals[] = {saved.nb[d] / 2, saved.nb[d] * 2, saved.nb[d] + 1, 0, 4};
            for (unsigned k = 0; k < sizeof nb_vals / sizeof *nb_vals; k++) {
                snprintf(current, sizeof current, "tensor %u '%s) nb[%d] = %llu", i, nm, d, (unsigned long long)nb_vals[k]);
                wire[i].nb[d] = nb_vals[k];
                send_graph();
                wire[i] = saved;
            }
        }
        for (int p = 0; p < 16; p++) {
            int32_t vals[] = {0, 1, -1, 2, 3, 8, 24, 40, 0x7fffffff, (int32_t)0x80000000, (int32_t)rnd()};
            for (unsigned k = 0; k < sizeof vals / sizeof *vals; k += quick ? 3 : 1) {
                snprintf(current, sizeof current, "tensor %u '%s) op_params[%d] = %d", i, nm, p, vals[k]);
                wire[i].op_params[p] = vals[k];
                send_graph();
                wire[i] = saved;
            }
        }
        for (int j = 0; j < 6; j++) {
            for (uint32_t s = 0; s <= i + 1; s += quick ? 5 : 1) {
                snprintf(current, sizeof current, "tensor %u '%s) src[%d] = %u", i, nm, j, s);
                wire[i].src[j] = s;
                send_graph();
                wire[i] = saved;
            }
        }
        uint64_t offs[] = {saved.data_offset + 4, saved.data_offset + 2, 0, size - 64};
        for (unsigned k = 0; k < sizeof offs / sizeof *offs; k++) {
            snprintf(current, sizeof current, "tensor %u '%s) data_offset = %llu", i, nm, (unsigned long long)offs[k]);
            wire[i].data_offset = offs[k];
            send_graph();
            wire[i] = saved;
        }
    }
    /* one type for a node and all its sources at once: same-type combinations (f16, bf16,
     * i16; i32 for f32) that single changes never produce */
    for (uint32_t i = 0; i < n_wire; i += stride) {
        if (wire[i].op == GGML_OP_NONE)
            continue;
        for (uint32_t ty = 0; ty < GGML_TYPE_COUNT; ty++) {
            struct apir_wire_tensor *saved_all = malloc(sizeof wire);
            memcpy(saved_all, wire, sizeof wire);
            wire[i].type = ty;
            for (int j = 0; j < APIR_WIRE_MAX_SRC; j++)
                if (wire[i].src[j] && wire[i].src[j] != i + 1)
                    wire[wire[i].src[j] - 1].type = ty;
            snprintf(current, sizeof current, "tensor %u (%s) and its sources: type %u", i,
                     ggml_op_name((enum ggml_op)wire[i].op), ty);
            send_graph();
            memcpy(wire, saved_all, sizeof wire);
            free(saved_all);
        }
    }

    /* random combinations of up to three changes, from a fixed seed */
    int rounds = (quick ? 1000 : 20000) / (int)stride;
    for (int k = 0; k < rounds; k++) {
        struct apir_wire_tensor *saved_all = malloc(sizeof wire);
        memcpy(saved_all, wire, sizeof wire);
        int n_changes = 1 + (int)(rnd() % 3);
        int len = snprintf(current, sizeof current, "random round %d:", k);
        for (int c = 0; c < n_changes; c++) {
            uint32_t i = rnd() % n_wire;
            struct apir_wire_tensor *w = &wire[i];
            int what = (int)(rnd() % 9), d = (int)(rnd() % 4);
            int64_t small = (int64_t)(rnd() % 70) - 3;
            switch (what) {
            case 0: w->type = rnd() % (GGML_TYPE_COUNT + 2); break;
            case 1: w->ne[d] = small; break;
            case 2: w->nb[d] = (uint64_t)(rnd() % 4096); break;
            case 3: w->op_params[rnd() % 16] = (int32_t)rnd() - (1 << 23); break;
            case 4: w->op_params[rnd() % 4] = (int32_t)(rnd() % 50) - 2; break;
            case 5: w->src[rnd() % 5] = rnd() % (i + 2); break;
            case 6: w->view_src = rnd() % (i + 1); w->view_offs = rnd() % 512; break;
            case 7: w->data_offset = (uint64_t)(rnd() % (uint32_t)size); break;
            case 8: w->op = rnd() % (GGML_OP_COUNT + 1); break;
            }
            if (len < (int)sizeof current - 40)
                len += snprintf(current + len, sizeof current - (size_t)len, " t%u.f%d.d%d", i, what, d);
        }
        send_graph();
        memcpy(wire, saved_all, sizeof wire);
        free(saved_all);
    }
    return 0;
}

static struct ggml_cgraph *graphs[2];
static ggml_backend_buffer_t gbuf;
static int quick;

/* the sweep, in a child: ggml's CPU threads start at the first compute, after the fork */
static int child(void)
{
    signal(SIGSEGV, on_signal);
    signal(SIGBUS, on_signal);
    if (sweep("transformer block", graphs[0], gbuf, quick) || sweep("other ops", graphs[1], gbuf, quick))
        return 1;
    return 0;
}

int main(int argc, char **argv)
{
    sf_pick_cpu(GGML_LIB_DIR, cpu_path, sizeof cpu_path);
    if (!cpu_path[0])
        return 1;
    setenv(APIR_ENV_BACKEND_LOG, "/dev/null", 1);
    setenv("GGML_NO_BACKTRACE", "1", 1);
    shm = calloc(1, SHM_SIZE);
    cbs = sf_single_resource(cpu_path, RES, shm, SHM_SIZE);
    args = malloc(1u << 20);

    quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (getenv("MUTATION_STRIDE") && atoi(getenv("MUTATION_STRIDE")) > 0)
        stride = (uint32_t)atoi(getenv("MUTATION_STRIDE"));
    if (getenv("MUTATION_SEED"))
        seed = (uint32_t)strtoul(getenv("MUTATION_SEED"), NULL, 0);
    if (apir_backend_initialize(CTX, cbs) != 0)
        return 1;
    apir_encoder_init(&a, args, 1u << 20);
    apir_put_u32(&a, 0);
    call(APIR_FWD_BACKEND_INIT);
    backend_h = apir_get_u32(&r);

    /* a transformer block, and the other offloaded ops */
    struct ggml_init_params ip = {2 * MAX_T * ggml_tensor_overhead() + 2 * ggml_graph_overhead(), NULL, true};
    struct ggml_context *ctx = ggml_init(ip);
    struct model m;
    graphs[0] = build(ctx, &m);
    graphs[1] = build_misc(ctx);
    gbuf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_cpu_buffer_type());
    ggml_set_abort_callback(ggml_assertion);
    preflight_init();
    prog = mmap(NULL, sizeof *prog, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (prog == MAP_FAILED)
        return 1;
    memset(prog, 0, sizeof *prog);
    /* MUTATION_SKIP=N starts at attempt N (to debug one attempt: the failure message names it) */
    if (getenv("MUTATION_SKIP"))
        prog->runs = (unsigned)strtoul(getenv("MUTATION_SKIP"), NULL, 0);
    for (;;) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            skip = prog->runs;
            _exit(child());
        }
        int ws = 0;
        if (pid < 0 || waitpid(pid, &ws, 0) != pid)
            return 1;
        if (WIFEXITED(ws) && WEXITSTATUS(ws) == 0)
            break;
        /* a ggml assertion (or a division by zero in a ggml constructor): the worker of
         * this guest ends, which the isolation model allows; go on after that attempt */
        if (WIFSIGNALED(ws) && (WTERMSIG(ws) == SIGABRT || WTERMSIG(ws) == SIGFPE)) {
            prog->aborts++;
            prog->runs++;
            continue;
        }
        fprintf(stderr, "\n%s %d while running mutation %u: %s\n", WIFSIGNALED(ws) ? "signal" : "exit status",
                WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws), prog->runs, prog->current);
        return 1;
    }
    apir_backend_deinit(CTX);
    ggml_backend_buffer_free(gbuf);
    ggml_free(ctx);
    free(args);
    free(shm);
    unsigned *c = prog->counts;
    printf("%u hostile graphs: %u computed, %u invalid, %u unsupported, %u bounds, %u ended the worker (ggml "
           "assertion), %u other\n",
           prog->runs, c[APIR_BACKEND_OK], c[APIR_BACKEND_ERR_INVALID_TENSOR], c[APIR_BACKEND_ERR_UNSUPPORTED],
           c[APIR_BACKEND_ERR_BOUNDS], prog->aborts,
           prog->runs - prog->aborts - c[0] - c[APIR_BACKEND_ERR_INVALID_TENSOR] - c[APIR_BACKEND_ERR_UNSUPPORTED] -
               c[APIR_BACKEND_ERR_BOUNDS]);
    return 0;
}
