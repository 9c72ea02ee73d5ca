/* bench-ops: times a few graphs on the native CPU backend and on a remote device (VirtGPU0 by
 * default) in one run, and prints the median time per compute and the ratio remote/native.
 * Also measures the round trip of a tiny graph (set input, compute, get output).
 *
 * Usage: bench-ops [--device NAME] [--native NAME] [--min-time SECONDS] [--filter SUBSTR]
 * --native picks the baseline device (default: the CPU), e.g. CUDA0 on a CUDA host whose
 * backend is loaded with GGML_BACKEND_PATH. */
#include "ggml_backends.h"
#include "tensor_fill.h"

#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bench_case {
    const char *name;
    bool round_trip; /* time set + compute + get, not compute alone */
    struct ggml_tensor *(*build)(struct ggml_context *ctx);
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct ggml_tensor *in(struct ggml_context *c, enum ggml_type t, int64_t a, int64_t b, const char *name)
{
    struct ggml_tensor *x = ggml_new_tensor_2d(c, t, a, b);
    ggml_set_name(x, name);
    return x;
}

#define MM(fn, type, k, m, n)                                                                     \
    static struct ggml_tensor *fn(struct ggml_context *c)                                         \
    {                                                                                             \
        return ggml_mul_mat(c, in(c, type, k, m, "w"), in(c, GGML_TYPE_F32, k, n, "x"));         \
    }
MM(mm_small, GGML_TYPE_F32, 256, 256, 1)
MM(mm_vec_f16, GGML_TYPE_F16, 2048, 2048, 1)
MM(mm_vec_q8_0, GGML_TYPE_Q8_0, 4096, 4096, 1)
MM(mm_batch_q8_0, GGML_TYPE_Q8_0, 2048, 2048, 64)
MM(mm_batch_f32, GGML_TYPE_F32, 1024, 1024, 256)

/* one llama feed-forward block for a single token, as in generation */
static struct ggml_tensor *ffn_block(struct ggml_context *c)
{
    const int64_t e = 1024, f = 2816;
    struct ggml_tensor *x = in(c, GGML_TYPE_F32, e, 1, "x");
    struct ggml_tensor *h = ggml_mul(c, ggml_rms_norm(c, x, 1e-5f), in(c, GGML_TYPE_F32, e, 1, "norm"));
    struct ggml_tensor *g = ggml_silu(c, ggml_mul_mat(c, in(c, GGML_TYPE_F16, e, f, "gate"), h));
    struct ggml_tensor *u = ggml_mul_mat(c, in(c, GGML_TYPE_F16, e, f, "up"), h);
    struct ggml_tensor *d = ggml_mul_mat(c, in(c, GGML_TYPE_F16, f, e, "down"), ggml_mul(c, g, u));
    return ggml_add(c, x, d);
}

static struct ggml_tensor *tiny(struct ggml_context *c)
{
    return ggml_scale(c, in(c, GGML_TYPE_F32, 16, 1, "x"), 2.0f);
}

