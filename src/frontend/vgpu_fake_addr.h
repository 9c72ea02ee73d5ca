/* Fake guest base addresses for remote buffers. Host pointers never cross the wire, yet ggml
 * needs a non-NULL, unique base per buffer to place tensors (tensor->data = base + offset).
 * These addresses are never dereferenced: every access goes through the buffer interface. */
#ifndef VGPU_FAKE_ADDR_H
#define VGPU_FAKE_ADDR_H

#include <stddef.h>
#include <stdint.h>

#define VGPU_FAKE_ADDR_START 0x100000000000ull /* far from anything malloc/mmap hands out */
#define VGPU_FAKE_ADDR_GUARD 0x10000ull        /* gap between buffers: an overrun stays foreign */

struct vgpu_fake_addr {
    uint64_t next; /* next free address; 0 before first use */
};

/* Reserves size bytes aligned to align (a power of two; 0 or 1 = no alignment). Returns the
 * base, or 0 when size/align are invalid or the address space is exhausted. Not thread-safe:
 * callers serialize. */
uint64_t vgpu_fake_addr_alloc(struct vgpu_fake_addr *fa, uint64_t size, uint64_t align);

/* The process-wide allocator, serialized internally. */
void *vgpu_fake_addr_global_alloc(uint64_t size, uint64_t align);

#endif
