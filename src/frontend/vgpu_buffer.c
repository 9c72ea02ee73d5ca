/* ggml buffer interface. A VirtGPU buffer is a host buffer named by a handle; in the guest it
 * gets a fake base address (vgpu_fake_addr.h) so ggml can place tensors, and every access
 * goes to the host by offset from that base. */
#include "guest_log.h"
#include "vgpu_fake_addr.h"
#include "vgpu_host_buffer.h"
#include "vgpu_internal.h"
#include "vgpu_outputs.h"

#include <stdlib.h>
#include <string.h>

static struct vgpu_buffer *ctx_of(ggml_backend_buffer_t buffer) { return buffer->context; }

/* offset of t's data (plus extra) in its buffer; false if it lies outside */
static bool data_offset(const struct vgpu_buffer *b, const struct ggml_tensor *t, size_t extra, size_t size,
                        uint64_t *offset)
{
    uintptr_t base = (uintptr_t)b->base, data = (uintptr_t)t->data;
    if (!t->data || data < base)
        return false;
    uint64_t off = (uint64_t)(data - base);
    if (off > b->size || extra > b->size - off || size > b->size - off - extra)
        return false;
    *offset = off + extra;
    return true;
}

static void log_failure(const char *what, const struct ggml_tensor *t, int rc)
{
    GUEST_LOG_FAILURE(rc, "%s(%s) failed: %s\n", what, t ? t->name : "", vgpu_rpc_status_str(rc));
}

static void buffer_free(ggml_backend_buffer_t buffer)
{
    struct vgpu_buffer *b = ctx_of(buffer);
    vgpu_outputs_invalidate(b->handle, 0, UINT64_MAX);
    int rc = vgpu_rpc_buffer_free(b->client, b->handle);
    if (rc)
        log_failure("BUFFER_FREE", NULL, rc);
    free(b);
}

static void *buffer_get_base(ggml_backend_buffer_t buffer) { return ctx_of(buffer)->base; }

/* A transfer whose guest side lies in a shared host buffer (vgpu_host_buffer.h) names its blob
 * instead of copying through the data page; small writes stay inline (fire-and-forget).
 * false: not such a transfer, or not sent (the caller copies). */
static bool transfer_blob(struct vgpu_buffer *b, bool to_buffer, uint64_t off, void *data, size_t size, int *rc)
{
    const struct apir_client_blob *blob;
    uint64_t at;
    bool sent = false;
    if ((to_buffer && size <= APIR_MAX_INLINE_SET) || !vgpu_host_buffer_find(b->client, data, size, &blob, &at))
        return false;
    *rc = vgpu_rpc_buffer_transfer_blob(b->client, to_buffer, b->handle, off, blob, at, size, &sent);
    return sent;
}

/* set_tensor (data) and memset_tensor (fill: size bytes of value): the same checks and the
 * same invalidation of a cached output, one command each */
static void write_tensor(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, bool fill, const void *data,
                         uint8_t value, size_t offset, size_t size)
{
    struct vgpu_buffer *b = ctx_of(buffer);
    uint64_t off;
    if (!data_offset(b, tensor, offset, size, &off)) {
        GUEST_LOG_ERROR("%s(%s): outside its buffer\n", fill ? "memset_tensor" : "set_tensor", tensor->name);
        return;
    }
    vgpu_outputs_invalidate(b->handle, off, size);
    int rc;
    if (fill)
        rc = vgpu_rpc_buffer_memset(b->client, b->handle, off, size, value);
    else if (!transfer_blob(b, true, off, (void *)(uintptr_t)data, size, &rc))
        rc = vgpu_rpc_buffer_set(b->client, b->handle, off, data, size);
    if (rc)
        log_failure(fill ? "BUFFER_MEMSET" : "BUFFER_SET", tensor, rc);
}

static void buffer_memset_tensor(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, uint8_t value,
                                 size_t offset, size_t size)
{
    write_tensor(buffer, tensor, true, NULL, value, offset, size);
}

static void buffer_set_tensor(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, const void *data,
                              size_t offset, size_t size)
{
    write_tensor(buffer, tensor, false, data, 0, offset, size);
}

/* A read that failed fills the destination with this byte: every f32/f16/bf16 value becomes
 * a NaN (0xffffffff, 0xffff), which no computation or sampler mistakes for data. */
#define POISON_BYTE 0xff

static void buffer_get_tensor(ggml_backend_buffer_t buffer, const struct ggml_tensor *tensor, void *data,
                              size_t offset, size_t size)
{
    struct vgpu_buffer *b = ctx_of(buffer);
    uint64_t off;
    if (!data_offset(b, tensor, offset, size, &off)) {
        GUEST_LOG_ERROR("get_tensor(%s): outside its buffer\n", tensor->name);
        memset(data, POISON_BYTE, size);
        return;
    }
    /* the graph's outputs came back with the compute that produced them */
    if (vgpu_outputs_get(b->handle, off, data, size))
        return;
    int rc;
    if (!transfer_blob(b, false, off, data, size, &rc))
        rc = vgpu_rpc_buffer_get(b->client, b->handle, off, data, size);
    if (rc) {
        /* get_tensor cannot fail: never leave the caller's bytes looking refreshed */
        memset(data, POISON_BYTE, size);
        log_failure("BUFFER_GET", tensor, rc);
    }
}

