#include "vgpu_rpc.h"

#include "apir_forward.h"
#include "vgpu_stats.h"

#include <string.h>

const char *vgpu_rpc_status_str(int rc)
{
    if (rc == VGPU_RPC_ERR_REPLY)
        return "malformed reply from the host (host and guest versions differ?)";
    return apir_client_status_str(rc);
}

/* Runs the command begun on c and ends it. On success decode (NULL: the reply is empty)
 * reads the reply into out; the reply must then be consumed exactly: short or trailing bytes
 * mean a confused host. */
typedef void (*reply_decoder)(struct apir_decoder *d, void *out);

static int call(struct apir_client *c, reply_decoder decode, void *out)
{
    struct apir_decoder d;
    int rc = apir_client_call(c, &d);
    if (rc == APIR_BACKEND_OK && decode)
        decode(&d, out);
    if (rc == APIR_BACKEND_OK && !apir_decoder_done(&d))
        rc = VGPU_RPC_ERR_REPLY;
    apir_client_end(c);
    return rc;
}

static void get_u8_bool(struct apir_decoder *d, void *out) { *(bool *)out = apir_get_u8(d) != 0; }
static void get_u32(struct apir_decoder *d, void *out) { *(uint32_t *)out = apir_get_u32(d); }
static void get_u64(struct apir_decoder *d, void *out) { *(uint64_t *)out = apir_get_u64(d); }
/* two u32 or two u64 in a row (GET_INFO, DEVICE_GET_MEMORY) */
static void get_u32_pair(struct apir_decoder *d, void *out)
{
    uint32_t *v = out;
    v[0] = apir_get_u32(d);
    v[1] = apir_get_u32(d);
}
static void get_u64_pair(struct apir_decoder *d, void *out)
{
    uint64_t *v = out;
    v[0] = apir_get_u64(d);
    v[1] = apir_get_u64(d);
}

static void get_device_info(struct apir_decoder *d, void *out)
{
    struct vgpu_host_device_info *info = out;
    memset(info, 0, sizeof *info);
    apir_get_str(d, info->name, sizeof info->name);
    apir_get_str(d, info->description, sizeof info->description);
    info->type = apir_get_u32(d);
    info->async = apir_get_u8(d) != 0;
    info->host_buffer = apir_get_u8(d) != 0;
    info->buffer_from_host_ptr = apir_get_u8(d) != 0;
    info->events = apir_get_u8(d) != 0;
    info->buft = apir_get_u32(d);
    info->host_buft = apir_get_u32(d);
}

static void get_buft_info(struct apir_decoder *d, void *out)
{
    struct vgpu_host_buft_info *info = out;
    memset(info, 0, sizeof *info);
    apir_get_str(d, info->name, sizeof info->name);
    info->alignment = apir_get_u64(d);
    info->max_size = apir_get_u64(d);
    info->is_host = apir_get_u8(d) != 0;
}

/* BUFT_ALLOC_BUFFER: handle, u64 size */
struct alloc_reply {
    uint32_t buffer;
    uint64_t size;
};
static void get_alloc(struct apir_decoder *d, void *out)
{
    struct alloc_reply *r = out;
    r->buffer = apir_get_u32(d);
    r->size = apir_get_u64(d);
}

/* one u32 enum ggml_status */
static void get_status(struct apir_decoder *d, void *out) { *(int32_t *)out = (int32_t)apir_get_u32(d); }

int vgpu_rpc_get_info(struct apir_client *c, uint32_t *version, uint32_t *n_devices)
{
    apir_client_begin(c, APIR_FWD_GET_INFO, 0);
    uint32_t v[2];
    int rc = call(c, get_u32_pair, v);
    if (rc == APIR_BACKEND_OK) {
        *version = v[0];
        *n_devices = v[1];
    }
    return rc;
}

int vgpu_rpc_device_info(struct apir_client *c, uint32_t dev, struct vgpu_host_device_info *info)
{
    apir_put_u32(apir_client_begin(c, APIR_FWD_DEVICE_GET_INFO, 0), dev);
    return call(c, get_device_info, info);
}

int vgpu_rpc_device_memory(struct apir_client *c, uint32_t dev, uint64_t *free_b, uint64_t *total_b)
{
    apir_put_u32(apir_client_begin(c, APIR_FWD_DEVICE_GET_MEMORY, 0), dev);
    uint64_t v[2];
    int rc = call(c, get_u64_pair, v);
    if (rc == APIR_BACKEND_OK) {
        *free_b = v[0];
        *total_b = v[1];
    }
    return rc;
}

