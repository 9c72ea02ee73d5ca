/* apir-server: the APIR component behind virglrenderer's vtest protocol on a UNIX socket.
 * One thread per connection, each connection its own APIR context. */
#ifndef APIR_SERVER_H
#define APIR_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SERVER_MAX_MESSAGE_BYTES (64u << 20) /* largest vtest message accepted */
#define SERVER_MAX_RENDERER_NAME 4096
#define SERVER_MAX_BLOBS 4096                /* per connection */
#define SERVER_MAX_SYNCS 1024                /* per connection */
#define SERVER_MAX_CLIENTS 256               /* connections served at once */
#define SERVER_DEFAULT_MAX_BLOB_SIZE (64ull << 30)

struct server_options {
    const char *socket_path;
    uint64_t max_blob_size;
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

struct client {
    int fd;
    unsigned id;                 /* connection number, for logs */
    const struct server_options *opts;
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
    pthread_t thread;
    atomic_bool done;
    struct client *next;
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
void blob_free_all(struct client *c);

/* server_client.c: serves one connection until it closes or misbehaves, then frees it all */
void *client_thread(void *arg);

#endif
