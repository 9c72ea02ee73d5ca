/* End to end through apir-server (run under tests/lib/with-server.sh): loads
 * libggml-virtgpu.so the way applications do, checks VirtGPU0, moves data, computes graphs
 * directly and through ggml_backend_sched, and compares every result with the native CPU
 * backend (the same ggml library the host runs).
 * Usage: test-vgpu-e2e load PATH/libggml-virtgpu.so | test-vgpu-e2e load_all */
#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml-impl.h> /* ggml_cgraph.uid, as ggml_backend_sched sets it */
#include <ggml.h>

#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                                                   \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                                  \
            fprintf(stderr, "\n");                                                                         \
            failures++;                                                                                    \
            return false;                                                                                  \
        }                                                                                                  \
    } while (0)

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) & 0xffff) / 32768.0f - 1.0f;
}
static void fill(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = frand();
}

static char last_stats[256]; /* the guest's "N graphs sent, M recomputed" debug line */

static void log_cb(enum ggml_log_level level, const char *text, void *user)
{
    if (strstr(text, "recomputed"))
        snprintf(last_stats, sizeof last_stats, "%s", text);
    if (level >= GGML_LOG_LEVEL_INFO || level == GGML_LOG_LEVEL_CONT)
        fputs(text, stderr);
}

/* the native CPU backend: already registered, or loaded from the library the host uses */
static ggml_backend_dev_t cpu_device(void)
{
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (dev)
        return dev;
    char path[PATH_MAX] = "";
    const char *env = getenv("APIR_LLAMA_CPP_GGML_LIBRARY_PATH"); /* set by with-server.sh */
    if (env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n <= 0)
            return NULL;
        exe[n] = '\0';
        char cmd[PATH_MAX + 32];
        snprintf(cmd, sizeof cmd, "%s/ggml-pick-cpu", dirname(exe));
        FILE *p = popen(cmd, "r");
        if (!p || !fgets(path, sizeof path, p))
            path[0] = '\0';
        if (p)
            pclose(p);
        path[strcspn(path, "\n")] = '\0';
    }
    if (!path[0] || !ggml_backend_load(path))
        return NULL;
    return ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
}

static bool close_enough(const char *what, const float *got, const float *want, size_t n)
{
    double max_err = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - want[i]) / (1.0 + fabs(want[i]));
        if (!(e <= max_err)) /* also catches NaN */
            max_err = isnan(e) ? INFINITY : e;
    }
    CHECK(max_err < 1e-5, "%s: max relative error %g", what, max_err);
    return true;
}

/* ---- the graph: out = mul_mat(w, x) + c, and q = scale(mul_mat(wq, x)) with a Q8_0 weight ---- */
enum { K = 256, M = 48, MQ = 64, N = 40 };

struct model {
    struct ggml_context *ctx;
    struct ggml_tensor *w, *wq, *x, *c, *out, *q;
    struct ggml_cgraph *gf;
    ggml_backend_buffer_t buf;
};

static struct ggml_context *new_ctx(void)
{
    struct ggml_init_params p = {ggml_tensor_overhead() * 64 + ggml_graph_overhead() + 4096, NULL, true};
    return ggml_init(p);
}

/* weights (w, wq, c) go in wctx, the input x and the ops in gctx (may be the same) */
static void build2(struct model *m, struct ggml_context *wctx, struct ggml_context *gctx)
{
    m->ctx = gctx;
    m->w = ggml_new_tensor_2d(wctx, GGML_TYPE_F32, K, M);
    m->wq = ggml_new_tensor_2d(wctx, GGML_TYPE_Q8_0, K, MQ);
    m->c = ggml_new_tensor_2d(wctx, GGML_TYPE_F32, M, N);
    m->x = ggml_new_tensor_2d(gctx, GGML_TYPE_F32, K, N);
    m->out = ggml_add(gctx, ggml_mul_mat(gctx, m->w, m->x), m->c);
    /* a non-contiguous view feeding an op */
    m->out = ggml_cont(gctx, ggml_transpose(gctx, m->out));
    m->q = ggml_scale(gctx, ggml_mul_mat(gctx, m->wq, m->x), 0.5f);
    ggml_set_name(m->out, "out");
    ggml_set_name(m->q, "q");
    m->gf = ggml_new_graph(gctx);
    ggml_build_forward_expand(m->gf, m->out);
    ggml_build_forward_expand(m->gf, m->q);
}

static void build(struct model *m)
{
    struct ggml_context *ctx = new_ctx();
    build2(m, ctx, ctx);
}

struct inputs {
    float w[K * M], x[K * N], c[M * N];
    uint8_t wq[K * MQ * 2]; /* Q8_0 needs 34 bytes per 32 values */
};

static void make_inputs(struct inputs *in)
{
    fill(in->w, K * M);
    fill(in->x, K * N);
    fill(in->c, M * N);
    float tmp[K * MQ];
    fill(tmp, K * MQ);
    ggml_quantize_chunk(GGML_TYPE_Q8_0, tmp, in->wq, 0, MQ, K, NULL);
}

static void upload(struct model *m, const struct inputs *in)
{
    ggml_backend_tensor_set(m->w, in->w, 0, sizeof in->w);
    ggml_backend_tensor_set(m->wq, in->wq, 0, ggml_nbytes(m->wq));
    ggml_backend_tensor_set(m->x, in->x, 0, sizeof in->x);
    ggml_backend_tensor_set(m->c, in->c, 0, sizeof in->c);
}