int vgpu_rpc_supports_op(struct apir_client *c, uint32_t dev, const void *sig, size_t sig_len, bool *supported)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_FWD_DEVICE_SUPPORTS_OP, sig_len);
    apir_put_u32(e, dev);
    apir_put_bytes(e, sig, sig_len);
    return call(c, get_u8_bool, supported);
}

int vgpu_rpc_buft_info(struct apir_client *c, uint32_t buft, struct vgpu_host_buft_info *info)
{
    apir_put_u32(apir_client_begin(c, APIR_FWD_BUFT_GET_INFO, 0), buft);
    return call(c, get_buft_info, info);
}

int vgpu_rpc_buft_alloc_size(struct apir_client *c, uint32_t buft, const void *sig, size_t sig_len, uint64_t *bytes)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_FWD_BUFT_GET_ALLOC_SIZE, sig_len);
    apir_put_u32(e, buft);
    apir_put_bytes(e, sig, sig_len);
    return call(c, get_u64, bytes);
}

int vgpu_rpc_buft_alloc(struct apir_client *c, uint32_t buft, uint64_t size, uint32_t *buffer, uint64_t *got)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_FWD_BUFT_ALLOC_BUFFER, 0);
    apir_put_u32(e, buft);
    apir_put_u64(e, size);
    struct alloc_reply r;
    int rc = call(c, get_alloc, &r);
    if (rc == APIR_BACKEND_OK) {
        *buffer = r.buffer;
        *got = r.size;
    }
    return rc;
}

int vgpu_rpc_buffer_free(struct apir_client *c, uint32_t buffer)
{
    apir_put_u32(apir_client_begin(c, APIR_FWD_BUFFER_FREE, 0), buffer);
    return call(c, NULL, NULL);
}

int vgpu_rpc_buffer_clear(struct apir_client *c, uint32_t buffer, uint8_t value)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_FWD_BUFFER_CLEAR, 0);
    apir_put_u32(e, buffer);
    apir_put_u8(e, value);
    return call(c, NULL, NULL);
}

int vgpu_rpc_buffer_memset(struct apir_client *c, uint32_t buffer, uint64_t offset, uint64_t size, uint8_t value)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_FWD_BUFFER_MEMSET, 0);
    apir_put_u32(e, buffer);
    apir_put_u64(e, offset);
    apir_put_u64(e, size);
    apir_put_u8(e, value);
    return call(c, NULL, NULL);
}

/* GET: the data page's bytes to the caller (the reply itself is empty) */
struct page_copy {
    uint8_t *data;
    const void *page;
    size_t n;
};
static void copy_from_page(struct apir_decoder *d, void *out)
{
    struct page_copy *p = out;
    memcpy(p->data, p->page, p->n);
}

/* a transfer's arguments: n bytes at offset of buffer, through the shared resource res_id at
 * `at` (the data page, or a blob the guest keeps) */
static void put_transfer(struct apir_encoder *e, uint32_t cmd, uint32_t buffer, uint64_t offset, uint32_t res_id,
                         uint64_t at, size_t n)
{
    apir_put_u32(e, buffer);
    apir_put_u64(e, offset);
    apir_put_u64(e, n);
    apir_put_u32(e, res_id);
    apir_put_u64(e, at);
    if (vgpu_stats_on())
        vgpu_stats_data(cmd, n);
}

/* the same through the data page at `at`; a SET's bytes are copied there first */
static void put_page_transfer(struct apir_encoder *e, uint32_t cmd, uint32_t buffer, uint64_t offset,
                              const struct apir_shmem *page, uint64_t at, const void *data, size_t n)
{
    if (cmd == APIR_FWD_BUFFER_SET)
        memcpy((uint8_t *)page->ptr + at, data, n);
    put_transfer(e, cmd, buffer, offset, page->res_id, at, n);
}

/* One SET/GET of at most *n bytes (fewer when the data page has less room: *n says how many
 * moved). The data page is only touched while the client's lock (taken by apir_client_begin)
 * is held, so concurrent transfers cannot mix; this one's bytes go past those that writes sent
 * without a reply still need. */
