/* The graph's outputs, fetched as part of a successful compute (docs/frontend.md, "Device
 * lost"). ggml's get_tensor cannot report an error, so a read-back that failed after the
 * compute succeeded would leave the application sampling from logits never refreshed.
 * Instead the backend reads the tensors flagged GGML_TENSOR_FLAG_OUTPUT right after the
 * compute (a failure fails the compute, which llama_decode reports) and get_tensor serves
 * them from here. One process-wide table: all VirtGPU buffers share one connection. */
#ifndef VGPU_OUTPUTS_H
#define VGPU_OUTPUTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* most bytes kept per compute: larger outputs are read on demand as before */
#define VGPU_OUTPUTS_MAX_BYTES (64u << 20)

/* forgets everything (a new compute may have changed any buffer) and remembers which entries
 * were never read, so that the next compute of the same outputs skips them */
void vgpu_outputs_reset(void);
/* should the output at (buffer, offset, size) be fetched? false if it was fetched last time
 * and nobody read it */
bool vgpu_outputs_wanted(uint32_t buffer, uint64_t offset, uint64_t size);
/* memory for an output's bytes: a kept one of the same size where there is one (a token's logits
 * are the same size every time; a fresh 128 KB each time costs page faults), else malloc'd */
void *vgpu_outputs_alloc(uint64_t size);
/* gives such memory back unused */
void vgpu_outputs_release(void *bytes, uint64_t size);
/* keeps bytes (from vgpu_outputs_alloc; owned from now on, released here also on failure);
 * false if over the budget or out of memory */
bool vgpu_outputs_put(uint32_t buffer, uint64_t offset, void *bytes, uint64_t size);
/* keeps an output that lies in the data page, where GRAPH_RECOMPUTE left it, without copying
 * it: vgpu_outputs_page_changing copies it out before the page changes; false if over the
 * budget or out of memory */
bool vgpu_outputs_put_in_page(uint32_t buffer, uint64_t offset, const void *bytes, uint64_t size);
/* the data page is about to change or go (apir_client_page_hook): outputs kept there are
 * copied to memory of their own (dropped if there is none: read again from the host later) */
void vgpu_outputs_page_changing(void);
/* copies [offset, offset+size) of buffer into dst if one entry holds all of it */
bool vgpu_outputs_get(uint32_t buffer, uint64_t offset, void *dst, uint64_t size);
/* a write to [offset, offset+size) of buffer (size UINT64_MAX: all of it, or the buffer is
 * freed): entries that overlap it are dropped */
void vgpu_outputs_invalidate(uint32_t buffer, uint64_t offset, uint64_t size);
/* frees everything (unload) */
void vgpu_outputs_free(void);

#endif
