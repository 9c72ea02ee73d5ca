/* APIR command layer: the contract between the guest frontend, the APIR component
 * (virglrenderer side) and the backend library. These values are fixed by the APIR contract (docs/protocol.md);
 * do not renumber them. */
#ifndef APIR_PROTOCOL_H
#define APIR_PROTOCOL_H

#include <stdbool.h>
#include <stdint.h>

#define APIR_PROTOCOL_MAJOR 1
#define APIR_PROTOCOL_MINOR 0
#define APIR_HANDSHAKE_MAGIC 0xab1e

/* virtio-gpu capability sets */
#define APIR_CAPSET_ID_VENUS 4
#define APIR_CAPSET_ID_APIR 10
/* In a Venus context every APIR command type is offset by Venus' command count, so that a
 * virglrenderer started with VIRGL_ROUTE_VENUS_TO_APIR can tell them apart. */
#define APIR_VENUS_CMD_OFFSET 331

enum apir_command_type {
    APIR_COMMAND_TYPE_HANDSHAKE = 0,
    APIR_COMMAND_TYPE_LOADLIBRARY = 1,
    APIR_COMMAND_TYPE_FORWARD = 2,
    APIR_COMMAND_TYPE_COUNT = 3,
};

/* Every command buffer starts with this header (little-endian, packed on the wire). */
struct apir_command_header {
    int32_t cmd_type;
    int32_t cmd_flags;
    uint32_t reply_res_id; /* 0: the guest wants no reply */
};
#define APIR_COMMAND_HEADER_SIZE 12

/* cmd_flags */
#define APIR_CMD_FLAG_NONE 0
/* Bits 0-1: how many zero bytes follow this command's payload. A carrier that counts whole
 * 32-bit words (virtio-gpu SUBMIT_3D: QEMU hands virglrenderer size / 4 words) needs the
 * buffer padded; the pad must not reach FORWARD, whose payload is the rest of the buffer. */
#define APIR_CMD_FLAG_PAD_MASK 3

/* LOADLIBRARY return codes */
enum apir_load_library_code {
    APIR_LOAD_LIBRARY_SUCCESS = 0,
    APIR_LOAD_LIBRARY_HYPERCALL_INITIALIZATION_ERROR = 1,
    APIR_LOAD_LIBRARY_ALREADY_LOADED = 2,
    APIR_LOAD_LIBRARY_ENV_VAR_MISSING = 3,
    APIR_LOAD_LIBRARY_CANNOT_OPEN = 4,
    APIR_LOAD_LIBRARY_SYMBOL_MISSING = 5,
    APIR_LOAD_LIBRARY_INIT_BASE_INDEX = 6, /* 6 + apir_backend_initialize()'s own code */
};

/* FORWARD return codes. A command the backend library ran returns
 * APIR_FORWARD_BASE_INDEX + its apir_backend_status (so 4 is success). */
enum apir_forward_code {
    APIR_FORWARD_SUCCESS = 0,
    APIR_FORWARD_NO_DISPATCH_FCT = 1,
    APIR_FORWARD_TIMEOUT = 2,
    APIR_FORWARD_FAILED_TO_SYNC_STREAMS = 3,
    APIR_FORWARD_BASE_INDEX = 4,
};

/* Codes of apir_backend_initialize() (reported to the guest as 6 + code). */
enum apir_backend_init_code {
    APIR_BACKEND_INIT_SUCCESS = 0,
    APIR_BACKEND_INIT_GGML_PATH_MISSING = 1,  /* ggml.library.path not set */
    APIR_BACKEND_INIT_GGML_CANNOT_OPEN = 2,   /* dlopen of ggml.library.path failed */
    APIR_BACKEND_INIT_REG_SYMBOL_MISSING = 3, /* default ggml_backend_init missing, reg unset */
    APIR_BACKEND_INIT_REG_NAMED_MISSING = 4,  /* the symbol named by ggml.library.reg missing */
    APIR_BACKEND_INIT_REG_FAILED = 5,         /* registration function returned NULL */
    APIR_BACKEND_INIT_API_VERSION = 6,        /* ggml backend API version mismatch */
    APIR_BACKEND_INIT_NO_DEVICE = 7,          /* the GGML library exposes no device */
    APIR_BACKEND_INIT_ALREADY = 8,            /* this context is already initialized */
    APIR_BACKEND_INIT_OUT_OF_MEMORY = 9,
};

