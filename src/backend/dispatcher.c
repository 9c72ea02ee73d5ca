/* The three entry points of libggml-virtgpu-backend.so, and the FORWARD command table. */
#include "apir_forward.h"
#include "apir_protocol.h"
#include "backend_context.h"
#include "backend_log.h"
#include "commands.h"
#include "fpe_guard.h"
#include "ggml_lib.h"

#include <stdlib.h>

#define EXPORT __attribute__((visibility("default")))

/* A handler per command, from the same table as the enum: a command without a cmd_<stem>
 * handler leaves an undefined symbol and the library does not link. */
static const cmd_handler handlers[APIR_FWD_COUNT] = {
#define APIR_FORWARD_CMD(NAME, stem, index, request, reply, waits) [APIR_FWD_##NAME] = cmd_##stem,
#include "apir_forward_table.h"
};

/* the message's arguments have the table's size (the handler still decodes them strictly) */
static bool request_size_ok(const struct apir_forward_cmd_info *info, size_t len)
{
    return info->request.variable ? len >= info->request.bytes : len == info->request.bytes;
}

/* the component's per-guest limits (decimal; absent or 0: none) */
static uint64_t config_u64(uint32_t ctx_id, struct virgl_apir_callbacks *cbs, const char *key)
{
    const char *v = cbs && cbs->get_config ? cbs->get_config(ctx_id, key) : NULL;
    return v ? strtoull(v, NULL, 10) : 0;
}

static void apply_limits(uint32_t ctx_id, struct virgl_apir_callbacks *cbs)
{
    struct backend_ctx *ctx = backend_ctx_acquire(ctx_id);
    if (!ctx)
        return;
    ctx->buffer_bytes_limit = config_u64(ctx_id, cbs, APIR_KEY_LIMIT_BUFFER_BYTES);
    uint64_t handles = config_u64(ctx_id, cbs, APIR_KEY_LIMIT_HANDLES);
    if (handles && handles < ctx->handles.max)
        ctx->handles.max = (uint32_t)handles;
    backend_ctx_release(ctx);
}

EXPORT uint32_t apir_backend_initialize(uint32_t virgl_ctx_id, struct virgl_apir_callbacks *cbs)
{
    fpe_guard_install(); /* once per process, before any guest input */
    backend_log_acquire();
    backend_stats_init();
    struct backend_ctx *existing = backend_ctx_acquire(virgl_ctx_id);
    if (existing) {
        backend_ctx_release(existing);
        backend_log("context %u is already initialized", virgl_ctx_id);
        backend_log_release();
        return APIR_BACKEND_INIT_ALREADY;
    }
    const char *path = cbs && cbs->get_config ? cbs->get_config(virgl_ctx_id, APIR_KEY_GGML_LIBRARY_PATH) : NULL;
    const char *reg_sym = cbs && cbs->get_config ? cbs->get_config(virgl_ctx_id, APIR_KEY_GGML_LIBRARY_REG) : NULL;
    ggml_backend_reg_t reg;
    uint32_t st = apir_ggml_lib_load(path, reg_sym, &reg);
    if (st == APIR_BACKEND_INIT_SUCCESS)
        st = backend_ctx_create(virgl_ctx_id, reg);
    if (st != APIR_BACKEND_INIT_SUCCESS) {
        backend_log_release();
        return st;
    }
    apply_limits(virgl_ctx_id, cbs);
    backend_log("context %u: using %s (%zu device(s)) from %s", virgl_ctx_id, ggml_backend_reg_name(reg),
         ggml_backend_reg_dev_count(reg), path);
    return APIR_BACKEND_INIT_SUCCESS;
}

