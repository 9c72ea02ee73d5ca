/* Live contexts by ctx_id, so that the backend library's callbacks (which only carry a
 * ctx_id) find their context's configuration and resources. */
#include "component_internal.h"

#include "apir_array.h"

#include <pthread.h>
#include <stdlib.h>

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct apir_context **contexts;
static size_t contexts_count, contexts_cap;

static struct apir_context *find_locked(uint32_t ctx_id)
{
    for (size_t i = 0; i < contexts_count; i++)
        if (contexts[i]->ctx_id == ctx_id)
            return contexts[i];
    return NULL;
}

int apir_registry_add(struct apir_context *ctx)
{
    int rc = -1;
    pthread_mutex_lock(&registry_lock);
    if (!find_locked(ctx->ctx_id)) {
        struct apir_context **p = apir_array_grow(contexts, &contexts_cap, contexts_count, sizeof *p, 8);
        if (!p)
            goto out;
        contexts = p;
        contexts[contexts_count++] = ctx;
        rc = 0;
    }
out:
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

void apir_registry_remove(struct apir_context *ctx)
{
    pthread_mutex_lock(&registry_lock);
    apir_array_remove(contexts, &contexts_count, sizeof *contexts, &ctx);
    if (contexts_count == 0) {
        free(contexts);
        contexts = NULL;
        contexts_cap = 0;
    }
    pthread_mutex_unlock(&registry_lock);
}

/* The returned pointers stay valid while the context lives: the backend only calls back
 * from inside that context's submit or initialize. */
static const char *cb_get_config(uint32_t ctx_id, const char *key)
{
    pthread_mutex_lock(&registry_lock);
    struct apir_context *ctx = find_locked(ctx_id);
    const char *v = ctx ? apir_config_get(&ctx->config, key) : NULL;
    pthread_mutex_unlock(&registry_lock);
    return v;
}

static const struct apir_resource *find_resource(uint32_t ctx_id, uint32_t res_id)
{
    pthread_mutex_lock(&registry_lock);
    struct apir_context *ctx = find_locked(ctx_id);
    const struct apir_resource *r = ctx ? apir_resources_find(&ctx->resources, res_id) : NULL;
    pthread_mutex_unlock(&registry_lock);
    return r;
}

static void *cb_get_shmem_ptr(uint32_t ctx_id, uint32_t res_id)
{
    const struct apir_resource *r = find_resource(ctx_id, res_id);
    return r ? r->ptr : NULL;
}

static uint64_t cb_get_shmem_size(uint32_t ctx_id, uint32_t res_id)
{
    const struct apir_resource *r = find_resource(ctx_id, res_id);
    return r ? (uint64_t)r->size : 0;
}

struct virgl_apir_callbacks apir_component_callbacks = {
    .get_config = cb_get_config,
    .get_shmem_ptr = cb_get_shmem_ptr,
    .get_shmem_size = cb_get_shmem_size,
};
