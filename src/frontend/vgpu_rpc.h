/* Typed wrappers for the FORWARD commands (apir_forward.h): each encodes its request, runs it
 * through the client and decodes the reply strictly (short or trailing bytes are an error).
 * All return 0 (APIR_BACKEND_OK), a positive enum apir_backend_status from the host, a negative
 * enum apir_client_error, or VGPU_RPC_ERR_REPLY. */
#ifndef VGPU_RPC_H
#define VGPU_RPC_H

#include "apir_client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VGPU_RPC_ERR_REPLY (-100) /* the host's reply did not decode */

#define VGPU_HOST_NAME_MAX 128
#define VGPU_HOST_DESC_MAX 1024 /* the host may describe a device at length */

struct vgpu_host_device_info {
    char name[VGPU_HOST_NAME_MAX];
    char description[VGPU_HOST_DESC_MAX];
    uint32_t type; /* enum ggml_backend_dev_type on the host */
    bool async, host_buffer, buffer_from_host_ptr, events;
    uint32_t buft, host_buft; /* handles; host_buft 0 if none */
};

struct vgpu_host_buft_info {
    char name[VGPU_HOST_NAME_MAX];
    uint64_t alignment, max_size;
    bool is_host;
};

const char *vgpu_rpc_status_str(int rc);

int vgpu_rpc_get_info(struct apir_client *c, uint32_t *version, uint32_t *n_devices);
int vgpu_rpc_device_info(struct apir_client *c, uint32_t dev, struct vgpu_host_device_info *info);
int vgpu_rpc_device_memory(struct apir_client *c, uint32_t dev, uint64_t *free_b, uint64_t *total_b);
/* sig: an op signature from vgpu_op_signature() */
int vgpu_rpc_supports_op(struct apir_client *c, uint32_t dev, const void *sig, size_t sig_len, bool *supported);
int vgpu_rpc_buft_info(struct apir_client *c, uint32_t buft, struct vgpu_host_buft_info *info);
int vgpu_rpc_buft_alloc_size(struct apir_client *c, uint32_t buft, const void *sig, size_t sig_len, uint64_t *bytes);
int vgpu_rpc_buft_alloc(struct apir_client *c, uint32_t buft, uint64_t size, uint32_t *buffer, uint64_t *got);
int vgpu_rpc_buffer_free(struct apir_client *c, uint32_t buffer);
int vgpu_rpc_buffer_clear(struct apir_client *c, uint32_t buffer, uint8_t value);
int vgpu_rpc_buffer_memset(struct apir_client *c, uint32_t buffer, uint64_t offset, uint64_t size, uint8_t value);
/* Writes of at most APIR_MAX_INLINE_SET bytes go as fire-and-forget BUFFER_SET_INLINE, those
 * of at most APIR_MAX_QUEUED_SET as fire-and-forget BUFFER_SET from a slice of the data page
 * while it has room (a failure surfaces at the next GRAPH_COMPUTE/RECOMPUTE/SYNCHRONIZE/GET);
 * the others as BUFFER_SETs that wait, through the data page in page-sized chunks. */
int vgpu_rpc_buffer_set(struct apir_client *c, uint32_t buffer, uint64_t offset, const void *data, size_t size);
/* through the data page, in page-sized chunks */
int vgpu_rpc_buffer_get(struct apir_client *c, uint32_t buffer, uint64_t offset, void *data, size_t size);
/* SET (to_buffer) or GET straight between the buffer and [at, at+size) of a blob the guest
 * keeps (a VirtGPU host buffer, vgpu_host_buffer.h): no copy through the data page. Waits,
 * since the caller may change the blob as soon as this returns. *sent false: the blob belongs
 * to an ended connection, nothing was sent (copy through the data page instead). */
int vgpu_rpc_buffer_transfer_blob(struct apir_client *c, bool to_buffer, uint32_t buffer, uint64_t offset,
                                  const struct apir_client_blob *blob, uint64_t at, size_t size, bool *sent);
int vgpu_rpc_buffer_copy(struct apir_client *c, uint32_t src, uint64_t src_off, uint32_t dst, uint64_t dst_off,
                         uint64_t size, bool *done);
int vgpu_rpc_backend_init(struct apir_client *c, uint32_t dev, uint32_t *backend);
int vgpu_rpc_backend_free(struct apir_client *c, uint32_t backend);
/* graph: bytes from vgpu_graph_encode(); *status: enum ggml_status from the host, *slot:
 * where the host keeps the graph for GRAPH_RECOMPUTE (0..APIR_GRAPH_SLOTS-1) */
int vgpu_rpc_graph_compute(struct apir_client *c, uint32_t backend, const void *graph, size_t len, int32_t *status,
                           uint32_t *slot);
/* an output GRAPH_RECOMPUTE reads back: [offset, offset+size) of buffer; src: where its bytes
 * lie in the data page after the call, until the page is next claimed (apir_client_page_hook) */
struct vgpu_rpc_output {
    uint32_t buffer;
    uint64_t offset, size;
    const void *src;
};
/* called while the reply is read, under the client's lock, so before any other command can
 * claim the data page: whoever keeps the outputs where they lie registers them here */
typedef void (*vgpu_rpc_outputs_keep)(const struct vgpu_rpc_output *outs, uint32_t n);
/* recomputes the host's copy of the graph in slot; when it succeeded (*status
 * GGML_STATUS_SUCCESS) the n outputs (n <= APIR_MAX_RECOMPUTE_OUTPUTS, together at most one
 * data page) come back in the same round trip, left in the data page (outs[i].src; keep, if
 * not NULL, is called with them): a token's logits are copied once, to where the application
 * reads them, not first to a copy of ours */
int vgpu_rpc_graph_recompute(struct apir_client *c, uint32_t backend, uint32_t slot, struct vgpu_rpc_output *outs,
                             uint32_t n, vgpu_rpc_outputs_keep keep, int32_t *status);
int vgpu_rpc_backend_synchronize(struct apir_client *c, uint32_t backend, int32_t *status);
/* BACKEND_SYNCHRONIZE only if fire-and-forget commands were sent since the last wait; else
 * *status = GGML_STATUS_SUCCESS without a round trip */
int vgpu_rpc_synchronize_pending(struct apir_client *c, uint32_t backend, int32_t *status);

#endif