EXPORT uint32_t apir_backend_dispatcher(uint32_t virgl_ctx_id, struct virgl_apir_callbacks *cbs, uint32_t cmd_index,
                                        char *dec_cur, const char *dec_end, char *enc_cur, const char *enc_end,
                                        char **enc_cur_after)
{
    if (enc_cur_after)
        *enc_cur_after = enc_cur;
    const struct apir_forward_cmd_info *e = apir_forward_cmd(cmd_index);
    if (!e)
        return APIR_BACKEND_ERR_UNKNOWN_CMD;
    /* a NULL end (or start) means an empty range; a NULL start means no reply at all
     * (the component's reply_res_id 0): nobody will see this command's status */
    bool no_reply = !enc_cur;
    size_t dec_len = dec_cur && dec_end && dec_end > dec_cur ? (size_t)(dec_end - dec_cur) : 0;
    size_t enc_cap = enc_cur && enc_end && enc_end > enc_cur ? (size_t)(enc_end - enc_cur) : 0;
    struct backend_ctx *ctx = backend_ctx_acquire(virgl_ctx_id);
    if (!ctx)
        return APIR_BACKEND_ERR_NOT_INITIALIZED;

    struct cmd_call c = {.ctx = ctx, .cbs = cbs};
    apir_decoder_init(&c.dec, dec_cur, dec_len);
    apir_encoder_init(&c.enc, enc_cur, enc_cap);

    uint32_t st;
    bool deferred = false;
    if (!request_size_ok(e, dec_len)) {
        st = APIR_BACKEND_ERR_DECODE;
    } else if (!e->reply.variable && enc_cap < e->reply.bytes) {
        /* refuse before acting: an object the guest never hears of would leak until deinit */
        st = APIR_BACKEND_ERR_REPLY_TOO_SMALL;
    } else {
        pthread_mutex_lock(&ctx->call_lock);
        uint64_t t0 = backend_stats_on() ? backend_stats_now() : 0; /* the settling counts too */
        /* queued writes stay queued only for more of them (SET settles itself when it cannot
         * queue) and for computes, which order themselves on the stream (queued_writes.h) */
        if (cmd_index != APIR_FWD_BUFFER_SET_INLINE && cmd_index != APIR_FWD_BUFFER_SET &&
            cmd_index != APIR_FWD_GRAPH_COMPUTE && cmd_index != APIR_FWD_GRAPH_RECOMPUTE)
            queued_writes_settle(&ctx->writes);
        if (e->waits && ctx->deferred_error != APIR_BACKEND_OK) {
            /* the guest waits here: tell it what an earlier fire-and-forget command hit */
            st = ctx->deferred_error;
            ctx->deferred_error = APIR_BACKEND_OK;
            deferred = true;
        } else {
            st = handlers[cmd_index](&c);
            if (t0) {
                ctx->stats.total.calls[cmd_index]++;
                ctx->stats.total.ns[cmd_index] += backend_stats_now() - t0;
            }
        }
        pthread_mutex_unlock(&ctx->call_lock);
        if (st == APIR_BACKEND_OK && c.enc.error)
            st = APIR_BACKEND_ERR_REPLY_TOO_SMALL;
    }
    if (deferred) {
        backend_log("context %u: %s not run: returning the deferred error %u", virgl_ctx_id, e->name, st);
        backend_ctx_release(ctx);
        return st;
    }
    /* REPLY_TOO_SMALL: refused before acting (a command with a reply sent without one) */
    if (st != APIR_BACKEND_OK && st != APIR_BACKEND_ERR_REPLY_TOO_SMALL && no_reply) {
        pthread_mutex_lock(&ctx->call_lock);
        bool first = ctx->deferred_error == APIR_BACKEND_OK;
        if (first) /* first one wins: later failures are often its consequences */
            ctx->deferred_error = st;
        pthread_mutex_unlock(&ctx->call_lock);
        backend_log("context %u: %s (no reply) failed with status %u%s", virgl_ctx_id, e->name, st,
             first ? ": deferred to the next waiting command" : "");
    } else if (st != APIR_BACKEND_OK && st != APIR_BACKEND_ERR_REPLY_TOO_SMALL) {
        backend_log("context %u: %s failed with status %u", virgl_ctx_id, e->name, st);
    }
    if (st == APIR_BACKEND_OK && enc_cur_after && c.enc.pos) /* (no arithmetic on a NULL page) */
        *enc_cur_after = enc_cur + c.enc.pos;
    backend_ctx_release(ctx);
    return st;
}

EXPORT void apir_backend_resource_detach(uint32_t virgl_ctx_id, uint32_t res_id)
{
    struct backend_ctx *ctx = backend_ctx_acquire(virgl_ctx_id);
    if (!ctx)
        return;
    pthread_mutex_lock(&ctx->call_lock);
    pinned_blobs_forget(&ctx->pinned, res_id);
    pthread_mutex_unlock(&ctx->call_lock);
    backend_ctx_release(ctx);
}

EXPORT bool apir_backend_computes_off_cpu(uint32_t virgl_ctx_id)
{
    struct backend_ctx *ctx = backend_ctx_acquire(virgl_ctx_id);
    if (!ctx)
        return false;
    bool off = ctx->n_devices > 0;
    for (uint32_t i = 0; i < ctx->n_devices; i++) {
        enum ggml_backend_dev_type t = ggml_backend_dev_type(ctx->devices[i].dev);
        off = off && (t == GGML_BACKEND_DEVICE_TYPE_GPU || t == GGML_BACKEND_DEVICE_TYPE_IGPU); /* as the guest decides */
    }
    backend_ctx_release(ctx);
    return off;
}

EXPORT void apir_backend_deinit(uint32_t virgl_ctx_id)
{
    if (backend_ctx_destroy(virgl_ctx_id)) {
        backend_log("context %u: released", virgl_ctx_id);
        backend_log_release();
    }
}
