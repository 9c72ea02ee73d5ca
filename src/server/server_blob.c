/* Blob resources: sealed memfd-backed shared memory (apir_shared_memory_create), mapped here
 * and attached to the connection's APIR context, which enforces the blob limits; the guest
 * maps the same memfd from the descriptor it is sent and cannot resize it. */
#include "server.h"

#include "apir_array.h"
#include "apir_component.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int blobs_reserve(struct client *c)
{
    struct blob *p = apir_array_grow(c->blobs, &c->blobs_cap, c->blobs_count, sizeof *p, 8);
    if (!p)
        return -1;
    c->blobs = p;
    return 0;
}

/* 0 with *fd to send, or -1 (logged): the guest gets res_id 0 */
int blob_create(struct client *c, uint64_t size, uint32_t *res_id, int *fd)
{
    long page = sysconf(_SC_PAGESIZE);
    if (size == 0 || size > c->opts->max_blob_size || size > SIZE_MAX - (uint64_t)page) {
        apir_component_log("client %u: blob of %llu bytes refused (limit %llu, --max-blob-size)", c->id,
                           (unsigned long long)size, (unsigned long long)c->opts->max_blob_size);
        return -1;
    }
    if (blobs_reserve(c) != 0) {
        apir_component_log("client %u: out of memory for blob %zu", c->id, c->blobs_count + 1);
        return -1;
    }
    size_t len = (size_t)((size + (uint64_t)page - 1) / (uint64_t)page * (uint64_t)page);
    void *ptr;
    int mfd = apir_shared_memory_create("apir-blob", len, &ptr);
    if (mfd < 0) {
        apir_component_log("client %u: cannot create a %zu-byte blob: %s", c->id, len, strerror(errno));
        return -1;
    }
    uint32_t id = ++c->next_res_id;
    if (id == 0 || apir_context_attach_resource(c->ctx, id, ptr, len) != 0) {
        apir_component_log("client %u: blob %u not attached (see above)", c->id, id);
        munmap(ptr, len);
        close(mfd);
        return -1;
    }
    c->blobs[c->blobs_count++] = (struct blob){id, ptr, len};
    *res_id = id;
    *fd = mfd;
    return 0;
}

struct blob *blob_find(struct client *c, uint32_t res_id)
{
    for (size_t i = 0; i < c->blobs_count; i++)
        if (c->blobs[i].res_id == res_id)
            return &c->blobs[i];
    return NULL;
}

int blob_unref(struct client *c, uint32_t res_id)
{
    struct blob *b = blob_find(c, res_id);
    if (!b) {
        apir_component_log("client %u: RESOURCE_UNREF of unknown resource %u", c->id, res_id);
        return -1;
    }
    if (c->ring.ctl && c->ring.res_id == res_id) {
        /* the guest gave its ring away: commands come over the socket again */
        apir_component_log("client %u: the command ring's resource %u was released; ring detached", c->id, res_id);
        ring_detach(&c->ring);
    }
    apir_context_detach_resource(c->ctx, res_id);
    munmap(b->ptr, b->size);
    *b = c->blobs[--c->blobs_count];
    return 0;
}

/* after the context is gone */
void blob_free_all(struct client *c)
{
    for (size_t i = 0; i < c->blobs_count; i++)
        munmap(c->blobs[i].ptr, c->blobs[i].size);
    free(c->blobs);
    c->blobs = NULL;
    c->blobs_count = c->blobs_cap = 0;
}
