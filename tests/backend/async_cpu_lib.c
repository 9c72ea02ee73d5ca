/* A GGML backend library for tests: the real CPU backend (the library named by
 * APIR_ASYNC_CPU_LIBRARY, loaded at registration) behind a device that behaves as a GPU's
 * towards transfers: set_tensor_async is deferred until the backend synchronizes or computes
 * (stream order), get_tensor_async until it synchronizes, and the device has a host buffer
 * type, so apir-server queues guest writes and output reads on it exactly as on CUDA
 * (src/backend/queued_writes.c) while ggml's CPU kernels compute for
 * real. With it, test-backend-ops through VirtGPU0 checks the host's queued-write path on a
 * machine without a GPU:
 *   CONFORMANCE_HOST_LIB=build/tests/backend/libapir_async_cpu.so
 *   APIR_LLAMA_CPP_GGML_LIBRARY_REG=apir_async_cpu_reg APIR_ASYNC_CPU_LIBRARY=.../libggml-cpu.so
 *   bash tests/conformance/run.sh ... */
#include "deferred_copies.h"
#include "ggml-backend-impl.h"

#include <dlfcn.h>

#define EXPORT __attribute__((visibility("default")))

static ggml_backend_reg_t cpu_reg;
static ggml_backend_dev_t cpu_dev;
static struct ggml_backend_device dev;
static struct ggml_backend_reg reg;

static struct ggml_backend_i cpu_iface; /* the CPU backend's own functions */

static void deferred_set(ggml_backend_t b, struct ggml_tensor *t, const void *data, size_t off, size_t size)
{
    deferred_add((char *)t->data + off, data, size);
}

/* a read queued on the stream: it lands when the stream synchronizes, after the compute */
static void deferred_get(ggml_backend_t b, const struct ggml_tensor *t, void *data, size_t off, size_t size)
{
    deferred_add(data, (const char *)t->data + off, size);
}

static void deferred_sync(ggml_backend_t b)
{
    deferred_run();
    if (cpu_iface.synchronize)
        cpu_iface.synchronize(b);
}

static enum ggml_status deferred_compute(ggml_backend_t b, struct ggml_cgraph *g)
{
    deferred_run(); /* the writes queued before the compute come first in stream order */
    return cpu_iface.graph_compute(b, g);
}

static void deferred_free(ggml_backend_t b)
{
    deferred_run();
    cpu_iface.free(b);
}

static const char *dev_name(ggml_backend_dev_t d) { return "CPUAsync"; }
static const char *dev_description(ggml_backend_dev_t d) { return cpu_dev->iface.get_description(cpu_dev); }
static void dev_memory(ggml_backend_dev_t d, size_t *free, size_t *total) { cpu_dev->iface.get_memory(cpu_dev, free, total); }
static enum ggml_backend_dev_type dev_type(ggml_backend_dev_t d) { return GGML_BACKEND_DEVICE_TYPE_GPU; }
static void dev_props(ggml_backend_dev_t d, struct ggml_backend_dev_props *p)
{
    cpu_dev->iface.get_props(cpu_dev, p);
    p->name = dev_name(d);
    p->type = GGML_BACKEND_DEVICE_TYPE_GPU;
    p->caps.async = true;
}
static ggml_backend_t dev_init(ggml_backend_dev_t d, const char *params)
{
    ggml_backend_t b = cpu_dev->iface.init_backend(cpu_dev, params);
    if (!b)
        return NULL;
    cpu_iface = b->iface;
    b->iface.set_tensor_async = deferred_set;
    b->iface.get_tensor_async = deferred_get;
    b->iface.synchronize = deferred_sync;
    b->iface.graph_compute = deferred_compute;
    b->iface.free = deferred_free;
    b->device = &dev;
    return b;
}
static ggml_backend_buffer_type_t dev_buft(ggml_backend_dev_t d) { return cpu_dev->iface.get_buffer_type(cpu_dev); }
static bool dev_supports_op(ggml_backend_dev_t d, const struct ggml_tensor *op)
{
    return cpu_dev->iface.supports_op(cpu_dev, op);
}
static bool dev_supports_buft(ggml_backend_dev_t d, ggml_backend_buffer_type_t b)
{
    return cpu_dev->iface.supports_buft(cpu_dev, b);
}

static const char *reg_name(ggml_backend_reg_t r) { return "CPUAsync"; }
static size_t reg_count(ggml_backend_reg_t r) { return 1; }
static ggml_backend_dev_t reg_device(ggml_backend_reg_t r, size_t i) { return i == 0 ? &dev : NULL; }
/* the CPU backend's extras (its threadpool functions, which apir-server uses) */
static void *reg_proc(ggml_backend_reg_t r, const char *name) { return ggml_backend_reg_get_proc_address(cpu_reg, name); }

EXPORT ggml_backend_reg_t apir_async_cpu_reg(void)
{
    if (reg.iface.get_name)
        return &reg;
    const char *path = getenv("APIR_ASYNC_CPU_LIBRARY");
    void *lib = path ? dlopen(path, RTLD_NOW | RTLD_LOCAL) : NULL;
    ggml_backend_reg_t (*init)(void) = lib ? (ggml_backend_reg_t (*)(void))dlsym(lib, "ggml_backend_init") : NULL;
    cpu_reg = init ? init() : NULL;
    cpu_dev = cpu_reg && ggml_backend_reg_dev_count(cpu_reg) ? ggml_backend_reg_dev_get(cpu_reg, 0) : NULL;
    if (!cpu_dev)
        return NULL;
    dev = (struct ggml_backend_device){
        .iface = {.get_name = dev_name, .get_description = dev_description, .get_memory = dev_memory,
                  .get_type = dev_type, .get_props = dev_props, .init_backend = dev_init,
                  .get_buffer_type = dev_buft, .get_host_buffer_type = dev_buft,
                  .supports_op = dev_supports_op, .supports_buft = dev_supports_buft},
        .reg = &reg,
    };
    reg = (struct ggml_backend_reg){GGML_BACKEND_API_VERSION, {reg_name, reg_count, reg_device, reg_proc}, NULL};
    return &reg;
}
