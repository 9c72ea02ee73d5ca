/* The guest's vtest transport: virglrenderer's vtest protocol (version 3) over a UNIX socket
 * to apir-server on the same host. Blob memory comes back as a memfd we map MAP_SHARED, so
 * the host wakes reply waiters with FUTEX_WAKE on the same page. Commands travel in a shared
 * ring where the host offers one (src/protocol/vtest_ring.h), else in SUBMIT_CMD2 messages. */
#include "transport.h"

#include "apir_protocol.h"
#include "apir_stats_util.h"
#include "vtest_ring_producer.h"
#include "vtest_wire.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define VTEST_MAX_CAPSET_WORDS 1024
/* the command ring's data area unless GGML_VIRTGPU_VTEST_RING says otherwise (KiB) */
#define RING_DEFAULT_KIB 1024u

/* Commands submitted without a reply (vtest_submit_later) wait here, copied, and travel with
 * the next submit as earlier batches of its SUBMIT_CMD2 (the server runs a message's batches
 * in order): a generated token's inputs and its compute cost one socket write and one host
 * wake-up instead of one each. */
#define LATER_MAX_BATCHES 64
#define LATER_MAX_WORDS (1u << 18) /* 1 MiB */
struct later {
    uint32_t *words; /* the commands, each padded to whole words, one after the other */
    size_t n_words, cap_words;
    uint32_t n;
    uint32_t cmd_words[LATER_MAX_BATCHES], pad[LATER_MAX_BATCHES];
};

struct vtest_transport {
    struct apir_transport base;
    int fd;
    pthread_mutex_t lock; /* one request/reply exchange at a time */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    /* While connecting (negotiation, the pages' CREATE_BLOB replies) all reads share one
     * bound, APIR_CONNECT_TIMEOUT_MS from the open; once the client has set its command
     * timeout (vtest_set_timeout), each read gets that instead. */
    struct timespec read_deadline;
    bool connected;
    uint64_t timeout_ns; /* how long a command may wait for room in the ring */
    struct later later;  /* without a ring */
    uint32_t host_features; /* the capset's VTEST_CAPSET_FEATURES_WORD */
    struct apir_shmem ring_blob; /* ring_blob.ptr: the ring is attached */
    struct vtest_ring_producer ring;
};

static int write_batches(struct vtest_transport *v, const void *cmd, size_t size);

/* SO_RCVTIMEO set to what is left of the connect bound; -ETIMEDOUT once it is spent */
static int arm_read(struct vtest_transport *v)
{
    if (v->connected)
        return 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long left_us = (long long)(v->read_deadline.tv_sec - now.tv_sec) * 1000000 +
                        (v->read_deadline.tv_nsec - now.tv_nsec) / 1000;
    if (left_us <= 0)
        return -ETIMEDOUT;
    struct timeval tv = {.tv_sec = (time_t)(left_us / 1000000), .tv_usec = (suseconds_t)(left_us % 1000000)};
    setsockopt(v->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return 0;
}

static int write_iov(int fd, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -EPIPE;
        size_t done = (size_t)w;
        while (n > 0 && done >= iov->iov_len) {
            done -= iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + done;
            iov->iov_len -= done;
        }
    }
    return 0;
}

static int send_cmd(struct vtest_transport *v, uint32_t id, uint32_t len, const void *data, size_t bytes)
{
    uint32_t hdr[VTEST_WIRE_HDR_WORDS] = {len, id};
    struct iovec iov[2] = {{hdr, sizeof hdr}, {(void *)data, bytes}};
    return write_iov(v->fd, iov, bytes ? 2 : 1);
}

