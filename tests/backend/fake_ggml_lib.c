/* A stand-in "GGML backend library" for the initialization error paths: registration
 * functions that fail, report another backend API version, or expose no device. It has no
 * ggml_backend_init on purpose. */
#include "ggml-backend-impl.h"

#include <stddef.h>

#define EXPORT __attribute__((visibility("default")))

static const char *fake_name(ggml_backend_reg_t reg) { return "fake"; }
static size_t no_devices(ggml_backend_reg_t reg) { return 0; }
static ggml_backend_dev_t no_device(ggml_backend_reg_t reg, size_t i) { return NULL; }

static struct ggml_backend_reg old_api = {1, {fake_name, no_devices, no_device, NULL}, NULL};
static struct ggml_backend_reg empty = {GGML_BACKEND_API_VERSION, {fake_name, no_devices, no_device, NULL}, NULL};

EXPORT ggml_backend_reg_t fake_reg_null(void) { return NULL; }
EXPORT ggml_backend_reg_t fake_reg_old_api(void) { return &old_api; }
EXPORT ggml_backend_reg_t fake_reg_no_device(void) { return &empty; }

/* fake_reg_async: one GPU-type device whose backend queues set_tensor_async copies until it
 * synchronizes, as a GPU stream does, and computes nothing (a compute runs the queue: it is
 * stream-ordered after the writes). Its buffers are host memory (CPU buffers whose writes can
 * scribble on the guest's resource first: fake_async_scribble), so the test reads what landed
 * with BUFFER_GET. For the host's queued-write ordering through the
 * dispatcher (test_dispatch), which the CPU backend never exercises. */
#include "deferred_copies.h"

#include <string.h>

EXPORT int fake_async_pending(void) { return (int)n_deferred; }

static const char *async_name(ggml_backend_t b) { return "FakeAsync"; }
static void async_free(ggml_backend_t b) { deferred_run(); }
static void async_set(ggml_backend_t b, struct ggml_tensor *t, const void *data, size_t off, size_t size)
{
    deferred_add((char *)t->data + off, data, size);
}
static int n_syncs;
static void async_sync(ggml_backend_t b)
{
    n_syncs++;
    deferred_run();
}
EXPORT int fake_async_syncs(void) { return n_syncs; }
static void async_get(ggml_backend_t b, const struct ggml_tensor *t, void *data, size_t off, size_t size);

/* scribble mode: each buffer write first overwrites `scribble` with `with` (a guest changing
 * its shared resource while the host copies from it), and the backend stops queueing */
static void *scribble;
static const void *with;
static size_t scribble_n;
static void async_set(ggml_backend_t b, struct ggml_tensor *t, const void *data, size_t off, size_t size);
static struct ggml_backend async_backend;

EXPORT void fake_async_scribble(void *dst, const void *bytes, size_t n)
{
    scribble = dst;
    with = bytes;
    scribble_n = n;
    async_backend.iface.set_tensor_async = dst ? NULL : async_set;
}

static void (*cpu_set_tensor)(ggml_backend_buffer_t, struct ggml_tensor *, const void *, size_t, size_t);
static void scribbling_set(ggml_backend_buffer_t buf, struct ggml_tensor *t, const void *data, size_t off, size_t size)
{
    if (scribble)
        memcpy(scribble, with, scribble_n);
    cpu_set_tensor(buf, t, data, off, size);
}

static void (*cpu_get_tensor)(ggml_backend_buffer_t, const struct ggml_tensor *, void *, size_t, size_t);
static void checking_get(ggml_backend_buffer_t buf, const struct ggml_tensor *t, void *data, size_t off, size_t size);

/* host memory whose writes go through scribbling_set (and reads through checking_get) */
static struct ggml_backend_buffer_type async_buft;
static const char *buft_name(ggml_backend_buffer_type_t t) { return "FakeAsync"; }
static ggml_backend_buffer_t buft_alloc(ggml_backend_buffer_type_t t, size_t size)
{
    ggml_backend_buffer_t b = ggml_backend_buft_alloc_buffer(ggml_backend_cpu_buffer_type(), size);
    if (b) {
        cpu_set_tensor = b->iface.set_tensor;
        b->iface.set_tensor = scribbling_set;
        cpu_get_tensor = b->iface.get_tensor;
        b->iface.get_tensor = checking_get;
        b->buft = &async_buft;
    }
    return b;
}
static size_t buft_align(ggml_backend_buffer_type_t t) { return 64; }
static bool device_memory;
static bool buft_host(ggml_backend_buffer_type_t t) { return !device_memory; }

/* Pinning, as ggml-cuda offers it (ggml_backend_register_host_buffer: read-only for the
 * device). With fake_async_device_memory(true) the buffers say they are device memory, so the
 * host pins the resources it writes from; a read of a buffer into a pinned range (the device
 * writing read-only memory: CUDA fails the copy) counts as a violation. */
