/* A ggml application over the emulated render node: loads libggml-virtgpu.so the way ggml's
 * loader does, with no socket configured (so the guest backend takes the virtio-gpu path),
 * computes out = A*B + C on VirtGPU0 twice (new inputs the second time), checks the numbers
 * against a plain C reference, and checks what the emulated device saw.
 * Usage (under run_emu_test.sh): virtgpu_emu_ggml_graph PATH/libggml-virtgpu.so */
#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml.h>

#include "emu_check.h"

#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define K 64 /* shared dimension */
#define M 32 /* rows of A */
#define N 16 /* rows of B */

static float a[M * K], b[N * K], c[N * M], out[N * M];

static void fill(unsigned seed)
{
    for (int i = 0; i < M * K; i++)
        a[i] = (float)((i * 37 + seed) % 23) / 11.0f - 1.0f;
    for (int i = 0; i < N * K; i++)
        b[i] = (float)((i * 11 + seed * 3) % 19) / 9.0f - 1.0f;
    for (int i = 0; i < N * M; i++)
        c[i] = (float)((i + seed) % 7) - 3.0f;
}

/* ggml_mul_mat(A[K,M], B[K,N]) is [M,N]: out[n][m] = dot(A row m, B row n) */
static float max_error(void)
{
    float worst = 0;
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            double s = c[n * M + m];
            for (int k = 0; k < K; k++)
                s += (double)a[m * K + k] * b[n * K + k];
            float e = fabsf((float)s - out[n * M + m]);
            worst = e > worst ? e : worst;
        }
    return worst;
}

static unsigned long stat_count(const char *stats, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = stats; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, name, len) == 0 && p[len] == ' ')
            return strtoul(p + len + 1, NULL, 10);
    return 0;
}

/* has the shim write its record to path now (the guest backend keeps its node open until
 * exit) and reads it into stats; false when not running under the shim */
static bool read_emulation_record(const char *path, char *stats, size_t cap)
{
    void (*dump)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "emu_stats_dump");
    CHECK(dump != NULL, "not running under the virtgpu emulation shim");
    stats[0] = '\0';
    if (!dump)
        return false;
    dump();
    FILE *f = fopen(path, "r");
    if (f) {
        stats[fread(stats, 1, cap - 1, f)] = '\0';
        fclose(f);
    }
    return true;
}

static void check_emulation_record(const char *path)
{
    char stats[8192];
    if (!read_emulation_record(path, stats, sizeof stats))
        return;
    /* two contexts: the device listing at load (given back at once) and the lazy connection
     * made by the first buffer or backend (docs/frontend.md) */
    CHECK(stat_count(stats, "CONTEXT_INIT") == 2, "the guest did not open its two virtio-gpu contexts:\n%s", stats);
    CHECK(stat_count(stats, "EXECBUFFER") >= 8, "too few commands for two graph computes:\n%s", stats);
    static const char *const bad[] = {"UNKNOWN_IOCTL", "BAD_IOCTL_LAYOUT", "MMAP_REFUSED", "HOST_SUBMIT_ERROR",
                                      "HOST_ATTACH_FAILED", "EXECBUFFER_DROPPED", "HOST_CONTEXT_REFUSED"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(stat_count(stats, bad[i]) == 0, "emulation recorded %s:\n%s", bad[i], stats);
    printf("emulation record:\n%s", stats);
}

/* --list-only N: load the library, list its devices and check that the emulated device saw N
 * context inits (1 with a cold device cache, 0 with a warm one) */
static int list_only(const char *lib, unsigned long want, const char *stats_path)
{
    ggml_backend_reg_t reg = ggml_backend_load(lib);
    CHECK(reg && ggml_backend_reg_dev_count(reg) == 1, "%s listed no device over the emulated render node", lib);
    char stats[8192];
    if (!read_emulation_record(stats_path, stats, sizeof stats) || !reg)
        return 1;
    unlink(stats_path);
    CHECK(stat_count(stats, "CONTEXT_INIT") == want, "listing made %lu context inits, not %lu:\n%s",
          stat_count(stats, "CONTEXT_INIT"), want, stats);
    printf("listing: %lu context init(s), device %s\n", stat_count(stats, "CONTEXT_INIT"),
           ggml_backend_dev_description(ggml_backend_reg_dev_get(reg, 0)));
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 2 && !(argc == 4 && !strcmp(argv[2], "--list-only"))) {
        fprintf(stderr, "usage: %s PATH/libggml-virtgpu.so [--list-only CONTEXT_INITS]\n", argv[0]);
        return 2;
    }
    unsetenv("GGML_VIRTGPU_SOCKET");
    unsetenv("VTEST_SOCKET_NAME");
    setenv("GGML_REMOTING_USE_APIR_CAPSET", "1", 1);
    char stats_path[64];
    snprintf(stats_path, sizeof stats_path, "/tmp/virtgpu-emu-graph-%d.stats", (int)getpid());
    setenv("VIRTGPU_EMU_STATS", stats_path, 1);
    if (argc == 4)
        return list_only(argv[1], strtoul(argv[3], NULL, 10), stats_path);

    ggml_backend_reg_t reg = ggml_backend_load(argv[1]);
    if (!reg || ggml_backend_reg_dev_count(reg) < 1) {
        fprintf(stderr, "%s registered no device over the emulated render node\n", argv[1]);
        return 1;
    }
    ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, 0);
    printf("device %s: %s\n", ggml_backend_dev_name(dev), ggml_backend_dev_description(dev));
    ggml_backend_t backend = ggml_backend_dev_init(dev, NULL);
    CHECK(backend != NULL, "cannot init %s", ggml_backend_dev_name(dev));
    if (!backend)
        return 1;

    struct ggml_init_params params = {
        .mem_size = 8 * ggml_tensor_overhead() + ggml_graph_overhead(), .no_alloc = true};
    struct ggml_context *ctx = ggml_init(params);
    struct ggml_tensor *ta = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, K, M);
    struct ggml_tensor *tb = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, K, N);
    struct ggml_tensor *tc = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, M, N);
    struct ggml_tensor *tout = ggml_add(ctx, ggml_mul_mat(ctx, ta, tb), tc);
    struct ggml_cgraph *graph = ggml_new_graph(ctx);
    ggml_build_forward_expand(graph, tout);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, backend);
    CHECK(buf != NULL, "cannot allocate the tensors on %s", ggml_backend_dev_name(dev));
    if (buf) {
        for (unsigned round = 0; round < 2; round++) {
            fill(round * 5 + 1);
            ggml_backend_tensor_set(ta, a, 0, sizeof a);
            ggml_backend_tensor_set(tb, b, 0, sizeof b);
            ggml_backend_tensor_set(tc, c, 0, sizeof c);
            enum ggml_status st = ggml_backend_graph_compute(backend, graph);
            CHECK(st == GGML_STATUS_SUCCESS, "compute #%u: status %d", round, (int)st);
            memset(out, 0, sizeof out);
            ggml_backend_tensor_get(tout, out, 0, sizeof out);
            float err = max_error();
            CHECK(err < 1e-3f, "compute #%u: max error %g against the C reference", round, err);
            printf("compute #%u: max error %g\n", round, err);
        }
        ggml_backend_buffer_free(buf);
    }
    ggml_free(ctx);
    ggml_backend_free(backend);
    check_emulation_record(stats_path);
    unlink(stats_path);
    printf("%s\n", failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
