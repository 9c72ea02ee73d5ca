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

uint32_t cmd_get_info(struct cmd_call *c);
uint32_t cmd_device_get_info(struct cmd_call *c);
uint32_t cmd_device_get_memory(struct cmd_call *c);
uint32_t cmd_device_supports_op(struct cmd_call *c);
uint32_t cmd_buft_get_info(struct cmd_call *c);
uint32_t cmd_buft_get_alloc_size(struct cmd_call *c);

uint32_t cmd_buft_alloc_buffer(struct cmd_call *c);
uint32_t cmd_buffer_free(struct cmd_call *c);
uint32_t cmd_buffer_clear(struct cmd_call *c);
uint32_t cmd_buffer_memset(struct cmd_call *c);
uint32_t cmd_buffer_set(struct cmd_call *c);
uint32_t cmd_buffer_get(struct cmd_call *c);
uint32_t cmd_buffer_copy(struct cmd_call *c);
uint32_t cmd_buffer_set_inline(struct cmd_call *c);

uint32_t cmd_backend_init(struct cmd_call *c);
uint32_t cmd_backend_free(struct cmd_call *c);
uint32_t cmd_graph_compute(struct cmd_call *c);
uint32_t cmd_graph_recompute(struct cmd_call *c);
uint32_t cmd_backend_synchronize(struct cmd_call *c);

#endif