/* computes the model on dev's backend n_runs times (an identical graph: every run after the
 * first is a GRAPH_RECOMPUTE on VirtGPU0), with the inputs in, replaced by then (if given)
 * before the second run; the last run's results in out[M*N], q[MQ*N] */
static bool run_direct(ggml_backend_dev_t dev, const struct inputs *in, const struct inputs *then, int n_runs,
                       float *out, float *q)
{
    struct model m;
    build(&m);
    ggml_backend_t be = ggml_backend_dev_init(dev, NULL);
    CHECK(be != NULL, "init %s", ggml_backend_dev_name(dev));
    m.buf = ggml_backend_alloc_ctx_tensors(m.ctx, be);
    CHECK(m.buf != NULL, "alloc on %s", ggml_backend_dev_name(dev));
    upload(&m, in);
    for (int r = 0; r < n_runs; r++) {
        if (r == 1 && then)
            upload(&m, then);
        enum ggml_status st = ggml_backend_graph_compute(be, m.gf);
        CHECK(st == GGML_STATUS_SUCCESS, "compute on %s: %s", ggml_backend_dev_name(dev), ggml_status_to_string(st));
    }
    ggml_backend_tensor_get(m.out, out, 0, ggml_nbytes(m.out));
    ggml_backend_tensor_get(m.q, q, 0, ggml_nbytes(m.q));
    ggml_backend_buffer_free(m.buf);
    ggml_backend_free(be);
    ggml_free(m.ctx);
    return true;
}

/* fresh inputs and what the CPU backend computes from them */
static bool cpu_reference(ggml_backend_dev_t cdev, struct inputs *in, float *co, float *cq)
{
    make_inputs(in);
    return run_direct(cdev, in, NULL, 1, co, cq);
}

static bool test_graph_direct(ggml_backend_dev_t vdev, ggml_backend_dev_t cdev)
{
    static struct inputs in;
    static float vo[M * N], vq[MQ * N], co[M * N], cq[MQ * N];
    make_inputs(&in);
    if (!run_direct(cdev, &in, NULL, 1, co, cq) || !run_direct(vdev, &in, NULL, 1, vo, vq))
        return false;
    if (!close_enough("mul_mat+add (once)", vo, co, M * N) || !close_enough("q8_0 mul_mat", vq, cq, MQ * N))
        return false;
    /* three identical computes: the 2nd and 3rd are GRAPH_RECOMPUTE, same result */
    if (!run_direct(vdev, &in, NULL, 3, vo, vq) || !close_enough("mul_mat+add (recomputed)", vo, co, M * N))
        return false;
    CHECK(strstr(last_stats, "1 graphs sent, 2 recomputed") != NULL, "stats: %s", last_stats);
    return true;
}

/* An identical graph recomputed after new input data must see the new data. */
static bool test_recompute_sees_new_data(ggml_backend_dev_t vdev, ggml_backend_dev_t cdev)
{
    static struct inputs a, b;
    static float vo[M * N], vq[MQ * N], co[M * N], cq[MQ * N];
    make_inputs(&a);
    make_inputs(&b);
    if (!run_direct(cdev, &b, NULL, 1, co, cq) || !run_direct(vdev, &a, &b, 2, vo, vq))
        return false;
    return close_enough("recompute with new data", vo, co, M * N) && close_enough("recompute q", vq, cq, MQ * N);
}

/* Graphs that alternate on one backend (a server's prompt and generation steps) are each sent
 * once: the host keeps several (APIR_GRAPH_SLOTS), so the others are GRAPH_RECOMPUTE, each
 * computing its own graph with the current data. */
static bool test_alternating_graphs(ggml_backend_dev_t vdev, ggml_backend_dev_t cdev)
{
    static struct inputs in;
    static float vo[M * N], vq[MQ * N], co[M * N], cq[MQ * N];
    if (!cpu_reference(cdev, &in, co, cq))
        return false;
    struct model m;
    build(&m);
    /* graph 2 computes q alone, graph 3 out alone */
    struct ggml_cgraph *g2 = ggml_new_graph_custom(m.ctx, 16, false), *g3 = ggml_new_graph_custom(m.ctx, 16, false);
    ggml_build_forward_expand(g2, m.q);
    ggml_build_forward_expand(g3, m.out);
    ggml_backend_t be = ggml_backend_dev_init(vdev, NULL);
    CHECK(be != NULL, "init");
    m.buf = ggml_backend_alloc_ctx_tensors(m.ctx, be);
    CHECK(m.buf != NULL, "alloc");
    struct ggml_cgraph *order[] = {m.gf, g2, g3, g2, m.gf, g3, g2, m.gf};
    bool ok = true;
    for (size_t i = 0; i < sizeof order / sizeof order[0] && ok; i++) {
        upload(&m, &in);
        /* what this graph does not compute must stay as zero: the host ran that graph */
        static const float zeros[(M > MQ ? M : MQ) * N];
        ggml_backend_tensor_set(m.out, zeros, 0, sizeof vo);
        ggml_backend_tensor_set(m.q, zeros, 0, sizeof vq);
        CHECK(ggml_backend_graph_compute(be, order[i]) == GGML_STATUS_SUCCESS, "compute %zu", i);
        ggml_backend_tensor_get(m.out, vo, 0, sizeof vo);
        ggml_backend_tensor_get(m.q, vq, 0, sizeof vq);
        if (order[i] != g2)
            ok &= close_enough("alternating graphs: out", vo, co, M * N);
        else
            ok &= close_enough("alternating graphs: out not computed", vo, zeros, M * N);
        if (order[i] != g3)
            ok &= close_enough("alternating graphs: q", vq, cq, MQ * N);
        else
            ok &= close_enough("alternating graphs: q not computed", vq, zeros, MQ * N);
    }
    ggml_backend_buffer_free(m.buf);
    ggml_backend_free(be);
    ggml_free(m.ctx);
    CHECK(ok, "alternating graphs computed the wrong graph");
    CHECK(strstr(last_stats, "3 graphs sent, 5 recomputed") != NULL, "stats: %s", last_stats);
    return true;
}

