/* Context lifecycle and command-buffer parsing. A command buffer is a sequence of
 * (struct apir_command_header, payload); HANDSHAKE and LOADLIBRARY have fixed payloads and
 * FORWARD takes the rest of the buffer, so it comes last. */
#include "component_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct apir_context *apir_context_create(uint32_t ctx_id, uint32_t capset_id)
{
    uint32_t offset = 0;
    if (capset_id == APIR_CAPSET_ID_VENUS) {
        if (!getenv(APIR_ENV_ROUTE_VENUS)) {
            apir_component_log("ctx %u: refusing a Venus (capset %u) context: set %s=1 on the host to route it to "
                               "APIR, or GGML_REMOTING_USE_APIR_CAPSET=1 in the guest to use the APIR capset",
                               ctx_id, capset_id, APIR_ENV_ROUTE_VENUS);
            return NULL;
        }
        offset = APIR_VENUS_CMD_OFFSET;
    } else if (capset_id != APIR_CAPSET_ID_APIR) {
        apir_component_log("ctx %u: refusing capset %u: only APIR (%u) and routed Venus (%u) are served", ctx_id,
                           capset_id, APIR_CAPSET_ID_APIR, APIR_CAPSET_ID_VENUS);
        return NULL;
    }
    struct apir_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        apir_component_log("ctx %u: out of memory", ctx_id);
        return NULL;
    }
    ctx->ctx_id = ctx_id;
    ctx->capset_id = capset_id;
    ctx->cmd_offset = offset;
    ctx->off_cpu = -1;
    apir_config_init_from_env(&ctx->config);
    if (apir_registry_add(ctx) != 0) {
        apir_component_log("ctx %u: context id already in use", ctx_id);
        apir_config_free(&ctx->config);
        free(ctx);
        return NULL;
    }
    apir_component_log("ctx %u: created (capset %u)", ctx_id, capset_id);
    return ctx;
}

int apir_context_configure(struct apir_context *ctx, const char *key, const char *value)
{
    uint64_t n;
    enum apir_seccomp_mode m;
    bool is_limit = key && strncmp(key, "apir.limit.", 11) == 0;
    bool is_seccomp = key && strcmp(key, APIR_KEY_SANDBOX_SECCOMP) == 0;
    if (value && ((is_limit && !apir_limit_parse(value, &n)) || (is_seccomp && !apir_seccomp_parse(value, &m)))) {
        apir_component_log("ctx %u: configure: '%s' is not a valid value for %s", ctx->ctx_id, value, key);
        return -1;
    }
    int rc = apir_config_set(&ctx->config, key, value);
    if (rc)
        apir_component_log("ctx %u: configure: unknown key '%s'", ctx->ctx_id, key ? key : "(null)");
    return rc;
}

int apir_context_attach_resource(struct apir_context *ctx, uint32_t res_id, void *ptr, size_t size)
{
    struct apir_limits lim;
    apir_context_limits(ctx, &lim);
    if (lim.blobs && ctx->resources.count >= lim.blobs) {
        apir_component_log("ctx %u: resource %u refused: the context already has %zu (limit %s=%llu, key %s)",
                           ctx->ctx_id, res_id, ctx->resources.count, APIR_ENV_LIMIT_BLOBS,
                           (unsigned long long)lim.blobs, APIR_KEY_LIMIT_BLOBS);
        return -1;
    }
    if (lim.blob_bytes && (size > lim.blob_bytes || ctx->resources.bytes > lim.blob_bytes - size)) {
        apir_component_log("ctx %u: resource %u of %zu bytes refused: the context already has %llu bytes (limit "
                           "%s=%llu, key %s)",
                           ctx->ctx_id, res_id, size, (unsigned long long)ctx->resources.bytes,
                           APIR_ENV_LIMIT_BLOB_BYTES, (unsigned long long)lim.blob_bytes, APIR_KEY_LIMIT_BLOB_BYTES);
        return -1;
    }
    return apir_resources_attach(&ctx->resources, res_id, ptr, size);
}

void apir_context_enter_worker_mode(struct apir_context *ctx, struct apir_activity *activity)
{
    ctx->worker = true;
    ctx->activity = activity;
}

