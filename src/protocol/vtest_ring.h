/* The vtest command ring: an APIR extension of the vtest transport (same host only). The guest
 * writes its APIR command buffers into a shared blob and the worker reads them from there, so
 * a command costs no socket write when the worker is awake (it polls) and a one-word "kick"
 * message when it sleeps. Shared by the guest's producer (src/frontend/transports/vtest_ring.c)
 * and the worker's consumer (src/server/server_ring.c); docs/protocol.md, "The vtest command
 * ring".
 *
 * Layout of the blob: a 4 KiB control page, then the data area (a power of two of bytes).
 * Each entry starts at a 4-byte boundary with one u32 word:
 *   - n < VTEST_RING_WRAP_MARK: an APIR command buffer of n bytes follows, padded to words,
 *     contiguous (never split at the end of the data area);
 *   - VTEST_RING_WRAP_MARK: the rest of the data area is unused, the next entry is at 0;
 *   - VTEST_RING_SOCKET_MARK: the next APIR command buffer comes over the socket (a
 *     SUBMIT_CMD2 too large for the ring); it runs here, in ring order.
 * head and tail count bytes from the start, wrapping at 2^32. */
#ifndef APIR_VTEST_RING_H
#define APIR_VTEST_RING_H

#include <stdint.h>

/* vtest message (APIR extension): u32 res_id of a blob laid out as above -> u32 1 attached,
 * 0 refused (the guest keeps using the socket). Once attached, every SUBMIT_CMD2 with
 * batches must have its socket mark at the ring's head, after the earlier entries. */
#define VTEST_CMD_APIR_RING_ATTACH 64
#define VTEST_RING_ATTACH_WORDS 1
/* apir-server's GET_CAPSET answer is {valid, APIR major, APIR minor, features}; this feature
 * bit says it serves VTEST_CMD_APIR_RING_ATTACH */
#define VTEST_CAPSET_FEATURES_WORD 3
#define VTEST_FEATURE_RING (1u << 0)

#define VTEST_RING_CONTROL_BYTES 4096u
#define VTEST_RING_MIN_DATA_BYTES 4096u
#define VTEST_RING_MAX_DATA_BYTES (16u << 20)

#define VTEST_RING_WRAP_MARK 0xffffffffu
#define VTEST_RING_SOCKET_MARK 0xfffffffeu

/* the control page; each side writes its own cache line */
struct vtest_ring_control {
    _Alignas(64) _Atomic uint32_t tail; /* guest: bytes written */
    _Alignas(64) _Atomic uint32_t head; /* host: bytes consumed (the host never reads it back) */
    /* host: 1 while it is about to block on the socket; the guest that finds 1 (and swaps in
     * 0) sends a kick, an empty SUBMIT_CMD2 */
    _Atomic uint32_t host_waiting;
};

/* the bytes an entry of a command of size bytes takes, its word included */
static inline uint32_t vtest_ring_entry_bytes(uint32_t size) { return 4u + ((size + 3u) & ~3u); }

#endif
