/* The APIR commands (HANDSHAKE, LOADLIBRARY, FORWARD) as a table, and reply writing. */
#include "component_internal.h"

#include "apir_forward.h"

#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

void *apir_reply_page(struct apir_context *ctx, uint32_t res_id, size_t *size)
{
    if (res_id == 0)
        return NULL;
    const struct apir_resource *r = apir_resources_find(&ctx->resources, res_id);
    if (!r) {
        apir_component_log("ctx %u: reply resource %u is not attached: reply dropped", ctx->ctx_id, res_id);
        return NULL;
    }
    if (r->size < APIR_REPLY_HEADER_SIZE) {
        apir_component_log("ctx %u: reply resource %u is too small (%zu bytes): reply dropped", ctx->ctx_id,
                           res_id, r->size);
        return NULL;
    }
    *size = r->size;
    return r->ptr;
}

void apir_reply_finish(void *page, uint32_t payload_len, uint32_t ret)
{
    struct apir_reply_header *h = page;
    h->payload_len = payload_len;
    /* release: the payload and its length are visible before the guest sees the word */
    atomic_store_explicit((_Atomic uint32_t *)&h->status_plus_one, ret + 1, memory_order_release);
    /* not FUTEX_PRIVATE: the page is a MAP_SHARED memfd also mapped by the guest process */
    syscall(SYS_futex, &h->status_plus_one, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* --- HANDSHAKE: u32 major, u32 minor -> magic; reply payload u32 major, u32 minor --- */
static void cmd_handshake(struct apir_context *ctx, const struct apir_command *cmd)
{
    uint32_t v[2];
    memcpy(v, cmd->payload, sizeof v);
    if (v[0] != APIR_PROTOCOL_MAJOR)
        apir_component_log("ctx %u: HANDSHAKE: guest protocol %u.%u, host %u.%u: major versions differ", ctx->ctx_id,
                           v[0], v[1], APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR);
    size_t size;
    uint8_t *page = apir_reply_page(ctx, cmd->reply_res_id, &size);
    if (!page)
        return;
    uint32_t host[2] = {APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR};
    uint32_t len = 0;
    if (size - APIR_REPLY_HEADER_SIZE >= sizeof host) {
        memcpy(page + APIR_REPLY_HEADER_SIZE, host, sizeof host);
        len = sizeof host;
    }
    apir_reply_finish(page, len, APIR_HANDSHAKE_MAGIC);
}

/* the specification's error messages (docs/configuration.md), word for word */
static void log_init_failure(struct apir_context *ctx, uint32_t code)
{
    switch (code) {
    case APIR_BACKEND_INIT_GGML_PATH_MISSING:
        apir_component_log("ctx %u: cannot open the GGML library: env var '%s' not defined", ctx->ctx_id,
                           APIR_ENV_GGML_LIBRARY_PATH);
        break;
    case APIR_BACKEND_INIT_REG_SYMBOL_MISSING:
        apir_component_log("ctx %u: cannot register the GGML library: env var '%s' not defined", ctx->ctx_id,
                           APIR_ENV_GGML_LIBRARY_REG);
        break;
    default:
        apir_component_log("ctx %u: LOADLIBRARY: the backend library failed to initialize with code %u", ctx->ctx_id,
                           code);
        break;
    }
}

/* worker mode: the libraries are loaded, so the worker drops what it no longer needs. A
 * worker that cannot lock itself down does not serve (fail closed). */
static int lock_down(struct apir_context *ctx)
{
    struct apir_limits lim;
    apir_context_limits(ctx, &lim);
    if (apir_sandbox_enter(lim.seccomp, apir_config_get(&ctx->config, APIR_KEY_GGML_LIBRARY_PATH)) != 0) {
        apir_component_log_always("ctx %u: LOADLIBRARY: the worker could not enter its sandbox: refusing to serve",
                                  ctx->ctx_id);
        return -1;
    }
    if (ctx->activity)
        atomic_store(&ctx->activity->sandboxed, 1);
    return 0;
}

static uint32_t load_library(struct apir_context *ctx)
{
    if (ctx->lib) {
        apir_component_log("ctx %u: LOADLIBRARY: the backend library is already loaded", ctx->ctx_id);
        return APIR_LOAD_LIBRARY_ALREADY_LOADED;
    }
    const char *path = apir_config_get(&ctx->config, APIR_KEY_LOAD_LIBRARY_PATH);
    if (!path) {
        apir_component_log("ctx %u: LOADLIBRARY: no backend library to load: set %s (key %s) on the host",
                           ctx->ctx_id, APIR_ENV_BACKEND_LIBRARY, APIR_KEY_LOAD_LIBRARY_PATH);
        return APIR_LOAD_LIBRARY_ENV_VAR_MISSING;
    }
    struct apir_library *lib;
    int rc = apir_library_acquire(path, &lib);
    if (rc != APIR_LOAD_LIBRARY_SUCCESS)
        return (uint32_t)rc;
    uint32_t init = lib->initialize(ctx->ctx_id, &apir_component_callbacks);
    if (init != APIR_BACKEND_INIT_SUCCESS) {
        log_init_failure(ctx, init);
        apir_library_release(lib);
        /* saturate: a huge code from a broken library must not wrap to "success" */
        return init > UINT32_MAX - 1 - APIR_LOAD_LIBRARY_INIT_BASE_INDEX ? UINT32_MAX - 1
                                                                         : APIR_LOAD_LIBRARY_INIT_BASE_INDEX + init;
    }
    if (ctx->worker && lock_down(ctx) != 0) {
        lib->deinit(ctx->ctx_id);
        apir_library_release(lib);
        return APIR_LOAD_LIBRARY_HYPERCALL_INITIALIZATION_ERROR;
    }
    ctx->lib = lib;
    return APIR_LOAD_LIBRARY_SUCCESS;
}

/* --- LOADLIBRARY: no payload -> apir_load_library_code --- */
static void cmd_load_library(struct apir_context *ctx, const struct apir_command *cmd)
{
    uint32_t code = load_library(ctx);
    size_t size;
    void *page = apir_reply_page(ctx, cmd->reply_res_id, &size);
    if (page)
        apir_reply_finish(page, 0, code);
}

static uint32_t forward(struct apir_context *ctx, const struct apir_command *cmd, uint8_t *page, size_t page_size,
                        uint32_t *reply_len)
{
    *reply_len = 0;
    if (cmd->payload_len < sizeof(uint32_t)) {
        apir_component_log("ctx %u: FORWARD without a command index", ctx->ctx_id);
        return APIR_FORWARD_BASE_INDEX + APIR_BACKEND_ERR_DECODE;
    }
    if (!ctx->lib)
        return APIR_FORWARD_NO_DISPATCH_FCT;
    uint32_t index;
    memcpy(&index, cmd->payload, sizeof index);
    size_t args_len = cmd->payload_len - sizeof index;
    /* the command buffer is already a private copy (apir_context_submit's contract), so the
     * backend decodes it in place: no second copy per call. The backend only reads it. */
    char *args = (char *)(uintptr_t)(cmd->payload + sizeof index);
    /* no reply page (reply_res_id 0, fire-and-forget): NULL tells the backend nobody will
     * read this command's status, so it keeps a failure as the deferred error */
    char *enc = page ? (char *)page + APIR_REPLY_HEADER_SIZE : NULL;
    const char *enc_end = page ? (const char *)page + page_size : NULL;
    char *after = enc;
    uint32_t status = ctx->lib->dispatcher(ctx->ctx_id, &apir_component_callbacks, index, args, args + args_len, enc,
                                           enc_end, &after);
    if (page) {
        if (after >= enc && after <= enc_end && (size_t)(after - enc) <= UINT32_MAX)
            *reply_len = (uint32_t)(after - enc);
        else
            apir_component_log("ctx %u: FORWARD %u: the backend reported a reply outside the page", ctx->ctx_id,
                               index);
    }
    if (status > UINT32_MAX - 1 - APIR_FORWARD_BASE_INDEX)
        status = UINT32_MAX - 1 - APIR_FORWARD_BASE_INDEX;
    return APIR_FORWARD_BASE_INDEX + status;
}

/* --- FORWARD: u32 command index + arguments (the rest of the buffer) --- */
static void cmd_forward(struct apir_context *ctx, const struct apir_command *cmd)
{
    size_t size = 0;
    uint8_t *page = apir_reply_page(ctx, cmd->reply_res_id, &size);
    uint32_t len;
    uint32_t ret = forward(ctx, cmd, page, size, &len);
    if (page)
        apir_reply_finish(page, len, ret);
}

static const struct {
    size_t payload_size; /* SIZE_MAX: the rest of the buffer */
    void (*run)(struct apir_context *ctx, const struct apir_command *cmd);
} commands[APIR_COMMAND_TYPE_COUNT] = {
    [APIR_COMMAND_TYPE_HANDSHAKE] = {2 * sizeof(uint32_t), cmd_handshake},
    [APIR_COMMAND_TYPE_LOADLIBRARY] = {0, cmd_load_library},
    [APIR_COMMAND_TYPE_FORWARD] = {SIZE_MAX, cmd_forward},
};

bool apir_command_payload_size(uint32_t type, size_t *size)
{
    if (type >= APIR_COMMAND_TYPE_COUNT)
        return false;
    *size = commands[type].payload_size;
    return true;
}

void apir_command_run(struct apir_context *ctx, const struct apir_command *cmd)
{
    commands[cmd->type].run(ctx, cmd);
}

void apir_command_describe(uint32_t type, uint32_t forward_index, char *out, size_t cap)
{
    switch (type) {
    case APIR_COMMAND_TYPE_HANDSHAKE:
        snprintf(out, cap, "HANDSHAKE");
        break;
    case APIR_COMMAND_TYPE_LOADLIBRARY:
        snprintf(out, cap, "LOADLIBRARY");
        break;
    case APIR_COMMAND_TYPE_FORWARD:
        if (forward_index < APIR_FWD_COUNT)
            snprintf(out, cap, "FORWARD %s (%u)", apir_forward_cmd_name(forward_index), forward_index);
        else
            snprintf(out, cap, "FORWARD (index %u)", forward_index);
        break;
    default:
        snprintf(out, cap, "command type %u", type);
        break;
    }
}
