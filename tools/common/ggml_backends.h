/* Backend loading shared by llama-run, bench-ops and the end-to-end tests. */
#ifndef TOOLS_GGML_BACKENDS_H
#define TOOLS_GGML_BACKENDS_H

#include <ggml-backend.h>
#include <stdbool.h>
#include <stdio.h>

#include "pick_cpu.h" /* gb_pick_cpu_library() */

/* ggml_backend_load_all() (finds libggml-virtgpu.so next to the executable, and whatever
 * GGML_BACKEND_PATH names); then, if that gave no CPU device, the best libggml-cpu-*.so
 * variant of the ggml library folder of this build (the prebuilt CPU libraries live there, not
 * next to our executables). Safe to call more than once. */
void gb_load_backends(void);

/* the CPU device, or NULL */
ggml_backend_dev_t gb_cpu_device(void);

/* the device named name (e.g. "VirtGPU0"), or NULL */
ggml_backend_dev_t gb_device(const char *name);

/* the first device of type GPU / IGPU, or NULL */
ggml_backend_dev_t gb_first_gpu(void);

/* Sets the thread count of a CPU backend (no-op for other backends); n <= 0: the number of
 * online CPUs. ggml's default of 4 oversubscribes small machines and ruins timings. */
void gb_set_threads(ggml_backend_t backend, int n);

/* one line per device: name, type, description */
void gb_print_devices(FILE *f);

/* The two backends a comparison runs on: native on native_dev (named native_label in
 * messages), remote on dev (named dev_name), CPU thread counts set to the online CPUs (the
 * remote one only when it is a second CPU backend: a self-check). false after saying, as prog,
 * which is missing (with the devices found) or could not start. */
bool gb_open_pair(const char *prog, ggml_backend_dev_t native_dev, const char *native_label, ggml_backend_dev_t dev,
                  const char *dev_name, ggml_backend_t *native, ggml_backend_t *remote);


#endif
