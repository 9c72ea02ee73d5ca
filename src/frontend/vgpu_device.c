/* ggml device interface: one per host device. Immutable answers (info, buffer type: from the
 * listing, vgpu_listing.h; op support: asked once) are cached; memory is asked every time
 * while connected since it changes. */
#include "guest_log.h"
#include "vgpu_host_buffer.h"
#include "vgpu_internal.h"
#include "vgpu_policy.h"
#include "vgpu_wire.h"

#include <stdio.h>
#include <string.h>

static struct vgpu_device *ctx_of(ggml_backend_dev_t dev) { return dev->context; }

static const char *dev_get_name(ggml_backend_dev_t dev) { return ctx_of(dev)->name; }

static const char *dev_get_description(ggml_backend_dev_t dev) { return ctx_of(dev)->host.description; }

static void dev_get_memory(ggml_backend_dev_t dev, size_t *free_b, size_t *total_b)
{
    struct vgpu_device *d = ctx_of(dev);
    uint64_t f = d->mem_free, t = d->mem_total;
    if (apir_client_is_connected(d->client)) {
        int rc = vgpu_rpc_device_memory(d->client, d->index, &f, &t);
        if (rc) {
            GUEST_LOG_FAILURE(rc, "%s: DEVICE_GET_MEMORY failed: %s\n", d->name, vgpu_rpc_status_str(rc));
            f = d->mem_free; /* the last answer (docs/frontend.md, "Device lost") */
            t = d->mem_total;
        } else {
            d->mem_free = f;
            d->mem_total = t;
        }
    }
    *free_b = f > SIZE_MAX ? SIZE_MAX : (size_t)f;
    *total_b = t > SIZE_MAX ? SIZE_MAX : (size_t)t;
}

static enum ggml_backend_dev_type dev_get_type(ggml_backend_dev_t dev) { return ctx_of(dev)->type; }

static void dev_get_props(ggml_backend_dev_t dev, struct ggml_backend_dev_props *props)
{
    memset(props, 0, sizeof *props);
    props->name = dev_get_name(dev);
    props->description = dev_get_description(dev);
    dev_get_memory(dev, &props->memory_free, &props->memory_total);
    props->type = dev_get_type(dev);
    props->device_id = NULL;
    /* what this guest library implements, whatever the host device could do */
    props->caps.async = false;
    props->caps.host_buffer = true; /* guest memory, shared with the host (vgpu_host_buffer.h) */
    props->caps.buffer_from_host_ptr = false;
    props->caps.events = false;
    props->caps.mmap_support = true; /* the model file is mmapped in the guest, then uploaded */
}

static ggml_backend_t dev_init_backend(ggml_backend_dev_t dev, const char *params)
{
    return vgpu_backend_init(ctx_of(dev));
}

static ggml_backend_buffer_type_t dev_get_buffer_type(ggml_backend_dev_t dev) { return &ctx_of(dev)->buft.buft; }

static ggml_backend_buffer_type_t dev_get_host_buffer_type(ggml_backend_dev_t dev) { return &ctx_of(dev)->host_buft; }

static bool dev_supports_op(ggml_backend_dev_t dev, const struct ggml_tensor *op)
{
    struct vgpu_device *d = ctx_of(dev);
    /* views compute nothing: supported wherever their source is, as on every ggml backend
     * (ggml's scheduler asserts when a view of a tensor in our buffer is refused) */
    switch (op->op) {
    case GGML_OP_NONE:
    case GGML_OP_VIEW:
    case GGML_OP_RESHAPE:
    case GGML_OP_PERMUTE:
    case GGML_OP_TRANSPOSE:
        return true;
    default:
        break;
    }
    uint8_t sig[VGPU_OP_SIG_MAX];
    size_t len = vgpu_op_signature(op, sig);
    uint64_t cached;
    if (vgpu_sig_cache_get(&d->op_cache, sig, len, &cached))
        return cached != 0;
    bool supported = false;
    int rc = vgpu_rpc_supports_op(d->client, d->index, sig, len, &supported);
    if (rc) {
        GUEST_LOG_FAILURE(rc, "%s: DEVICE_SUPPORTS_OP(%s) failed: %s\n", d->name, ggml_op_desc(op),
                          vgpu_rpc_status_str(rc));
        /* A lost device says yes: ggml's scheduler aborts when a tensor already in one of our
         * buffers (the KV cache) "cannot run" its op, while a yes makes the op fail as a
         * compute error the application reports. Not cached. */
        return apir_client_lost_error(rc);
    }
    vgpu_sig_cache_put(&d->op_cache, sig, len, supported);
    return supported;
}

static bool dev_supports_buft(ggml_backend_dev_t dev, ggml_backend_buffer_type_t buft)
{
    return vgpu_buft_is_ours(buft) && buft->device == dev;
}

static bool dev_offload_op(ggml_backend_dev_t dev, const struct ggml_tensor *op)
{
    return vgpu_offload_op_heuristic(op);
}

/* Members left out are NULL: no events and no buffers from host pointers. */
static const struct ggml_backend_device_i vgpu_device_iface = {
    .get_name = dev_get_name,
    .get_description = dev_get_description,
    .get_memory = dev_get_memory,
    .get_type = dev_get_type,
    .get_props = dev_get_props,
    .init_backend = dev_init_backend,
    .get_buffer_type = dev_get_buffer_type,
    .get_host_buffer_type = dev_get_host_buffer_type,
    .supports_op = dev_supports_op,
    .supports_buft = dev_supports_buft,
    .offload_op = dev_offload_op,
};

bool vgpu_device_init(struct vgpu_device *d, ggml_backend_reg_t reg, struct apir_client *c, uint32_t index,
                      const struct vgpu_listed_device *listed)
{
    memset(d, 0, sizeof *d);
    d->client = c;
    d->index = index;
    snprintf(d->name, sizeof d->name, "VirtGPU%u", index);
    d->host = listed->host;
    d->type = vgpu_device_type_from_host(d->host.type);
    d->mem_free = listed->mem_free;
    d->mem_total = listed->mem_total;
    d->dev.iface = vgpu_device_iface;
    d->dev.reg = reg;
    d->dev.context = d;
    if (!vgpu_sig_cache_init(&d->op_cache, VGPU_OP_CACHE_ENTRIES)) {
        GUEST_LOG_ERROR("%s: out of memory\n", d->name);
        return false;
    }
    vgpu_host_buft_init(&d->host_buft, d);
    if (!vgpu_buft_init(&d->buft, d, d->host.buft, &listed->buft)) {
        vgpu_sig_cache_free(&d->op_cache);
        return false;
    }
    return true;
}

void vgpu_device_fini(struct vgpu_device *d)
{
    vgpu_buft_fini(&d->buft);
    vgpu_sig_cache_free(&d->op_cache);
}
