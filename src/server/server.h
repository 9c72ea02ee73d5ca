/* apir-server: the APIR component behind virglrenderer's vtest protocol on a UNIX socket.
 * A single-threaded listener accepts, supervises and logs; each connection is served by a
 * worker process of its own (forked at accept) that holds one APIR context, loads the backend
 * and GGML libraries, and is sandboxed once they are loaded. See docs/architecture.md. */
#ifndef APIR_SERVER_H
#define APIR_SERVER_H

#include "apir_component.h"
#include "server_ring.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SERVER_MAX_MESSAGE_BYTES (64u << 20) /* largest vtest message accepted */
#define SERVER_MAX_RENDERER_NAME 4096
#define SERVER_MAX_SYNCS 1024                /* per connection */
#define SERVER_MAX_CLIENTS 256               /* connections served at once */
#define SERVER_DEFAULT_MAX_BLOB_SIZE (64ull << 30)
#define SERVER_STOP_GRACE_MS 5000            /* workers get this long to end on SIGTERM */

struct server_options {
    const char *socket_path;
    uint64_t max_blob_size;
    struct apir_limits limits; /* from the environment (docs/configuration.md) */
};

struct blob {
    uint32_t res_id;
    void *ptr;
    size_t size;
};

struct sync_obj {
    uint32_t id;
    uint64_t value;
};

/* a connection, in its worker process */
struct client {
    int fd;
    unsigned id;                 /* connection number, for logs; also the APIR ctx_id */
    const struct server_options *opts;
    struct apir_activity *activity; /* shared with the listener */
    struct apir_context *ctx;    /* NULL until CONTEXT_INIT */
    uint32_t version;            /* negotiated vtest protocol version */
    struct blob *blobs;
    size_t blobs_count, blobs_cap;
    uint32_t next_res_id;
    struct sync_obj syncs[SERVER_MAX_SYNCS];
    size_t syncs_count;
    uint32_t next_sync_id;
    uint32_t *msg;               /* the message being handled */
    size_t msg_cap;
    struct server_ring ring;     /* the guest's command ring, once attached */
};

/* server_io.c: whole-message socket I/O. read_full returns 1, 0 on EOF before any byte,
 * -1 on error or EOF mid-message. */
int io_read_full(int fd, void *buf, size_t size);
int io_write_full(int fd, const void *buf, size_t size);
int io_send_fd(int fd, int send_fd);

/* server_listen.c: binds and listens on path, removing a stale socket file; -1 logged */
int listen_socket(const char *path);

/* server_blob.c */
int blob_create(struct client *c, uint64_t size, uint32_t *res_id, int *fd);
int blob_unref(struct client *c, uint32_t res_id);
struct blob *blob_find(struct client *c, uint32_t res_id); /* NULL: none of this connection's */
void blob_free_all(struct client *c);

/* server_client.c: serves one connection until it closes or misbehaves, then frees it all */
void client_serve(struct client *c);

/* server_worker.c: the worker process's life, from fork to exit; never returns */
void worker_run(int fd, unsigned id, struct apir_activity *activity, const struct server_options *o,
                const int *close_fds, size_t n_close_fds) __attribute__((noreturn));

/* server_listener.c: accepts and supervises until SIGINT/SIGTERM; the exit status */
int listener_run(int lfd, int sfd, const struct server_options *o);

#endif
