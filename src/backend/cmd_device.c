/* Device and buffer-type queries: read-only, no host state changes. */
#include "apir_forward.h"
#include "commands.h"
#include "graph_decode.h"
#include "op_checks.h"

static struct backend_device *get_device(struct cmd_call *c, uint32_t index)
{
    return index < c->ctx->n_devices ? &c->ctx->devices[index] : NULL;
}

/* the whole argument list of DEVICE_GET_INFO and DEVICE_GET_MEMORY: a device index */
static uint32_t device_arg(struct cmd_call *c, struct backend_device **d)
{
    *d = get_device(c, apir_get_u32(&c->dec));
    ARGS_DONE(c);
    return *d ? APIR_BACKEND_OK : APIR_BACKEND_ERR_HANDLE;
}

/* the op tensors that end the call's arguments (DEVICE_SUPPORTS_OP, BUFT_GET_ALLOC_SIZE), with
 * buffers resolved in the guest's context */
static uint32_t decode_op(struct cmd_call *c, struct decoded_graph *g)
{
    struct buffer_resolver r = backend_ctx_resolver(c->ctx);
    return op_tensors_decode(&c->dec, &r, g);
}

uint32_t cmd_get_info(struct cmd_call *c)
{
    ARGS_DONE(c);
    apir_put_u32(&c->enc, APIR_FORWARD_PROTOCOL_VERSION);
    apir_put_u32(&c->enc, c->ctx->n_devices);
    return APIR_BACKEND_OK;
}

uint32_t cmd_device_get_info(struct cmd_call *c)
{
    struct backend_device *d;
    uint32_t st = device_arg(c, &d);
    if (st != APIR_BACKEND_OK)
        return st;
    struct ggml_backend_dev_props p = {0};
    ggml_backend_dev_get_props(d->dev, &p);
    apir_put_str(&c->enc, p.name);
    apir_put_str(&c->enc, p.description);
    apir_put_u32(&c->enc, (uint32_t)p.type);
    apir_put_u8(&c->enc, p.caps.async);
    apir_put_u8(&c->enc, p.caps.host_buffer);
    apir_put_u8(&c->enc, p.caps.buffer_from_host_ptr);
    apir_put_u8(&c->enc, p.caps.events);
    apir_put_u32(&c->enc, d->buft);
    apir_put_u32(&c->enc, d->host_buft);
    return APIR_BACKEND_OK;
}

uint32_t cmd_device_get_memory(struct cmd_call *c)
{
    struct backend_device *d;
    uint32_t st = device_arg(c, &d);
    if (st != APIR_BACKEND_OK)
        return st;
    size_t free_mem = 0, total = 0;
    ggml_backend_dev_memory(d->dev, &free_mem, &total);
    apir_put_u64(&c->enc, free_mem);
    apir_put_u64(&c->enc, total);
    return APIR_BACKEND_OK;
}

uint32_t cmd_device_supports_op(struct cmd_call *c)
{
    struct backend_device *d = get_device(c, apir_get_u32(&c->dec));
    if (c->dec.error)
        return APIR_BACKEND_ERR_DECODE;
    struct decoded_graph g;
    uint32_t st = decode_op(c, &g);
    if (st != APIR_BACKEND_OK)
        return st;
    /* the host backend's answer for what passes the graph checks: what the guest is told is
     * supported is what a graph computes */
    uint8_t ok = d && node_rebuild_init(&g.rebuild) && op_check_node(&g.rebuild, g.last) == APIR_BACKEND_OK &&
                 ggml_backend_dev_supports_op(d->dev, g.last);
    decoded_graph_free(&g);
    if (!d)
        return APIR_BACKEND_ERR_HANDLE;
    apir_put_u8(&c->enc, ok);
    return APIR_BACKEND_OK;
}

uint32_t cmd_buft_get_info(struct cmd_call *c)
{
    ggml_backend_buffer_type_t buft = backend_ctx_buft(c->ctx, apir_get_u32(&c->dec));
    ARGS_DONE(c);
    if (!buft)
        return APIR_BACKEND_ERR_HANDLE;
    apir_put_str(&c->enc, ggml_backend_buft_name(buft));
    apir_put_u64(&c->enc, ggml_backend_buft_get_alignment(buft));
    apir_put_u64(&c->enc, ggml_backend_buft_get_max_size(buft));
    apir_put_u8(&c->enc, ggml_backend_buft_is_host(buft));
    return APIR_BACKEND_OK;
}

uint32_t cmd_buft_get_alloc_size(struct cmd_call *c)
{
    ggml_backend_buffer_type_t buft = backend_ctx_buft(c->ctx, apir_get_u32(&c->dec));
    if (c->dec.error)
        return APIR_BACKEND_ERR_DECODE;
    if (!buft)
        return APIR_BACKEND_ERR_HANDLE;
    struct decoded_graph g;
    uint32_t st = decode_op(c, &g);
    if (st != APIR_BACKEND_OK)
        return st;
    apir_put_u64(&c->enc, ggml_backend_buft_get_alloc_size(buft, g.last));
    decoded_graph_free(&g);
    return APIR_BACKEND_OK;
}
