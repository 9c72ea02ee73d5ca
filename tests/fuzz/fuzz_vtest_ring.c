/* libFuzzer: the worker's reader of the vtest command ring (src/server/server_ring.c) against
 * any bytes a guest can leave in the ring. Input: a count k (first byte, mod 16), the reader's
 * head when the run starts (a u32, whole words: a ring in the middle of its life), k u32 tails the
 * guest publishes one after the other (top bit clear: that many bytes past the reader's head,
 * modulo 8 KiB, so that most are plausible; set: the raw value), then the bytes of the data area
 * of a 4 KiB ring from the head on, wrapping around (allocated to the byte, so that ASan sees
 * any read past it). The reader drains the ring
 * after each tail. It may refuse the ring (RING_CORRUPT), but never read or copy outside the
 * data area, and a command it hands out always lies inside what was published. */
#include "server_ring.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DATA 4096u

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
    if (n == 0)
        return 0;
    size_t k = in[0] % 16, at = 5 + 4 * k;
    if (n < at)
        return 0;
    uint8_t *blob = malloc(VTEST_RING_CONTROL_BYTES + DATA);
    memset(blob, 0, VTEST_RING_CONTROL_BYTES + DATA);
    struct server_ring r;
    if (!ring_attach(&r, 1, blob, VTEST_RING_CONTROL_BYTES + DATA))
        abort();
    struct vtest_ring_control *ctl = (struct vtest_ring_control *)blob;
    memcpy(&r.head, in + 1, 4);
    r.head &= ~3u;
    for (size_t i = 0; i < n - at && i < DATA; i++)
        blob[VTEST_RING_CONTROL_BYTES + ((r.head + i) & (DATA - 1))] = in[at + i];
    uint32_t *buf = NULL;
    size_t cap = 0;
    for (size_t t = 0; t < k; t++) {
        uint32_t raw;
        memcpy(&raw, in + 5 + 4 * t, 4);
        atomic_store(&ctl->tail, raw & 0x80000000u ? raw : r.head + (raw & 0x1fffu));
        for (int i = 0; i < 4096; i++) {
            uint32_t before = r.head, len = 0;
            (void)ring_has_work(&r);
            enum ring_entry e = ring_next(&r, &buf, &cap, &len);
            if (e == RING_COMMAND) {
                if (r.head - before < 4 + (uint64_t)len || r.head - before > DATA)
                    abort(); /* a command outside what was published */
                continue;
            }
            if (e == RING_SOCKET && ring_take_socket_mark(&r))
                continue;
            break;
        }
    }
    free(buf);
    free(blob);
    return 0;
}