static int transfer_chunk(struct apir_client *c, uint32_t cmd, uint32_t buffer, uint64_t offset, uint8_t *data,
                          size_t *n)
{
    struct apir_encoder *e = apir_client_begin(c, cmd, 0);
    const struct apir_shmem *page = apir_client_data_page_claim(c);
    if (!page) /* not connected (device lost): nothing is sent, the call says why */
        return call(c, NULL, NULL);
    size_t room;
    uint64_t at = apir_client_data_free(c, &room);
    if (*n > room)
        *n = room; /* at least half the page (apir_client_data_keep) */
    put_page_transfer(e, cmd, buffer, offset, page, at, data, *n);
    struct page_copy out = {data, (uint8_t *)page->ptr + at, *n};
    return call(c, cmd == APIR_FWD_BUFFER_GET ? copy_from_page : NULL, &out);
}

static int transfer(struct apir_client *c, uint32_t cmd, uint32_t buffer, uint64_t offset, uint8_t *data, size_t size)
{
    while (size) {
        size_t n = size < APIR_CLIENT_DATA_PAGE_SIZE ? size : APIR_CLIENT_DATA_PAGE_SIZE;
        int rc = transfer_chunk(c, cmd, buffer, offset, data, &n);
        if (rc)
            return rc;
        offset += n;
        data += n;
        size -= n;
    }
    return APIR_BACKEND_OK;
}

/* Small write without a round trip: the data travels in the command (copied at submit, so
 * the caller may reuse its memory at once) and the host runs it before whatever comes next. */
static int set_inline(struct apir_client *c, uint32_t buffer, uint64_t offset, const void *data, size_t size)
{
    struct apir_encoder *e = apir_client_begin_noreply(c, APIR_FWD_BUFFER_SET_INLINE, size);
    apir_put_u32(e, buffer);
    apir_put_u64(e, offset);
    apir_put_u32(e, (uint32_t)size);
    apir_put_bytes(e, data, size);
    int rc = apir_client_send(c);
    apir_client_end(c);
    return rc;
}

/* Larger write without a round trip (a prompt's input embeddings and mask): the bytes wait in
 * a slice of the data page that no later command touches before the host has run this one
 * (the next reply says it has). false: no room left, nothing sent (the caller waits). */
static bool set_queued(struct apir_client *c, uint32_t buffer, uint64_t offset, const void *data, size_t size,
                       int *rc)
{
    struct apir_encoder *e = apir_client_begin_noreply(c, APIR_FWD_BUFFER_SET, 0);
    const struct apir_shmem *page = apir_client_data_page_claim(c);
    uint64_t at;
    if (!page || !apir_client_data_keep(c, size, &at)) {
        apir_client_end(c);
        return false;
    }
    put_page_transfer(e, APIR_FWD_BUFFER_SET, buffer, offset, page, at, data, size);
    *rc = apir_client_send(c);
    apir_client_end(c);
    return true;
}

int vgpu_rpc_buffer_set(struct apir_client *c, uint32_t buffer, uint64_t offset, const void *data, size_t size)
{
    if (size <= APIR_MAX_INLINE_SET)
        return set_inline(c, buffer, offset, data, size);
    int rc;
    if (size <= APIR_MAX_QUEUED_SET && set_queued(c, buffer, offset, data, size, &rc))
        return rc;
    /* transfer() only reads from data for SET */
    return transfer(c, APIR_FWD_BUFFER_SET, buffer, offset, (uint8_t *)(uintptr_t)data, size);
}

int vgpu_rpc_buffer_get(struct apir_client *c, uint32_t buffer, uint64_t offset, void *data, size_t size)
{
    return transfer(c, APIR_FWD_BUFFER_GET, buffer, offset, data, size);
}

int vgpu_rpc_buffer_transfer_blob(struct apir_client *c, bool to_buffer, uint32_t buffer, uint64_t offset,
                                  const struct apir_client_blob *blob, uint64_t at, size_t size, bool *sent)
{
    uint32_t cmd = to_buffer ? APIR_FWD_BUFFER_SET : APIR_FWD_BUFFER_GET;
    struct apir_encoder *e = apir_client_begin(c, cmd, 0);
    uint32_t res_id = apir_client_blob_res_id(c, blob);
    *sent = res_id != 0;
    if (!*sent) {
        apir_client_end(c);
        return APIR_BACKEND_OK;
    }
    put_transfer(e, cmd, buffer, offset, res_id, at, size);
    return call(c, NULL, NULL);
}

int vgpu_rpc_buffer_copy(struct apir_client *c, uint32_t src, uint64_t src_off, uint32_t dst, uint64_t dst_off,
                         uint64_t size, bool *done)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_FWD_BUFFER_COPY, 0);
    apir_put_u32(e, src);
    apir_put_u64(e, src_off);
    apir_put_u32(e, dst);
    apir_put_u64(e, dst_off);
    apir_put_u64(e, size);
    return call(c, get_u8_bool, done);
}

