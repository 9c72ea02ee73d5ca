#include "ggml_backends.h"

#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#ifndef GGML_LIB_DIR
#define GGML_LIB_DIR "."
#endif

ggml_backend_dev_t gb_cpu_device(void)
{
    return ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
}

ggml_backend_dev_t gb_device(const char *name)
{
    return ggml_backend_dev_by_name(name);
}

ggml_backend_dev_t gb_first_gpu(void)
{
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        enum ggml_backend_dev_type t = ggml_backend_dev_type(d);
        if (t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU)
            return d;
    }
    return NULL;
}

void gb_load_backends(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    ggml_backend_load_all();
    if (gb_cpu_device())
        return;
    char path[4096];
    if (gb_pick_cpu_library(GGML_LIB_DIR, path, sizeof path) == 0)
        ggml_backend_load(path);
    else
        fprintf(stderr, "no usable libggml-cpu-*.so in %s\n", GGML_LIB_DIR);
}

void gb_print_devices(FILE *f)
{
    static const char *const types[] = { "CPU", "GPU", "IGPU", "ACCEL", "META" };
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t d = ggml_backend_dev_get(i);
        unsigned t = (unsigned)ggml_backend_dev_type(d);
        fprintf(f, "  %-12s %-5s %s\n", ggml_backend_dev_name(d),
                t < sizeof types / sizeof types[0] ? types[t] : "?", ggml_backend_dev_description(d));
    }
}

void gb_set_threads(ggml_backend_t backend, int n)
{
    ggml_backend_dev_t dev = ggml_backend_get_device(backend);
    if (!dev || ggml_backend_dev_type(dev) != GGML_BACKEND_DEVICE_TYPE_CPU)
        return;
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(dev);
    void (*set)(ggml_backend_t, int) =
        (void (*)(ggml_backend_t, int))ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads");
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    if (set)
        set(backend, n);
}

bool gb_open_pair(const char *prog, ggml_backend_dev_t native_dev, const char *native_label, ggml_backend_dev_t dev,
                  const char *dev_name, ggml_backend_t *native, ggml_backend_t *remote)
{
    if (!native_dev || !dev) {
        fprintf(stderr, "%s: need the %s device and %s; devices found:\n", prog, native_label, dev_name);
        gb_print_devices(stderr);
        return false;
    }
    *native = ggml_backend_dev_init(native_dev, NULL);
    *remote = ggml_backend_dev_init(dev, NULL);
    if (!*native || !*remote) {
        fprintf(stderr, "%s: cannot initialize the backends\n", prog);
        return false;
    }
    gb_set_threads(*native, 0);
    gb_set_threads(*remote, 0);
    return true;
}
