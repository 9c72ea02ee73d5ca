/* The guest's connection to the host: picks a transport, does HANDSHAKE and LOADLIBRARY,
 * owns the reply page and the data page (apir_client_connect.c), and runs one command at a
 * time (apir_client.c).
 *
 * Life cycle (docs/frontend.md, "Device lost"): CONNECTED after apir_client_open();
 * apir_client_disconnect() gives the host context back and leaves the client DISCONNECTED,
 * and the next command connects again (lazy connection). Once the connection is lost or a
 * reply times out the client is DEAD for the rest of the process: the loss is logged once,
 * the transport is closed (so the host frees the context) and every later command fails at
 * once with APIR_CLIENT_ERR_LOST. A reply the host writes after the guest gave up on it lands
 * in a page the guest has unmapped and never reads again, so it cannot answer a later
 * command. */
#ifndef APIR_CLIENT_H
#define APIR_CLIENT_H

#include "apir_codec.h"
#include "transport.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APIR_CLIENT_REPLY_PAGE_SIZE (1u << 20)
#define APIR_CLIENT_DATA_PAGE_SIZE (32u << 20)

/* negative results of apir_client_forward(): the command did not reach the backend */
enum apir_client_error {
    APIR_CLIENT_ERR_TRANSPORT = -1, /* submit failed or the host went away */
    APIR_CLIENT_ERR_TIMEOUT = -2,   /* no reply within the timeout */
    APIR_CLIENT_ERR_ENCODE = -3,    /* the command did not fit its buffer */
    APIR_CLIENT_ERR_COMPONENT = -4, /* the component refused it (no dispatch, sync failure) */
    APIR_CLIENT_ERR_LOST = -5,      /* the device was lost earlier in this process: not sent */
};

enum apir_client_state {
    APIR_CLIENT_DISCONNECTED = 0, /* no host context: the next command connects */
    APIR_CLIENT_CONNECTING = 1,   /* one thread is connecting (others wait on connect_lock) */
    APIR_CLIENT_CONNECTED = 2,
    APIR_CLIENT_DEAD = 3,         /* lost for good: every command fails at once */
};

struct apir_client;

/* Where the client connects (kept for a lazy reconnection). */
struct apir_client_endpoint {
    enum { APIR_ENDPOINT_NONE, APIR_ENDPOINT_VTEST, APIR_ENDPOINT_VIRTGPU } kind;
    char path[108]; /* vtest socket */
    uint32_t capset;
};

/* Runs after a lazy reconnection, before any other command (the connecting thread may issue
 * commands from it); returns false with a reason to declare the device lost. */
typedef bool (*apir_client_connect_hook)(struct apir_client *c, void *user, char *why, size_t why_len);

/* Runs under the client's lock before the data page's bytes may change (a command about to
 * write into it, or to have the host write into it) and before the page is unmapped: whoever
 * still points into the page (vgpu_outputs' outputs left where GRAPH_RECOMPUTE put them)
 * copies out what it keeps. */
typedef void (*apir_client_page_hook)(void);

struct apir_client {
    struct apir_transport *transport;
    pthread_mutex_t lock;     /* one command in flight at a time */
    struct apir_shmem reply;  /* reply page */
    struct apir_shmem data;   /* staging page for tensor data */
    uint8_t *cmd_buf;         /* command being built */
    size_t cmd_cap;
    struct apir_encoder enc;
    uint32_t cmd_offset;      /* APIR_VENUS_CMD_OFFSET in a Venus context, else 0 */
    uint32_t host_major, host_minor;
    uint64_t timeout_ns;
    bool noreply_pending;     /* fire-and-forget commands sent since the last wait (under lock) */
    size_t data_queued;       /* bytes at the start of the data page that fire-and-forget
                               * BUFFER_SETs still need: the host reads them when it runs
                               * them, which every reply says it has (under lock) */
    /* connection state (apir_client_state); written under lock, read lock-free for fast paths */
    _Atomic int state;
    pthread_mutex_t connect_lock; /* held while (re)connecting */
    pthread_t connecting_thread;  /* valid while state == CONNECTING */
    struct apir_client_endpoint endpoint;
    apir_client_connect_hook on_connect;
    void *on_connect_user;
    apir_client_page_hook on_page_change;
    int begin_error;          /* set by begin when the command must not be sent (under lock) */
    uint32_t cur_cmd;         /* FORWARD index being run, for the loss message (under lock) */
    _Atomic bool host_off_cpu; /* every host device computes off the host's CPUs (a GPU) */
    uint32_t generation;      /* counts connections: which one a kept blob belongs to (under lock) */
};

/* A shared resource the caller keeps as memory of its own (the host buffer type's buffers):
 * made on the connection of the time, which may end before it does. */
struct apir_client_blob {
    struct apir_shmem shm;
    uint32_t generation; /* apir_client.generation when it was made */
};


/* Connects as the environment says (docs/configuration.md): GGML_VIRTGPU_SOCKET or
 * VTEST_SOCKET_NAME selects vtest to that socket; otherwise a virtio_gpu render node; otherwise
 * the default socket. GGML_REMOTING_USE_APIR_CAPSET selects the APIR capset over Venus.
 * Returns NULL with the failing step and what to set in why[]. */
