/* The bytes this host itself wrote into a context's buffers (BUFFER_SET_INLINE), kept so
 * that indices a graph reads from its inputs (llama's token ids, KV-slot lists, written by
 * the guest before each token) can be checked without reading them back from the device: on
 * a GPU each read-back is a synchronizing device-to-host copy, which native llama.cpp does
 * not make. A record is trusted only while nothing else can have changed its bytes: every
 * other way a buffer's bytes change (SET through a shared resource, COPY, CLEAR, MEMSET,
 * FREE, and the nodes of every graph computed) drops the records it overlaps. Memory is
 * bounded per context; the oldest records go first. */
#ifndef APIR_WRITE_SHADOW_H
#define APIR_WRITE_SHADOW_H

#include <stdint.h>

#define WRITE_SHADOW_MAX_RECORDS 256u
#define WRITE_SHADOW_MAX_BYTES ((uint64_t)40 << 20)
#define WRITE_SHADOW_MAX_RECORD ((uint64_t)64 << 10) /* larger writes only invalidate */
/* ... except writes over indices a kept graph reads (write_shadow_keep): llama.cpp's V-cache
 * slot list without flash attention is n_tokens x n_embd_v 64-bit indices, 8 MiB for a
 * 512-token batch of a 2048-wide model */
#define WRITE_SHADOW_MAX_INDEX_RECORD ((uint64_t)16 << 20)

/* [start, end) bytes of a buffer (ggml_backend_buffer_t, compared as a pointer) */
struct write_range {
    const void *buffer;
    uint64_t start, end;
};

struct shadow_record {
    struct write_range r;
    uint8_t *bytes; /* end - start bytes */
};

struct write_shadow {
    struct shadow_record rec[WRITE_SHADOW_MAX_RECORDS]; /* oldest first */
    uint32_t n;
    uint64_t bytes;
};

/* data was written at [offset, offset+size) of buffer: records it (or, when too large or out
 * of memory, only drops what it overlaps). room: how many bytes more than it holds the shadow
 * may take, older records going first (what the guest's buffer limit leaves: backend_ctx_room;
 * UINT64_MAX: only the bounds above) */
void write_shadow_record(struct write_shadow *s, const void *buffer, uint64_t offset, const void *data,
                         uint64_t size, uint64_t room);
/* as write_shadow_record, for a write of at most WRITE_SHADOW_MAX_INDEX_RECORD bytes, reading
 * data once: returns the record's copy, which is what the buffer must receive (data may be
 * shared memory the guest changes meanwhile), or NULL when not recorded */
const uint8_t *write_shadow_keep(struct write_shadow *s, const void *buffer, uint64_t offset, const void *data,
                                 uint64_t size, uint64_t room);
/* drops the oldest records until at most max_bytes are held */
void write_shadow_shrink(struct write_shadow *s, uint64_t max_bytes);
/* bytes [offset, offset+size) of buffer changed in a way not recorded (size UINT64_MAX: to
 * the end of the buffer) */
void write_shadow_invalidate(struct write_shadow *s, const void *buffer, uint64_t offset, uint64_t size);
/* every range of w (sorted by buffer then start, not overlapping: index_guard's writes) */
void write_shadow_invalidate_ranges(struct write_shadow *s, const struct write_range *w, uint32_t n);
/* the recorded bytes of [start, end) of buffer, when one record covers them; else NULL */
const uint8_t *write_shadow_find(const struct write_shadow *s, const void *buffer, uint64_t start, uint64_t end);
void write_shadow_free(struct write_shadow *s);

#endif