static const struct bench_case cases[] = {
    { "mul_mat f32 256x256 * 1", false, mm_small },
    { "mul_mat f16 2048x2048 * 1", false, mm_vec_f16 },
    { "mul_mat q8_0 4096x4096 * 1", false, mm_vec_q8_0 },
    { "mul_mat q8_0 2048x2048 * 64", false, mm_batch_q8_0 },
    { "mul_mat f32 1024x1024 * 256", false, mm_batch_f32 },
    { "ffn block f16 1024/2816 * 1", false, ffn_block },
    { "tiny graph compute", false, tiny },
    { "tiny graph round trip", true, tiny },
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* median seconds per iteration, or a negative value on failure */
static double time_case(ggml_backend_t be, const struct bench_case *bc, double min_time)
{
    struct ggml_context *ctx =
        ggml_init((struct ggml_init_params){ 32 * ggml_tensor_overhead() + ggml_graph_overhead(), NULL, true });
    struct ggml_tensor *out = bc->build(ctx);
    struct ggml_cgraph *g = ggml_new_graph(ctx);
    ggml_build_forward_expand(g, out);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, be);
    double per = -1;
    if (!buf)
        goto out;
    struct ggml_tensor *input = NULL;
    for (struct ggml_tensor *t = ggml_get_first_tensor(ctx); t; t = ggml_get_next_tensor(ctx, t)) {
        if (t->op == GGML_OP_NONE) {
            tensor_fill(t, 7);
            input = t;
        }
    }
    float host_in[16] = { 1 }, host_out[16];
    enum { MAX_SAMPLES = 4096 };
    static double samples[MAX_SAMPLES];
    int n = 0;
    double start = 0;
    /* 2 warm-up runs, then until min_time has passed; the median resists scheduler noise */
    for (int i = -2; n < MAX_SAMPLES && (n < 5 || now_s() - start < min_time); i++) {
        if (i == 0)
            start = now_s();
        double t0 = now_s();
        if (bc->round_trip)
            ggml_backend_tensor_set(input, host_in, 0, sizeof host_in);
        if (ggml_backend_graph_compute(be, g) != GGML_STATUS_SUCCESS)
            goto out;
        if (bc->round_trip)
            ggml_backend_tensor_get(out, host_out, 0, sizeof host_out);
        if (i >= 0)
            samples[n++] = now_s() - t0;
    }
    qsort(samples, (size_t)n, sizeof samples[0], cmp_double);
    per = samples[n / 2];
out:
    if (buf)
        ggml_backend_buffer_free(buf);
    ggml_free(ctx);
    return per;
}

static void fmt_time(char *b, size_t n, double s)
{
    if (s < 0)
        snprintf(b, n, "failed");
    else if (s < 1e-3)
        snprintf(b, n, "%.1f us", s * 1e6);
    else
        snprintf(b, n, "%.3f ms", s * 1e3);
}

int main(int argc, char **argv)
{
    const char *dev_name = "VirtGPU0", *native_name = NULL, *filter = NULL;
    double min_time = 0.5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc)
            dev_name = argv[++i];
        else if (!strcmp(argv[i], "--native") && i + 1 < argc)
            native_name = argv[++i];
        else if (!strcmp(argv[i], "--min-time") && i + 1 < argc)
            min_time = atof(argv[++i]);
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc)
            filter = argv[++i];
        else {
            fprintf(stderr, "usage: bench-ops [--device NAME] [--native NAME] [--min-time SECONDS] [--filter SUBSTR]\n");
            return 2;
        }
    }
    gb_load_backends();
    ggml_backend_dev_t cpu_dev = native_name ? gb_device(native_name) : gb_cpu_device(), dev = gb_device(dev_name);
    ggml_backend_t native, remote;
    if (!gb_open_pair("bench-ops", cpu_dev, native_name ? native_name : "CPU", dev, dev_name, &native, &remote))
        return 1;
    printf("native: %s (%s)   remote: %s (%s)\n", ggml_backend_dev_name(cpu_dev),
           ggml_backend_dev_description(cpu_dev), dev_name, ggml_backend_dev_description(dev));
    printf("%-30s %14s %14s %8s\n", "case", "native", "remote", "ratio");
    /* all native timings first, then all remote ones: the host's CPU threads may spin for a
     * while after each compute, which would slow native runs interleaved with remote ones */
    enum { N_CASES = sizeof cases / sizeof cases[0] };
    double t_native[N_CASES], t_remote[N_CASES];
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < N_CASES; i++)
            if (!filter || strstr(cases[i].name, filter))
                (pass ? t_remote : t_native)[i] = time_case(pass ? remote : native, &cases[i], min_time);
    int failed = 0;
    for (size_t i = 0; i < N_CASES; i++) {
        if (filter && !strstr(cases[i].name, filter))
            continue;
        double a = t_native[i], b = t_remote[i];
        char ta[32], tb[32];
        fmt_time(ta, sizeof ta, a);
        fmt_time(tb, sizeof tb, b);
        if (a > 0 && b > 0)
            printf("%-30s %14s %14s %7.2fx\n", cases[i].name, ta, tb, b / a);
        else
            printf("%-30s %14s %14s %8s\n", cases[i].name, ta, tb, "-");
        failed += a < 0 || b < 0;
    }
    printf("ratio = remote time / native time (1.00x = native speed)\n");
    ggml_backend_free(remote);
    ggml_backend_free(native);
    return failed ? 1 : 0;
}
