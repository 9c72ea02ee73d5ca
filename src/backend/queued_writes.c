#include "queued_writes.h"

#include "apir_forward.h"
#include "backend_context.h"
#include "ggml-backend-impl.h"
#include "tensor_validate.h"

#include <string.h>

/* the largest write the guest sends without a reply: a prompt's input embeddings (4 MiB for a
 * 512-token batch of a 2048-wide model) and its mask fit together */
#define STAGE_BYTES APIR_MAX_QUEUED_SET
#define STAGE_ALIGN 64u
#define PIECE_BYTES (1u << 20)

/* Can s copy from (read) or to buf asynchronously? Only with the backend's async entry point,
 * and only for its own buffer type (ggml-cuda asserts on another). */
static bool stream_reaches(const struct backend_stream *s, bool read, ggml_backend_buffer_t buf)
{
    if (!s || !(read ? s->backend->iface.get_tensor_async != NULL : s->backend->iface.set_tensor_async != NULL))
        return false;
    return ggml_backend_buffer_get_type(buf) == ggml_backend_get_default_buffer_type(s->backend);
}

void queued_writes_settle(struct queued_writes *q)
{
    if (q->stream)
        ggml_backend_synchronize(q->stream->backend);
    q->stream = NULL;
    q->len = 0;
}

/* the stage lives as long as the target's device: made at the first queued write, when the
 * guest's buffer limit leaves room for it */
static bool ensure_stage(struct queued_writes *q, uint64_t room)
{
    if (q->stage)
        return true;
    if (room < STAGE_BYTES)
        return false;
    ggml_backend_dev_t dev = ggml_backend_get_device(q->target->backend);
    ggml_backend_buffer_type_t host = dev ? ggml_backend_dev_host_buffer_type(dev) : NULL;
    if (!host)
        return false; /* no pinned memory: an asynchronous copy from pageable memory gains little */
    q->stage = ggml_backend_buft_alloc_buffer(host, STAGE_BYTES);
    if (!q->stage)
        return false;
    q->stage_base = ggml_backend_buffer_get_base(q->stage);
    return true;
}

bool queued_writes_try(struct queued_writes *q, ggml_backend_buffer_t buf, uint64_t offset, const void *data,
                       size_t size, uint64_t room)
{
    struct backend_stream *s = q->target;
    if (!stream_reaches(s, false, buf) || size > STAGE_BYTES ||
        !ensure_stage(q, room))
        return false;
    if (q->stream && q->stream != s)
        queued_writes_settle(q);
    if (q->len + size > STAGE_BYTES)
        queued_writes_settle(q); /* the stage's bytes may still be in flight: wait, then reuse */
    /* in pieces, so the device copies one while the next is staged */
    struct ggml_tensor t;
    tensor_byte_view(&t, buf, offset, size);
    for (size_t at = 0; at < size; at += PIECE_BYTES) {
        size_t n = size - at < PIECE_BYTES ? size - at : PIECE_BYTES;
        uint8_t *src = q->stage_base + q->len + at;
        memcpy(src, (const uint8_t *)data + at, n);
        ggml_backend_tensor_set_async(s->backend, &t, src, at, n);
    }
    q->stream = s;
    q->len += (size + STAGE_ALIGN - 1) & ~(size_t)(STAGE_ALIGN - 1);
    return true;
}

bool queued_writes_read(struct queued_writes *q, ggml_backend_buffer_t buf, uint64_t offset, void *dst, size_t size)
{
    struct backend_stream *s = q->target;
    if (!q->stage || !stream_reaches(s, true, buf))
        return false;
    queued_writes_settle(q); /* the stage is free again */
    for (size_t at = 0; at < size; at += STAGE_BYTES) {
        size_t n = size - at < STAGE_BYTES ? size - at : STAGE_BYTES;
        struct ggml_tensor t;
        tensor_byte_view(&t, buf, offset + at, n);
        ggml_backend_tensor_get_async(s->backend, &t, q->stage_base, 0, n);
        ggml_backend_synchronize(s->backend);
        memcpy((uint8_t *)dst + at, q->stage_base, n);
    }
    return true;
}

const uint8_t *queued_writes_read_behind(struct queued_writes *q, struct backend_stream *s, ggml_backend_buffer_t buf,
                                         uint64_t offset, size_t size)
{
    if (q->target != s || !q->stage || (q->stream && q->stream != s) ||
        !stream_reaches(s, true, buf) || size > STAGE_BYTES - q->len)
        return NULL;
    uint8_t *dst = q->stage_base + q->len;
    struct ggml_tensor t;
    tensor_byte_view(&t, buf, offset, size);
    ggml_backend_tensor_get_async(s->backend, &t, dst, 0, size);
    q->stream = s;
    q->len += (size + STAGE_ALIGN - 1) & ~(size_t)(STAGE_ALIGN - 1);
    return dst;
}

size_t queued_writes_stage_bytes(const struct queued_writes *q) { return q->stage ? STAGE_BYTES : 0; }

void queued_writes_drop_stage(struct queued_writes *q)
{
    queued_writes_settle(q);
    if (q->stage)
        ggml_backend_buffer_free(q->stage);
    q->stage = NULL;
    q->stage_base = NULL;
}

void queued_writes_before_compute(struct queued_writes *q, struct backend_stream *s)
{
    if (q->stream && q->stream != s)
        queued_writes_settle(q);
}

void queued_writes_after_compute(struct queued_writes *q, struct backend_stream *s, bool ran)
{
    /* a compute that ran synchronized s (ggml_backend_graph_compute waits for its stream), so
     * its queue is done; one stopped before computing (an index refused) leaves it in flight */
    if (q->stream == s) {
        if (ran) {
            q->stream = NULL;
            q->len = 0;
        } else {
            queued_writes_settle(q);
        }
    }
    if (q->target != s) {
        queued_writes_settle(q);
        /* the stage belongs to the old target's device */
        if (!q->target || ggml_backend_get_device(q->target->backend) != ggml_backend_get_device(s->backend))
            queued_writes_drop_stage(q);
        q->target = s;
    }
}

void queued_writes_forget(struct queued_writes *q, struct backend_stream *s)
{
    if (q->stream == s || q->target == s)
        queued_writes_settle(q);
    if (q->target == s) {
        queued_writes_drop_stage(q);
        q->target = NULL;
    }
}

void queued_writes_fini(struct queued_writes *q)
{
    queued_writes_drop_stage(q);
    memset(q, 0, sizeof *q);
}
