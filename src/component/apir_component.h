/* The APIR component: the host half that virglrenderer hosts (src/apir/ there). One context
 * per guest context; it owns the configuration table and the attached resources, loads the
 * backend library, and runs command buffers. Hosted by apir-server (vtest) and by the
 * virtio-gpu DRM emulation used in tests. Thread-safe across contexts; a context is used by
 * one thread at a time.
 *
 * Isolation (docs/architecture.md, "Isolation"): the process that accepts guests must not run
 * their contexts. Each guest context runs in a worker process of its own that calls
 * apir_context_enter_worker_mode: the component then records every command in a page the
 * supervisor shares (struct apir_activity, to log a dead worker's last command and to kill a
 * hung one), and once LOADLIBRARY has loaded the libraries it locks the worker down
 * (no_new_privs, and a seccomp filter per apir.sandbox.seccomp). The guest's resources reach
 * the worker as sealed memory file descriptors (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL):
 * apir_shared_memory_create makes one. apir-server is such a host (src/server/). */
#ifndef APIR_COMPONENT_H
#define APIR_COMPONENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct apir_context;

/* Creates a context for (ctx_id, capset_id). Fills the configuration table from the
 * environment (VIRGL_APIR_BACKEND_LIBRARY, APIR_LLAMA_CPP_GGML_LIBRARY_PATH,
 * APIR_LLAMA_CPP_GGML_LIBRARY_REG, and the limits below). A Venus capset is accepted only when
 * VIRGL_ROUTE_VENUS_TO_APIR is set. Returns NULL (and logs why) otherwise. ctx_id must be
 * unique among live contexts of the process. */
struct apir_context *apir_context_create(uint32_t ctx_id, uint32_t capset_id);
/* The hypervisor's way to set a key (overrides the environment); value NULL unsets it (a
 * limit goes back to its default). 0, or -1 for an unknown key or a bad limit value. */
int apir_context_configure(struct apir_context *ctx, const char *key, const char *value);
/* Makes [ptr, ptr+size) visible to the backend as resource res_id. 0, or -1 if res_id is
 * already attached or the context's blob limits (apir.limit.blobs, apir.limit.blob_bytes)
 * would be exceeded (logged). */
int apir_context_attach_resource(struct apir_context *ctx, uint32_t res_id, void *ptr, size_t size);
void apir_context_detach_resource(struct apir_context *ctx, uint32_t res_id);
/* Runs every command in the buffer (a private copy). The reply of each goes to its reply
 * resource. Returns 0, or -1 if the buffer was malformed (logged; the context stays usable). */
int apir_context_submit(struct apir_context *ctx, const void *cmd, size_t size);
/* True once the backend library is loaded and every device it serves computes off the host's
 * CPUs (a GPU): a thread waiting for this context's next command may then poll instead of
 * sleeping without taking cores from a compute. */
bool apir_context_computes_off_cpu(struct apir_context *ctx);
/* Frees everything the context created on the host, including the guest's buffers. */
void apir_context_destroy(struct apir_context *ctx);

/* Where the component logs: VIRGL_APIR_LOG_TO_FILE, else stderr. Guest-caused lines go through
 * apir_component_log, which is rate-limited per process (a burst of 100 lines, then 20 a
 * second; the number dropped is logged when lines flow again); apir_component_log_always is
 * for a supervisor's own lines (a worker's end), never dropped. */
