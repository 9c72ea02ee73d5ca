/* ggml buffer type interface: one per device, its info from the listing (vgpu_listing.h). */
#include "guest_log.h"
#include "vgpu_internal.h"
#include "vgpu_wire.h"

#include <stdio.h>
#include <string.h>

static struct vgpu_buft *ctx_of(ggml_backend_buffer_type_t buft) { return buft->context; }

static const char *buft_get_name(ggml_backend_buffer_type_t buft) { return ctx_of(buft)->name; }

static ggml_backend_buffer_t buft_alloc_buffer(ggml_backend_buffer_type_t buft, size_t size)
{
    return vgpu_buffer_alloc(ctx_of(buft), size);
}

static size_t buft_get_alignment(ggml_backend_buffer_type_t buft) { return (size_t)ctx_of(buft)->alignment; }

static size_t buft_get_max_size(ggml_backend_buffer_type_t buft) { return (size_t)ctx_of(buft)->max_size; }

/* The host is asked only where its answer may differ from ggml_nbytes: ops that may need
 * scratch space ([TAG_ALLOC_SIZE_EXPAND]) and quantized tensors (row padding). */
static size_t buft_get_alloc_size(ggml_backend_buffer_type_t buft, const struct ggml_tensor *tensor)
{
    size_t nbytes = ggml_nbytes(tensor);
    if (!ggml_op_alloc_size_may_expand(tensor->op) && !ggml_is_quantized(tensor->type))
        return nbytes;
    struct vgpu_buft *b = ctx_of(buft);
    uint8_t sig[VGPU_OP_SIG_MAX];
    size_t len = vgpu_op_signature(tensor, sig);
    uint64_t bytes;
    if (!vgpu_sig_cache_get(&b->alloc_size_cache, sig, len, &bytes)) {
        int rc = vgpu_rpc_buft_alloc_size(b->dev->client, b->handle, sig, len, &bytes);
        if (rc) {
            GUEST_LOG_FAILURE(rc, "%s: BUFT_GET_ALLOC_SIZE failed: %s\n", b->name, vgpu_rpc_status_str(rc));
            return nbytes;
        }
        vgpu_sig_cache_put(&b->alloc_size_cache, sig, len, bytes);
    }
    if (bytes < nbytes || bytes > SIZE_MAX)
        return nbytes; /* a confused host: ggml needs at least nbytes */
    return (size_t)bytes;
}

static bool buft_is_host(ggml_backend_buffer_type_t buft) { return false; }

static const struct ggml_backend_buffer_type_i vgpu_buft_iface = {
    .get_name = buft_get_name,
    .alloc_buffer = buft_alloc_buffer,
    .get_alignment = buft_get_alignment,
    .get_max_size = buft_get_max_size,
    .get_alloc_size = buft_get_alloc_size,
    .is_host = buft_is_host,
};

bool vgpu_buft_is_ours(ggml_backend_buffer_type_t buft)
{
    return buft && buft->iface.get_name == buft_get_name;
}

bool vgpu_buft_init(struct vgpu_buft *b, struct vgpu_device *d, uint32_t handle, const struct vgpu_host_buft_info *info)
{
    memset(b, 0, sizeof *b);
    b->dev = d;
    b->handle = handle;
    uint64_t align = info->alignment;
    if (align == 0 || (align & (align - 1)) || align > (1u << 30)) {
        GUEST_LOG_WARN("%s: host buffer alignment %llu is not a sane power of two; using 64\n", d->name,
                       (unsigned long long)align);
        align = 64;
    }
    b->alignment = align;
    b->max_size = info->max_size && info->max_size <= SIZE_MAX ? info->max_size : SIZE_MAX;
    snprintf(b->name, sizeof b->name, "%s_%s", d->name, info->name[0] ? info->name : "buffer");
    if (!vgpu_sig_cache_init(&b->alloc_size_cache, VGPU_ALLOC_SIZE_CACHE_ENTRIES)) {
        GUEST_LOG_ERROR("%s: out of memory\n", d->name);
        return false;
    }
    b->buft.iface = vgpu_buft_iface;
    b->buft.device = &d->dev;
    b->buft.context = b;
    return true;
}

void vgpu_buft_fini(struct vgpu_buft *b) { vgpu_sig_cache_free(&b->alloc_size_cache); }
