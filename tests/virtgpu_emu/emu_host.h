/* The emulated host side of one virtio-gpu context: what a hypervisor does with the commands
 * the kernel driver queues (create the APIR context, attach/detach blob resources, run command
 * buffers, destroy). Operations run in the order they were queued, as on the virtqueue.
 * By default each runs before the ioctl returns; with VIRTGPU_EMU_ASYNC=1 a host thread runs
 * them later, as a real host does, so the guest really waits for its replies
 * (VIRTGPU_EMU_HOST_DELAY_US=N makes the host take N µs to pick up each command).
 * Every operation needs an emu_host_op the caller allocated beforehand, so that queuing itself
 * never fails (an ioctl reports ENOMEM up front instead of losing a detach later). */
#ifndef EMU_HOST_H
#define EMU_HOST_H

#include <stddef.h>
#include <stdint.h>

struct emu_host;
struct emu_host_op;

struct emu_host_op *emu_host_op_alloc(void);
void emu_host_op_free(struct emu_host_op *op); /* a reservation that was not used */

/* NULL on out of memory; the context itself is created by the host, in order */
struct emu_host *emu_host_create(uint32_t ctx_id, uint32_t capset_id);
void emu_host_attach(struct emu_host *h, struct emu_host_op *op, uint32_t res_id, void *ptr, size_t size);
/* detaches the resource, then unmaps host_ptr and closes memfd (the host's view of the blob) */
void emu_host_release(struct emu_host *h, struct emu_host_op *op, uint32_t res_id, void *host_ptr, size_t size,
                      int memfd);
/* takes ownership of cmd (malloc'd) */
void emu_host_submit(struct emu_host *h, struct emu_host_op *op, void *cmd, size_t size);
/* runs what is queued, destroys the context, frees h */
void emu_host_destroy(struct emu_host *h);

#endif