/* The same model through ggml_backend_sched, as llama.cpp runs it: weights in a VirtGPU
 * buffer, the input and the intermediate tensors placed by the scheduler, CPU as fallback. */
static bool test_sched(ggml_backend_dev_t vdev, ggml_backend_dev_t cdev)
{
    static struct inputs in;
    static float vo[M * N], vq[MQ * N], co[M * N], cq[MQ * N];
    if (!cpu_reference(cdev, &in, co, cq))
        return false;
    ggml_backend_t backends[2] = {ggml_backend_dev_init(vdev, NULL), ggml_backend_dev_init(cdev, NULL)};
    CHECK(backends[0] && backends[1], "init backends");
    ggml_backend_sched_t sched = ggml_backend_sched_new(backends, NULL, 2, GGML_DEFAULT_GRAPH_SIZE, false, true);
    CHECK(sched != NULL, "sched");
    struct model m;
    struct ggml_context *wctx = new_ctx();
    build2(&m, wctx, new_ctx());
    ggml_backend_buffer_t wbuf = ggml_backend_alloc_ctx_tensors_from_buft(wctx, ggml_backend_dev_buffer_type(vdev));
    CHECK(wbuf != NULL, "weights buffer");
    ggml_backend_buffer_set_usage(wbuf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    ggml_set_input(m.x);
    ggml_set_output(m.out);
    ggml_set_output(m.q);
    for (int r = 0; r < 2; r++) {
        CHECK(ggml_backend_sched_alloc_graph(sched, m.gf), "sched alloc");
        upload(&m, &in);
        CHECK(ggml_backend_sched_graph_compute(sched, m.gf) == GGML_STATUS_SUCCESS, "sched compute");
        ggml_backend_tensor_get(m.out, vo, 0, sizeof vo);
        ggml_backend_tensor_get(m.q, vq, 0, sizeof vq);
        if (!close_enough("sched out", vo, co, M * N) || !close_enough("sched q", vq, cq, MQ * N))
            return false;
        ggml_backend_t out_backend = ggml_backend_sched_get_tensor_backend(sched, m.out);
        CHECK(out_backend == backends[0], "the scheduler put 'out' on %s, not VirtGPU0",
              out_backend ? ggml_backend_name(out_backend) : "no backend");
        ggml_backend_sched_reset(sched);
    }
    ggml_backend_sched_free(sched);
    ggml_backend_free(backends[0]);
    ggml_backend_free(backends[1]);
    ggml_backend_buffer_free(wbuf);
    ggml_free(wctx);
    ggml_free(m.ctx);
    return true;
}

/* set/get larger than the data page, memset, clear, copies within and into VirtGPU */
static bool test_transfers(ggml_backend_dev_t vdev, ggml_backend_dev_t cdev)
{
    enum { BIG = 10 * 1024 * 1024 + 123 }; /* 40 MiB of floats: more than one 32 MiB data page */
    struct ggml_context *ctx = new_ctx();
    struct ggml_tensor *a = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, BIG);
    struct ggml_tensor *b = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, BIG);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_dev_buffer_type(vdev));
    CHECK(buf != NULL, "alloc %zu bytes", 2 * (size_t)BIG * 4);
    CHECK(!ggml_backend_buffer_is_host(buf), "VirtGPU buffers are not host memory");
    float *src = malloc((size_t)BIG * 4), *dst = malloc((size_t)BIG * 4);
    fill(src, BIG);
    ggml_backend_tensor_set(a, src, 0, (size_t)BIG * 4);
    memset(dst, 0, (size_t)BIG * 4);
    ggml_backend_tensor_get(a, dst, 0, (size_t)BIG * 4);
    CHECK(memcmp(src, dst, (size_t)BIG * 4) == 0, "big set/get round trip");

    ggml_backend_tensor_copy(a, b); /* VirtGPU -> VirtGPU stays on the host */
    memset(dst, 0, (size_t)BIG * 4);
    ggml_backend_tensor_get(b, dst, 0, (size_t)BIG * 4);
    CHECK(memcmp(src, dst, (size_t)BIG * 4) == 0, "copy within VirtGPU");

    ggml_backend_tensor_memset(a, 0x3f, 4096, 8192);
    float part[4096];
    ggml_backend_tensor_get(a, part, 0, sizeof part);
    const uint8_t *pb = (const uint8_t *)part;
    CHECK(memcmp(part, src, 4096) == 0 && pb[4096] == 0x3f && pb[4096 + 8191] == 0x3f &&
              memcmp(pb + 4096 + 8192, (uint8_t *)src + 4096 + 8192, sizeof part - 4096 - 8192) == 0,
          "memset of a range");

    ggml_backend_buffer_clear(buf, 0);
    ggml_backend_tensor_get(b, part, 4 * 1000, sizeof part);
    for (size_t i = 0; i < 4096; i++)
        CHECK(part[i] == 0.0f, "clear left %g at %zu", part[i], i);

    /* CPU tensor -> VirtGPU tensor (ggml falls back to set_tensor) */
    struct ggml_context *cctx = new_ctx();
    struct ggml_tensor *h = ggml_new_tensor_1d(cctx, GGML_TYPE_F32, 4096);
    ggml_backend_buffer_t hbuf = ggml_backend_alloc_ctx_tensors_from_buft(cctx, ggml_backend_dev_buffer_type(cdev));
    CHECK(hbuf != NULL, "cpu alloc");
    ggml_backend_tensor_set(h, src, 0, 4096 * 4);
    struct ggml_tensor *bv = ggml_view_1d(ctx, b, 4096, 4 * 777);
    ggml_backend_view_init(bv);
    ggml_backend_tensor_copy(h, bv);
    ggml_backend_tensor_get(b, part, 4 * 777, sizeof part);
    CHECK(memcmp(part, src, sizeof part) == 0, "copy CPU -> VirtGPU view");

    ggml_backend_buffer_free(hbuf);
    ggml_free(cctx);
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
    free(src);
    free(dst);
    return true;
}

