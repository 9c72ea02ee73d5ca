/* State shared by the emulated driver's files (emu_device.c: the ioctl table and the context;
 * emu_blob.c: blob resources, mmap and EXECBUFFER). */
#ifndef EMU_INTERNAL_H
#define EMU_INTERNAL_H

#include "emu_device.h"
#include "virtgpu_uapi.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct emu_host;
struct emu_host_op;

struct emu_blob {
    struct emu_blob *next;
    uint32_t bo_handle; /* per-file GEM handle */
    uint32_t res_id;    /* global resource id, what the host knows */
    uint32_t flags;
    uint64_t size;
    uint64_t blob_id;
    uint64_t map_offset; /* fake mmap offset, 0 until DRM_IOCTL_VIRTGPU_MAP */
    int memfd;           /* the "host memory" behind the blob */
    void *host_ptr;      /* the host's own mapping, attached to the APIR context */
    struct emu_host_op *release_op; /* reserved at creation: releasing never fails */
};

struct emu_device {
    pthread_mutex_t lock; /* one ioctl at a time per file, as the host runs a context */
    uint64_t capset_mask; /* capsets the emulated host offers */
    bool blob_support;
    unsigned long lose_at;  /* VIRTGPU_EMU_LOSE_AT: the device is lost at this EXECBUFFER (0: never) */
    unsigned long n_execbuffer;
    bool lost;              /* every ioctl and mmap fails with ENODEV, as after a device unplug */
    bool context_initialized;
    uint32_t ctx_id, capset_id, num_rings;
    struct emu_host *host; /* the host side of the context, once CONTEXT_INIT ran */
    struct emu_blob *blobs;
    uint32_t next_bo_handle;
};

int emu_blob_create(struct emu_device *d, struct drm_virtgpu_resource_create_blob *args);
int emu_blob_map(struct emu_device *d, struct drm_virtgpu_map *args);
int emu_blob_gem_close(struct emu_device *d, struct drm_gem_close *args);
int emu_execbuffer(struct emu_device *d, struct drm_virtgpu_execbuffer *args);
void emu_blob_free_all(struct emu_device *d);

#endif
