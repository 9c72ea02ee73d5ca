/* FORWARD command handlers. Each decodes its whole argument list, checks that the message
 * was consumed exactly, validates, acts, and encodes its reply. */
#ifndef APIR_COMMANDS_H
#define APIR_COMMANDS_H

#include "apir_codec.h"
#include "apir_forward.h"
#include "apir_protocol.h"
#include "backend_context.h"

struct cmd_call {
    struct backend_ctx *ctx;
    struct virgl_apir_callbacks *cbs;
    struct apir_decoder dec;
    struct apir_encoder enc;
};

typedef uint32_t (*cmd_handler)(struct cmd_call *c);

/* every message ends after its arguments */
#define ARGS_DONE(c)                           \
    do {                                       \
        if (!apir_decoder_done(&(c)->dec))     \
            return APIR_BACKEND_ERR_DECODE;    \
    } while (0)

/* GRAPH_RECOMPUTE's output reads (cmd_buffer.c): decoded and checked (buffers, ranges, the
 * shared resource) before the compute, copied into the shared resource after it */
struct cmd_outputs {
    uint32_t n;
    char *shm;
    struct {
        ggml_backend_buffer_t buf;
        uint64_t offset, size, at; /* at: where in the shared resource */
    } r[APIR_MAX_RECOMPUTE_OUTPUTS];
};
uint32_t cmd_outputs_decode(struct cmd_call *c, struct cmd_outputs *o);
/* copies the outputs into the shared resource, from staged[i] where the compute already read
 * output i into the stage (queued_writes_read_behind), else from its buffer;
 * APIR_BACKEND_ERR_OUT_OF_MEMORY when a bounce buffer could not be had */
uint32_t cmd_outputs_copy(struct backend_ctx *ctx, const struct cmd_outputs *o, const uint8_t *const *staged);

/* one handler per FORWARD command, cmd_<stem> of apir_forward_table.h */
#define APIR_FORWARD_CMD(NAME, stem, index, request, reply, waits) uint32_t cmd_##stem(struct cmd_call *c);
#include "apir_forward_table.h"

#endif
