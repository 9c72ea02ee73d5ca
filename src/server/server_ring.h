/* The worker's side of the vtest command ring (src/protocol/vtest_ring.h). Everything in the
 * shared blob is the guest's to scribble on: the consumer keeps its own head, reads each
 * control word once, checks it, and copies a command out before anyone decodes it. */
#ifndef APIR_SERVER_RING_H
#define APIR_SERVER_RING_H

#include "vtest_ring.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct server_ring {
    struct vtest_ring_control *ctl; /* NULL: no ring attached */
    const uint8_t *data;
    uint32_t size;   /* data bytes, a power of two */
    uint32_t head;   /* our own count, published to ctl->head */
    uint32_t res_id; /* the blob it lives in */
};

enum ring_entry {
    RING_EMPTY,   /* nothing published past the head */
    RING_COMMAND, /* a command, copied out and consumed */
    RING_SOCKET,  /* a socket mark at the head (left there: ring_take_socket_mark) */
    RING_CORRUPT, /* the guest's tail or an entry's word is impossible */
    RING_NO_MEMORY, /* no room to copy a command out */
};

/* a blob of blob_bytes at blob as the ring; false if its size is not a ring's */
bool ring_attach(struct server_ring *r, uint32_t res_id, void *blob, size_t blob_bytes);
void ring_detach(struct server_ring *r);
/* the entry at the head, wrap marks skipped; a command's bytes go to *buf (grown as needed,
 * *cap bytes, with 4 bytes of slack) and their count to *len */
enum ring_entry ring_next(struct server_ring *r, uint32_t **buf, size_t *cap, uint32_t *len);
/* consumes the socket mark at the head (wrap marks skipped); false if the head is anything else */
bool ring_take_socket_mark(struct server_ring *r);
/* true when ring_next would not say RING_EMPTY or RING_SOCKET (cheap: for polling; it
 * consumes wrap marks at the head) */
bool ring_has_work(struct server_ring *r);
/* the worker is about to block on the socket (true), or is awake again (false) */
void ring_set_waiting(struct server_ring *r, bool waiting);

#endif