static int read_full(struct vtest_transport *v, void *buf, size_t size)
{
    int fd = v->fd;
    int armed = arm_read(v);
    if (armed)
        return armed;
    size_t got = 0;
    while (got < size) {
        ssize_t n = recv(fd, (char *)buf + got, size - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -errno;
        if (n == 0)
            return -EPIPE;
        got += (size_t)n;
    }
    return 0;
}

/* reads a reply header and checks it answers command id with exactly words words */
static int read_reply(struct vtest_transport *v, uint32_t id, uint32_t words, uint32_t *data)
{
    uint32_t hdr[VTEST_WIRE_HDR_WORDS];
    int rc = read_full(v, hdr, sizeof hdr);
    if (rc)
        return rc;
    if (hdr[VTEST_WIRE_HDR_ID] != id || hdr[VTEST_WIRE_HDR_LEN] != words)
        return -EPROTO;
    return words ? read_full(v, data, words * 4u) : 0;
}

static int receive_fd(struct vtest_transport *v)
{
    int fd = v->fd;
    int armed = arm_read(v);
    if (armed)
        return armed;
    char dummy;
    struct iovec iov = {&dummy, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
    ssize_t n;
    do
        n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n != 1)
        return n < 0 ? -errno : -EPIPE;
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
        return -EPROTO;
    int out;
    memcpy(&out, CMSG_DATA(c), sizeof out);
    return out;
}

static int vtest_create_blob(struct apir_transport *t, size_t size, struct apir_shmem *shm)
{
    struct vtest_transport *v = (struct vtest_transport *)t;
    uint32_t req[VTEST_BLOB_WORDS] = {0};
    req[VTEST_BLOB_TYPE] = VTEST_BLOB_TYPE_HOST3D;
    req[VTEST_BLOB_FLAGS] = VTEST_BLOB_FLAG_MAPPABLE;
    req[VTEST_BLOB_SIZE_LO] = (uint32_t)size;
    req[VTEST_BLOB_SIZE_HI] = (uint32_t)((uint64_t)size >> 32);
    pthread_mutex_lock(&v->lock);
    uint32_t res_id = 0;
    int fd = -1;
    int rc = write_batches(v, NULL, 0);
    if (!rc)
        rc = send_cmd(v, VTEST_CMD_RESOURCE_CREATE_BLOB, VTEST_BLOB_WORDS, req, sizeof req);
    if (!rc)
        rc = read_reply(v, VTEST_CMD_RESOURCE_CREATE_BLOB, 1, &res_id);
    if (!rc && res_id == 0)
        rc = -ENOMEM; /* the host refused it: no descriptor follows */
    if (!rc) {
        fd = receive_fd(v);
        if (fd < 0)
            rc = fd;
    }
    pthread_mutex_unlock(&v->lock);
    if (rc)
        return rc;
    void *ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = errno;
    close(fd);
    if (ptr == MAP_FAILED) {
        struct apir_shmem tmp = {.res_id = res_id};
        t->ops->destroy_blob(t, &tmp);
        return -err;
    }
    *shm = (struct apir_shmem){.res_id = res_id, .ptr = ptr, .size = size};
    return 0;
}

static void vtest_destroy_blob(struct apir_transport *t, struct apir_shmem *shm)
{
    struct vtest_transport *v = (struct vtest_transport *)t;
    if (shm->ptr)
        munmap(shm->ptr, shm->size);
    if (!t->lost) { /* a gone or hung host frees it when the connection closes */
        pthread_mutex_lock(&v->lock);
        write_batches(v, NULL, 0);
        send_cmd(v, VTEST_CMD_RESOURCE_UNREF, VTEST_RESOURCE_UNREF_WORDS, &shm->res_id, sizeof shm->res_id);
        pthread_mutex_unlock(&v->lock);
    }
    shm->ptr = NULL;
    shm->size = 0;
}

/* One SUBMIT_CMD2: the waiting later commands, then cmd (NULL: none), one batch each; every
 * command padded to whole words and its pad announced. Under v->lock. */
static int write_batches(struct vtest_transport *v, const void *cmd, size_t size)
{
    struct later *l = &v->later;
    uint32_t count = l->n + (cmd ? 1 : 0);
    if (count == 0)
        return 0;
    uint32_t pad = (uint32_t)((4 - size % 4) % 4);
    size_t words = cmd ? (size + pad) / 4 : 0;
    size_t head_words = 1 + (size_t)count * VTEST_SUBMIT_BATCH_WORDS;
    size_t total = head_words + l->n_words + words;
    if (total > (64u << 20) / 4)
        return -E2BIG;
    uint32_t head[1 + (LATER_MAX_BATCHES + 1) * VTEST_SUBMIT_BATCH_WORDS];
    head[0] = count;
    size_t at = head_words;
    for (uint32_t i = 0; i < count; i++) {
        bool last = cmd && i == l->n;
        struct vtest_submit_batch b = {
            .flags = (last ? pad : l->pad[i]) << VTEST_SUBMIT_FLAG_APIR_PAD_SHIFT,
            .cmd_offset = (uint32_t)at,
            .cmd_size = last ? (uint32_t)words : l->cmd_words[i],
        };
        memcpy(&head[1 + (size_t)i * VTEST_SUBMIT_BATCH_WORDS], &b, sizeof b);
        at += b.cmd_size;
    }
    uint32_t hdr[VTEST_WIRE_HDR_WORDS] = {(uint32_t)total, VTEST_CMD_SUBMIT_CMD2};
    static const char zeros[4];
    struct iovec iov[5];
    int n = 0;
    iov[n++] = (struct iovec){hdr, sizeof hdr};
    iov[n++] = (struct iovec){head, head_words * 4};
    if (l->n_words)
        iov[n++] = (struct iovec){l->words, l->n_words * 4};
    if (cmd) {
        iov[n++] = (struct iovec){(void *)cmd, size};
        if (pad)
            iov[n++] = (struct iovec){(void *)zeros, pad};
    }
    int rc = write_iov(v->fd, iov, n);
    l->n = 0;
    l->n_words = 0;
    return rc;
}

static bool vtest_alive(struct apir_transport *t);

/* a SUBMIT_CMD2 of no batches: wakes a host that sleeps on the socket, which then runs the ring */
static int send_kick(struct vtest_transport *v)
{
    uint32_t none = 0;
    return send_cmd(v, VTEST_CMD_SUBMIT_CMD2, 1, &none, sizeof none);
}

/* One ring entry: a command, or a socket mark for cmd NULL. While the host has not made room
 * (it is busy, or asleep with the ring full of work it was kicked for): spin a little, then
 * kick a host that says it sleeps and back off, up to the command timeout. Under v->lock. */
static int ring_put_waiting(struct vtest_transport *v, const void *cmd, uint32_t size)
{
    uint64_t start = 0, sleep_ns = 1000;
    for (unsigned tries = 0;; tries++) {
        int rc = cmd ? vtest_ring_put(&v->ring, cmd, size) : vtest_ring_put_socket_mark(&v->ring);
        if (rc != -ENOSPC)
            return rc;
        if (tries < 1000)
            continue;
        if (!start)
            start = apir_stats_now_ns();
        if (vtest_ring_take_kick(&v->ring) && send_kick(v) != 0)
            return -EPIPE;
        if (apir_stats_now_ns() - start > v->timeout_ns)
            return -ETIMEDOUT;
        if (!vtest_alive(&v->base))
            return -EPIPE;
        struct timespec ts = {0, (long)sleep_ns};
        nanosleep(&ts, NULL);
        if (sleep_ns < 1000000)
            sleep_ns *= 2;
    }
}

/* A command into the ring; one too large for it goes over the socket behind a socket mark,
 * so that it still runs in order. wake: someone waits for it, so kick a host that sleeps (a
 * command nobody waits for goes with the next kick, as the later queue does without a ring). */
static int ring_submit(struct vtest_transport *v, const void *cmd, size_t size, bool wake)
{
    if (!vtest_ring_takes(&v->ring, size)) {
        int rc = ring_put_waiting(v, NULL, 0);
        return rc ? rc : write_batches(v, cmd, size); /* the message wakes the host */
    }
    int rc = ring_put_waiting(v, cmd, (uint32_t)size);
    if (!rc && wake && vtest_ring_take_kick(&v->ring))
        rc = send_kick(v);
    return rc;
}

static int vtest_submit(struct apir_transport *t, const void *cmd, size_t size)
{
    struct vtest_transport *v = (struct vtest_transport *)t;
    pthread_mutex_lock(&v->lock);
    int rc = v->ring_blob.ptr ? ring_submit(v, cmd, size, true) : write_batches(v, cmd, size);
    pthread_mutex_unlock(&v->lock);
    return rc;
}

static int vtest_submit_later(struct apir_transport *t, const void *cmd, size_t size)
{
    struct vtest_transport *v = (struct vtest_transport *)t;
    if (v->ring_blob.ptr) {
        pthread_mutex_lock(&v->lock);
        int rc = ring_submit(v, cmd, size, false);
        pthread_mutex_unlock(&v->lock);
        return rc;
    }
    struct later *l = &v->later;
    uint32_t pad = (uint32_t)((4 - size % 4) % 4);
    size_t words = (size + pad) / 4;
    if (words > LATER_MAX_WORDS)
        return vtest_submit(t, cmd, size);
    pthread_mutex_lock(&v->lock);
    int rc = 0;
    if (l->n == LATER_MAX_BATCHES || l->n_words + words > LATER_MAX_WORDS)
        rc = write_batches(v, NULL, 0);
    if (!rc && l->n_words + words > l->cap_words) {
        uint32_t *w = realloc(l->words, LATER_MAX_WORDS * sizeof *w);
        if (w) {
            l->words = w;
            l->cap_words = LATER_MAX_WORDS;
        } else {
            rc = write_batches(v, cmd, size); /* no room to wait: send it now */
            pthread_mutex_unlock(&v->lock);
            return rc;
        }
    }
    if (!rc) {
        if (words)
            l->words[l->n_words + words - 1] = 0; /* the pad bytes */
        memcpy(l->words + l->n_words, cmd, size);
        l->cmd_words[l->n] = (uint32_t)words;
        l->pad[l->n] = pad;
        l->n++;
        l->n_words += words;
    }
    pthread_mutex_unlock(&v->lock);
    return rc;
}

static bool vtest_alive(struct apir_transport *t)
{
    struct vtest_transport *v = (struct vtest_transport *)t;
    struct pollfd p = {.fd = v->fd, .events = POLLRDHUP};
    int n = poll(&p, 1, 0);
    return !(n > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR | POLLNVAL)));
}

