/* The host buffer type of a VirtGPU device (VirtGPU<i>_Host): guest memory that the CPU
 * backend computes in, as CUDA_Host is for CUDA. llama.cpp puts its CPU-side compute buffer
 * (a batch's input embeddings), its output buffer and its CPU-side weights there. Each buffer
 * is a blob shared with the host where the host agrees, so a transfer between it and a
 * VirtGPU buffer names the blob and moves no byte through the data page
 * (vgpu_rpc_buffer_transfer_blob). A buffer the host does not share (larger than
 * VGPU_HOST_BUFFER_SHARED_MAX, over apir.limit.blobs or apir.limit.blob_bytes, no host) is
 * plain guest memory and its transfers copy through the data page as any other memory; so
 * are all of them over virtio-gpu, for now (transport.h, kept_blobs). */
#ifndef VGPU_HOST_BUFFER_H
#define VGPU_HOST_BUFFER_H

#include "apir_client.h"

#include <ggml-backend-impl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Larger host buffers are llama.cpp's CPU-side weights (the token embeddings), which never
 * travel: sharing them would only spend the guest's blob budget (apir.limit.blob_bytes). */
#define VGPU_HOST_BUFFER_SHARED_MAX ((size_t)256 << 20)

struct vgpu_device;

/* the device's host buffer type (name: the device's name and "_Host") */
void vgpu_host_buft_init(struct ggml_backend_buffer_type *buft, struct vgpu_device *d);

/* The shared blob of client c that holds [p, p + size) and where in it p lies; false if no
 * host buffer of c is shared there. *blob stays valid while that buffer is not freed. */
bool vgpu_host_buffer_find(const struct apir_client *c, const void *p, size_t size,
                           const struct apir_client_blob **blob, uint64_t *at);

#endif
