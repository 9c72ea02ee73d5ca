/* Shared state of the VirtGPU ggml backend (libggml-virtgpu.so): one reg, one device per host
 * device, one buffer type per device, buffers and backends (streams) on top. */
#ifndef VGPU_INTERNAL_H
#define VGPU_INTERNAL_H

#include "apir_client.h"
#include "apir_forward.h"
#include "vgpu_graph.h"
#include "vgpu_listing.h"
#include "vgpu_rpc.h"
#include "vgpu_sig_cache.h"

#include <ggml-backend-impl.h>
#include <pthread.h>

#define VGPU_REG_NAME "VirtGPU"
#define VGPU_OP_CACHE_ENTRIES 4096
#define VGPU_ALLOC_SIZE_CACHE_ENTRIES 4096

struct vgpu_device;

struct vgpu_buft {
    struct ggml_backend_buffer_type buft; /* buft.context points back here */
    struct vgpu_device *dev;
    uint32_t handle;
    char name[VGPU_HOST_NAME_MAX + 32];
    uint64_t alignment;
    uint64_t max_size;
    struct vgpu_sig_cache alloc_size_cache;
};

struct vgpu_device {
    struct ggml_backend_device dev; /* dev.context points back here */
    struct apir_client *client;
    uint32_t index;                 /* host device index */
    char name[32];                  /* VirtGPU<index> */
    struct vgpu_host_device_info host;
    enum ggml_backend_dev_type type;
    struct vgpu_buft buft;
    struct ggml_backend_buffer_type host_buft; /* vgpu_host_buffer.h */
    char host_buft_name[48];
    struct vgpu_sig_cache op_cache;
    /* last memory answer: given while not connected (listing holds no host context) and
     * after the device is lost */
    _Atomic uint64_t mem_free, mem_total;
};

struct vgpu_buffer {
    struct apir_client *client;
    uint32_t handle;
    void *base; /* fake address (vgpu_fake_addr.h), never dereferenced */
    uint64_t size;
};

struct vgpu_backend {
    struct vgpu_device *dev;
    uint32_t handle;
    pthread_mutex_t lock; /* guards the encoder and the graph cache */
    struct vgpu_graph_encoder enc;
    struct vgpu_graph_cache held[APIR_GRAPH_SLOTS]; /* what the host keeps in each slot */
    /* the output-flagged nodes of the graph of id out_uid (ggml gives a graph a new id
     * whenever its nodes may change), so that a token's compute does not walk its hundreds
     * of nodes to find them */
    uint64_t out_uid;
    struct ggml_tensor **out_nodes;
    size_t n_out, out_cap;
    uint64_t n_compute, n_recompute; /* statistics, logged at free */
};

/* vgpu_device.c */
/* from the listing's answers (vgpu_listing.h): asks the host nothing */
bool vgpu_device_init(struct vgpu_device *d, ggml_backend_reg_t reg, struct apir_client *c, uint32_t index,
                      const struct vgpu_listed_device *listed);
void vgpu_device_fini(struct vgpu_device *d);

/* vgpu_buft.c */
bool vgpu_buft_init(struct vgpu_buft *b, struct vgpu_device *d, uint32_t handle, const struct vgpu_host_buft_info *info);
void vgpu_buft_fini(struct vgpu_buft *b);
bool vgpu_buft_is_ours(ggml_backend_buffer_type_t buft);

/* vgpu_buffer.c */
ggml_backend_buffer_t vgpu_buffer_alloc(struct vgpu_buft *b, size_t size);
bool vgpu_buffer_is_ours(ggml_backend_buffer_t buffer);
/* where t's data lives on the host (graph encoding); false if not in a VirtGPU buffer */
bool vgpu_buffer_locate(void *user, const struct ggml_tensor *t, uint32_t *buffer, uint64_t *offset);

/* vgpu_backend.c */
ggml_backend_t vgpu_backend_init(struct vgpu_device *d);

#endif
