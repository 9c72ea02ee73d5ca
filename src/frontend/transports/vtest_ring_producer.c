/* The guest's side of the vtest command ring: see vtest_ring_producer.h and src/protocol/vtest_ring.h. */
#include "vtest_ring_producer.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>

void vtest_ring_producer_init(struct vtest_ring_producer *p, void *blob, size_t blob_bytes)
{
    p->ctl = blob;
    p->data = (uint8_t *)blob + VTEST_RING_CONTROL_BYTES;
    p->size = (uint32_t)(blob_bytes - VTEST_RING_CONTROL_BYTES);
    p->tail = 0;
    atomic_store(&p->ctl->tail, 0);
}

bool vtest_ring_takes(const struct vtest_ring_producer *p, size_t size)
{
    return size < p->size && vtest_ring_entry_bytes((uint32_t)size) <= p->size / 2;
}

/* room for an entry of need bytes at the tail, after a wrap mark where the end is too near;
 * the offset it goes to in *at */
static int reserve(struct vtest_ring_producer *p, uint32_t need, uint32_t *at)
{
    uint32_t head = atomic_load_explicit(&p->ctl->head, memory_order_acquire);
    uint32_t used = p->tail - head;
    if (used > p->size || used % 4)
        return -EPROTO;
    uint32_t off = p->tail & (p->size - 1), to_end = p->size - off;
    uint32_t skip = need > to_end ? to_end : 0;
    if ((uint64_t)used + skip + need > p->size)
        return -ENOSPC;
    if (skip) {
        uint32_t wrap = VTEST_RING_WRAP_MARK;
        memcpy(p->data + off, &wrap, 4);
        p->tail += skip;
        off = 0;
    }
    *at = off;
    return 0;
}

/* seq_cst: the host stores host_waiting before it looks at the tail, the guest stores the
 * tail before it looks at host_waiting, so one of them always sees the other */
static void publish(struct vtest_ring_producer *p, uint32_t need)
{
    p->tail += need;
    atomic_store(&p->ctl->tail, p->tail);
}

int vtest_ring_put(struct vtest_ring_producer *p, const void *cmd, uint32_t size)
{
    uint32_t need = vtest_ring_entry_bytes(size), at;
    int rc = reserve(p, need, &at);
    if (rc)
        return rc;
    memcpy(p->data + at, &size, 4);
    memcpy(p->data + at + 4, cmd, size);
    memset(p->data + at + 4 + size, 0, need - 4 - size);
    publish(p, need);
    return 0;
}

int vtest_ring_put_socket_mark(struct vtest_ring_producer *p)
{
    uint32_t mark = VTEST_RING_SOCKET_MARK, at;
    int rc = reserve(p, 4, &at);
    if (rc)
        return rc;
    memcpy(p->data + at, &mark, 4);
    publish(p, 4);
    return 0;
}

bool vtest_ring_take_kick(struct vtest_ring_producer *p)
{
    if (!atomic_load(&p->ctl->host_waiting))
        return false;
    return atomic_exchange(&p->ctl->host_waiting, 0) != 0;
}

bool vtest_ring_drained(const struct vtest_ring_producer *p)
{
    return atomic_load_explicit(&p->ctl->head, memory_order_acquire) == p->tail;
}