/* true when p lies in a mapping of a shared-memory file (a blob the host maps too) */
static bool in_shared_mapping(const void *p)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    bool shared = false;
    while (f && !shared && fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && (uintptr_t)p >= lo && (uintptr_t)p < hi)
            shared = perms[3] == 's';
    }
    if (f)
        fclose(f);
    return shared;
}

/* VirtGPU0_Host: CPU memory shared with the host; transfers between it and VirtGPU buffers
 * name its blob (larger than a data page here, so a copy through the page would take two
 * rounds), and a set_tensor from it is done when it returns */
static bool test_host_buffer(ggml_backend_dev_t vdev)
{
    enum { N = 9 * 1024 * 1024 + 17 }; /* 36 MiB of floats */
    struct ggml_backend_dev_props props;
    ggml_backend_dev_get_props(vdev, &props);
    ggml_backend_buffer_type_t hbt = ggml_backend_dev_host_buffer_type(vdev);
    CHECK(props.caps.host_buffer && hbt != NULL, "a host buffer type");
    CHECK(ggml_backend_buft_is_host(hbt) && !ggml_backend_dev_supports_buft(vdev, hbt), "host memory, not VirtGPU's");
    CHECK(strcmp(ggml_backend_buft_name(hbt), "VirtGPU0_Host") == 0, "named %s", ggml_backend_buft_name(hbt));
    struct ggml_context *hctx = new_ctx(), *dctx = new_ctx();
    struct ggml_tensor *h = ggml_new_tensor_1d(hctx, GGML_TYPE_F32, N);
    struct ggml_tensor *back = ggml_new_tensor_1d(hctx, GGML_TYPE_F32, N);
    struct ggml_tensor *d = ggml_new_tensor_1d(dctx, GGML_TYPE_F32, N);
    ggml_backend_buffer_t hbuf = ggml_backend_alloc_ctx_tensors_from_buft(hctx, hbt);
    ggml_backend_buffer_t dbuf = ggml_backend_alloc_ctx_tensors_from_buft(dctx, ggml_backend_dev_buffer_type(vdev));
    CHECK(hbuf && dbuf, "alloc host %p, device %p", (void *)hbuf, (void *)dbuf);
    CHECK(ggml_backend_buffer_is_host(hbuf) && in_shared_mapping(h->data), "the host buffer is a shared mapping");
    float *want = malloc((size_t)N * 4);
    fill(want, N);
    memcpy(h->data, want, (size_t)N * 4); /* the CPU backend writes host buffers directly */
    ggml_backend_tensor_copy(h, d);       /* ggml: set_tensor(d, h->data) */
    memset(h->data, 0, (size_t)N * 4);    /* the write is done: this must not reach d */
    memset(back->data, 0xff, (size_t)N * 4);
    ggml_backend_tensor_get(d, back->data, 0, (size_t)N * 4);
    CHECK(memcmp(back->data, want, (size_t)N * 4) == 0, "host buffer -> VirtGPU -> host buffer");
    /* a range inside, at an odd offset */
    ggml_backend_tensor_get(d, (float *)back->data + 3, 4 * 1001, 4 * 70000);
    CHECK(memcmp((float *)back->data + 3, want + 1001, 4 * 70000) == 0, "a range into the host buffer");
    ggml_backend_buffer_free(dbuf);
    ggml_backend_buffer_free(hbuf);
    ggml_free(hctx);
    ggml_free(dctx);
    free(want);
    return true;
}