/* Connected: a host busy with a long compute reads the next command late, so a write (or a
 * later blob's reply) may wait as long as a reply may (GGML_VIRTGPU_TIMEOUT), not less, or a
 * busy host would look lost. */
static void vtest_set_timeout(struct apir_transport *t, uint64_t timeout_ns)
{
    struct vtest_transport *v = (struct vtest_transport *)t;
    struct timeval tv = {.tv_sec = (time_t)(timeout_ns / 1000000000ull),
                         .tv_usec = (suseconds_t)(timeout_ns % 1000000000ull / 1000)};
    pthread_mutex_lock(&v->lock);
    setsockopt(v->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(v->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    v->connected = true;
    v->timeout_ns = timeout_ns;
    pthread_mutex_unlock(&v->lock);
}

static void vtest_destroy(struct apir_transport *t)
{
    struct vtest_transport *v = (struct vtest_transport *)t;
    /* the last writes of a closing guest still reach its buffers: the host runs the ring's at
     * the end of the connection */
    if (!t->lost)
        write_batches(v, NULL, 0);
    if (v->ring_blob.ptr)
        munmap(v->ring_blob.ptr, v->ring_blob.size);
    free(v->later.words);
    close(v->fd);
    pthread_mutex_destroy(&v->lock);
    free(v);
}

static const struct apir_transport_ops vtest_ops = {
    .create_blob = vtest_create_blob,
    .destroy_blob = vtest_destroy_blob,
    .submit = vtest_submit,
    .submit_later = vtest_submit_later,
    .alive = vtest_alive,
    .set_timeout = vtest_set_timeout,
    .destroy = vtest_destroy,
};

static int do_connect(struct vtest_transport *v, const char *path, char *why, size_t why_len)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path) {
        snprintf(why, why_len, "vtest: socket path too long: %s", path);
        return -1;
    }
    strcpy(addr.sun_path, path);
    strcpy(v->path, path);
    v->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (v->fd < 0) {
        snprintf(why, why_len, "vtest: socket: %s", strerror(errno));
        return -1;
    }
    /* connect on a UNIX socket fails at once when nobody listens: no retry loop */
    if (connect(v->fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        snprintf(why, why_len, "cannot connect to the apir-server socket %s: %s; start apir-server on the host "
                 "or set GGML_VIRTGPU_SOCKET to its socket", path, strerror(errno));
        return -1;
    }
    /* A stopped server's listen queue still accepts the connection, so the negotiation's reads
     * are what must be bounded (arm_read); writes too, until the client sets its timeout. */
    struct timeval tv = {.tv_sec = APIR_CONNECT_TIMEOUT_MS / 1000,
                         .tv_usec = (APIR_CONNECT_TIMEOUT_MS % 1000) * 1000};
    setsockopt(v->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return 0;
}

/* CREATE_RENDERER, PROTOCOL_VERSION, GET_CAPSET, CONTEXT_INIT, then a PING round trip: the
 * server closes the connection if it refused the context. */
static int do_init(struct vtest_transport *v, uint32_t capset, char *why, size_t why_len)
{
    static const char name[16] = "ggml-virtgpu"; /* length counts bytes, padded to words */
    int rc = send_cmd(v, VTEST_CMD_CREATE_RENDERER, sizeof name, name, sizeof name);
    uint32_t ver = VTEST_WIRE_PROTOCOL_VERSION;
    if (!rc)
        rc = send_cmd(v, VTEST_CMD_PROTOCOL_VERSION, 1, &ver, sizeof ver);
    if (!rc)
        rc = read_reply(v, VTEST_CMD_PROTOCOL_VERSION, 1, &ver);
    if (rc) {
        snprintf(why, why_len, "vtest %s: protocol negotiation failed: %s", v->path,
                 rc == -ETIMEDOUT ? "no answer within the connect bound (stopped or hung apir-server?)"
                                  : strerror(-rc));
        return -1;
    }
    if (ver < VTEST_WIRE_PROTOCOL_VERSION) {
        snprintf(why, why_len, "vtest %s: the server speaks vtest protocol %u, need %u (is it apir-server?)",
                 v->path, ver, VTEST_WIRE_PROTOCOL_VERSION);
        return -1;
    }
    uint32_t req[2] = {capset, 0}, hdr[VTEST_WIRE_HDR_WORDS], valid = 0;
    rc = send_cmd(v, VTEST_CMD_GET_CAPSET, 2, req, sizeof req);
    if (!rc)
        rc = read_full(v, hdr, sizeof hdr);
    if (!rc && (hdr[VTEST_WIRE_HDR_ID] != VTEST_CMD_GET_CAPSET || hdr[VTEST_WIRE_HDR_LEN] < 1 ||
                hdr[VTEST_WIRE_HDR_LEN] > VTEST_MAX_CAPSET_WORDS))
        rc = -EPROTO;
    if (!rc)
        rc = read_full(v, &valid, sizeof valid);
    for (uint32_t i = 1; !rc && i < hdr[VTEST_WIRE_HDR_LEN]; i++) {
        uint32_t word;
        rc = read_full(v, &word, sizeof word);
        if (i == VTEST_CAPSET_FEATURES_WORD)
            v->host_features = word;
    }
    if (rc) {
        snprintf(why, why_len, "vtest %s: GET_CAPSET failed: %s", v->path, strerror(-rc));
        return -1;
    }
    if (!valid) {
        snprintf(why, why_len, "vtest %s: the host does not offer capset %u", v->path, capset);
        return -1;
    }
    rc = send_cmd(v, VTEST_CMD_CONTEXT_INIT, 1, &capset, sizeof capset);
    if (!rc)
        rc = send_cmd(v, VTEST_CMD_PING_PROTOCOL_VERSION, 0, NULL, 0);
    if (!rc)
        rc = read_reply(v, VTEST_CMD_PING_PROTOCOL_VERSION, 0, NULL);
    if (rc) {
        if (capset == APIR_CAPSET_ID_VENUS)
            snprintf(why, why_len, "vtest %s: the host refused the Venus (capset %u) context: set "
                     "VIRGL_ROUTE_VENUS_TO_APIR=1 on the host or GGML_REMOTING_USE_APIR_CAPSET=1 in the guest",
                     v->path, capset);
        else
            snprintf(why, why_len, "vtest %s: the host refused the context for capset %u (see the host log)",
                     v->path, capset);
        return -1;
    }
    return 0;
}

/* GGML_VIRTGPU_VTEST_RING: the ring's data area in KiB, a power of two from 4 to 16384; 0
 * turns it off; anything else means the default */
static uint32_t ring_kib(void)
{
    const char *e = getenv("GGML_VIRTGPU_VTEST_RING");
    if (!e || !*e)
        return RING_DEFAULT_KIB;
    char *end;
    unsigned long kib = strtoul(e, &end, 10);
    if (*end || (kib && (kib < VTEST_RING_MIN_DATA_BYTES / 1024 || kib > VTEST_RING_MAX_DATA_BYTES / 1024 ||
                         (kib & (kib - 1)))))
        return RING_DEFAULT_KIB;
    return (uint32_t)kib;
}

/* Offers the host a command ring where it serves one; a host that refuses it (its blob limit,
 * say) leaves the guest on the socket. -1 with why[] only when the connection failed. */
static int attach_ring(struct vtest_transport *v, char *why, size_t why_len)
{
    uint32_t kib = ring_kib();
    if (!(v->host_features & VTEST_FEATURE_RING) || kib == 0)
        return 0;
    size_t bytes = VTEST_RING_CONTROL_BYTES + (size_t)kib * 1024;
    struct apir_shmem shm;
    int rc = vtest_create_blob(&v->base, bytes, &shm);
    if (rc == -ENOMEM)
        return 0;
    uint32_t ok = 0;
    if (!rc) {
        vtest_ring_producer_init(&v->ring, shm.ptr, bytes);
        rc = send_cmd(v, VTEST_CMD_APIR_RING_ATTACH, VTEST_RING_ATTACH_WORDS, &shm.res_id, sizeof shm.res_id);
        if (!rc)
            rc = read_reply(v, VTEST_CMD_APIR_RING_ATTACH, 1, &ok);
        if (rc || !ok)
            vtest_destroy_blob(&v->base, &shm);
        else
            v->ring_blob = shm;
    }
    if (rc) {
        snprintf(why, why_len, "vtest %s: attaching the command ring failed: %s", v->path,
                 rc == -ETIMEDOUT ? "no answer within the connect bound" : strerror(-rc));
        return -1;
    }
    return 0;
}

struct apir_transport *apir_transport_vtest_open(const char *socket_path, uint32_t capset_id, char *why,
                                                 size_t why_len)
{
    struct vtest_transport *v = calloc(1, sizeof *v);
    if (!v) {
        snprintf(why, why_len, "vtest: out of memory");
        return NULL;
    }
    v->fd = -1;
    pthread_mutex_init(&v->lock, NULL);
    clock_gettime(CLOCK_MONOTONIC, &v->read_deadline);
    v->read_deadline.tv_sec += APIR_CONNECT_TIMEOUT_MS / 1000;
    v->read_deadline.tv_nsec += (APIR_CONNECT_TIMEOUT_MS % 1000) * 1000000L;
    if (v->read_deadline.tv_nsec >= 1000000000L) {
        v->read_deadline.tv_sec++;
        v->read_deadline.tv_nsec -= 1000000000L;
    }
    v->base = (struct apir_transport){.ops = &vtest_ops, .name = "vtest", .capset_id = capset_id, .kept_blobs = true,
                                      .host_futex_wake = true};
    v->timeout_ns = APIR_CONNECT_TIMEOUT_MS * 1000000ull;
    if (do_connect(v, socket_path, why, why_len) != 0 || do_init(v, capset_id, why, why_len) != 0 ||
        attach_ring(v, why, why_len) != 0) {
        if (v->fd >= 0)
            close(v->fd);
        pthread_mutex_destroy(&v->lock);
        free(v);
        return NULL;
    }
    return &v->base;
}