static ggml_backend_buffer_t buffer_of(const struct ggml_tensor *t)
{
    return t->view_src && t->view_src->buffer ? t->view_src->buffer : t->buffer;
}

/* dst is in this buffer; a copy stays on the host when src is in a VirtGPU buffer too
 * (all VirtGPU buffers of a process share the one host connection). */
static bool buffer_cpy_tensor(ggml_backend_buffer_t buffer, const struct ggml_tensor *src, struct ggml_tensor *dst)
{
    ggml_backend_buffer_t src_buf = buffer_of(src);
    if (!vgpu_buffer_is_ours(src_buf))
        return false;
    struct vgpu_buffer *s = ctx_of(src_buf), *d = ctx_of(buffer);
    size_t size = ggml_nbytes(src);
    uint64_t src_off, dst_off;
    if (s->client != d->client || !data_offset(s, src, 0, size, &src_off) ||
        !data_offset(d, dst, 0, size, &dst_off))
        return false;
    bool done = false;
    vgpu_outputs_invalidate(d->handle, dst_off, size);
    int rc = vgpu_rpc_buffer_copy(d->client, s->handle, src_off, d->handle, dst_off, size, &done);
    if (rc) {
        log_failure("BUFFER_COPY", dst, rc);
        return false;
    }
    return done;
}

static void buffer_clear(ggml_backend_buffer_t buffer, uint8_t value)
{
    struct vgpu_buffer *b = ctx_of(buffer);
    vgpu_outputs_invalidate(b->handle, 0, UINT64_MAX);
    int rc = vgpu_rpc_buffer_clear(b->client, b->handle, value);
    if (rc)
        log_failure("BUFFER_CLEAR", NULL, rc);
}

/* Members left out are NULL; without set_tensor_2d, ggml loops over set_tensor. */
static const struct ggml_backend_buffer_i vgpu_buffer_iface = {
    .free_buffer = buffer_free,
    .get_base = buffer_get_base,
    .memset_tensor = buffer_memset_tensor,
    .set_tensor = buffer_set_tensor,
    .get_tensor = buffer_get_tensor,
    .cpy_tensor = buffer_cpy_tensor,
    .clear = buffer_clear,
};

bool vgpu_buffer_is_ours(ggml_backend_buffer_t buffer)
{
    return buffer && buffer->iface.get_base == buffer_get_base && buffer->context;
}

bool vgpu_buffer_locate(void *user, const struct ggml_tensor *t, uint32_t *buffer, uint64_t *offset)
{
    ggml_backend_buffer_t buf = buffer_of(t);
    if (!vgpu_buffer_is_ours(buf))
        return false;
    struct vgpu_buffer *b = ctx_of(buf);
    if (!data_offset(b, t, 0, 0, offset))
        return false;
    *buffer = b->handle;
    return true;
}

ggml_backend_buffer_t vgpu_buffer_alloc(struct vgpu_buft *bt, size_t size)
{
    struct apir_client *c = bt->dev->client;
    uint32_t handle = 0;
    uint64_t got = 0;
    int rc = vgpu_rpc_buft_alloc(c, bt->handle, size, &handle, &got);
    if (rc) {
        GUEST_LOG_FAILURE(rc, "%s: BUFT_ALLOC_BUFFER of %zu bytes failed: %s\n", bt->name, size,
                          vgpu_rpc_status_str(rc));
        return NULL;
    }
    struct vgpu_buffer *b = NULL;
    if (handle == 0 || got < size || got > SIZE_MAX) {
        GUEST_LOG_ERROR("%s: the host allocated %llu bytes for a request of %zu\n", bt->name,
                        (unsigned long long)got, size);
        goto fail;
    }
    b = calloc(1, sizeof *b);
    if (!b)
        goto fail;
    b->client = c;
    b->handle = handle;
    b->size = got;
    b->base = vgpu_fake_addr_global_alloc(got, bt->alignment);
    if (!b->base) {
        GUEST_LOG_ERROR("%s: out of guest address space for buffers\n", bt->name);
        goto fail;
    }
    ggml_backend_buffer_t buffer = ggml_backend_buffer_init(&bt->buft, vgpu_buffer_iface, b, (size_t)got);
    if (!buffer)
        goto fail;
    return buffer;
fail:
    free(b);
    if (handle)
        vgpu_rpc_buffer_free(c, handle);
    return NULL;
}
