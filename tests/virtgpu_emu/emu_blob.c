/* Blob resources of the emulated driver. A blob's memory is a memfd: the host maps it once and
 * attaches that mapping to the APIR context (as virglrenderer attaches a resource), the guest
 * maps it again through mmap() on the node, so guest and host see the same pages at different
 * addresses. Also EXECBUFFER, which hands the host a private copy of the command. */
#include "emu_internal.h"
#include "emu_stats.h"

#include "emu_host.h"
#include "apir_protocol.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BLOB_FLAGS \
    (VIRTGPU_BLOB_FLAG_USE_MAPPABLE | VIRTGPU_BLOB_FLAG_USE_SHAREABLE | VIRTGPU_BLOB_FLAG_USE_CROSS_DEVICE)
#define MAX_BLOB_SIZE (1ull << 40)
#define MAX_COMMAND_SIZE (256u << 20)

static _Atomic uint32_t next_res_id = 1; /* resource ids are global, like the kernel's */

static struct emu_blob *find_blob(struct emu_device *d, uint32_t handle)
{
    for (struct emu_blob *b = d->blobs; b; b = b->next)
        if (b->bo_handle == handle)
            return b;
    return NULL;
}

/* the guest kernel's side is gone at once; the host's (mapping, memfd, attachment) goes when
 * the host gets to the release, after every command queued before it */
static void blob_free(struct emu_device *d, struct emu_blob *b)
{
    if (b->host_ptr) {
        emu_host_release(d->host, b->release_op, b->res_id, b->host_ptr, b->size, b->memfd);
    } else {
        emu_host_op_free(b->release_op);
        if (b->memfd >= 0)
            close(b->memfd);
    }
    free(b);
}

int emu_blob_create(struct emu_device *d, struct drm_virtgpu_resource_create_blob *a)
{
    /* Simplifications, each an error rather than a silent difference: blobs need an initialized
     * context (the kernel would create a virgl one), only HOST3D memory, and no creation command. */
    if (!d->blob_support || !d->context_initialized || a->blob_mem != VIRTGPU_BLOB_MEM_HOST3D ||
        (a->blob_flags & ~BLOB_FLAGS) || a->cmd_size != 0 || a->pad != 0)
        return -EINVAL;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    if (a->size == 0 || a->size % page || a->size > MAX_BLOB_SIZE)
        return -EINVAL;
    if (a->blob_id)
        for (struct emu_blob *o = d->blobs; o; o = o->next)
            if (o->blob_id == a->blob_id)
                emu_stats_event("BLOB_ID_REUSED");
    struct emu_blob *b = calloc(1, sizeof *b);
    struct emu_host_op *attach_op = emu_host_op_alloc();
    if (b)
        b->release_op = emu_host_op_alloc();
    if (!b || !attach_op || !b->release_op) {
        emu_host_op_free(attach_op);
        if (b)
            emu_host_op_free(b->release_op);
        free(b);
        return -ENOMEM;
    }
    b->size = a->size;
    b->flags = a->blob_flags;
    b->blob_id = a->blob_id;
    b->memfd = memfd_create("virtgpu-emu-blob", MFD_CLOEXEC);
    int r = 0;
    if (b->memfd < 0 || ftruncate(b->memfd, (off_t)b->size) != 0) {
        r = -errno;
        goto fail;
    }
    b->host_ptr = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED, b->memfd, 0);
    if (b->host_ptr == MAP_FAILED) {
        b->host_ptr = NULL;
        r = -errno;
        goto fail;
    }
    b->res_id = atomic_fetch_add(&next_res_id, 1);
    emu_host_attach(d->host, attach_op, b->res_id, b->host_ptr, b->size);
    b->bo_handle = d->next_bo_handle++;
    b->next = d->blobs;
    d->blobs = b;
    a->bo_handle = b->bo_handle;
    a->res_handle = b->res_id;
    return 0;
fail:
    emu_host_op_free(attach_op);
    blob_free(d, b);
    return r;
}

int emu_blob_map(struct emu_device *d, struct drm_virtgpu_map *a)
{
    struct emu_blob *b = find_blob(d, a->handle);
    if (!b)
        return -ENOENT;
    if (!(b->flags & VIRTGPU_BLOB_FLAG_USE_MAPPABLE))
        return -EINVAL;
    /* a page-aligned token naming the blob, like the kernel's fake offsets */
    b->map_offset = (uint64_t)b->bo_handle << 32;
    a->offset = b->map_offset;
    return 0;
}

