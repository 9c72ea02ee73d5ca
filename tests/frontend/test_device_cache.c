/* A guest program for device-cache.sh: loads libggml-virtgpu.so as applications do, then
 *   list  prints the devices it lists (one line each: name, description, buffer type,
 *         total memory) and touches nothing else, like `llama-cli --list-devices`;
 *   use   also computes y = x*x on VirtGPU0 and checks the result: exit 0 if right, 3 if
 *         the device failed (a compute error, not an abort), 1 if the result is wrong.
 * The captured ggml log goes to stderr (debug lines included: they say where the device
 * list came from). Usage: test-vgpu-device-cache list|use PATH/libggml-virtgpu.so */
#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml.h>

#include "log_check.h"
#include "sqr_graph.h"

#include <stdio.h>
#include <string.h>

#define N 256

static int use(ggml_backend_dev_t dev)
{
    ggml_backend_t be = ggml_backend_dev_init(dev, NULL);
    if (!be)
        return 3;
    struct sqr_graph g = sqr_graph_new(N);
    int rc = 3;
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(g.ctx, be);
    if (buf) {
        float x[N], y[N];
        for (int i = 0; i < N; i++)
            x[i] = (float)(i % 9) - 4.0f;
        ggml_backend_tensor_set(g.x, x, 0, sizeof x);
        if (ggml_backend_graph_compute(be, g.gf) == GGML_STATUS_SUCCESS) {
            memset(y, 0, sizeof y);
            ggml_backend_tensor_get(g.y, y, 0, sizeof y);
            rc = 0;
            for (int i = 0; i < N; i++)
                if (y[i] != x[i] * x[i])
                    rc = 1;
        }
        ggml_backend_buffer_free(buf);
    }
    ggml_backend_free(be);
    ggml_free(g.ctx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "list") && strcmp(argv[1], "use"))) {
        fprintf(stderr, "usage: %s list|use PATH/libggml-virtgpu.so\n", argv[0]);
        return 2;
    }
    ggml_log_set(log_capture, NULL);
    double t0 = now_s();
    ggml_backend_reg_t reg = ggml_backend_load(argv[2]);
    double load_ms = (now_s() - t0) * 1e3;
    if (!reg) {
        fprintf(stderr, "cannot load %s\n%s", argv[2], logbuf);
        return 1;
    }
    size_t n = ggml_backend_reg_dev_count(reg);
    printf("devices %zu (loaded in %.1f ms)\n", n, load_ms);
    for (size_t i = 0; i < n; i++) {
        ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, i);
        size_t free_b = 0, total_b = 0;
        ggml_backend_dev_memory(dev, &free_b, &total_b);
        printf("%s|%s|%s|%zu\n", ggml_backend_dev_name(dev), ggml_backend_dev_description(dev),
               ggml_backend_buft_name(ggml_backend_dev_buffer_type(dev)), total_b);
    }
    int rc = 0;
    if (!strcmp(argv[1], "use")) {
        rc = n ? use(ggml_backend_reg_dev_get(reg, 0)) : 3;
        printf("use: %s\n", rc == 0 ? "ok" : rc == 3 ? "failed" : "wrong result");
    }
    ggml_backend_unload(reg);
    ggml_log_set(NULL, NULL);
    fputs(logbuf, stderr);
    return rc;
}
