#include "vgpu_outputs.h"

#include "apir_array.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    uint32_t buffer;
    uint64_t offset, size;
    uint8_t *bytes; /* NULL in the skip list */
    bool read;
    bool in_page; /* bytes point into the data page: not ours to free */
};

struct table {
    struct entry *v;
    size_t n, cap;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct table held;   /* fetched by the last compute */
static struct table unread; /* fetched by the compute before and never read */
static uint64_t held_bytes;
static struct table spare; /* memory of dropped entries, for the next compute's outputs */

/* a few: one compute's outputs (llama.cpp: logits, or embeddings) */
#define SPARE_MAX 4

static bool push(struct table *t, struct entry e)
{
    struct entry *v = apir_array_grow(t->v, &t->cap, t->n, sizeof *v, 8);
    if (!v)
        return false;
    t->v = v;
    t->v[t->n++] = e;
    return true;
}

static bool same(const struct entry *e, uint32_t buffer, uint64_t offset, uint64_t size)
{
    return e->buffer == buffer && e->offset == offset && e->size == size;
}

/* under lock */
static void keep_spare(uint8_t *bytes, uint64_t size)
{
    if (bytes && size && spare.n < SPARE_MAX && push(&spare, (struct entry){0, 0, size, bytes, false, false}))
        return;
    free(bytes);
}

/* under lock: an entry leaves the table; its memory, if ours, goes to the spares */
static void drop_bytes(const struct entry *e)
{
    if (!e->in_page)
        keep_spare(e->bytes, e->size);
}

/* under lock: e joins the outputs held, within the budget */
static bool hold_locked(struct entry e)
{
    if (held_bytes + e.size > VGPU_OUTPUTS_MAX_BYTES || !push(&held, e))
        return false;
    held_bytes += e.size;
    return true;
}

/* under lock */
static void *alloc_locked(uint64_t size)
{
    for (size_t i = 0; i < spare.n; i++)
        if (spare.v[i].size == size) {
            void *bytes = spare.v[i].bytes;
            spare.v[i] = spare.v[--spare.n];
            return bytes;
        }
    return malloc((size_t)size);
}

void *vgpu_outputs_alloc(uint64_t size)
{
    pthread_mutex_lock(&lock);
    void *bytes = alloc_locked(size);
    pthread_mutex_unlock(&lock);
    return bytes;
}

void vgpu_outputs_release(void *bytes, uint64_t size)
{
    pthread_mutex_lock(&lock);
    keep_spare(bytes, size);
    pthread_mutex_unlock(&lock);
}

/* outputs nobody reads stay skipped (an application that reads one later gets it through
 * an ordinary BUFFER_GET and puts it back in the next fetch); the list is kept short */
#define UNREAD_MAX 64

void vgpu_outputs_reset(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < held.n; i++) {
        struct entry *e = &held.v[i];
        if (!e->read)
            push(&unread, (struct entry){e->buffer, e->offset, e->size, NULL, false, false});
        drop_bytes(e);
    }
    if (unread.n > UNREAD_MAX) {
        memmove(unread.v, unread.v + (unread.n - UNREAD_MAX), UNREAD_MAX * sizeof *unread.v);
        unread.n = UNREAD_MAX;
    }
    held.n = 0;
    held_bytes = 0;
    pthread_mutex_unlock(&lock);
}

bool vgpu_outputs_wanted(uint32_t buffer, uint64_t offset, uint64_t size)
{
    pthread_mutex_lock(&lock);
    bool wanted = held_bytes + size <= VGPU_OUTPUTS_MAX_BYTES;
    for (size_t i = 0; wanted && i < unread.n; i++)
        if (same(&unread.v[i], buffer, offset, size))
            wanted = false;
    pthread_mutex_unlock(&lock);
    return wanted;
}

bool vgpu_outputs_put(uint32_t buffer, uint64_t offset, void *bytes, uint64_t size)
{
    uint8_t *copy = bytes;
    if (!copy)
        return false;
    if (size == 0 || size > VGPU_OUTPUTS_MAX_BYTES) {
        vgpu_outputs_release(copy, size);
        return false;
    }
    pthread_mutex_lock(&lock);
    bool ok = hold_locked((struct entry){buffer, offset, size, copy, false, false});
    if (!ok)
        keep_spare(copy, size);
    pthread_mutex_unlock(&lock);
    return ok;
}

bool vgpu_outputs_put_in_page(uint32_t buffer, uint64_t offset, const void *bytes, uint64_t size)
{
    if (!bytes || size == 0 || size > VGPU_OUTPUTS_MAX_BYTES)
        return false;
    pthread_mutex_lock(&lock);
    bool ok = hold_locked((struct entry){buffer, offset, size, (uint8_t *)(uintptr_t)bytes, false, true});
    pthread_mutex_unlock(&lock);
    return ok;
}

void vgpu_outputs_page_changing(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < held.n;) {
        struct entry *e = &held.v[i];
        if (!e->in_page) {
            i++;
            continue;
        }
        uint8_t *copy = alloc_locked(e->size);
        if (!copy) { /* no memory: dropped, read from the host when asked */
            held_bytes -= e->size;
            held.v[i] = held.v[--held.n];
            continue;
        }
        memcpy(copy, e->bytes, (size_t)e->size);
        e->bytes = copy;
        e->in_page = false;
        i++;
    }
    pthread_mutex_unlock(&lock);
}

bool vgpu_outputs_get(uint32_t buffer, uint64_t offset, void *dst, uint64_t size)
{
    bool found = false;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < held.n; i++) {
        struct entry *e = &held.v[i];
        if (e->buffer == buffer && offset >= e->offset && size <= e->size && offset - e->offset <= e->size - size) {
            memcpy(dst, e->bytes + (offset - e->offset), (size_t)size);
            e->read = true;
            found = true;
            break;
        }
    }
    /* read but not fetched: fetch it again from the next compute on */
    for (size_t i = 0; !found && i < unread.n;) {
        struct entry *e = &unread.v[i];
        if (e->buffer == buffer && offset < e->offset + e->size && e->offset < offset + size)
            unread.v[i] = unread.v[--unread.n];
        else
            i++;
    }
    pthread_mutex_unlock(&lock);
    return found;
}

void vgpu_outputs_invalidate(uint32_t buffer, uint64_t offset, uint64_t size)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < held.n;) {
        struct entry *e = &held.v[i];
        bool overlap = e->buffer == buffer && offset < e->offset + e->size &&
                       (size == UINT64_MAX || e->offset < offset + size);
        if (overlap) {
            held_bytes -= e->size;
            drop_bytes(e);
            held.v[i] = held.v[--held.n];
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&lock);
}

void vgpu_outputs_free(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < held.n; i++)
        if (!held.v[i].in_page)
            free(held.v[i].bytes);
    for (size_t i = 0; i < spare.n; i++)
        free(spare.v[i].bytes);
    free(held.v);
    free(unread.v);
    free(spare.v);
    held = (struct table){0};
    unread = (struct table){0};
    spare = (struct table){0};
    held_bytes = 0;
    pthread_mutex_unlock(&lock);
}
