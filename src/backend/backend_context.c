#include "backend_context.h"

#include "backend_log.h"

#include <stdlib.h>
#include <unistd.h>
#include <string.h>

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct backend_ctx *contexts;

ggml_backend_buffer_type_t backend_ctx_buft(struct backend_ctx *ctx, uint32_t h)
{
    return handle_table_get(&ctx->handles, h, HANDLE_BUFT);
}

ggml_backend_buffer_t backend_ctx_buffer(struct backend_ctx *ctx, uint32_t h)
{
    return handle_table_get(&ctx->handles, h, HANDLE_BUFFER);
}

struct backend_stream *backend_ctx_stream(struct backend_ctx *ctx, uint32_t h)
{
    return handle_table_get(&ctx->handles, h, HANDLE_BACKEND);
}

void backend_ctx_drop_graphs(struct backend_ctx *ctx)
{
    uint32_t pos = 0;
    struct backend_stream *s;
    while ((s = handle_table_next(&ctx->handles, &pos, HANDLE_BACKEND, NULL)))
        for (int i = 0; i < APIR_GRAPH_SLOTS; i++)
            decoded_graph_free(&s->graphs[i]);
}

bool backend_ctx_reads_indices(struct backend_ctx *ctx, ggml_backend_buffer_t buf, uint64_t offset, uint64_t size)
{
    uint32_t pos = 0;
    struct backend_stream *s;
    while ((s = handle_table_next(&ctx->handles, &pos, HANDLE_BACKEND, NULL)))
        for (int i = 0; i < APIR_GRAPH_SLOTS; i++)
            if (s->graphs[i].graph && index_guard_reads_static(&s->graphs[i].indices, buf, offset, offset + size))
                return true;
    return false;
}

static ggml_backend_buffer_t resolve_buffer(void *user, uint32_t h) { return backend_ctx_buffer(user, h); }

uint64_t backend_ctx_room(const struct backend_ctx *ctx)
{
    uint64_t limit = ctx->buffer_bytes_limit;
    if (!limit)
        return UINT64_MAX;
    uint64_t used = ctx->buffer_bytes + ctx->shadow.bytes + queued_writes_stage_bytes(&ctx->writes) + ctx->repacked.bytes;
    return used < limit ? limit - used : 0;
}

void backend_ctx_make_room(struct backend_ctx *ctx, uint64_t size)
{
    uint64_t limit = ctx->buffer_bytes_limit;
    if (!limit || size > limit || ctx->buffer_bytes > limit - size)
        return; /* refused by the caller, or no limit */
    uint64_t left = limit - ctx->buffer_bytes - size, stage = queued_writes_stage_bytes(&ctx->writes);
    write_shadow_shrink(&ctx->shadow, left > stage ? left - stage : 0);
    if (ctx->shadow.bytes + stage > left)
        queued_writes_drop_stage(&ctx->writes);
    if (ctx->shadow.bytes + queued_writes_stage_bytes(&ctx->writes) + ctx->repacked.bytes > left) {
        backend_ctx_drop_graphs(ctx); /* they read the copies */
        repacked_weights_free(&ctx->repacked);
    }
}

void backend_ctx_bytes_changed(struct backend_ctx *ctx, ggml_backend_buffer_t buf, uint64_t offset, uint64_t size)
{
    write_shadow_invalidate(&ctx->shadow, buf, offset, size);
    repacked_weights_invalidate(&ctx->repacked, buf, offset, size);
}

struct buffer_resolver backend_ctx_resolver(struct backend_ctx *ctx)
{
    return (struct buffer_resolver){.user = ctx, .resolve = resolve_buffer};
}

void backend_stream_free(struct backend_stream *s)
{
    for (int i = 0; i < APIR_GRAPH_SLOTS; i++)
        decoded_graph_free(&s->graphs[i]);
    ggml_backend_free(s->backend);
    if (s->threadpool && s->threadpool_pid == getpid())
        s->threadpool_free(s->threadpool);
    free(s);
}

