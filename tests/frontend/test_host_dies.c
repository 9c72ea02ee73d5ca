/* The host goes away in the middle of a session (apir-server killed): every later call must
 * fail fast with a logged error and a failure value, never abort or hang the application.
 * Usage: test-vgpu-host-dies PATH/libggml-virtgpu.so SERVER_PID (GGML_VIRTGPU_SOCKET set) */
#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml.h>

#include "log_check.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PATH/libggml-virtgpu.so SERVER_PID\n", argv[0]);
        return 2;
    }
    ggml_log_set(log_capture, NULL);
    pid_t server = (pid_t)atoi(argv[2]);
    ggml_backend_reg_t reg = ggml_backend_load(argv[1]);
    CHECK(reg && ggml_backend_reg_dev_count(reg) >= 1, "no device");
    ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, 0);

    struct ggml_init_params p = {ggml_tensor_overhead() * 16 + ggml_graph_overhead() + 1024, NULL, true};
    struct ggml_context *ctx = ggml_init(p);
    struct ggml_tensor *a = ggml_new_tensor_1d(ctx, GGML_TYPE_F32, 1024);
    struct ggml_tensor *b = ggml_sqr(ctx, a);
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, b);
    ggml_backend_t be = ggml_backend_dev_init(dev, NULL);
    CHECK(be != NULL, "backend");
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(ctx, be);
    CHECK(buf != NULL, "buffer");
    float x[1024];
    for (int i = 0; i < 1024; i++)
        x[i] = (float)i;
    ggml_backend_tensor_set(a, x, 0, sizeof x);
    CHECK(ggml_backend_graph_compute(be, gf) == GGML_STATUS_SUCCESS, "compute while the host is up");
    CHECK(ggml_backend_dev_supports_op(dev, b), "sqr is supported");

    /* the host dies */
    CHECK(kill(server, SIGKILL) == 0, "kill %d", (int)server);
    for (int i = 0; i < 200 && kill(server, 0) == 0; i++) {
        char state[64] = "";
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)server);
        FILE *f = fopen(path, "r");
        if (f) { /* a zombie (our parent reaps it) is dead enough */
            if (fgets(state, sizeof state, f) && strstr(state, ") Z"))
                i = 200;
            fclose(f);
        }
        usleep(10000);
    }
    logbuf[0] = '\0';
    double t0 = now_s();
    ggml_backend_tensor_set(a, x, 0, sizeof x);
    ggml_backend_tensor_get(b, x, 0, sizeof x);
    enum ggml_status st = ggml_backend_graph_compute(be, gf);
    CHECK(st != GGML_STATUS_SUCCESS, "compute must fail without a host");
    st = ggml_backend_graph_compute(be, gf); /* would be a RECOMPUTE */
    CHECK(st != GGML_STATUS_SUCCESS, "recompute must fail without a host");
    size_t free_b = 1, total_b = 1;
    ggml_backend_dev_memory(dev, &free_b, &total_b);
    CHECK(free_b == 0 && total_b == 0, "memory without a host");
    struct ggml_tensor *c = ggml_exp(ctx, a); /* a signature never asked before */
    CHECK(!ggml_backend_dev_supports_op(dev, c), "supports_op without a host");
    /* an answer the host gave once is cached in the guest: no round trip, so still true */
    CHECK(ggml_backend_dev_supports_op(dev, b), "cached supports_op answer");
    struct ggml_tensor *b2 = ggml_sqr(ctx, a); /* same signature, another tensor and name */
    ggml_set_name(b2, "another name");
    CHECK(ggml_backend_dev_supports_op(dev, b2), "cached by signature, not by tensor");
    CHECK(ggml_backend_dev_init(dev, NULL) == NULL, "a new backend without a host");
    CHECK(ggml_backend_buft_alloc_buffer(ggml_backend_dev_buffer_type(dev), 4096) == NULL, "alloc without a host");
    ggml_backend_synchronize(be);
    ggml_backend_buffer_free(buf);
    ggml_backend_free(be);
    double dt = now_s() - t0;
    CHECK(dt < 2.0, "failing calls took %.2f s", dt);
    CHECK(strstr(logbuf, "lost the connection to the host") != NULL, "the log says why");
    ggml_free(ctx);
    ggml_backend_unload(reg);
    ggml_log_set(NULL, NULL);
    printf("host died: every call failed in %.3f s total, log:\n%s", dt, logbuf);
    return 0;
}
