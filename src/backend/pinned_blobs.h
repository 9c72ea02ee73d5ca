/* Shared resources pinned for the device's copies (CUDA: cudaHostRegister through ggml's
 * ggml_backend_register_host_buffer). A guest's host buffers hold what its batches upload (a
 * 512-token prompt of a 2048-wide model: 4 MiB of embeddings and its mask, each batch): from
 * pinned memory the device reads them at full speed, without the host's copy into the stage
 * that a write from pageable memory needs (about 325 us for a batch's 2.4 MiB on an H200).
 *
 * ggml registers read-only for the device, so nothing may copy from the device into a pinned
 * resource: reads into shared memory go through the stage (queued_writes_read) or, where there
 * is none, through memory of the host's own (pinned_blobs_overlap tells).
 *
 * At most PINNED_BLOBS_MAX resources and PINNED_BLOBS_BYTES bytes per guest are pinned (locked
 * host memory), and a resource is unpinned before the host unmaps it (the component's detach
 * hook, apir_backend_resource_detach). */
#ifndef APIR_PINNED_BLOBS_H
#define APIR_PINNED_BLOBS_H

#include "ggml-backend.h"

#include <stdbool.h>
#include <stdint.h>

#define PINNED_BLOBS_MAX 8
#define PINNED_BLOBS_BYTES ((uint64_t)256 << 20)
/* smaller writes stay queued on the stage (no wait for the guest), even from a pinned
 * resource: the direct copy is synchronous */
#define PINNED_BLOBS_MIN_WRITE ((uint64_t)1 << 20)

struct pinned_blob {
    uint32_t res_id;
    uint8_t *ptr;
    uint64_t size;
};

struct pinned_blobs {
    bool probed;                    /* register/unregister looked up */
    bool (*reg)(void *, size_t);    /* NULL: the backend has no pinning */
    void (*unreg)(void *);
    struct pinned_blob items[PINNED_BLOBS_MAX];
    uint32_t n;
    uint64_t bytes;
};

/* The resource res_id (mapped at ptr, size bytes) is the source of a write of write_bytes into
 * a device buffer: true if the write is large enough and the resource pinned (now or before),
 * so the device may copy from it directly; false: copy as usual. A refused pin switches
 * pinning off for the context. reg: the ggml library's registry. */
bool pinned_blobs_use(struct pinned_blobs *p, ggml_backend_reg_t reg, uint32_t res_id, void *ptr, uint64_t size,
                      uint64_t write_bytes);
/* does [ptr, ptr + size) overlap a pinned resource? */
bool pinned_blobs_overlap(const struct pinned_blobs *p, const void *ptr, uint64_t size);
/* the resource is going away: unpinned if it was */
void pinned_blobs_forget(struct pinned_blobs *p, uint32_t res_id);
/* unpins everything */
void pinned_blobs_fini(struct pinned_blobs *p);

#endif
