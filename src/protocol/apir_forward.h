/* The FORWARD protocol: commands the guest frontend sends to the backend library.
 * The payload of a FORWARD command is: u32 command index, then the arguments below, all
 * encoded with apir_codec (little-endian, no padding). docs/protocol.md is the prose version
 * of this file; keep both true.
 *
 * Types: u8/u32/u64/i64 fixed-size integers; str = u32 length + bytes (no NUL);
 * handle = u32 opaque per-context handle (0 never names an object);
 * tensor = struct apir_wire_tensor encoded by apir_wire_tensor_encode (apir_wire_tensor.h).
 */
#ifndef APIR_FORWARD_H
#define APIR_FORWARD_H

#include <stdint.h>

#define APIR_FORWARD_PROTOCOL_VERSION 2

enum apir_forward_cmd {
    /* -> u32 version (APIR_FORWARD_PROTOCOL_VERSION), u32 device count */
    APIR_CMD_GET_INFO = 0,
    /* u32 device index -> str name, str description, u32 type (enum ggml_backend_dev_type),
     * u8 async, u8 host_buffer, u8 buffer_from_host_ptr, u8 events,
     * handle buffer type, handle host buffer type (0 if none) */
    APIR_CMD_DEVICE_GET_INFO = 1,
    /* u32 device index -> u64 free, u64 total */
    APIR_CMD_DEVICE_GET_MEMORY = 2,
    /* u32 device index, u32 n (1..APIR_MAX_OP_TENSORS), n tensors (the op's sources first,
     * the op last; src fields index into this list) -> u8 supported */
    APIR_CMD_DEVICE_SUPPORTS_OP = 3,
    /* handle buft -> str name, u64 alignment, u64 max size, u8 is_host */
    APIR_CMD_BUFT_GET_INFO = 4,
    /* handle buft, u32 n, n tensors (as in SUPPORTS_OP) -> u64 bytes needed for the last one */
    APIR_CMD_BUFT_GET_ALLOC_SIZE = 5,
    /* handle buft, u64 size -> handle buffer, u64 size */
    APIR_CMD_BUFT_ALLOC_BUFFER = 6,
    /* handle buffer -> nothing */
    APIR_CMD_BUFFER_FREE = 7,
    /* handle buffer, u8 value -> nothing */
    APIR_CMD_BUFFER_CLEAR = 8,
    /* handle buffer, u64 offset, u64 size, u8 value -> nothing */
    APIR_CMD_BUFFER_MEMSET = 9,
    /* handle buffer, u64 offset, u64 size, u32 shmem res_id, u64 shmem offset -> nothing
     * copies size bytes from the shared resource into the buffer at offset */
    APIR_CMD_BUFFER_SET = 10,
    /* same arguments as SET, copies from the buffer into the shared resource */
    APIR_CMD_BUFFER_GET = 11,
    /* handle src buffer, u64 src offset, handle dst buffer, u64 dst offset, u64 size -> u8 done */
    APIR_CMD_BUFFER_COPY = 12,
    /* u32 device index -> handle backend */
    APIR_CMD_BACKEND_INIT = 13,
    /* handle backend -> nothing */
    APIR_CMD_BACKEND_FREE = 14,
    /* handle backend, graph (see below) -> u32 enum ggml_status */
    APIR_CMD_GRAPH_COMPUTE = 15,
    /* handle backend -> u32 enum ggml_status; recomputes the graph last sent to this backend */
    APIR_CMD_GRAPH_RECOMPUTE = 16,
    /* handle backend -> u32 enum ggml_status of the work since the last synchronize */
    APIR_CMD_BACKEND_SYNCHRONIZE = 17,
    /* handle buffer, u64 offset, u32 size (<= APIR_MAX_INLINE_SET), size bytes of data -> nothing
     * copies the inline bytes into the buffer at offset (no shared resource). Meant to be sent
     * without a reply (reply_res_id 0, "fire-and-forget"), see below. */
    APIR_CMD_BUFFER_SET_INLINE = 18,
    APIR_CMD_COUNT
};

/* Graph encoding (GRAPH_COMPUTE):
 *   u32 n_tensors (1..APIR_MAX_GRAPH_TENSORS), n_tensors tensors,
 *   u32 n_nodes (1..n_tensors), n_nodes u32 tensor indices.
 * A tensor's src/view_src fields name earlier tensors only (index + 1, 0 = none), so the
 * host decodes in one forward pass with no recursion. One exception, because ggml builds it:
 * a src may name the tensor itself (ggml_cast/ggml_cpy set the result's src[1] to the
 * result); a guest walking sources must skip that self-reference. */
#define APIR_MAX_GRAPH_TENSORS (1u << 20)
#define APIR_MAX_OP_TENSORS 11 /* GGML_MAX_SRC sources + the op */

/* Largest BUFFER_SET_INLINE payload; larger writes use BUFFER_SET through a data page. */
#define APIR_MAX_INLINE_SET (64u * 1024u)

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