static bool test_device(ggml_backend_dev_t vdev)
{
    const char *desc = ggml_backend_dev_description(vdev);
    CHECK(desc && desc[0], "VirtGPU0 has a description");
    enum ggml_backend_dev_type t = ggml_backend_dev_type(vdev);
    CHECK(t != GGML_BACKEND_DEVICE_TYPE_CPU, "llama.cpp would not offload to a CPU-type device");
    size_t free_b = 0, total_b = 0;
    ggml_backend_dev_memory(vdev, &free_b, &total_b);
    struct ggml_backend_dev_props props;
    ggml_backend_dev_get_props(vdev, &props);
    CHECK(strcmp(props.name, "VirtGPU0") == 0, "props name %s", props.name);
    ggml_backend_buffer_type_t buft = ggml_backend_dev_buffer_type(vdev);
    CHECK(buft && ggml_backend_dev_supports_buft(vdev, buft), "own buffer type");
    size_t align = ggml_backend_buft_get_alignment(buft);
    CHECK(align && !(align & (align - 1)), "alignment %zu", align);
    printf("VirtGPU0: '%s' type %d, memory %zu/%zu MiB, buffer type %s (alignment %zu)\n", desc, (int)t,
           free_b >> 20, total_b >> 20, ggml_backend_buft_name(buft), align);

    struct ggml_context *ctx = new_ctx();
    struct ggml_tensor *a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 64, 64);
    struct ggml_tensor *mm = ggml_mul_mat(ctx, a, a);
    CHECK(ggml_backend_dev_supports_op(vdev, mm), "mul_mat f32 supported");
    CHECK(ggml_backend_dev_supports_op(vdev, mm), "mul_mat f32 supported (cached)");
    CHECK(ggml_backend_dev_offload_op(vdev, mm), "a 64-row mul_mat is worth offloading");
    struct ggml_tensor *q = ggml_new_tensor_2d(ctx, GGML_TYPE_Q4_0, 64, 64);
    CHECK(ggml_backend_buft_get_alloc_size(buft, q) >= ggml_nbytes(q), "alloc size of a quantized tensor");
    ggml_free(ctx);
    return true;
}

/* ggml_cast makes a tensor its own source: the graph must still go through */
static bool run_cast(ggml_backend_dev_t dev, const float *in, float *out)
{
    struct ggml_context *ctx = new_ctx();
    struct ggml_tensor *a = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 256);
    struct ggml_tensor *h = ggml_cast(ctx, a, GGML_TYPE_F16);
    struct ggml_tensor *r = ggml_cast(ctx, ggml_scale(ctx, ggml_cast(ctx, h, GGML_TYPE_F32), 3.0f), GGML_TYPE_F32);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, r);
    ggml_backend_t be = ggml_backend_dev_init(dev, NULL);
    CHECK(be != NULL, "init");
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, be);
    CHECK(buf != NULL, "alloc");
    ggml_backend_tensor_set(a, in, 0, 256 * sizeof *in);
    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS, "cast graph on %s", ggml_backend_dev_name(dev));
    ggml_backend_tensor_get(r, out, 0, 256 * sizeof *out);
    ggml_backend_buffer_free(buf);
    ggml_backend_free(be);
    ggml_free(ctx);
    return true;
}

static bool test_cast(ggml_backend_dev_t vdev, ggml_backend_dev_t cdev)
{
    float in[256], vo[256], co[256];
    fill(in, 256);
    return run_cast(cdev, in, co) && run_cast(vdev, in, vo) && close_enough("cast", vo, co, 256);
}

/* Several application threads at once (llama.cpp's loader, server slots): transfers through
 * the shared data page and supports_op through the shared cache must not mix. */
enum { N_THREADS = 4, T_ELEMS = 300000, T_ROUNDS = 20 };

struct thread_arg {
    ggml_backend_dev_t dev;
    struct ggml_tensor *t;
    int id;
    bool ok;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    float *src = malloc(T_ELEMS * sizeof *src), *dst = malloc(T_ELEMS * sizeof *dst);
    struct ggml_init_params ip = {ggml_tensor_overhead() * (2 * T_ROUNDS + 4), NULL, true};
    struct ggml_context *ctx = ggml_init(ip);
    a->ok = src && dst && ctx;
    for (int r = 0; a->ok && r < T_ROUNDS; r++) {
        for (int i = 0; i < T_ELEMS; i++)
            src[i] = (float)(a->id * 1000000 + r * 1000 + i % 997);
        ggml_backend_tensor_set(a->t, src, 0, T_ELEMS * sizeof *src);
        ggml_backend_tensor_get(a->t, dst, 0, T_ELEMS * sizeof *dst);
        a->ok = memcmp(src, dst, T_ELEMS * sizeof *src) == 0;
        struct ggml_tensor *x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 16 + a->id, 4 + r % 3);
        a->ok = a->ok && ggml_backend_dev_supports_op(a->dev, ggml_add(ctx, x, x));
    }
    ggml_free(ctx);
    free(src);
    free(dst);
    return NULL;
}

static bool test_threads(ggml_backend_dev_t vdev)
{
    struct ggml_context *ctx = new_ctx();
    struct thread_arg args[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        args[i] = (struct thread_arg){vdev, ggml_new_tensor_1d(ctx, GGML_TYPE_F32, T_ELEMS), i, false};
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, ggml_backend_dev_buffer_type(vdev));
    CHECK(buf != NULL, "alloc");
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        pthread_create(&th[i], NULL, thread_main, &args[i]);
    bool ok = true;
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        ok = ok && args[i].ok;
    }
    ggml_backend_buffer_free(buf);
    ggml_free(ctx);
    CHECK(ok, "concurrent transfers and supports_op");
    return true;
}

/* Several threads, each its own backend, computing y = x*x (an output, left in the data page
 * by GRAPH_RECOMPUTE) and z = -x (not an output: its read is a BUFFER_GET through the same
 * page, which copies every thread's kept outputs out first): each thread reads its y before
 * and after its own and the others' reads of z */
enum { O_THREADS = 3, O_ELEMS = 32768, O_ROUNDS = 150 };
struct outputs_arg {
    ggml_backend_dev_t dev;
    int id;
    bool ok;
};

