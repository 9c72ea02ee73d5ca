/* op-consistency: runs every graph of op_cases.c on the native CPU backend and on a remote
 * device (VirtGPU0 by default) with identical inputs, and compares the outputs by normalized
 * mean squared error against ggml's test-backend-ops tolerances. Each case runs three times
 * with different inputs: so a remote side that reuses a cached graph must still pick up new
 * data, and the last time through the async set/compute/get entry points.
 *
 * Usage: op-consistency [--device NAME] [--require-all] [--filter SUBSTR]
 * Exit 0 only if every case the device supports matches (and, with --require-all, the device
 * supports every case the CPU supports). */
#include "ggml_backends.h"
#include "op_cases.h"
#include "tensor_fill.h"

#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum verdict { V_OK, V_FAIL, V_UNSUPPORTED, V_SKIP };

struct side {
    ggml_backend_t backend;
    struct ggml_context *ctx;
    struct ggml_cgraph *graph;
    struct ggml_tensor *out;
    ggml_backend_buffer_t buf;
};

static bool is_view_op(enum ggml_op op)
{
    return op == GGML_OP_NONE || op == GGML_OP_VIEW || op == GGML_OP_RESHAPE ||
           op == GGML_OP_PERMUTE || op == GGML_OP_TRANSPOSE;
}

static bool supports_graph(ggml_backend_dev_t dev, struct ggml_cgraph *g)
{
    for (int i = 0; i < ggml_graph_n_nodes(g); i++) {
        struct ggml_tensor *n = ggml_graph_node(g, i);
        if (!is_view_op(n->op) && !ggml_backend_dev_supports_op(dev, n))
            return false;
    }
    return true;
}

static int side_build(struct side *s, ggml_backend_t backend, const struct op_case *c)
{
    memset(s, 0, sizeof *s);
    s->backend = backend;
    size_t mem = 64 * ggml_tensor_overhead() + ggml_graph_overhead();
    s->ctx = ggml_init((struct ggml_init_params){ mem, NULL, true });
    if (!s->ctx)
        return -1;
    s->out = c->build(s->ctx);
    s->graph = ggml_new_graph(s->ctx);
    ggml_build_forward_expand(s->graph, s->out);
    return ggml_is_contiguous(s->out) ? 0 : -1;
}

static void side_free(struct side *s)
{
    if (s->buf)
        ggml_backend_buffer_free(s->buf);
    if (s->ctx)
        ggml_free(s->ctx);
}

/* Uploads the inputs for seed and computes, through the async entry points (as ggml's scheduler
 * uses them) or the plain ones; the upload buffers live until the backend has synchronized. */
static int side_compute(struct side *s, uint64_t seed, bool async, void *out_raw)
{
    enum { MAX_INPUTS = 16 };
    void *bytes[MAX_INPUTS];
    int n = 0, rc = -1;
    for (struct ggml_tensor *t = ggml_get_first_tensor(s->ctx); t; t = ggml_get_next_tensor(s->ctx, t)) {
        if (t->op != GGML_OP_NONE)
            continue;
        if (n == MAX_INPUTS || !(bytes[n] = tensor_fill_bytes(t, seed)))
            goto out;
        if (async)
            ggml_backend_tensor_set_async(s->backend, t, bytes[n], 0, ggml_nbytes(t));
        else
            ggml_backend_tensor_set(t, bytes[n], 0, ggml_nbytes(t));
        n++;
    }
    if (async) {
        if (ggml_backend_graph_compute_async(s->backend, s->graph) != GGML_STATUS_SUCCESS)
            goto out;
        ggml_backend_tensor_get_async(s->backend, s->out, out_raw, 0, ggml_nbytes(s->out));
        ggml_backend_synchronize(s->backend);
    } else {
        if (ggml_backend_graph_compute(s->backend, s->graph) != GGML_STATUS_SUCCESS)
            goto out;
        ggml_backend_tensor_get(s->out, out_raw, 0, ggml_nbytes(s->out));
    }
    rc = 0;
out:
    if (rc && async)
        ggml_backend_synchronize(s->backend);
    while (n > 0)
        free(bytes[--n]);
    return rc;
}

/* allocate on the backend (once), run with seed, read the output as floats */
static int side_run(struct side *s, uint64_t seed, bool async, float *out)
{
    if (!s->buf) {
        s->buf = ggml_backend_alloc_ctx_tensors(s->ctx, s->backend);
        if (!s->buf)
            return -1;
    }
    void *raw = malloc(ggml_nbytes(s->out));
    if (!raw || side_compute(s, seed, async, raw)) {
        free(raw);
        return -1;
    }
    const int64_t n = ggml_nelements(s->out);
    if (s->out->type == GGML_TYPE_F32)
        memcpy(out, raw, (size_t)n * sizeof(float));
    else
        ggml_get_type_traits(s->out->type)->to_float(raw, out, n);
    free(raw);
    return 0;
}

