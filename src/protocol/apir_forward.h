/* The FORWARD protocol: commands the guest frontend sends to the backend library.
 * The payload of a FORWARD command is: u32 command index, then the arguments below, all
 * encoded with apir_codec (little-endian, no padding). docs/protocol.md is the prose version
 * of this file; keep both true.
 *
 * Types: u8/u32/u64/i64 fixed-size integers; str = u32 length + bytes (no NUL);
 * handle = u32 opaque per-context handle (0 never names an object);
 * tensor = struct apir_wire_tensor encoded by apir_wire_tensor_encode (apir_wire_tensor.h).
 * The commands themselves, with their arguments, are listed in apir_forward_table.h.
 */
#ifndef APIR_FORWARD_H
#define APIR_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#define APIR_FORWARD_PROTOCOL_VERSION 3

/* A message size (apir_forward_table.h): exactly `bytes`, or `bytes` then a variable part. */
struct apir_forward_size {
    uint32_t bytes;
    bool variable;
};
#define APIR_FWD_FIXED(n) {(n), false}
#define APIR_FWD_VARIABLE(n) {(n), true}
#define APIR_FWD_WAITS true
#define APIR_FWD_NO_WAIT false

/* The commands, numbered as apir_forward_table.h says (wire values: never renumber). */
enum apir_forward_cmd {
#define APIR_FORWARD_CMD(NAME, stem, index, request, reply, waits) APIR_FWD_##NAME = index,
#include "apir_forward_table.h"
    APIR_FWD_COUNT
};

/* What both sides know of a command (apir_forward_table.h). */
struct apir_forward_cmd_info {
    const char *name;                /* "GET_INFO" */
    struct apir_forward_size request; /* after the u32 command index */
    struct apir_forward_size reply;
    bool waits;                      /* reports a deferred error instead of running */
};

/* the command's facts; NULL for an index >= APIR_FWD_COUNT (hostile input on the host) */
const struct apir_forward_cmd_info *apir_forward_cmd(uint32_t cmd);
/* its name for logs, "?" if unknown */
const char *apir_forward_cmd_name(uint32_t cmd);

/* Graph encoding (GRAPH_COMPUTE):
 *   u32 n_tensors (1..APIR_MAX_GRAPH_TENSORS), n_tensors tensors,
 *   u32 n_nodes (1..n_tensors), n_nodes times (u32 tensor index, u32 use count).
 * The use count is ggml's (ggml_node_get_use_count) in the graph the guest's scheduler split
 * this one from; the host's backend fuses on it (protocol 3).
 * A tensor's src/view_src fields name earlier tensors only (index + 1, 0 = none), so the
 * host decodes in one forward pass with no recursion. One exception, because ggml builds it:
 * a src may name the tensor itself (ggml_cast/ggml_cpy set the result's src[1] to the
 * result); a guest walking sources must skip that self-reference. */
#define APIR_MAX_GRAPH_TENSORS (1u << 20)
#define APIR_MAX_OP_TENSORS 11 /* GGML_MAX_SRC sources + the op */

/* Decoded graphs the host keeps per backend for GRAPH_RECOMPUTE (the slots of GRAPH_COMPUTE's
 * reply): a few graphs that alternate (a server's prompt and generation steps) all stay */
#define APIR_GRAPH_SLOTS 4

/* Most output ranges one GRAPH_RECOMPUTE copies back (llama.cpp reads one or two) */
#define APIR_MAX_RECOMPUTE_OUTPUTS 16

/* Largest BUFFER_SET_INLINE payload; larger writes use BUFFER_SET through a data page. */
#define APIR_MAX_INLINE_SET (64u * 1024u)
/* Largest BUFFER_SET the guest sends without a reply (from a slice of its data page that it
 * leaves alone until the next reply); the host queues writes up to this size on the stream
 * that computes, like inline ones (src/backend/queued_writes.c). */
#define APIR_MAX_QUEUED_SET (16u << 20)

/* Fire-and-forget: a FORWARD sent with reply_res_id 0 runs like any other (commands of one
 * connection run in order), but nobody hears its status. If it fails, the host keeps the
 * first such status as the context's deferred error; the next GRAPH_COMPUTE, GRAPH_RECOMPUTE,
 * BACKEND_SYNCHRONIZE or BUFFER_GET of that context returns it (and clears it) without
 * running, so the guest learns of the failure at its next waiting point. */

/* Status codes of the backend library (FORWARD reply = APIR_FORWARD_BASE_INDEX + status) */
enum apir_backend_status {
    APIR_BACKEND_OK = 0,
    APIR_BACKEND_ERR_NOT_INITIALIZED = 1, /* LOADLIBRARY did not succeed in this context */
    APIR_BACKEND_ERR_UNKNOWN_CMD = 2,     /* command index out of range */
    APIR_BACKEND_ERR_DECODE = 3,          /* malformed arguments (short, trailing, bad value) */
    APIR_BACKEND_ERR_HANDLE = 4,          /* stale, foreign or wrong-type handle */
    APIR_BACKEND_ERR_BOUNDS = 5,          /* offset/size outside a buffer or shared resource */
    APIR_BACKEND_ERR_INVALID_TENSOR = 6,  /* bad type/op/shape/strides/extent */
    APIR_BACKEND_ERR_OUT_OF_MEMORY = 7,
    APIR_BACKEND_ERR_REPLY_TOO_SMALL = 8, /* reply page cannot hold the answer */
    APIR_BACKEND_ERR_BACKEND = 9,         /* the ggml backend itself failed */
    APIR_BACKEND_ERR_NO_GRAPH = 10,       /* RECOMPUTE with no cached graph */
    APIR_BACKEND_ERR_UNSUPPORTED = 11,    /* op not supported by the host device */
};

#endif
