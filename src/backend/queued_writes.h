/* Guest writes (BUFFER_SET_INLINE: llama.cpp's per-token inputs; BUFFER_SET of at most
 * APIR_MAX_QUEUED_SET: a prompt's embeddings and mask) queued on the backend
 * stream that computes, as ggml's scheduler queues a graph's inputs natively, instead of one
 * synchronous copy each (on CUDA a copy and a stream synchronization, ~8 us per write).
 *
 * The bytes are kept in a staging buffer of the device's host buffer type (pinned memory on
 * CUDA, so the copy really runs asynchronously) until the stream has synchronized. Everything
 * that could observe the buffers in another order first settles the queue (synchronizes the
 * stream): every command but the two writes and a compute on that same stream, which runs
 * after the writes in stream order; a write that cannot queue settles before it copies.
 * Backends without set_tensor_async (the CPU backend) keep the synchronous copy. */
#ifndef APIR_QUEUED_WRITES_H
#define APIR_QUEUED_WRITES_H

#include "ggml-backend.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct backend_stream;

struct queued_writes {
    struct backend_stream *stream; /* writes queued on it and not known done, or NULL */
    struct backend_stream *target; /* the stream that computed last: where writes go */
    ggml_backend_buffer_t stage;   /* host buffer type of target's device; NULL: none yet */
    uint8_t *stage_base;
    size_t len;
};

/* Queues the write on q->target when its backend can, and returns true; false: the caller
 * writes synchronously. The queue settles first when the write does not fit in the stage.
 * room: the bytes a stage not made yet may take (the guest's buffer limit: backend_ctx_room) */
bool queued_writes_try(struct queued_writes *q, ggml_backend_buffer_t buf, uint64_t offset, const void *data,
                       size_t size, uint64_t room);
/* Reads [offset, offset + size) of buf into dst through the stage (pinned memory: the device
 * copies into it at full speed, the host then copies out), after settling the queue; false:
 * no stage or a buffer the target stream cannot read asynchronously (the caller reads). */
bool queued_writes_read(struct queued_writes *q, ggml_backend_buffer_t buf, uint64_t offset, void *dst, size_t size);
/* Queues a read of [offset, offset + size) of buf into the stage on s, behind the compute s is
 * running, and returns where the bytes are once s has synchronized (valid until the next queued
 * write or read); NULL: not possible here (no stage, s is not the target, no room, a buffer s
 * cannot read asynchronously): the caller reads after the synchronization instead. */
const uint8_t *queued_writes_read_behind(struct queued_writes *q, struct backend_stream *s, ggml_backend_buffer_t buf,
                                         uint64_t offset, size_t size);
/* the bytes the stage holds (0: none made) */
size_t queued_writes_stage_bytes(const struct queued_writes *q);
/* settles and frees the stage (the next queued write makes it again) */
void queued_writes_drop_stage(struct queued_writes *q);
/* waits until every queued write is done (no-op when none) */
void queued_writes_settle(struct queued_writes *q);
/* a compute on s is about to run: queued writes on another stream are settled first */
void queued_writes_before_compute(struct queued_writes *q, struct backend_stream *s);
/* a compute on s ended (ran: ggml_backend_graph_compute was called, which waits for the
 * stream): its queue is settled; s becomes the target of later writes */
void queued_writes_after_compute(struct queued_writes *q, struct backend_stream *s, bool ran);
/* s is going away: settle, forget it */
void queued_writes_forget(struct queued_writes *q, struct backend_stream *s);
/* settles and frees the stage */
void queued_writes_fini(struct queued_writes *q);

#endif
