/* LD_PRELOAD shim for llama.cpp's test-llama-archs (release v0.5.0) in a GGML_BACKEND_DL build.
 *
 * test-llama-archs lists the devices (ggml_backend_dev_count) before anything has loaded the
 * dynamic backends: libllama only calls ggml_backend_load_all() when it first initialises, so
 * the program would see no device at all, and never the one GGML_BACKEND_PATH names
 * (libggml-virtgpu.so). This shim wraps ggml_backend_dev_count so that the first call loads the
 * backends first, exactly as llama-bench and test-backend-ops do at their start; the program's
 * own code and results are untouched.
 *
 * Built and used by tests/conformance/run.sh:
 *   cc -shared -fPIC -o load-backends.so load_backends.c -ldl
 *   LD_PRELOAD=load-backends.so GGML_BACKEND_PATH=.../libggml-virtgpu.so test-llama-archs ... */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

size_t ggml_backend_dev_count(void);

size_t ggml_backend_dev_count(void)
{
    static size_t (*real_count)(void);
    static int loaded;
    if (!real_count) {
        real_count = (size_t (*)(void))dlsym(RTLD_NEXT, "ggml_backend_dev_count");
        if (!real_count) {
            fprintf(stderr, "load-backends: ggml_backend_dev_count not found: %s\n", dlerror());
            abort();
        }
    }
    if (!loaded) {
        /* set first: ggml_backend_load_all itself counts devices */
        loaded = 1;
        void (*load_all)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "ggml_backend_load_all");
        size_t (*reg_count)(void) = (size_t (*)(void))dlsym(RTLD_DEFAULT, "ggml_backend_reg_count");
        if (!load_all || !reg_count)
            fprintf(stderr, "load-backends: ggml_backend_load_all not found (%s): backends not loaded\n", dlerror());
        else if (reg_count() == 0) /* as libllama does: only when nothing is registered yet */
            load_all();
    }
    return real_count();
}