struct apir_client *apir_client_open(char *why, size_t why_len);
/* The first step of apir_client_open(): where the environment says the host is, without
 * connecting (a stat of the socket, a look in /dev/dri); false with the reason in why[]. */
bool apir_client_find_endpoint(struct apir_client_endpoint *ep, char *why, size_t why_len);
/* A client that has not connected yet: its first command connects to ep (and runs the hook).
 * NULL if out of memory or ep names no endpoint. */
struct apir_client *apir_client_new_disconnected(const struct apir_client_endpoint *ep);
/* same, over a transport the caller opened (takes ownership, also on failure) */
struct apir_client *apir_client_open_transport(struct apir_transport *t, char *why, size_t why_len);
void apir_client_close(struct apir_client *c);

/* Gives the host context back (clean close); the next command reconnects, runs the hook and
 * only then is sent. No-op unless CONNECTED. */
void apir_client_disconnect(struct apir_client *c);
void apir_client_set_connect_hook(struct apir_client *c, apir_client_connect_hook hook, void *user);
void apir_client_set_page_hook(struct apir_client *c, apir_client_page_hook hook);
/* the device is lost for good (see above) */
bool apir_client_is_dead(struct apir_client *c);
bool apir_client_is_connected(struct apir_client *c);
/* rc says the device is lost (this call found it out, or an earlier one did) */
bool apir_client_lost_error(int rc);
/* Declares the device lost (a caller that found the host's answers unusable); logs once. */
void apir_client_mark_dead(struct apir_client *c, const char *what);

/* FORWARD: connect if needed, lock, start backend command `cmd` with room for its arguments
 * (the request size of apir_forward_table.h, plus `extra` bytes for a variable part), and
 * return the encoder to put them in. */
struct apir_encoder *apir_client_begin(struct apir_client *c, uint32_t cmd, size_t extra);
/* Submit, wait for the reply, and point *reply at its payload. Returns the backend status
 * (enum apir_backend_status, >= 0) or an apir_client_error. The reply stays valid until
 * apir_client_end(). */
int apir_client_call(struct apir_client *c, struct apir_decoder *reply);
/* unlock (after reading the reply) */
void apir_client_end(struct apir_client *c);

/* Fire-and-forget FORWARD (apir_forward.h): as apir_client_begin, but the command carries
 * reply_res_id 0; apir_client_send() submits it without waiting and returns
 * APIR_BACKEND_OK or an apir_client_error (the backend status is never seen: a failure comes
 * back as the deferred error of the next waiting command). apir_client_end() unlocks. */
struct apir_encoder *apir_client_begin_noreply(struct apir_client *c, uint32_t cmd, size_t extra);
int apir_client_send(struct apir_client *c);
/* with the lock held (between begin and end): were fire-and-forget commands sent since the
 * last call to this? Clears the mark. */
bool apir_client_take_noreply(struct apir_client *c);

/* The data page (tensor transfers through BUFFER_SET/GET), between begin and end only; NULL
 * when the command will not be sent (not connected, device lost). */
const struct apir_shmem *apir_client_data_page(const struct apir_client *c);
/* The same, for a command that writes into the page or has the host write into it: runs the
 * page hook first. */
const struct apir_shmem *apir_client_data_page_claim(struct apir_client *c);
/* Between begin and end: where in the data page this command may put its bytes, past those
 * that earlier fire-and-forget commands still need (*room: how many fit there). */
uint64_t apir_client_data_free(const struct apir_client *c, size_t *room);
/* Between begin_noreply and end: keeps n bytes at *offset of the data page for this
 * fire-and-forget command until the next reply; false (nothing kept) when fewer than n bytes
 * are free or more than half the page would be kept, so a waiting transfer always has room. */
bool apir_client_data_keep(struct apir_client *c, size_t n, uint64_t *offset);

/* The host's devices all compute off its CPUs (GPUs): waits for a reply spin through a
 * compute instead of sleeping (docs/configuration.md, GGML_VIRTGPU_SPIN_US). */
void apir_client_set_host_off_cpu(struct apir_client *c, bool off_cpu);

/* Makes a kept blob of size bytes on the current connection (connecting if needed); 0 or a
 * negative errno: -ENOMEM the host refused it (apir.limit.blobs, apir.limit.blob_bytes),
 * -ENOTCONN no connection (device lost), -EOPNOTSUPP not over this transport (kept_blobs). */
int apir_client_blob_create(struct apir_client *c, size_t size, struct apir_client_blob *b);
/* Unmaps it, and gives it back to the host when its connection is still the current one (an
 * ended connection took the host's side with it). */
void apir_client_blob_destroy(struct apir_client *c, struct apir_client_blob *b);
/* Between begin and end: the resource id that names b in this command, 0 when b belongs to an
 * ended connection or the command will not be sent (the caller then copies through the data
 * page). */
uint32_t apir_client_blob_res_id(const struct apir_client *c, const struct apir_client_blob *b);

const char *apir_client_status_str(int status);

#endif
