/* The worker's side of the vtest command ring: see server_ring.h. */
#include "server_ring.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

bool ring_attach(struct server_ring *r, uint32_t res_id, void *blob, size_t blob_bytes)
{
    if (blob_bytes < VTEST_RING_CONTROL_BYTES + (size_t)VTEST_RING_MIN_DATA_BYTES ||
        blob_bytes > VTEST_RING_CONTROL_BYTES + (size_t)VTEST_RING_MAX_DATA_BYTES)
        return false;
    size_t size = blob_bytes - VTEST_RING_CONTROL_BYTES;
    if (size & (size - 1))
        return false;
    *r = (struct server_ring){.ctl = blob, .data = (const uint8_t *)blob + VTEST_RING_CONTROL_BYTES,
                              .size = (uint32_t)size, .head = 0, .res_id = res_id};
    atomic_store(&r->ctl->head, 0);
    atomic_store(&r->ctl->host_waiting, 0);
    return true;
}

void ring_detach(struct server_ring *r) { *r = (struct server_ring){0}; }

static uint32_t load_word(const struct server_ring *r, uint32_t off)
{
    uint32_t w;
    memcpy(&w, r->data + off, 4);
    return w;
}

static void advance(struct server_ring *r, uint32_t bytes)
{
    r->head += bytes;
    atomic_store_explicit(&r->ctl->head, r->head, memory_order_release);
}

/* The word at the head, after any wrap marks (consumed): 1 with the word and the bytes
 * published from the head, 0 when nothing is, -1 when the tail (more than the data area ahead
 * of our head, or not whole words) or a wrap mark (past what was published) is impossible. */
static int head_word(struct server_ring *r, uint32_t *word, uint32_t *avail)
{
    for (;;) {
        *avail = atomic_load_explicit(&r->ctl->tail, memory_order_acquire) - r->head;
        if (*avail > r->size || *avail % 4)
            return -1;
        if (*avail == 0)
            return 0;
        uint32_t off = r->head & (r->size - 1), to_end = r->size - off;
        *word = load_word(r, off); /* read once: the guest may change it under us */
        if (*word != VTEST_RING_WRAP_MARK)
            return 1;
        if (to_end > *avail)
            return -1;
        advance(r, to_end);
    }
}

enum ring_entry ring_next(struct server_ring *r, uint32_t **buf, size_t *cap, uint32_t *len)
{
    uint32_t word, avail;
    int at = head_word(r, &word, &avail);
    if (at <= 0)
        return at < 0 ? RING_CORRUPT : RING_EMPTY;
    if (word == VTEST_RING_SOCKET_MARK)
        return RING_SOCKET;
    uint32_t off = r->head & (r->size - 1);
    uint64_t need = 4 + (((uint64_t)word + 3) & ~(uint64_t)3);
    if (need > r->size - off || need > avail)
        return RING_CORRUPT;
    size_t want = (size_t)word + 4;
    if (want > *cap) {
        uint32_t *p = realloc(*buf, want);
        if (!p)
            return RING_NO_MEMORY;
        *buf = p;
        *cap = want;
    }
    memcpy(*buf, r->data + off + 4, word);
    advance(r, (uint32_t)need);
    *len = word;
    return RING_COMMAND;
}

bool ring_take_socket_mark(struct server_ring *r)
{
    uint32_t word, avail;
    if (head_word(r, &word, &avail) != 1 || word != VTEST_RING_SOCKET_MARK)
        return false;
    advance(r, 4);
    return true;
}

bool ring_has_work(struct server_ring *r)
{
    uint32_t word, avail;
    int at = head_word(r, &word, &avail);
    return at < 0 || (at > 0 && word != VTEST_RING_SOCKET_MARK); /* corrupt: ring_next says so */
}

void ring_set_waiting(struct server_ring *r, bool waiting)
{
    /* seq_cst, against the guest's tail store (src/protocol/vtest_ring.h) */
    atomic_store(&r->ctl->host_waiting, waiting ? 1u : 0u);
}
