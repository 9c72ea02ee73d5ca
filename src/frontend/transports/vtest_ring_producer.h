/* The guest's side of the vtest command ring (src/protocol/vtest_ring.h): writes entries and
 * publishes them; the caller (transports/vtest.c) decides when to kick the host and what to
 * do when there is no room yet. Not thread-safe: the transport's lock covers it. */
#ifndef APIR_VTEST_RING_PRODUCER_H
#define APIR_VTEST_RING_PRODUCER_H

#include "vtest_ring.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vtest_ring_producer {
    struct vtest_ring_control *ctl;
    uint8_t *data;
    uint32_t size; /* data bytes, a power of two */
    uint32_t tail; /* our own count; the shared one is only written */
};

/* blob: the mapped ring blob of blob_bytes (VTEST_RING_CONTROL_BYTES + a power of two) */
void vtest_ring_producer_init(struct vtest_ring_producer *p, void *blob, size_t blob_bytes);
/* whether a command of size bytes goes into the ring at all (at most half the data area, so
 * that a wrap never leaves it without room); larger ones go over the socket */
bool vtest_ring_takes(const struct vtest_ring_producer *p, size_t size);
/* writes and publishes one command (vtest_ring_takes must be true): 0, -ENOSPC while the host
 * has not consumed enough, -EPROTO when the host's head is impossible */
int vtest_ring_put(struct vtest_ring_producer *p, const void *cmd, uint32_t size);
/* the same for a socket mark: the next command comes over the socket */
int vtest_ring_put_socket_mark(struct vtest_ring_producer *p);
/* true when the host said it is about to block on the socket; the flag is cleared, so that
 * one kick answers it. Call after a put. */
bool vtest_ring_take_kick(struct vtest_ring_producer *p);
/* true when the host has consumed everything published */
bool vtest_ring_drained(const struct vtest_ring_producer *p);

#endif
