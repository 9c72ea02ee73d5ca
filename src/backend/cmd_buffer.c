/* Buffers: allocation, transfers through shared resources, memset/clear/copy. Every range
 * is checked against the buffer and the shared resource before ggml sees it, because ggml
 * asserts (aborts) on out-of-range transfers. Every command that changes a buffer's bytes
 * tells the context's write shadow (write_shadow.h): SET_INLINE records them, the others
 * drop the records they overlap. */
#include "apir_forward.h"
#include "backend_log.h"
#include "commands.h"
#include "ggml-backend-impl.h"
#include "tensor_validate.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Host-memory buffers larger than the host's RAM cannot succeed; refusing them up front keeps
 * a hostile size from reaching the allocator at all (sanitizer allocators abort on absurd
 * sizes instead of returning NULL). */
static uint64_t host_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
}

static uint32_t buffer_range(struct cmd_call *c, uint32_t h, uint64_t offset, uint64_t size, ggml_backend_buffer_t *out)
{
    ggml_backend_buffer_t buf = backend_ctx_buffer(c->ctx, h);
    if (!buf)
        return APIR_BACKEND_ERR_HANDLE;
    if (!range_ok(offset, size, ggml_backend_buffer_get_size(buf)))
        return APIR_BACKEND_ERR_BOUNDS;
    *out = buf;
    return APIR_BACKEND_OK;
}

uint32_t cmd_buft_alloc_buffer(struct cmd_call *c)
{
    uint32_t h = apir_get_u32(&c->dec);
    uint64_t size = apir_get_u64(&c->dec);
    ARGS_DONE(c);
    ggml_backend_buffer_type_t buft = backend_ctx_buft(c->ctx, h);
    if (!buft)
        return APIR_BACKEND_ERR_HANDLE;
    if (size == 0 || size > ggml_backend_buft_get_max_size(buft))
        return APIR_BACKEND_ERR_BOUNDS;
    if (ggml_backend_buft_is_host(buft) && size > host_memory()) {
        backend_log("refusing a %llu-byte host buffer: more than this host's memory", (unsigned long long)size);
        return APIR_BACKEND_ERR_OUT_OF_MEMORY;
    }
    uint64_t limit = c->ctx->buffer_bytes_limit;
    if (limit && (size > limit || c->ctx->buffer_bytes > limit - size)) {
        backend_log("refusing a %llu-byte buffer: this guest already has %llu bytes (limit VIRGL_APIR_MAX_BUFFER_BYTES=%llu, "
             "key " APIR_KEY_LIMIT_BUFFER_BYTES ")",
             (unsigned long long)size, (unsigned long long)c->ctx->buffer_bytes, (unsigned long long)limit);
        return APIR_BACKEND_ERR_OUT_OF_MEMORY;
    }
    backend_ctx_make_room(c->ctx, size);
    ggml_backend_buffer_t buf = ggml_backend_buft_alloc_buffer(buft, (size_t)size);
    if (!buf) {
        backend_log("cannot allocate a buffer of %llu bytes in %s", (unsigned long long)size, ggml_backend_buft_name(buft));
        return APIR_BACKEND_ERR_OUT_OF_MEMORY;
    }
    uint32_t bh = handle_table_add(&c->ctx->handles, HANDLE_BUFFER, buf);
    if (!bh) {
        ggml_backend_buffer_free(buf);
        return APIR_BACKEND_ERR_OUT_OF_MEMORY;
    }
    c->ctx->buffer_bytes += ggml_backend_buffer_get_size(buf); /* what BUFFER_FREE subtracts */
    apir_put_u32(&c->enc, bh);
    apir_put_u64(&c->enc, ggml_backend_buffer_get_size(buf));
    return APIR_BACKEND_OK;
}