void apir_component_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void apir_component_log_always(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* --- per-guest limits: configuration keys, their variables and defaults ---
 * docs/configuration.md documents each. Values are decimal integers; 0 means no limit. */
#define APIR_ENV_LIMIT_BUFFER_BYTES "VIRGL_APIR_MAX_BUFFER_BYTES" /* default: 3/4 of RAM */
#define APIR_ENV_LIMIT_HANDLES "VIRGL_APIR_MAX_HANDLES"
#define APIR_DEFAULT_LIMIT_HANDLES "4096"
#define APIR_KEY_LIMIT_BLOBS "apir.limit.blobs"
#define APIR_ENV_LIMIT_BLOBS "VIRGL_APIR_MAX_BLOBS"
#define APIR_DEFAULT_LIMIT_BLOBS "64"
#define APIR_KEY_LIMIT_BLOB_BYTES "apir.limit.blob_bytes"
#define APIR_ENV_LIMIT_BLOB_BYTES "VIRGL_APIR_MAX_BLOB_BYTES"
#define APIR_DEFAULT_LIMIT_BLOB_BYTES "1073741824"
#define APIR_KEY_LIMIT_CONNECTIONS_PER_UID "apir.limit.connections_per_uid"
#define APIR_ENV_LIMIT_CONNECTIONS_PER_UID "VIRGL_APIR_MAX_CONNECTIONS_PER_UID"
#define APIR_DEFAULT_LIMIT_CONNECTIONS_PER_UID "16"
#define APIR_KEY_LIMIT_IDLE_SECONDS "apir.limit.idle_seconds"
#define APIR_ENV_LIMIT_IDLE_SECONDS "VIRGL_APIR_IDLE_TIMEOUT"
#define APIR_DEFAULT_LIMIT_IDLE_SECONDS "3600"
#define APIR_KEY_LIMIT_COMMAND_SECONDS "apir.limit.command_seconds"
#define APIR_ENV_LIMIT_COMMAND_SECONDS "VIRGL_APIR_COMMAND_TIMEOUT"
#define APIR_DEFAULT_LIMIT_COMMAND_SECONDS "300"
/* auto: the filter for the CPU backend, none for others (their drivers open device nodes
 * and issue ioctls); on: the filter whatever the backend; off: no_new_privs only */
#define APIR_KEY_SANDBOX_SECCOMP "apir.sandbox.seccomp"
#define APIR_ENV_SANDBOX_SECCOMP "VIRGL_APIR_SECCOMP"
#define APIR_DEFAULT_SANDBOX_SECCOMP "auto"

enum apir_seccomp_mode { APIR_SECCOMP_AUTO, APIR_SECCOMP_ON, APIR_SECCOMP_OFF };

struct apir_limits {
    uint64_t buffer_bytes;        /* apir.limit.buffer_bytes: enforced by the backend library */
    uint64_t handles;             /* apir.limit.handles: enforced by the backend library */
    uint64_t blobs;               /* apir.limit.blobs: attached resources per context */
    uint64_t blob_bytes;          /* apir.limit.blob_bytes: their total size */
    uint64_t connections_per_uid; /* apir.limit.connections_per_uid: the supervisor's */
    uint64_t idle_seconds;        /* apir.limit.idle_seconds: the supervisor's */
    uint64_t command_seconds;     /* apir.limit.command_seconds: the supervisor's */
    enum apir_seccomp_mode seccomp;
};
/* The limits from the environment and defaults (a supervisor has no context). 0, or -1 with
 * a log line naming each bad variable. */
int apir_limits_from_env(struct apir_limits *out);
/* The limits of a context (its configuration keys). */
void apir_context_limits(const struct apir_context *ctx, struct apir_limits *out);

/* --- worker mode --- */
/* A page shared with the supervisor (MAP_SHARED, set up before the worker is forked). The
 * worker writes it, the supervisor only reads it. */
struct apir_activity {
    _Atomic uint32_t busy;            /* 1 while a command runs */
    _Atomic uint32_t type;            /* APIR command type of the current / last command */
    _Atomic uint32_t forward_index;   /* its FORWARD index, UINT32_MAX when not FORWARD */
    _Atomic uint32_t sandboxed;       /* 1 once the worker is locked down */
    _Atomic uint64_t since_ns;        /* CLOCK_MONOTONIC when it started */
    _Atomic uint64_t last_active_ns;  /* CLOCK_MONOTONIC of the guest's last message (host) */
    _Atomic uint64_t submits_done;    /* remote contexts: command buffers the worker has run */
};
/* Puts ctx in worker mode (see the top of this file); activity may be NULL. Call once, right
 * after apir_context_create, in the process that serves only this context. */
void apir_context_enter_worker_mode(struct apir_context *ctx, struct apir_activity *activity);
/* "HANDSHAKE", "LOADLIBRARY", "FORWARD GRAPH_COMPUTE", ...: for the supervisor's log */
void apir_command_describe(uint32_t type, uint32_t forward_index, char *out, size_t cap);
uint64_t apir_monotonic_ns(void);

/* The sandbox of a worker: PR_SET_NO_NEW_PRIVS, then per mode the seccomp filter
 * (auto: when ggml_library_path names ggml's CPU backend). 0, or -1 (logged). */
int apir_sandbox_enter(enum apir_seccomp_mode mode, const char *ggml_library_path);
/* The seccomp filter alone (apir_sandbox_enter's; tests run it in a forked child): what a
 * worker serving the CPU backend needs, everything else fails with EPERM. 0, or -1. */
int apir_sandbox_install_seccomp(void);

/* --- a context in a worker process, for a hypervisor ---
 * The same calls as an in-process context, but the context lives in a worker process forked
 * by apir_remote_context_create (one per guest context): a ggml assertion, a crash or a hang
 * there ends that worker only, and the worker sandboxes itself after LOADLIBRARY as above.
 * The hypervisor's process never loads the backend or GGML library. Resources are passed as
 * memfds sealed at least against shrinking (apir_shared_memory_create makes them); the worker
 * maps them itself. Calls are queued in order on a socket and return once sent: replies
 * arrive in the reply resources as with an in-process context. A call that returns -1 after
 * the worker is gone means the guest's device is lost; apir_remote_context_poll then reports
 * (and logs) how the worker ended. Create contexts from a thread that holds no lock the
 * worker needs: the worker is forked, not exec'ed (the component's log lock is fork-safe;
 * use either in-process or worker contexts in one hypervisor process, not both). */
struct apir_remote_context;
/* forks the worker and creates the context there; NULL (logged) if refused */
struct apir_remote_context *apir_remote_context_create(uint32_t ctx_id, uint32_t capset_id);
/* validated here (-1 for an unknown key or a bad limit), applied in the worker */
int apir_remote_context_configure(struct apir_remote_context *r, const char *key, const char *value);
/* memfd: the resource's memory, sealed with F_SEAL_SHRINK (else -1); the caller keeps its fd */
int apir_remote_context_attach_resource(struct apir_remote_context *r, uint32_t res_id, int memfd, size_t size);
void apir_remote_context_detach_resource(struct apir_remote_context *r, uint32_t res_id);
/* queues a command buffer (copied to the worker); -1 if the worker is gone. The worker counts
 * the buffers it has run in its activity page (submits_done), for the hypervisor's fences */
int apir_remote_context_submit(struct apir_remote_context *r, const void *cmd, size_t size);
/* the worker's pid and its activity page (command in progress, for a watchdog) */
pid_t apir_remote_context_pid(const struct apir_remote_context *r);
const struct apir_activity *apir_remote_context_activity(const struct apir_remote_context *r);
/* 1 once the worker has ended (its waitpid status in *status, logged unless a clean exit),
 * else 0 */
int apir_remote_context_poll(struct apir_remote_context *r, int *status);
/* ends the worker (the context frees everything) and waits for it, SIGKILL after 5 s */
void apir_remote_context_destroy(struct apir_remote_context *r);

/* A shared memory file for a guest resource: a memfd of size bytes, sealed against shrinking
 * and growing (so a guest holding the descriptor cannot make the host fault on it) and against
 * further seals, mapped read-write at *ptr. Returns the descriptor, or -1 (errno set). */
int apir_shared_memory_create(const char *name, size_t size, void **ptr);

#endif