/* test-backend-ops' measure: sum((a-b)^2) / sum(a^2); a NaN/Inf mismatch counts as infinite */
static double nmse(const float *ref, const float *got, int64_t n)
{
    double err = 0, norm = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(ref[i]) || isnan(got[i]) || isinf(ref[i]) || isinf(got[i])) {
            if ((isnan(ref[i]) && isnan(got[i])) || ref[i] == got[i])
                continue;
            return INFINITY;
        }
        double d = (double)ref[i] - got[i];
        err += d * d;
        norm += (double)ref[i] * ref[i];
    }
    return norm > 0 ? err / norm : err;
}

static enum verdict run_case(const struct op_case *c, ggml_backend_dev_t cpu_dev,
                             ggml_backend_dev_t dev, ggml_backend_t native, ggml_backend_t remote,
                             double *worst, const char **why)
{
    struct side a, b;
    enum verdict v = V_FAIL;
    *worst = 0;
    *why = "";
    if (side_build(&a, native, c) || side_build(&b, remote, c)) {
        *why = "graph build failed";
        goto out;
    }
    if (!supports_graph(cpu_dev, a.graph)) {
        v = V_SKIP;
        *why = "not supported by the CPU backend";
        goto out;
    }
    if (!supports_graph(dev, b.graph)) {
        v = V_UNSUPPORTED;
        *why = "device does not support an op";
        goto out;
    }
    const int64_t n = ggml_nelements(a.out);
    float *ra = malloc(sizeof(float) * (size_t)n), *rb = malloc(sizeof(float) * (size_t)n);
    v = V_OK;
    /* round 0 sends the graph; round 1 computes the same graph on new inputs (a remote side
     * that reuses the graph must pick the new data up); round 2 uses the async entry points */
    static const char *const round_why[] = { "mismatch", "mismatch on the second run (stale inputs?)",
                                              "mismatch with async set/compute/get" };
    for (int round = 0; round < 3 && v == V_OK; round++) {
        uint64_t seed = 1000 + (uint64_t)round;
        bool async = round == 2;
        if (!ra || !rb || side_run(&a, seed, false, ra)) {
            v = V_FAIL;
            *why = "native run failed";
        } else if (side_run(&b, seed, async, rb)) {
            v = V_FAIL;
            *why = "device claims support but the run failed";
        } else {
            double e = nmse(ra, rb, n);
            if (e > *worst || isnan(e))
                *worst = e;
            if (!(e <= c->max_nmse)) {
                v = V_FAIL;
                *why = round_why[round];
            }
        }
    }
    free(ra);
    free(rb);
out:
    side_free(&a);
    side_free(&b);
    return v;
}

int main(int argc, char **argv)
{
    const char *dev_name = "VirtGPU0", *filter = NULL;
    bool require_all = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--device") && i + 1 < argc)
            dev_name = argv[++i];
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc)
            filter = argv[++i];
        else if (!strcmp(argv[i], "--require-all"))
            require_all = true;
        else {
            fprintf(stderr, "usage: op-consistency [--device NAME] [--require-all] [--filter SUBSTR]\n");
            return 2;
        }
    }
    gb_load_backends();
    ggml_backend_dev_t cpu_dev = gb_cpu_device(), dev = gb_device(dev_name);
    ggml_backend_t native, remote;
    if (!gb_open_pair("op-consistency", cpu_dev, "CPU", dev, dev_name, &native, &remote))
        return 1;
    printf("native: %s   device: %s (%s)\n", ggml_backend_dev_name(cpu_dev), dev_name,
           ggml_backend_dev_description(dev));
    printf("%-22s %12s %10s  %s\n", "case", "nmse", "max", "result");
    static const char *const names[] = { "ok", "FAIL", "UNSUPPORTED", "skip" };
    int failed = 0, passed = 0;
    for (size_t i = 0; i < op_cases_count; i++) {
        const struct op_case *c = &op_cases[i];
        if (filter && !strstr(c->name, filter))
            continue;
        double worst;
        const char *why;
        enum verdict v = run_case(c, cpu_dev, dev, native, remote, &worst, &why);
        printf("%-22s %12.3e %10.1e  %s%s%s\n", c->name, worst, c->max_nmse, names[v],
               *why ? ": " : "", why);
        fflush(stdout);
        if (v == V_FAIL || (v == V_UNSUPPORTED && require_all))
            failed++;
        else if (v == V_OK)
            passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    ggml_backend_free(remote);
    ggml_backend_free(native);
    return failed || !passed ? 1 : 0;
}
