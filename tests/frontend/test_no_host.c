/* With no host reachable, libggml-virtgpu.so must load in milliseconds, register zero devices
 * and log which step failed and what to set. Usage: test-vgpu-no-host PATH/libggml-virtgpu.so
 * [unasked]. Run with GGML_VIRTGPU_SOCKET pointing nowhere, the line is a warning (VirtGPU was
 * asked for); "unasked", with no variable set, it is info-level (every ggml program on a
 * machine without a host loads the library): skipped (77) where a host could be found. */
#include <ggml-backend.h>
#include <ggml.h>

#include "log_check.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 2 && !(argc == 3 && !strcmp(argv[2], "unasked"))) {
        fprintf(stderr, "usage: %s PATH/libggml-virtgpu.so [unasked]\n", argv[0]);
        return 2;
    }
    bool unasked = argc == 3;
    if (unasked && (getenv("GGML_VIRTGPU_SOCKET") || getenv("VTEST_SOCKET_NAME") ||
                    access("/tmp/.ggml_virtgpu", F_OK) == 0 || access("/dev/dri", F_OK) == 0)) {
        printf("a host could be found here: skipped\n");
        return 77;
    }
    ggml_log_set(log_capture, NULL);
    double t0 = now_s();
    ggml_backend_reg_t reg = ggml_backend_load(argv[1]);
    double ms = (now_s() - t0) * 1e3;
    CHECK(reg != NULL, "the library must load even without a host");
    CHECK(strcmp(ggml_backend_reg_name(reg), "VirtGPU") == 0, "reg name %s", ggml_backend_reg_name(reg));
    CHECK(ggml_backend_reg_dev_count(reg) == 0, "%zu devices", ggml_backend_reg_dev_count(reg));
    CHECK(ggml_backend_dev_by_name("VirtGPU0") == NULL, "no VirtGPU0 expected");
    CHECK(ms < 100.0, "loading took %.1f ms", ms);
    /* the log names the failing step and the variable to set */
    CHECK(strstr(logbuf, "no VirtGPU device") != NULL, "no reason logged");
    if (unasked) {
        CHECK(strstr(logbuf, "[I] ggml-virtgpu: no VirtGPU device: no host found") != NULL, "not info-level");
    } else {
        CHECK(strstr(logbuf, "[W] ggml-virtgpu: no VirtGPU device") != NULL, "asked for: a warning");
        CHECK(strstr(logbuf, "/nonexistent/apir.sock") != NULL, "the socket path is not in the log");
    }
    ggml_backend_unload(reg);
    ggml_log_set(NULL, NULL);
    printf("no host: loaded in %.2f ms, 0 devices; log:\n%s", ms, logbuf);
    return 0;
}