static void *outputs_thread(void *p)
{
    struct outputs_arg *a = p;
    struct ggml_init_params ip = {ggml_tensor_overhead() * 4 + ggml_graph_overhead() + 1024, NULL, true};
    struct ggml_context *ctx = ggml_init(ip);
    struct ggml_tensor *x = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, O_ELEMS);
    struct ggml_tensor *y = ggml_sqr(ctx, x), *z = ggml_neg(ctx, x);
    ggml_set_output(y);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, y);
    ggml_build_forward_expand(gf, z);
    ggml_backend_t be = ggml_backend_dev_init(a->dev, NULL);
    ggml_backend_buffer_t buf = be ? ggml_backend_alloc_ctx_tensors(ctx, be) : NULL;
    float *in = malloc(O_ELEMS * sizeof *in), *gy = malloc(O_ELEMS * sizeof *gy), *gz = malloc(O_ELEMS * sizeof *gz);
    a->ok = buf && in && gy && gz;
    for (int r = 0; a->ok && r < O_ROUNDS; r++) {
        for (int i = 0; i < O_ELEMS; i++)
            in[i] = (float)((i + r * 7 + a->id * 1000) % 1000);
        ggml_backend_tensor_set(x, in, 0, O_ELEMS * sizeof *in);
        a->ok = ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS;
        for (int pass = 0; a->ok && pass < 2; pass++) {
            ggml_backend_tensor_get(y, gy, 0, O_ELEMS * sizeof *gy);
            ggml_backend_tensor_get(z, gz, 0, O_ELEMS * sizeof *gz);
            for (int i = 0; a->ok && i < O_ELEMS; i++)
                a->ok = gy[i] == in[i] * in[i] && gz[i] == -in[i];
            if (!a->ok)
                fprintf(stderr, "thread %d round %d pass %d: wrong output\n", a->id, r, pass);
        }
    }
    free(in);
    free(gy);
    free(gz);
    if (buf)
        ggml_backend_buffer_free(buf);
    if (be)
        ggml_backend_free(be);
    ggml_free(ctx);
    return NULL;
}

static bool test_threads_outputs(ggml_backend_dev_t vdev)
{
    struct outputs_arg args[O_THREADS];
    pthread_t th[O_THREADS];
    for (int i = 0; i < O_THREADS; i++) {
        args[i] = (struct outputs_arg){vdev, i, false};
        pthread_create(&th[i], NULL, outputs_thread, &args[i]);
    }
    bool ok = true;
    for (int i = 0; i < O_THREADS; i++) {
        pthread_join(th[i], NULL);
        ok = ok && args[i].ok;
    }
    CHECK(ok, "outputs read back right while other threads compute and read");
    return true;
}

/* The guest keeps a graph's output nodes by graph id (vgpu_backend.c, list_output_nodes):
 * graphs with ids, alternating, one with more outputs than one GRAPH_RECOMPUTE brings back,
 * one without an id; every output read back right after each compute. */
enum { L_ELEMS = 64, L_MANY = 20 };
static bool test_output_lists(ggml_backend_dev_t vdev)
{
    struct ggml_init_params ip = {ggml_tensor_overhead() * 32 + ggml_graph_overhead() * 3 + 4096, NULL, true};
    struct ggml_context *ctx = ggml_init(ip);
    struct ggml_tensor *x = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, L_ELEMS), *many[L_MANY];
    struct ggml_cgraph *ga = ggml_new_graph(ctx), *gb = ggml_new_graph(ctx), *gc = ggml_new_graph(ctx);
    for (int i = 0; i < L_MANY; i++) {
        many[i] = ggml_scale(ctx, x, (float)(i + 1));
        ggml_set_output(many[i]);
        ggml_build_forward_expand(ga, many[i]);
    }
    struct ggml_tensor *neg = ggml_neg(ctx, x), *sq = ggml_sqr(ctx, x);
    ggml_set_output(neg);
    ggml_set_output(sq);
    ggml_build_forward_expand(gb, neg);
    ggml_build_forward_expand(gb, sq);
    ggml_build_forward_expand(gc, sq); /* uid 0: listed anew each time */
    ga->uid = (1ull << 60) + 1; /* ids of our own, far from ggml's counter */
    gb->uid = (1ull << 60) + 2;
    ggml_backend_t be = ggml_backend_dev_init(vdev, NULL);
    ggml_backend_buffer_t buf = be ? ggml_backend_alloc_ctx_tensors(ctx, be) : NULL;
    bool ok = buf != NULL;
    struct ggml_cgraph *order[] = {ga, gb, ga, gc, gb, ga, gc, ga};
    for (size_t r = 0; ok && r < sizeof order / sizeof order[0]; r++) {
        float in[L_ELEMS], got[L_ELEMS];
        for (int i = 0; i < L_ELEMS; i++)
            in[i] = (float)((i * 3 + (int)r * 5) % 17) - 8.0f;
        ggml_backend_tensor_set(x, in, 0, sizeof in);
        ok = ggml_backend_graph_compute(be, order[r]) == GGML_STATUS_SUCCESS;
        int n = order[r] == ga ? L_MANY : order[r] == gb ? 2 : 1;
        for (int k = 0; ok && k < n; k++) {
            struct ggml_tensor *t = order[r] == ga ? many[k] : order[r] == gb && k == 0 ? neg : sq;
            ggml_backend_tensor_get(t, got, 0, sizeof got);
            for (int i = 0; ok && i < L_ELEMS; i++) {
                float want = t == neg ? -in[i] : t == sq ? in[i] * in[i] : in[i] * (float)(k + 1);
                ok = got[i] == want;
                if (!ok)
                    fprintf(stderr, "round %zu output %s[%d]: %g, want %g\n", r, t == neg ? "neg" : t == sq ? "sqr" : "scale", i,
                            got[i], want);
            }
        }
    }
    if (buf)
        ggml_backend_buffer_free(buf);
    if (be)
        ggml_backend_free(be);
    ggml_free(ctx);
    CHECK(ok, "outputs of graphs with and without ids, alternating, read back right");
    return true;
}