int emu_blob_gem_close(struct emu_device *d, struct drm_gem_close *a)
{
    for (struct emu_blob **p = &d->blobs; *p; p = &(*p)->next) {
        if ((*p)->bo_handle == a->handle) {
            struct emu_blob *b = *p;
            *p = b->next;
            blob_free(d, b); /* a guest mapping stays valid until munmap, as with GEM */
            return 0;
        }
    }
    return -EINVAL;
}

void emu_blob_free_all(struct emu_device *d)
{
    while (d->blobs) {
        struct emu_blob *b = d->blobs;
        d->blobs = b->next;
        blob_free(d, b);
    }
}

void *emu_device_mmap(struct emu_device *d, void *addr, size_t len, int prot, int flags, off_t offset)
{
    pthread_mutex_lock(&d->lock);
    if (d->lost) {
        pthread_mutex_unlock(&d->lock);
        errno = ENODEV;
        return MAP_FAILED;
    }
    int memfd = -1;
    for (struct emu_blob *b = d->blobs; b; b = b->next)
        if (b->map_offset && b->map_offset == (uint64_t)offset && len <= b->size)
            memfd = b->memfd;
    pthread_mutex_unlock(&d->lock);
    if (memfd < 0 || !(flags & MAP_SHARED)) {
        emu_stats_event("MMAP_REFUSED");
        errno = EINVAL;
        return MAP_FAILED;
    }
    emu_stats_event("MMAP");
    return mmap(addr, len, prot, flags, memfd, 0);
}

/* Lets a test see which numbering the guest used: APIR types 0..2, or the same shifted by the
 * Venus command count for a Venus context routed to APIR. */
static void count_command_type(const void *cmd, size_t size)
{
    int32_t type;
    if (size < sizeof type)
        return;
    memcpy(&type, cmd, sizeof type);
    if (type >= 0 && type < APIR_COMMAND_TYPE_COUNT)
        emu_stats_count("CMD_APIR_NUMBERING");
    else if (type >= APIR_VENUS_CMD_OFFSET && type < APIR_VENUS_CMD_OFFSET + APIR_COMMAND_TYPE_COUNT)
        emu_stats_count("CMD_VENUS_NUMBERING");
    else
        emu_stats_count("CMD_UNKNOWN_NUMBERING");
}

int emu_execbuffer(struct emu_device *d, struct drm_virtgpu_execbuffer *a)
{
    if (a->flags & ~(uint32_t)(VIRTGPU_EXECBUF_FENCE_FD_IN | VIRTGPU_EXECBUF_FENCE_FD_OUT | VIRTGPU_EXECBUF_RING_IDX))
        return -EINVAL;
    /* fences and syncobjs are not emulated: refuse rather than pretend */
    if (a->flags & (VIRTGPU_EXECBUF_FENCE_FD_IN | VIRTGPU_EXECBUF_FENCE_FD_OUT))
        return -EINVAL;
    if (a->num_in_syncobjs || a->num_out_syncobjs)
        return -EINVAL;
    if (!d->context_initialized)
        return -EINVAL;
    if ((a->flags & VIRTGPU_EXECBUF_RING_IDX) && a->ring_idx >= d->num_rings)
        return -EINVAL;
    const uint32_t *handles = (const uint32_t *)(uintptr_t)a->bo_handles;
    if ((a->num_bo_handles && !handles) || (a->size && !a->command))
        return -EFAULT; /* the only bad user pointer the emulation can tell */
    for (uint32_t i = 0; i < a->num_bo_handles; i++)
        if (!find_blob(d, handles[i]))
            return -ENOENT;
    if (a->size > MAX_COMMAND_SIZE)
        return -ENOMEM;
    void *copy = malloc(a->size ? a->size : 1);
    struct emu_host_op *op = emu_host_op_alloc();
    if (!copy || !op) {
        free(copy);
        emu_host_op_free(op);
        return -ENOMEM;
    }
    if (a->size)
        memcpy(copy, (const void *)(uintptr_t)a->command, a->size);
    count_command_type(copy, a->size);
    emu_host_submit(d->host, op, copy, a->size); /* the host frees the copy */
    return 0;
}
