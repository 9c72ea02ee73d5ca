/* VirtGPU<i>_Host buffers (vgpu_host_buffer.h): ggml's buffer interface over guest memory,
 * plus the list of those that are shared blobs, for the transfers to find. */
#include "vgpu_host_buffer.h"

#include "guest_log.h"
#include "vgpu_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* as ggml's CPU buffers, rounded up for AVX-512 rows */
#define HOST_BUFFER_ALIGN 64

struct host_buffer {
    struct apir_client *client;
    struct apir_client_blob blob; /* blob.shm.ptr NULL: plain memory */
    void *base;
    size_t size;
    struct host_buffer *next; /* in shared_list while shared */
};

static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct host_buffer *shared_list;

bool vgpu_host_buffer_find(const struct apir_client *c, const void *p, size_t size,
                           const struct apir_client_blob **blob, uint64_t *at)
{
    uintptr_t a = (uintptr_t)p;
    bool found = false;
    pthread_mutex_lock(&shared_lock);
    for (struct host_buffer *hb = shared_list; hb && !found; hb = hb->next) {
        uintptr_t base = (uintptr_t)hb->base;
        if (hb->client != c || a < base || a - base > hb->size || size > hb->size - (a - base))
            continue;
        *blob = &hb->blob;
        *at = (uint64_t)(a - base);
        found = true;
    }
    pthread_mutex_unlock(&shared_lock);
    return found;
}

static struct host_buffer *ctx_of(ggml_backend_buffer_t buffer) { return buffer->context; }

static void host_buffer_free(ggml_backend_buffer_t buffer)
{
    struct host_buffer *hb = ctx_of(buffer);
    if (hb->blob.shm.ptr) {
        pthread_mutex_lock(&shared_lock);
        struct host_buffer **pp = &shared_list;
        while (*pp && *pp != hb)
            pp = &(*pp)->next;
        if (*pp)
            *pp = hb->next;
        pthread_mutex_unlock(&shared_lock);
        apir_client_blob_destroy(hb->client, &hb->blob);
    } else
        free(hb->base);
    free(hb);
}

static void *host_buffer_get_base(ggml_backend_buffer_t buffer) { return ctx_of(buffer)->base; }

static void host_buffer_memset_tensor(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, uint8_t value,
                                      size_t offset, size_t size)
{
    memset((uint8_t *)tensor->data + offset, value, size);
}

static void host_buffer_set_tensor(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, const void *data,
                                   size_t offset, size_t size)
{
    memcpy((uint8_t *)tensor->data + offset, data, size);
}

static void host_buffer_get_tensor(ggml_backend_buffer_t buffer, const struct ggml_tensor *tensor, void *data,
                                   size_t offset, size_t size)
{
    memcpy(data, (const uint8_t *)tensor->data + offset, size);
}

static bool host_buffer_cpy_tensor(ggml_backend_buffer_t buffer, const struct ggml_tensor *src,
                                   struct ggml_tensor *dst)
{
    if (!ggml_backend_buffer_is_host(src->buffer))
        return false;
    memcpy(dst->data, src->data, ggml_nbytes(src));
    return true;
}

static void host_buffer_clear(ggml_backend_buffer_t buffer, uint8_t value)
{
    memset(ctx_of(buffer)->base, value, ctx_of(buffer)->size);
}

/* ggml's CPU buffer, in substance; the members left out are NULL */
static const struct ggml_backend_buffer_i host_buffer_iface = {
    .free_buffer = host_buffer_free, .get_base = host_buffer_get_base,
    .memset_tensor = host_buffer_memset_tensor, .set_tensor = host_buffer_set_tensor,
    .get_tensor = host_buffer_get_tensor, .cpy_tensor = host_buffer_cpy_tensor, .clear = host_buffer_clear,
};

static struct vgpu_device *dev_of(ggml_backend_buffer_type_t buft) { return buft->context; }

static const char *host_buft_get_name(ggml_backend_buffer_type_t buft) { return dev_of(buft)->host_buft_name; }

/* Shares the buffer as a blob where it can; says once per process why one could not be. */
static bool share(struct host_buffer *hb, struct vgpu_device *d, size_t size)
{
    static atomic_bool told;
    long page = sysconf(_SC_PAGESIZE);
    size_t bytes = (size + (size_t)page - 1) & ~((size_t)page - 1);
    if (size > VGPU_HOST_BUFFER_SHARED_MAX || bytes < size)
        return false;
    int rc = apir_client_blob_create(d->client, bytes, &hb->blob);
    if (rc == -EOPNOTSUPP)
        return false; /* a transport that does not offer them (transport.h, kept_blobs) */
    if (rc) {
        if (!atomic_exchange(&told, true))
            GUEST_LOG_INFO("%s: a host buffer of %zu bytes is not shared with the host (%s); its transfers "
                           "copy through the data page (raise apir.limit.blobs / apir.limit.blob_bytes on the "
                           "host to share it)\n",
                           d->host_buft_name, size,
                           rc == -ENOMEM ? "the host refused the blob" : strerror(-rc));
        return false;
    }
    hb->base = hb->blob.shm.ptr;
    pthread_mutex_lock(&shared_lock);
    hb->next = shared_list;
    shared_list = hb;
    pthread_mutex_unlock(&shared_lock);
    return true;
}

static ggml_backend_buffer_t host_buft_alloc_buffer(ggml_backend_buffer_type_t buft, size_t size)
{
    struct vgpu_device *d = dev_of(buft);
    struct host_buffer *hb = calloc(1, sizeof *hb);
    if (!hb)
        return NULL;
    hb->client = d->client;
    hb->size = size;
    if (!share(hb, d, size)) {
        size_t bytes = (size + HOST_BUFFER_ALIGN - 1) & ~(size_t)(HOST_BUFFER_ALIGN - 1);
        hb->base = bytes >= size ? aligned_alloc(HOST_BUFFER_ALIGN, bytes ? bytes : HOST_BUFFER_ALIGN) : NULL;
        if (!hb->base) {
            GUEST_LOG_ERROR("%s: out of memory for a host buffer of %zu bytes\n", d->host_buft_name, size);
            free(hb);
            return NULL;
        }
    }
    ggml_backend_buffer_t buffer = ggml_backend_buffer_init(buft, host_buffer_iface, hb, size);
    if (!buffer) {
        struct ggml_backend_buffer tmp = {.context = hb};
        host_buffer_free(&tmp);
    }
    return buffer;
}

static size_t host_buft_get_alignment(ggml_backend_buffer_type_t buft) { return HOST_BUFFER_ALIGN; }

static bool host_buft_is_host(ggml_backend_buffer_type_t buft) { return true; }

/* no maximum size, ggml_nbytes per tensor (NULL members) */
static const struct ggml_backend_buffer_type_i host_buft_iface = {
    .get_name = host_buft_get_name, .alloc_buffer = host_buft_alloc_buffer,
    .get_alignment = host_buft_get_alignment, .is_host = host_buft_is_host,
};

void vgpu_host_buft_init(struct ggml_backend_buffer_type *buft, struct vgpu_device *d)
{
    snprintf(d->host_buft_name, sizeof d->host_buft_name, "%s_Host", d->name);
    buft->iface = host_buft_iface;
    buft->device = &d->dev;
    buft->context = d;
}
