/* FORWARD command handlers. Each decodes its whole argument list, checks that the message
 * was consumed exactly, validates, acts, and encodes its reply. */
#ifndef APIR_COMMANDS_H
#define APIR_COMMANDS_H

#include "apir_codec.h"
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

/* one handler per FORWARD command, cmd_<stem> of apir_forward_table.h */
#define APIR_FORWARD_CMD(NAME, stem, index, request, reply, waits) uint32_t cmd_##stem(struct cmd_call *c);
#include "apir_forward_table.h"

#endif