/* Reply page layout: the host writes the payload, then its length, then (status + 1) into
 * the first word with release ordering; the guest waits until that word is non-zero. */
struct apir_reply_header {
    uint32_t status_plus_one;
    uint32_t payload_len;
};
#define APIR_REPLY_HEADER_SIZE 8

/* Configuration keys (docs/configuration.md) */
#define APIR_KEY_LOAD_LIBRARY_PATH "apir.load_library.path"
#define APIR_KEY_GGML_LIBRARY_PATH "ggml.library.path"
#define APIR_KEY_GGML_LIBRARY_REG "ggml.library.reg"
#define APIR_ENV_BACKEND_LIBRARY "VIRGL_APIR_BACKEND_LIBRARY"
#define APIR_ENV_GGML_LIBRARY_PATH "APIR_LLAMA_CPP_GGML_LIBRARY_PATH"
#define APIR_ENV_GGML_LIBRARY_REG "APIR_LLAMA_CPP_GGML_LIBRARY_REG"
#define APIR_ENV_ROUTE_VENUS "VIRGL_ROUTE_VENUS_TO_APIR"
#define APIR_ENV_COMPONENT_LOG "VIRGL_APIR_LOG_TO_FILE"
#define APIR_ENV_BACKEND_LOG "APIR_LLAMA_CPP_LOG_TO_FILE"
#define APIR_ENV_BACKEND_STATS "VIRGL_APIR_STATS" /* backend_stats.h */
#define APIR_DEFAULT_REG_SYMBOL "ggml_backend_init"
/* Per-guest limits the backend library enforces (read through get_config, always set by the
 * component: a decimal number, 0 = no limit). The other limits are the component's own
 * (src/component/apir_component.h, docs/configuration.md). */
#define APIR_KEY_LIMIT_BUFFER_BYTES "apir.limit.buffer_bytes"
#define APIR_KEY_LIMIT_HANDLES "apir.limit.handles"
#define APIR_DEFAULT_SOCKET_PATH "/tmp/.ggml_virtgpu"

/* Callbacks the component hands to the backend library (same shape as virglrenderer's). */
struct virgl_apir_callbacks {
    const char *(*get_config)(uint32_t virgl_ctx_id, const char *key);
    /* returns the host mapping of an attached resource and its size, NULL if unknown */
    void *(*get_shmem_ptr)(uint32_t virgl_ctx_id, uint32_t res_id);
    /* size of an attached resource, 0 if unknown (our extension: bounds-checks need it) */
    uint64_t (*get_shmem_size)(uint32_t virgl_ctx_id, uint32_t res_id);
};

/* Entry points of the backend library, resolved by the component with dlsym. */
#define APIR_BACKEND_SYM_INITIALIZE "apir_backend_initialize"
#define APIR_BACKEND_SYM_DISPATCHER "apir_backend_dispatcher"
#define APIR_BACKEND_SYM_DEINIT "apir_backend_deinit"
/* optional: the guest's resource res_id is about to be unmapped (the backend lets go of it) */
#define APIR_BACKEND_SYM_RESOURCE_DETACH "apir_backend_resource_detach"
/* optional: true when every device of the context computes off the host's CPUs (a GPU), so
 * that the caller may poll for the guest's next command instead of sleeping */
#define APIR_BACKEND_SYM_COMPUTES_OFF_CPU "apir_backend_computes_off_cpu"

typedef uint32_t (*apir_backend_initialize_fn)(uint32_t virgl_ctx_id, struct virgl_apir_callbacks *cbs);
typedef bool (*apir_backend_computes_off_cpu_fn)(uint32_t virgl_ctx_id);
/* Runs FORWARD command `cmd_index` whose arguments are [dec_cur, dec_end) (a private copy);
 * writes its reply into [enc_cur, enc_end) and stores the end of what it wrote in
 * *enc_cur_after. Returns an apir_backend_status. */
typedef uint32_t (*apir_backend_dispatcher_fn)(uint32_t virgl_ctx_id, struct virgl_apir_callbacks *cbs,
                                               uint32_t cmd_index, char *dec_cur, const char *dec_end,
                                               char *enc_cur, const char *enc_end, char **enc_cur_after);
typedef void (*apir_backend_deinit_fn)(uint32_t virgl_ctx_id);
typedef void (*apir_backend_resource_detach_fn)(uint32_t virgl_ctx_id, uint32_t res_id);

#endif