uint32_t cmd_buffer_free(struct cmd_call *c)
{
    uint32_t h = apir_get_u32(&c->dec);
    ARGS_DONE(c);
    ggml_backend_buffer_t buf = handle_table_remove(&c->ctx->handles, h, HANDLE_BUFFER);
    if (!buf)
        return APIR_BACKEND_ERR_HANDLE;
    /* cached graphs may point into this buffer */
    backend_ctx_drop_graphs(c->ctx);
    write_shadow_invalidate(&c->ctx->shadow, buf, 0, UINT64_MAX); /* a new buffer may get its address */
    repacked_weights_forget(&c->ctx->repacked, buf);
    c->ctx->buffer_bytes -= ggml_backend_buffer_get_size(buf);
    ggml_backend_buffer_free(buf);
    return APIR_BACKEND_OK;
}

uint32_t cmd_buffer_clear(struct cmd_call *c)
{
    uint32_t h = apir_get_u32(&c->dec);
    uint8_t value = apir_get_u8(&c->dec);
    ARGS_DONE(c);
    ggml_backend_buffer_t buf = backend_ctx_buffer(c->ctx, h);
    if (!buf)
        return APIR_BACKEND_ERR_HANDLE;
    backend_ctx_bytes_changed(c->ctx, buf, 0, UINT64_MAX);
    ggml_backend_buffer_clear(buf, value);
    return APIR_BACKEND_OK;
}

uint32_t cmd_buffer_memset(struct cmd_call *c)
{
    uint32_t h = apir_get_u32(&c->dec);
    uint64_t offset = apir_get_u64(&c->dec);
    uint64_t size = apir_get_u64(&c->dec);
    uint8_t value = apir_get_u8(&c->dec);
    ARGS_DONE(c);
    ggml_backend_buffer_t buf;
    uint32_t st = buffer_range(c, h, offset, size, &buf);
    if (st != APIR_BACKEND_OK || size == 0)
        return st;
    /* ggml asserts when a backend has no memset: refuse instead */
    if (!buf->iface.memset_tensor)
        return APIR_BACKEND_ERR_UNSUPPORTED;
    struct ggml_tensor t;
    backend_ctx_bytes_changed(c->ctx, buf, offset, size);
    tensor_byte_view(&t, buf, offset, size);
    ggml_backend_tensor_memset(&t, value, 0, (size_t)size);
    return APIR_BACKEND_OK;
}

/* Device bytes into shared memory: through the stage where there is one (pinned memory, which
 * the device fills faster than the driver stages a copy into pageable memory), else directly,
 * except into a pinned resource, which the device must not write (pinned_blobs.h): there
 * through memory of the host's own, in pieces. */
#define READ_PIECE_BYTES ((uint64_t)16 << 20)

static uint32_t read_into_shm(struct backend_ctx *ctx, ggml_backend_buffer_t buf, uint64_t offset, uint64_t size,
                              char *dst)
{
    if (queued_writes_read(&ctx->writes, buf, offset, dst, (size_t)size))
        return APIR_BACKEND_OK;
    struct ggml_tensor t;
    if (ggml_backend_buffer_is_host(buf) || !pinned_blobs_overlap(&ctx->pinned, dst, size)) {
        tensor_byte_view(&t, buf, offset, size);
        ggml_backend_tensor_get(&t, dst, 0, (size_t)size);
        return APIR_BACKEND_OK;
    }
    void *tmp = malloc(size < READ_PIECE_BYTES ? size : READ_PIECE_BYTES);
    if (!tmp)
        return APIR_BACKEND_ERR_OUT_OF_MEMORY;
    for (uint64_t at = 0; at < size; at += READ_PIECE_BYTES) {
        uint64_t n = size - at < READ_PIECE_BYTES ? size - at : READ_PIECE_BYTES;
        tensor_byte_view(&t, buf, offset + at, n);
        ggml_backend_tensor_get(&t, tmp, 0, (size_t)n);
        memcpy(dst + at, tmp, n);
    }
    free(tmp);
    return APIR_BACKEND_OK;
}