enum { MAX_PINNED = 16 };
static struct {
    const char *p;
    size_t n;
} pinned[MAX_PINNED];
static int n_pinned, pin_violations;
static bool pin(void *p, size_t n)
{
    if (n_pinned == MAX_PINNED)
        return false;
    pinned[n_pinned].p = p;
    pinned[n_pinned++].n = n;
    return true;
}
static void unpin(void *p)
{
    for (int i = 0; i < n_pinned; i++)
        if (pinned[i].p == p) {
            pinned[i] = pinned[--n_pinned];
            return;
        }
    pin_violations++; /* never pinned */
}
EXPORT void fake_async_device_memory(bool on) { device_memory = on; }

static void count_violations(const void *data, size_t size)
{
    for (int i = 0; i < n_pinned; i++)
        if ((const char *)data < pinned[i].p + pinned[i].n && pinned[i].p < (const char *)data + size)
            pin_violations++;
}
/* a device-to-host copy queued on the stream, as the writes are */
static void async_get(ggml_backend_t b, const struct ggml_tensor *t, void *data, size_t off, size_t size)
{
    count_violations(data, size);
    deferred_add(data, (const char *)t->data + off, size);
}
EXPORT int fake_pinned_count(void) { return n_pinned; }
EXPORT int fake_pin_violations(void) { return pin_violations; }

static void checking_get(ggml_backend_buffer_t buf, const struct ggml_tensor *t, void *data, size_t off, size_t size)
{
    count_violations(data, size);
    cpu_get_tensor(buf, t, data, off, size);
}

static void *get_proc(ggml_backend_reg_t reg, const char *name)
{
    if (!strcmp(name, "ggml_backend_register_host_buffer"))
        return (void *)pin;
    if (!strcmp(name, "ggml_backend_unregister_host_buffer"))
        return (void *)unpin;
    return NULL;
}
static enum ggml_status async_compute(ggml_backend_t b, struct ggml_cgraph *g)
{
    deferred_run();
    return GGML_STATUS_SUCCESS;
}

static struct ggml_backend_reg async_reg;
static struct ggml_backend_device async_dev;
static struct ggml_backend_buffer_type async_buft = {
    .iface = {.get_name = buft_name, .alloc_buffer = buft_alloc, .get_alignment = buft_align, .is_host = buft_host},
    .device = &async_dev,
};
static struct ggml_backend async_backend = {
    .iface = {.get_name = async_name, .free = async_free, .set_tensor_async = async_set,
              .get_tensor_async = async_get, .synchronize = async_sync, .graph_compute = async_compute},
    .device = &async_dev,
};

static const char *dev_name(ggml_backend_dev_t d) { return "FakeAsync0"; }
static enum ggml_backend_dev_type dev_type(ggml_backend_dev_t d) { return GGML_BACKEND_DEVICE_TYPE_GPU; }
static void dev_memory(ggml_backend_dev_t d, size_t *free, size_t *total) { *free = *total = (size_t)1 << 30; }
static void dev_props(ggml_backend_dev_t d, struct ggml_backend_dev_props *p)
{
    memset(p, 0, sizeof *p);
    p->name = "FakeAsync0";
    p->description = "queues writes until it synchronizes";
    p->type = GGML_BACKEND_DEVICE_TYPE_GPU;
    p->memory_free = p->memory_total = (size_t)1 << 30;
}
static ggml_backend_t dev_init(ggml_backend_dev_t d, const char *params) { return &async_backend; }
static ggml_backend_buffer_type_t dev_buft(ggml_backend_dev_t d) { return &async_buft; }
static bool dev_supports_op(ggml_backend_dev_t d, const struct ggml_tensor *op) { return true; }
static bool dev_supports_buft(ggml_backend_dev_t d, ggml_backend_buffer_type_t b) { return true; }
static struct ggml_backend_device async_dev = {
    .iface = {.get_name = dev_name, .get_description = dev_name, .get_memory = dev_memory, .get_type = dev_type,
              .get_props = dev_props, .init_backend = dev_init, .get_buffer_type = dev_buft,
              .get_host_buffer_type = dev_buft, .supports_op = dev_supports_op, .supports_buft = dev_supports_buft},
    .reg = &async_reg,
};
static size_t one_device(ggml_backend_reg_t reg) { return 1; }
static ggml_backend_dev_t the_device(ggml_backend_reg_t reg, size_t i) { return i == 0 ? &async_dev : NULL; }
static struct ggml_backend_reg async_reg = {GGML_BACKEND_API_VERSION, {fake_name, one_device, the_device, get_proc},
                                            NULL};

EXPORT ggml_backend_reg_t fake_reg_async(void) { return &async_reg; }