static void free_ctx(struct backend_ctx *ctx)
{
    uint32_t pos = 0;
    struct backend_stream *s;
    queued_writes_fini(&ctx->writes); /* its bytes may be in flight to a buffer */
    pinned_blobs_fini(&ctx->pinned);
    /* graphs point into buffers: drop them first, then backends, then buffers */
    while ((s = handle_table_next(&ctx->handles, &pos, HANDLE_BACKEND, NULL)))
        backend_stream_free(s);
    repacked_weights_free(&ctx->repacked);
    pos = 0;
    ggml_backend_buffer_t b;
    while ((b = handle_table_next(&ctx->handles, &pos, HANDLE_BUFFER, NULL)))
        ggml_backend_buffer_free(b);
    handle_table_fini(&ctx->handles);
    write_shadow_free(&ctx->shadow);
    free(ctx->devices);
    pthread_cond_destroy(&ctx->idle);
    pthread_mutex_destroy(&ctx->call_lock);
    free(ctx);
}

/* every device of the reg, with handles for its buffer types */
static uint32_t add_devices(struct backend_ctx *ctx)
{
    size_t n = ggml_backend_reg_dev_count(ctx->reg);
    if (n > UINT32_MAX)
        n = UINT32_MAX;
    ctx->devices = calloc(n, sizeof *ctx->devices);
    if (!ctx->devices)
        return APIR_BACKEND_INIT_OUT_OF_MEMORY;
    ctx->n_devices = (uint32_t)n;
    for (uint32_t i = 0; i < ctx->n_devices; i++) {
        struct backend_device *d = &ctx->devices[i];
        d->dev = ggml_backend_reg_dev_get(ctx->reg, i);
        ggml_backend_buffer_type_t buft = ggml_backend_dev_buffer_type(d->dev);
        ggml_backend_buffer_type_t host = ggml_backend_dev_host_buffer_type(d->dev);
        d->buft = buft ? handle_table_add(&ctx->handles, HANDLE_BUFT, buft) : 0;
        d->host_buft = host ? handle_table_add(&ctx->handles, HANDLE_BUFT, host) : 0;
        d->extra_bufts = repacked_weights_bufts(d->dev);
        if ((buft && !d->buft) || (host && !d->host_buft))
            return APIR_BACKEND_INIT_OUT_OF_MEMORY;
    }
    return APIR_BACKEND_INIT_SUCCESS;
}

uint32_t backend_ctx_create(uint32_t id, ggml_backend_reg_t reg)
{
    struct backend_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return APIR_BACKEND_INIT_OUT_OF_MEMORY;
    ctx->id = id;
    ctx->reg = reg;
    handle_table_init(&ctx->handles, 0);
    pthread_cond_init(&ctx->idle, NULL);
    pthread_mutex_init(&ctx->call_lock, NULL);
    uint32_t st = add_devices(ctx);
    if (st != APIR_BACKEND_INIT_SUCCESS) {
        free_ctx(ctx);
        return st;
    }
    pthread_mutex_lock(&registry_lock);
    for (struct backend_ctx *c = contexts; c; c = c->next) {
        if (c->id == id) {
            pthread_mutex_unlock(&registry_lock);
            free_ctx(ctx);
            return APIR_BACKEND_INIT_ALREADY;
        }
    }
    ctx->next = contexts;
    contexts = ctx;
    pthread_mutex_unlock(&registry_lock);
    return APIR_BACKEND_INIT_SUCCESS;
}

struct backend_ctx *backend_ctx_acquire(uint32_t id)
{
    pthread_mutex_lock(&registry_lock);
    struct backend_ctx *c = contexts;
    while (c && c->id != id)
        c = c->next;
    if (c)
        c->users++;
    pthread_mutex_unlock(&registry_lock);
    return c;
}

void backend_ctx_release(struct backend_ctx *ctx)
{
    pthread_mutex_lock(&registry_lock);
    if (--ctx->users == 0)
        pthread_cond_broadcast(&ctx->idle);
    pthread_mutex_unlock(&registry_lock);
}

bool backend_ctx_destroy(uint32_t id)
{
    pthread_mutex_lock(&registry_lock);
    struct backend_ctx **pp = &contexts;
    while (*pp && (*pp)->id != id)
        pp = &(*pp)->next;
    struct backend_ctx *ctx = *pp;
    if (ctx) {
        *pp = ctx->next;
        /* unlinked: no new call can find it; wait for the ones running */
        while (ctx->users)
            pthread_cond_wait(&ctx->idle, &registry_lock);
    }
    pthread_mutex_unlock(&registry_lock);
    if (!ctx)
        return false;
    if (backend_stats_on())
        backend_stats_report_total(&ctx->stats, ctx->id);
    free_ctx(ctx);
    return true;
}