/* SET/GET: buffer range and shared resource range, both checked */
static uint32_t transfer(struct cmd_call *c, bool to_buffer)
{
    uint32_t h = apir_get_u32(&c->dec);
    uint64_t offset = apir_get_u64(&c->dec);
    uint64_t size = apir_get_u64(&c->dec);
    uint32_t res_id = apir_get_u32(&c->dec);
    uint64_t shm_offset = apir_get_u64(&c->dec);
    ARGS_DONE(c);
    ggml_backend_buffer_t buf;
    uint32_t st = buffer_range(c, h, offset, size, &buf);
    if (st != APIR_BACKEND_OK)
        return st;
    uint32_t ctx_id = c->ctx->id;
    char *shm = c->cbs && c->cbs->get_shmem_ptr ? c->cbs->get_shmem_ptr(ctx_id, res_id) : NULL;
    if (!shm)
        return APIR_BACKEND_ERR_HANDLE;
    /* without the resource size nothing can be checked: refuse */
    uint64_t shm_size = c->cbs->get_shmem_size ? c->cbs->get_shmem_size(ctx_id, res_id) : 0;
    if (!range_ok(shm_offset, size, shm_size))
        return APIR_BACKEND_ERR_BOUNDS;
    if (size == 0)
        return APIR_BACKEND_OK;
    struct ggml_tensor t;
    tensor_byte_view(&t, buf, offset, size);
    if (to_buffer) {
        const void *src = shm + shm_offset;
        /* indices a kept graph reads (without flash attention llama.cpp's V-cache slots, 8 MiB
         * a batch): copied once into the write shadow, and the buffer gets that copy, so the
         * next compute checks them without reading them back. Other bytes are not recorded
         * (the guest may change the resource while ggml copies from it). */
        const uint8_t *kept = size <= WRITE_SHADOW_MAX_INDEX_RECORD && backend_ctx_reads_indices(c->ctx, buf, offset, size)
                                  ? write_shadow_keep(&c->ctx->shadow, buf, offset, src, size, backend_ctx_room(c->ctx))
                                  : NULL;
        if (kept)
            src = kept;
        else
            write_shadow_invalidate(&c->ctx->shadow, buf, offset, size);
        repacked_weights_invalidate(&c->ctx->repacked, buf, offset, size);
        /* from a pinned resource the device copies directly (pinned_blobs.h), synchronously, so
         * the guest may change the resource after the reply; else queued: copied out of the
         * resource now, so the guest may reuse it after any reply */
        bool direct = !kept && !ggml_backend_buffer_is_host(buf) &&
                      pinned_blobs_use(&c->ctx->pinned, c->ctx->reg, res_id, shm, shm_size, size);
        if (!direct && queued_writes_try(&c->ctx->writes, buf, offset, src, (size_t)size, backend_ctx_room(c->ctx)))
            return APIR_BACKEND_OK;
        queued_writes_settle(&c->ctx->writes); /* earlier queued writes land first */
        ggml_backend_tensor_set(&t, src, 0, (size_t)size);
        return APIR_BACKEND_OK;
    }
    return read_into_shm(c->ctx, buf, offset, size, shm + shm_offset);
}

uint32_t cmd_buffer_set(struct cmd_call *c) { return transfer(c, true); }
uint32_t cmd_buffer_get(struct cmd_call *c) { return transfer(c, false); }

/* SET_INLINE: the data is the rest of the (private copy of the) message */
uint32_t cmd_buffer_set_inline(struct cmd_call *c)
{
    uint32_t h = apir_get_u32(&c->dec);
    uint64_t offset = apir_get_u64(&c->dec);
    uint32_t size = apir_get_u32(&c->dec);
    if (c->dec.error)
        return APIR_BACKEND_ERR_DECODE;
    if (size > APIR_MAX_INLINE_SET)
        return APIR_BACKEND_ERR_BOUNDS;
    const void *data = apir_get_view(&c->dec, size);
    ARGS_DONE(c);
    if (!data && size)
        return APIR_BACKEND_ERR_DECODE;
    ggml_backend_buffer_t buf;
    uint32_t st = buffer_range(c, h, offset, size, &buf);
    if (st != APIR_BACKEND_OK || size == 0)
        return st;
    /* data is this host's private copy of the message: what the buffer holds once the write
     * is done (queued: before any compute on its stream, and before anything else runs) */
    write_shadow_record(&c->ctx->shadow, buf, offset, data, size, backend_ctx_room(c->ctx));
    repacked_weights_invalidate(&c->ctx->repacked, buf, offset, size);
    if (queued_writes_try(&c->ctx->writes, buf, offset, data, size, backend_ctx_room(c->ctx)))
        return APIR_BACKEND_OK;
    struct ggml_tensor t;
    tensor_byte_view(&t, buf, offset, size);
    ggml_backend_tensor_set(&t, data, 0, size);
    return APIR_BACKEND_OK;
}