uint64_t apir_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* worker mode: what the supervisor reads if this command never returns */
static void activity_begin(struct apir_activity *a, const struct apir_command *c)
{
    uint32_t index = UINT32_MAX;
    if (c->type == APIR_COMMAND_TYPE_FORWARD && c->payload_len >= sizeof index)
        memcpy(&index, c->payload, sizeof index);
    atomic_store_explicit(&a->type, c->type, memory_order_relaxed);
    atomic_store_explicit(&a->forward_index, index, memory_order_relaxed);
    atomic_store_explicit(&a->since_ns, apir_monotonic_ns(), memory_order_relaxed);
    atomic_store_explicit(&a->busy, 1, memory_order_release);
}

bool apir_context_computes_off_cpu(struct apir_context *ctx)
{
    if (ctx->off_cpu < 0 && ctx->lib) { /* the library's devices do not change: asked once */
        ctx->off_cpu = ctx->lib->computes_off_cpu && ctx->lib->computes_off_cpu(ctx->ctx_id);
        apir_component_log("ctx %u: every device computes off the CPUs: %s", ctx->ctx_id,
                           ctx->off_cpu ? "yes, the worker polls for the next command before it sleeps" : "no");
    }
    return ctx->off_cpu > 0;
}

void apir_context_detach_resource(struct apir_context *ctx, uint32_t res_id)
{
    /* before the caller unmaps it: the backend may have pinned it for the device */
    if (ctx->lib && ctx->lib->resource_detach && apir_resources_find(&ctx->resources, res_id))
        ctx->lib->resource_detach(ctx->ctx_id, res_id);
    apir_resources_detach(&ctx->resources, res_id);
}

int apir_context_submit(struct apir_context *ctx, const void *cmd, size_t size)
{
    const uint8_t *p = cmd;
    size_t pos = 0;
    while (pos < size) {
        if (size - pos < APIR_COMMAND_HEADER_SIZE) {
            apir_component_log("ctx %u: malformed command buffer: %zu trailing bytes", ctx->ctx_id, size - pos);
            return -1;
        }
        struct apir_command_header h;
        memcpy(&h, p + pos, sizeof h);
        pos += APIR_COMMAND_HEADER_SIZE;
        /* unsigned arithmetic: a type below the Venus offset wraps to a huge, unknown value */
        uint32_t type = (uint32_t)h.cmd_type - ctx->cmd_offset;
        size_t need;
        if (!apir_command_payload_size(type, &need)) {
            apir_component_log("ctx %u: unknown command type %d: rest of the buffer dropped", ctx->ctx_id, h.cmd_type);
            return -1;
        }
        size_t pad = (uint32_t)h.cmd_flags & APIR_CMD_FLAG_PAD_MASK;
        if (pad > size - pos) {
            apir_component_log("ctx %u: command type %u announces %zu pad bytes, %zu left", ctx->ctx_id, type, pad,
                               size - pos);
            return -1;
        }
        size_t left = size - pos - pad;
        if (need == SIZE_MAX) {
            need = left;
        } else if (need > left) {
            apir_component_log("ctx %u: command type %u needs %zu bytes of payload, %zu left", ctx->ctx_id, type,
                               need, left);
            return -1;
        }
        struct apir_command c = {.type = type, .reply_res_id = h.reply_res_id, .payload = p + pos,
                                 .payload_len = need};
        if (ctx->activity)
            activity_begin(ctx->activity, &c);
        apir_command_run(ctx, &c);
        if (ctx->activity) {
            /* a long command is activity: the idle limit counts from its end */
            atomic_store_explicit(&ctx->activity->last_active_ns, apir_monotonic_ns(), memory_order_relaxed);
            atomic_store_explicit(&ctx->activity->busy, 0, memory_order_release);
        }
        pos += need + pad;
    }
    return 0;
}

void apir_context_destroy(struct apir_context *ctx)
{
    if (!ctx)
        return;
    if (ctx->lib) {
        ctx->lib->deinit(ctx->ctx_id);
        apir_library_release(ctx->lib);
    }
    apir_registry_remove(ctx);
    apir_resources_free(&ctx->resources);
    apir_config_free(&ctx->config);
    apir_component_log("ctx %u: destroyed", ctx->ctx_id);
    free(ctx);
}