int vgpu_rpc_backend_init(struct apir_client *c, uint32_t dev, uint32_t *backend)
{
    apir_put_u32(apir_client_begin(c, APIR_FWD_BACKEND_INIT, 0), dev);
    return call(c, get_u32, backend);
}

int vgpu_rpc_backend_free(struct apir_client *c, uint32_t backend)
{
    apir_put_u32(apir_client_begin(c, APIR_FWD_BACKEND_FREE, 0), backend);
    return call(c, NULL, NULL);
}

int vgpu_rpc_graph_compute(struct apir_client *c, uint32_t backend, const void *graph, size_t len, int32_t *status,
                           uint32_t *slot)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_FWD_GRAPH_COMPUTE, len);
    apir_put_u32(e, backend);
    apir_put_bytes(e, graph, len);
    uint32_t v[2];
    int rc = call(c, get_u32_pair, v);
    if (rc == APIR_BACKEND_OK) {
        *status = (int32_t)v[0];
        if (v[1] >= APIR_GRAPH_SLOTS)
            return VGPU_RPC_ERR_REPLY; /* a host of another protocol */
        *slot = v[1];
    }
    return rc;
}

struct recompute_reply {
    int32_t *status;
    struct vgpu_rpc_output *outs;
    uint32_t n;
    const uint8_t *page;
    vgpu_rpc_outputs_keep keep;
};
static void get_recompute(struct apir_decoder *d, void *out)
{
    struct recompute_reply *r = out;
    *r->status = (int32_t)apir_get_u32(d);
    if (d->error || *r->status != 0) /* GGML_STATUS_SUCCESS: the host copied the outputs */
        return;
    for (uint32_t i = 0, at = 0; i < r->n; at += (uint32_t)r->outs[i].size, i++)
        r->outs[i].src = r->page + at;
    /* only a reply consumed exactly (call() fails any other): a confused host's outputs are not kept */
    if (r->keep && r->n && apir_decoder_done(d))
        r->keep(r->outs, r->n);
}

int vgpu_rpc_graph_recompute(struct apir_client *c, uint32_t backend, uint32_t slot, struct vgpu_rpc_output *outs,
                             uint32_t n, vgpu_rpc_outputs_keep keep, int32_t *status)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_FWD_GRAPH_RECOMPUTE, 4 + (size_t)n * 20);
    const struct apir_shmem *page = n ? apir_client_data_page_claim(c) : apir_client_data_page(c);
    if (n && !page) /* not connected (device lost): nothing is sent, the call says why */
        return call(c, NULL, NULL);
    apir_put_u32(e, backend);
    apir_put_u32(e, slot);
    apir_put_u32(e, n);
    size_t total = 0;
    if (n) {
        apir_put_u32(e, page->res_id);
        for (uint32_t i = 0; i < n; i++) {
            apir_put_u32(e, outs[i].buffer);
            apir_put_u64(e, outs[i].offset);
            apir_put_u64(e, outs[i].size);
            total += outs[i].size;
        }
    }
    if (vgpu_stats_on())
        vgpu_stats_data(APIR_FWD_GRAPH_RECOMPUTE, total);
    struct recompute_reply r = {status, outs, n, page ? page->ptr : NULL, keep};
    return call(c, get_recompute, &r);
}

/* pending_only: skip the round trip when no fire-and-forget command is pending */
static int synchronize(struct apir_client *c, uint32_t backend, bool pending_only, int32_t *status)
{
    struct apir_encoder *e = apir_client_begin(c, APIR_FWD_BACKEND_SYNCHRONIZE, 0);
    if (!apir_client_take_noreply(c) && pending_only) {
        /* every command so far has been waited for: nothing can be pending on the host */
        apir_client_end(c);
        *status = 0; /* GGML_STATUS_SUCCESS */
        return APIR_BACKEND_OK;
    }
    apir_put_u32(e, backend);
    return call(c, get_status, status);
}

int vgpu_rpc_backend_synchronize(struct apir_client *c, uint32_t backend, int32_t *status)
{
    return synchronize(c, backend, false, status);
}

int vgpu_rpc_synchronize_pending(struct apir_client *c, uint32_t backend, int32_t *status)
{
    return synchronize(c, backend, true, status);
}
