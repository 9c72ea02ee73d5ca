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

struct cmd_entry {
    cmd_handler fn;
    const char *name;
    uint32_t reply_size; /* fixed reply bytes, checked before the command acts (0: none or
                          * variable, checked after encoding) */
    bool waits;          /* a point where the guest waits: reports a deferred error first */
};

static const struct cmd_entry commands[APIR_CMD_COUNT] = {
    [APIR_CMD_GET_INFO] = {cmd_get_info, "GET_INFO", 8, false},
    [APIR_CMD_DEVICE_GET_INFO] = {cmd_device_get_info, "DEVICE_GET_INFO", 0, false},
    [APIR_CMD_DEVICE_GET_MEMORY] = {cmd_device_get_memory, "DEVICE_GET_MEMORY", 16, false},
    [APIR_CMD_DEVICE_SUPPORTS_OP] = {cmd_device_supports_op, "DEVICE_SUPPORTS_OP", 1, false},
    [APIR_CMD_BUFT_GET_INFO] = {cmd_buft_get_info, "BUFT_GET_INFO", 0, false},
    [APIR_CMD_BUFT_GET_ALLOC_SIZE] = {cmd_buft_get_alloc_size, "BUFT_GET_ALLOC_SIZE", 8, false},
    [APIR_CMD_BUFT_ALLOC_BUFFER] = {cmd_buft_alloc_buffer, "BUFT_ALLOC_BUFFER", 12, false},
    [APIR_CMD_BUFFER_FREE] = {cmd_buffer_free, "BUFFER_FREE", 0, false},
    [APIR_CMD_BUFFER_CLEAR] = {cmd_buffer_clear, "BUFFER_CLEAR", 0, false},
    [APIR_CMD_BUFFER_MEMSET] = {cmd_buffer_memset, "BUFFER_MEMSET", 0, false},
    [APIR_CMD_BUFFER_SET] = {cmd_buffer_set, "BUFFER_SET", 0, false},
    [APIR_CMD_BUFFER_GET] = {cmd_buffer_get, "BUFFER_GET", 0, true},
    [APIR_CMD_BUFFER_COPY] = {cmd_buffer_copy, "BUFFER_COPY", 1, false},
    [APIR_CMD_BACKEND_INIT] = {cmd_backend_init, "BACKEND_INIT", 4, false},
    [APIR_CMD_BACKEND_FREE] = {cmd_backend_free, "BACKEND_FREE", 0, false},
    [APIR_CMD_GRAPH_COMPUTE] = {cmd_graph_compute, "GRAPH_COMPUTE", 4, true},
    [APIR_CMD_GRAPH_RECOMPUTE] = {cmd_graph_recompute, "GRAPH_RECOMPUTE", 4, true},
    [APIR_CMD_BACKEND_SYNCHRONIZE] = {cmd_backend_synchronize, "BACKEND_SYNCHRONIZE", 4, true},
    [APIR_CMD_BUFFER_SET_INLINE] = {cmd_buffer_set_inline, "BUFFER_SET_INLINE", 0, false},
};

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
    struct backend_ctx *existing = backend_ctx_acquire(virgl_ctx_id);
    if (existing) {
        backend_ctx_release(existing);
        blog("context %u is already initialized", virgl_ctx_id);
        backend_log_release();
        return APIR_BACKEND_INIT_ALREADY;
    }
    const char *path = cbs && cbs->get_config ? cbs->get_config(virgl_ctx_id, APIR_KEY_GGML_LIBRARY_PATH) : NULL;
    const char *reg_sym = cbs && cbs->get_config ? cbs->get_config(virgl_ctx_id, APIR_KEY_GGML_LIBRARY_REG) : NULL;
    ggml_backend_reg_t reg;
    uint32_t st = ggml_lib_load(path, reg_sym, &reg);
    if (st == APIR_BACKEND_INIT_SUCCESS)
        st = backend_ctx_create(virgl_ctx_id, reg);
    if (st != APIR_BACKEND_INIT_SUCCESS) {
        backend_log_release();
        return st;
    }
    apply_limits(virgl_ctx_id, cbs);
    blog("context %u: using %s (%zu device(s)) from %s", virgl_ctx_id, ggml_backend_reg_name(reg),
         ggml_backend_reg_dev_count(reg), path);
    return APIR_BACKEND_INIT_SUCCESS;
}

EXPORT uint32_t apir_backend_dispatcher(uint32_t virgl_ctx_id, struct virgl_apir_callbacks *cbs, uint32_t cmd_index,
                                        char *dec_cur, const char *dec_end, char *enc_cur, const char *enc_end,
                                        char **enc_cur_after)
{
    if (enc_cur_after)
        *enc_cur_after = enc_cur;
    if (cmd_index >= APIR_CMD_COUNT || !commands[cmd_index].fn)
        return APIR_BACKEND_ERR_UNKNOWN_CMD;
    /* a NULL end (or start) means an empty range; a NULL start means no reply at all
     * (the component's reply_res_id 0): nobody will see this command's status */
    bool no_reply = !enc_cur;
    size_t dec_len = dec_cur && dec_end && dec_end > dec_cur ? (size_t)(dec_end - dec_cur) : 0;
    size_t enc_cap = enc_cur && enc_end && enc_end > enc_cur ? (size_t)(enc_end - enc_cur) : 0;
    struct backend_ctx *ctx = backend_ctx_acquire(virgl_ctx_id);
    if (!ctx)
        return APIR_BACKEND_ERR_NOT_INITIALIZED;

    const struct cmd_entry *e = &commands[cmd_index];
    struct cmd_call c = {.ctx = ctx, .cbs = cbs};
    apir_decoder_init(&c.dec, dec_cur, dec_len);
    apir_encoder_init(&c.enc, enc_cur, enc_cap);

    uint32_t st;
    bool deferred = false;
    if (enc_cap < e->reply_size) {
        /* refuse before acting: an object the guest never hears of would leak until deinit */
        st = APIR_BACKEND_ERR_REPLY_TOO_SMALL;
    } else {
        pthread_mutex_lock(&ctx->call_lock);
        if (e->waits && ctx->deferred_error != APIR_BACKEND_OK) {
            /* the guest waits here: tell it what an earlier fire-and-forget command hit */
            st = ctx->deferred_error;
            ctx->deferred_error = APIR_BACKEND_OK;
            deferred = true;
        } else {
            st = e->fn(&c);
        }
        pthread_mutex_unlock(&ctx->call_lock);
        if (st == APIR_BACKEND_OK && c.enc.error)
            st = APIR_BACKEND_ERR_REPLY_TOO_SMALL;
    }
    if (deferred) {
        blog("context %u: %s not run: returning the deferred error %u", virgl_ctx_id, e->name, st);
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
        blog("context %u: %s (no reply) failed with status %u%s", virgl_ctx_id, e->name, st,
             first ? ": deferred to the next waiting command" : "");
    } else if (st != APIR_BACKEND_OK && st != APIR_BACKEND_ERR_REPLY_TOO_SMALL) {
        blog("context %u: %s failed with status %u", virgl_ctx_id, e->name, st);
    }
    if (st == APIR_BACKEND_OK && enc_cur_after && c.enc.pos) /* (no arithmetic on a NULL page) */
        *enc_cur_after = enc_cur + c.enc.pos;
    backend_ctx_release(ctx);
    return st;
}

EXPORT void apir_backend_deinit(uint32_t virgl_ctx_id)
{
    if (backend_ctx_destroy(virgl_ctx_id)) {
        blog("context %u: released", virgl_ctx_id);
        backend_log_release();
    }
}