uint32_t cmd_buffer_copy(struct cmd_call *c)
{
    uint32_t src_h = apir_get_u32(&c->dec);
    uint64_t src_off = apir_get_u64(&c->dec);
    uint32_t dst_h = apir_get_u32(&c->dec);
    uint64_t dst_off = apir_get_u64(&c->dec);
    uint64_t size = apir_get_u64(&c->dec);
    ARGS_DONE(c);
    ggml_backend_buffer_t src, dst;
    uint32_t st = buffer_range(c, src_h, src_off, size, &src);
    if (st == APIR_BACKEND_OK)
        st = buffer_range(c, dst_h, dst_off, size, &dst);
    if (st != APIR_BACKEND_OK)
        return st;
    /* overlapping ranges in one buffer would be a memcpy with overlap inside ggml */
    if (src == dst && src_off < dst_off + size && dst_off < src_off + size && size)
        return APIR_BACKEND_ERR_BOUNDS;
    if (size) {
        struct ggml_tensor ts, td;
        tensor_byte_view(&ts, src, src_off, size);
        tensor_byte_view(&td, dst, dst_off, size);
        backend_ctx_bytes_changed(c->ctx, dst, dst_off, size);
        ggml_backend_tensor_copy(&ts, &td);
    }
    apir_put_u8(&c->enc, 1);
    return APIR_BACKEND_OK;
}

/* GRAPH_RECOMPUTE's output reads: every range checked before anything runs */
uint32_t cmd_outputs_decode(struct cmd_call *c, struct cmd_outputs *o)
{
    o->n = apir_get_u32(&c->dec);
    o->shm = NULL;
    if (c->dec.error || o->n > APIR_MAX_RECOMPUTE_OUTPUTS)
        return APIR_BACKEND_ERR_DECODE;
    if (o->n == 0)
        return APIR_BACKEND_OK;
    uint32_t res_id = apir_get_u32(&c->dec);
    uint64_t at = 0;
    for (uint32_t i = 0; i < o->n; i++) {
        uint32_t h = apir_get_u32(&c->dec);
        o->r[i].offset = apir_get_u64(&c->dec);
        o->r[i].size = apir_get_u64(&c->dec);
        if (c->dec.error)
            return APIR_BACKEND_ERR_DECODE;
        uint32_t st = buffer_range(c, h, o->r[i].offset, o->r[i].size, &o->r[i].buf);
        if (st != APIR_BACKEND_OK)
            return st;
        o->r[i].at = at;
        if (__builtin_add_overflow(at, o->r[i].size, &at))
            return APIR_BACKEND_ERR_BOUNDS;
    }
    uint32_t ctx_id = c->ctx->id;
    o->shm = c->cbs && c->cbs->get_shmem_ptr ? c->cbs->get_shmem_ptr(ctx_id, res_id) : NULL;
    if (!o->shm)
        return APIR_BACKEND_ERR_HANDLE;
    uint64_t shm_size = c->cbs->get_shmem_size ? c->cbs->get_shmem_size(ctx_id, res_id) : 0;
    return range_ok(0, at, shm_size) ? APIR_BACKEND_OK : APIR_BACKEND_ERR_BOUNDS;
}

uint32_t cmd_outputs_copy(struct backend_ctx *ctx, const struct cmd_outputs *o, const uint8_t *const *staged)
{
    uint32_t st = APIR_BACKEND_OK;
    /* the staged ones first: a read after the compute goes through the same stage */
    for (uint32_t i = 0; i < o->n; i++)
        if (staged[i])
            memcpy(o->shm + o->r[i].at, staged[i], (size_t)o->r[i].size);
    for (uint32_t i = 0; i < o->n && st == APIR_BACKEND_OK; i++)
        if (!staged[i] && o->r[i].size)
            st = read_into_shm(ctx, o->r[i].buf, o->r[i].offset, o->r[i].size, o->shm + o->r[i].at);
    return st;
}