/* ---- weights the host repacks for its CPU backend (src/backend/repacked_weights.h) ---- */
enum { RK = 256, RM = 64, RN = 7, RQ = RM * RK / 32 * 18 /* Q4_0 bytes */ };
enum x_shape { X_PLAIN, X_STRIDED, X_4D };
enum { RSTEPS = 4, RMAX = RM * 12 /* the 4-D x has 12 rows */ };

/* y = mul_mat(w, x), w a Q4_0 weight in wbuft (NULL: dev's own type); with_cpy: also
 * ycpy = mul_mat(cpy(wsrc -> w), x), a graph that writes the weight before reading it. Steps:
 * 1 y; 2 y after a new weight is set; 3 ycpy; 4 y again, which must see what the CPY wrote */
static bool run_repack_steps(ggml_backend_dev_t dev, ggml_backend_buffer_type_t wbuft, enum x_shape s, bool with_cpy,
                             float out[RSTEPS][RMAX])
{
    static uint8_t qa[RQ], qb[RQ];
    static float wf[RM * RK], xin[(RK + 32) * 12];
    uint64_t seed = rng;
    rng = 0x51f15eedu; /* the same data on every device */
    fill(wf, RM * RK);
    ggml_quantize_chunk(GGML_TYPE_Q4_0, wf, qa, 0, RM, RK, NULL);
    fill(wf, RM * RK);
    ggml_quantize_chunk(GGML_TYPE_Q4_0, wf, qb, 0, RM, RK, NULL);
    fill(xin, (RK + 32) * 12);
    fill(wf, RM * RK); /* what the CPY writes */
    rng = seed;

    struct ggml_context *wctx = new_ctx(), *ctx = new_ctx();
    struct ggml_tensor *w = ggml_new_tensor_2d(wctx, GGML_TYPE_Q4_0, RK, RM), *x, *xdata;
    if (s == X_STRIDED) { /* rows RK + 32 floats apart */
        xdata = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, RK + 32, RN);
        x = ggml_view_2d(ctx, xdata, RK, RN, xdata->nb[1], 0);
    } else {
        x = xdata = s == X_4D ? ggml_new_tensor_4d(ctx, GGML_TYPE_F32, RK, 3, 2, 2)
                              : ggml_new_tensor_2d(ctx, GGML_TYPE_F32, RK, RN);
    }
    struct ggml_tensor *y = ggml_mul_mat(ctx, w, x), *wsrc = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, RK, RM);
    struct ggml_tensor *ycpy = ggml_mul_mat(ctx, ggml_cpy(ctx, wsrc, w), x);
    struct ggml_cgraph *g = ggml_new_graph_custom(ctx, 16, false), *gc = ggml_new_graph_custom(ctx, 16, false);
    ggml_build_forward_expand(g, y);
    ggml_build_forward_expand(gc, ycpy);
    ggml_backend_t be = ggml_backend_dev_init(dev, NULL);
    CHECK(be != NULL, "init %s", ggml_backend_dev_name(dev));
    ggml_backend_buffer_t wbuf = ggml_backend_alloc_ctx_tensors_from_buft(wctx, wbuft ? wbuft : ggml_backend_dev_buffer_type(dev));
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, be);
    CHECK(wbuf && buf, "alloc on %s", ggml_backend_dev_name(dev));
    ggml_backend_buffer_set_usage(wbuf, GGML_BACKEND_BUFFER_USAGE_WEIGHTS);
    ggml_backend_tensor_set(xdata, xin, 0, ggml_nbytes(xdata));
    ggml_backend_tensor_set(wsrc, wf, 0, sizeof wf);
    bool ok = true;
    for (int step = 0; step < (with_cpy ? RSTEPS : 2) && ok; step++) {
        if (step <= 1)
            ggml_backend_tensor_set(w, step ? qb : qa, 0, RQ);
        ok = ggml_backend_graph_compute(be, step == 2 ? gc : g) == GGML_STATUS_SUCCESS;
        ggml_backend_tensor_get(step == 2 ? ycpy : y, out[step], 0, ggml_nbytes(y));
    }
    ggml_backend_buffer_free(buf);
    ggml_backend_buffer_free(wbuf);
    ggml_backend_free(be);
    ggml_free(ctx);
    ggml_free(wctx);
    CHECK(ok, "compute on %s", ggml_backend_dev_name(dev));
    return true;
}

/* ggml-cpu's CPU_REPACK type when it repacks a Q4_0 weight of this shape on this machine */
static ggml_backend_buffer_type_t native_repack(ggml_backend_dev_t cdev)
{
    ggml_backend_dev_get_extra_bufts_t get = (ggml_backend_dev_get_extra_bufts_t)ggml_backend_reg_get_proc_address(
        ggml_backend_dev_backend_reg(cdev), "ggml_backend_dev_get_extra_bufts");
    ggml_backend_buffer_type_t *b = get ? get(cdev) : NULL;
    for (; b && *b && strcmp(ggml_backend_buft_name(*b), "CPU_REPACK") != 0; b++)
        ;
    if (!b || !*b)
        return NULL;
    struct ggml_context *ctx = new_ctx();
    ggml_new_tensor_2d(ctx, GGML_TYPE_Q4_0, RK, RM);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors_from_buft(ctx, *b);
    bool repacks = buf && ggml_get_first_tensor(ctx)->extra != NULL; /* init_tensor chose a layout */
    if (buf)
        ggml_backend_buffer_free(buf);
    ggml_free(ctx);
    return repacks ? *b : NULL;
}

