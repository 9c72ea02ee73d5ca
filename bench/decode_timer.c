/* libapir-decode-timer.so: an LD_PRELOAD library that says where a llama_decode's time goes,
 * natively and through VirtGPU0 alike, by timing ggml's entry points the process calls
 * (bench/cuda-host.sh, step "decodetimes"). Per llama_decode one line:
 *   DECODE n=<tokens> total=<us> set=<us>/<calls>/<bytes> ... be_compute=<us>/<calls>/0
 * In a process that computes without llama (apir-server's worker) one line per graph compute,
 * timed from an idle stream to a finished one (a synchronize before and after):
 *   COMPUTE <backend> <nodes> <us>
 * Lines go to $DECODE_TIMER_OUT.<pid> (default /tmp/decode-timer.<pid>). A measuring tool
 * only: the synchronizes it adds change what they measure by little, not by nothing. */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

typedef struct ggml_backend *backend_t;
struct ggml_tensor;
struct ggml_cgraph;
struct ggml_backend_sched;

enum { F_SET, F_GET, F_GET_ASYNC, F_COPY, F_SCHED_COMPUTE, F_SCHED_ALLOC, F_SYNC, F_COMPUTE, F_N };
static const char *const fn_names[F_N] = {"set",           "get",         "get_async", "copy",
                                          "sched_compute", "sched_alloc", "be_sync",   "be_compute"};
static double acc_us[F_N];
static unsigned calls[F_N];
static size_t bytes[F_N];
static bool in_decode;

static double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

static FILE *out(void)
{
    static FILE *f;
    if (!f) {
        const char *o = getenv("DECODE_TIMER_OUT");
        char path[512];
        snprintf(path, sizeof path, "%s.%d", o ? o : "/tmp/decode-timer", (int)getpid());
        f = fopen(path, "a");
        if (!f)
            f = stderr;
        setvbuf(f, NULL, _IOLBF, 0);
    }
    return f;
}

/* ggml's functions, from the libggml-base this process loaded (apir-server's worker loads it
 * with RTLD_LOCAL, out of RTLD_NEXT's reach) */
static void *ggml_sym(const char *name)
{
    static void *h;
    if (!h)
        h = dlopen("libggml-base.so.0", RTLD_NOLOAD | RTLD_LAZY);
    if (!h)
        h = dlopen("libggml-base.so", RTLD_NOLOAD | RTLD_LAZY);
    return h ? dlsym(h, name) : NULL;
}
#define REAL(fn, name)                                                                             \
    do {                                                                                           \
        if (!fn)                                                                                   \
            *(void **)&fn = ggml_sym(name);                                                        \
    } while (0)
#define TIMED(f, nb, call)                                                                         \
    do {                                                                                           \
        double t0_ = now_us();                                                                     \
        call;                                                                                      \
        acc_us[f] += now_us() - t0_;                                                               \
        calls[f]++;                                                                                \
        bytes[f] += (nb);                                                                          \
    } while (0)

void ggml_backend_tensor_set(struct ggml_tensor *t, const void *d, size_t o, size_t n)
{
    static void (*r)(struct ggml_tensor *, const void *, size_t, size_t);
    REAL(r, "ggml_backend_tensor_set");
    TIMED(F_SET, n, r(t, d, o, n));
}

void ggml_backend_tensor_get(const struct ggml_tensor *t, void *d, size_t o, size_t n)
{
    static void (*r)(const struct ggml_tensor *, void *, size_t, size_t);
    REAL(r, "ggml_backend_tensor_get");
    TIMED(F_GET, n, r(t, d, o, n));
}

void ggml_backend_tensor_get_async(backend_t b, const struct ggml_tensor *t, void *d, size_t o, size_t n)
{
    static void (*r)(backend_t, const struct ggml_tensor *, void *, size_t, size_t);
    REAL(r, "ggml_backend_tensor_get_async");
    TIMED(F_GET_ASYNC, n, r(b, t, d, o, n));
}

void ggml_backend_tensor_copy(struct ggml_tensor *s, struct ggml_tensor *d)
{
    static void (*r)(struct ggml_tensor *, struct ggml_tensor *);
    REAL(r, "ggml_backend_tensor_copy");
    TIMED(F_COPY, 0, r(s, d));
}

/* a scheduler call of two pointer arguments, timed into field f */
#define SCHED_WRAPPER(ret, fn, f)                                                                  \
    ret fn(struct ggml_backend_sched *s, struct ggml_cgraph *g)                                    \
    {                                                                                              \
        static ret (*r)(struct ggml_backend_sched *, struct ggml_cgraph *);                        \
        REAL(r, #fn);                                                                              \
        ret st;                                                                                    \
        TIMED(f, 0, st = r(s, g));                                                                 \
        return st;                                                                                 \
    }
SCHED_WRAPPER(int, ggml_backend_sched_graph_compute_async, F_SCHED_COMPUTE)
SCHED_WRAPPER(bool, ggml_backend_sched_alloc_graph, F_SCHED_ALLOC)

static void (*real_sync)(backend_t);

void ggml_backend_synchronize(backend_t b)
{
    REAL(real_sync, "ggml_backend_synchronize");
    TIMED(F_SYNC, 0, real_sync(b));
}

int ggml_backend_graph_compute_async(backend_t b, struct ggml_cgraph *g)
{
    static int (*r)(backend_t, struct ggml_cgraph *);
    static const char *(*name)(backend_t);
    static int (*n_nodes)(struct ggml_cgraph *);
    REAL(r, "ggml_backend_graph_compute_async");
    REAL(real_sync, "ggml_backend_synchronize");
    REAL(name, "ggml_backend_name");
    REAL(n_nodes, "ggml_graph_n_nodes");
    int st;
    if (in_decode) {
        TIMED(F_COMPUTE, 0, st = r(b, g));
        return st;
    }
    real_sync(b);
    double t0 = now_us();
    st = r(b, g);
    real_sync(b);
    fprintf(out(), "COMPUTE %s %d %.1f\n", name(b), n_nodes(g), now_us() - t0);
    return st;
}

/* llama.h's struct llama_batch, by value */
struct batch {
    int32_t n_tokens;
    void *token, *embd, *pos, *n_seq_id, *seq_id, *logits;
};

int32_t llama_decode(void *ctx, struct batch b)
{
    static int32_t (*r)(void *, struct batch);
    if (!r)
        *(void **)&r = dlsym(RTLD_NEXT, "llama_decode");
    for (int i = 0; i < F_N; i++) {
        acc_us[i] = 0;
        calls[i] = 0;
        bytes[i] = 0;
    }
    in_decode = true;
    double t0 = now_us();
    int32_t st = r(ctx, b);
    double total = now_us() - t0;
    in_decode = false;
    fprintf(out(), "DECODE n=%d total=%.0f", b.n_tokens, total);
    for (int i = 0; i < F_N; i++)
        if (calls[i])
            fprintf(out(), " %s=%.0f/%u/%zu", fn_names[i], acc_us[i], calls[i], bytes[i]);
    fprintf(out(), "\n");
    return st;
}