static bool host_log_says(const char *what)
{
    const char *path = getenv("APIR_SERVER_LOG"); /* set by with-server.sh */
    FILE *f = path ? fopen(path, "r") : NULL;
    enum { CAP = 16 << 20 };
    char *text = f ? malloc(CAP) : NULL;
    size_t n = text ? fread(text, 1, CAP - 1, f) : 0;
    if (f)
        fclose(f);
    if (text)
        text[n] = '\0';
    bool said = text && strstr(text, what) != NULL;
    free(text);
    return said;
}

/* Q4_0 products on VirtGPU0: where the host's ggml-cpu repacks (CPU_REPACK), bit-identical to
 * the native CPU backend with the weight in CPU_REPACK, also after the guest sets a new weight;
 * a graph that writes the weight reads the plain bytes, and the next one sees what it wrote;
 * activations the repacked kernels cannot take (rows apart, which they read as one block; 4-D,
 * which their kernel asserts against)
 * give the plain kernel's result, bit-identical to the native plain CPU backend. */
static bool test_repacked_weights(ggml_backend_dev_t vdev, ggml_backend_dev_t cdev)
{
    static float v[RSTEPS][RMAX], c[RSTEPS][RMAX], n[RSTEPS][RMAX];
    ggml_backend_buffer_type_t repack = native_repack(cdev);
    const enum x_shape shapes[] = {X_PLAIN, X_STRIDED, X_4D};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        enum x_shape s = shapes[i];
        size_t rows = (size_t)RM * (s == X_4D ? 12 : RN);
        if (!run_repack_steps(vdev, NULL, s, true, v) || !run_repack_steps(cdev, NULL, s, true, c))
            return false;
        bool eligible = s == X_PLAIN && repack;
        if (eligible && !run_repack_steps(cdev, repack, s, false, n))
            return false;
        for (int step = 0; step < RSTEPS; step++) {
            /* repacked and plain kernels differ only in rounding; a stale copy is far off */
            double max_err = 0;
            for (size_t k = 0; k < rows; k++) {
                double e = fabs((double)v[step][k] - c[step][k]) / (1.0 + fabs(c[step][k]));
                max_err = isnan(e) || e > max_err ? (isnan(e) ? INFINITY : e) : max_err;
            }
            CHECK(max_err < 1e-3, "x shape %d, step %d: max relative error %g against the plain CPU", (int)s, step + 1,
                  max_err);
            /* steps 1-2 read the host's copy, 3 the plain bytes (the graph writes them), 4 the
             * copy again, refreshed from them (compared above: a native CPU_REPACK weight
             * cannot be written by a CPY) */
            if (eligible && step < 2)
                CHECK(memcmp(v[step], n[step], rows * sizeof(float)) == 0,
                      "step %d: not the native CPU_REPACK result", step + 1);
            else if (!eligible || step == 2)
                CHECK(memcmp(v[step], c[step], rows * sizeof(float)) == 0,
                      "x shape %d, step %d: not the native plain CPU result", (int)s, step + 1);
        }
    }
    if (repack)
        CHECK(host_log_says("repacked into CPU_REPACK copies"), "the host log does not mention repacked weights");
    else
        fprintf(stderr, "note: this machine's ggml-cpu does not repack Q4_0: only the plain results were checked\n");
    return true;
}

int main(int argc, char **argv)
{
    ggml_log_set(log_cb, NULL);
    ggml_backend_reg_t reg = NULL;
    if (argc == 3 && strcmp(argv[1], "load") == 0) {
        reg = ggml_backend_load(argv[2]);
    } else if (argc == 2 && strcmp(argv[1], "load_all") == 0) {
        ggml_backend_load_all(); /* finds libggml-virtgpu.so next to this executable */
        reg = ggml_backend_reg_by_name("VirtGPU");
    } else {
        fprintf(stderr, "usage: %s load PATH/libggml-virtgpu.so | %s load_all\n", argv[0], argv[0]);
        return 2;
    }
    if (!reg || ggml_backend_reg_dev_count(reg) < 1) {
        fprintf(stderr, "FAIL: no VirtGPU reg or no device (is apir-server running?)\n");
        return 1;
    }
    ggml_backend_dev_t vdev = ggml_backend_dev_by_name("VirtGPU0");
    ggml_backend_dev_t cdev = cpu_device();
    if (!vdev || !cdev) {
        fprintf(stderr, "FAIL: VirtGPU0 %p, CPU %p\n", (void *)vdev, (void *)cdev);
        return 1;
    }
    test_device(vdev);
    test_transfers(vdev, cdev);
    test_host_buffer(vdev);
    test_graph_direct(vdev, cdev);
    test_recompute_sees_new_data(vdev, cdev);
    test_alternating_graphs(vdev, cdev);
    test_sched(vdev, cdev);
    test_threads(vdev);
    test_threads_outputs(vdev);
    test_output_lists(vdev);
    test_cast(vdev, cdev);
    test_repacked_weights(vdev, cdev);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("e2e (%s): all checks passed\n", argv[1]);
    return 0;
}
