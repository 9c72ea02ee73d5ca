/* A context run in a worker process, for a hypervisor (apir_remote_context_*, see
 * apir_component.h): the hypervisor's process keeps a socket and a pid; the worker, forked
 * here, holds the APIR context in worker mode (activity page, sandbox after LOADLIBRARY) and
 * maps each resource from the sealed memfd it is sent.
 *
 * Between the two, a stream socket carries messages: a header (op, res_id, size) and size
 * bytes of payload; ATTACH carries the memfd with SCM_RIGHTS. Messages are handled in order,
 * so nothing needs an answer: a DETACH followed by the hypervisor unmapping its own view is
 * safe, since the worker keeps its own mapping until it has handled the DETACH. Only CREATE
 * answers (one byte: did the context come up). */
#include "component_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
#define REMOTE_LEAK_CHECK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define REMOTE_LEAK_CHECK 1
#endif
#endif
#ifdef REMOTE_LEAK_CHECK
#include <sanitizer/lsan_interface.h>
#endif

#define REMOTE_MAX_SUBMIT (64u << 20) /* as apir-server's largest vtest message */
#define REMOTE_MAX_CONFIG 4096
#define REMOTE_STOP_GRACE_MS 5000
/* a worker answers CREATE before it loads anything; one that does not within this is stuck
 * (a lock another hypervisor thread held at fork), and the hypervisor's thread must not be */
#define REMOTE_START_TIMEOUT_S 10

enum remote_op { OP_CONFIGURE = 1, OP_ATTACH, OP_DETACH, OP_SUBMIT };

struct remote_hdr {
    uint32_t op;
    uint32_t res_id; /* CONFIGURE: 1 if a value follows the key */
    uint64_t size;   /* payload bytes; ATTACH: the resource's size, no payload */
};

struct apir_remote_context {
    uint32_t ctx_id;
    pid_t pid;
    int sock;
    struct apir_activity *activity;
    struct apir_config shadow; /* to answer configure's -1 without a round trip */
    int status;                /* waitpid status once reaped */
    bool reaped;
};

/* --- socket I/O, EINTR-safe, no SIGPIPE --- */

static int send_msg(int sock, const struct remote_hdr *h, const void *payload, int fd)
{
    struct iovec iov[2] = {{(void *)h, sizeof *h}, {(void *)payload, payload ? (size_t)h->size : 0}};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof u);
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = payload ? 2 : 1};
    if (fd >= 0) {
        m.msg_control = u.buf;
        m.msg_controllen = sizeof u.buf;
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    size_t total = sizeof *h + (payload ? (size_t)h->size : 0), sent = 0;
    while (sent < total) {
        ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        sent += (size_t)n;
        m.msg_control = NULL; /* the descriptor went with the first bytes */
        m.msg_controllen = 0;
        while (n > 0 && m.msg_iovlen) {
            size_t take = (size_t)n < m.msg_iov[0].iov_len ? (size_t)n : m.msg_iov[0].iov_len;
            m.msg_iov[0].iov_base = (char *)m.msg_iov[0].iov_base + take;
            m.msg_iov[0].iov_len -= take;
            n -= (ssize_t)take;
            if (m.msg_iov[0].iov_len == 0) {
                m.msg_iov++;
                m.msg_iovlen--;
            }
        }
    }
    return 0;
}

/* reads exactly size bytes; the first read may bring a descriptor (*fd, else -1). 1, 0 on
 * EOF before any byte, -1 on error */
static int recv_full(int sock, void *buf, size_t size, int *fd)
{
    size_t got = 0;
    if (fd)
        *fd = -1;
    while (got < size) {
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        struct iovec iov = {(char *)buf + got, size - got};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
        if (fd && got == 0) {
            m.msg_control = u.buf;
            m.msg_controllen = sizeof u.buf;
        }
        ssize_t n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 && got == 0 ? 0 : -1;
        if (fd && got == 0) {
            struct cmsghdr *c = CMSG_FIRSTHDR(&m);
            if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                memcpy(fd, CMSG_DATA(c), sizeof *fd);
        }
        got += (size_t)n;
    }
    return 1;
}

/* --- the worker --- */

struct mapping {
    uint32_t res_id;
    void *ptr;
    size_t size;
};

static void worker_attach(struct apir_context *ctx, struct mapping **maps, size_t *n, const struct remote_hdr *h,
                          int fd)
{
    int seals = fd >= 0 ? fcntl(fd, F_GET_SEALS) : -1;
    if (fd < 0 || seals < 0 || !(seals & F_SEAL_SHRINK) || h->size == 0 || h->size > SIZE_MAX) {
        apir_component_log("ctx %u: resource %u refused: not a memfd sealed against shrinking (seal it with "
                           "F_SEAL_SHRINK, or make it with apir_shared_memory_create)",
                           ctx->ctx_id, h->res_id);
        if (fd >= 0)
            close(fd);
        return;
    }
    struct stat st;
    void *ptr = MAP_FAILED;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size >= h->size)
        ptr = mmap(NULL, (size_t)h->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    struct mapping *grown = ptr == MAP_FAILED ? NULL : realloc(*maps, (*n + 1) * sizeof **maps);
    if (!grown || apir_context_attach_resource(ctx, h->res_id, ptr, (size_t)h->size) != 0) {
        apir_component_log("ctx %u: resource %u (%llu bytes) not attached", ctx->ctx_id, h->res_id,
                           (unsigned long long)h->size);
        if (ptr != MAP_FAILED)
            munmap(ptr, (size_t)h->size);
        if (grown)
            *maps = grown;
        return;
    }
    *maps = grown;
    (*maps)[(*n)++] = (struct mapping){h->res_id, ptr, (size_t)h->size};
}

static void worker_detach(struct apir_context *ctx, struct mapping *maps, size_t *n, uint32_t res_id)
{
    for (size_t i = 0; i < *n; i++) {
        if (maps[i].res_id == res_id) {
            apir_context_detach_resource(ctx, res_id);
            munmap(maps[i].ptr, maps[i].size);
            maps[i] = maps[--*n];
            return;
        }
    }
}

static void worker_configure(struct apir_context *ctx, const char *payload, size_t size, bool has_value)
{
    const char *key = payload, *end = payload + size;
    const char *nul = memchr(key, 0, size);
    const char *value = NULL;
    if (nul && has_value && nul + 1 < end && memchr(nul + 1, 0, (size_t)(end - nul - 1)))
        value = nul + 1;
    if (nul && (!has_value || value))
        apir_context_configure(ctx, key, value);
}

__attribute__((noreturn)) static void worker_serve(struct apir_context *ctx, int sock)
{
    struct mapping *maps = NULL;
    size_t n_maps = 0;
    char *buf = NULL;
    size_t cap = 0;
    for (;;) {
        struct remote_hdr h;
        int fd = -1;
        if (recv_full(sock, &h, sizeof h, &fd) != 1)
            break; /* the hypervisor destroyed the context, or went away */
        if (h.op == OP_ATTACH) {
            worker_attach(ctx, &maps, &n_maps, &h, fd);
            continue;
        }
        if (fd >= 0)
            close(fd);
        if (h.op == OP_DETACH) {
            worker_detach(ctx, maps, &n_maps, h.res_id);
            continue;
        }
        size_t limit = h.op == OP_SUBMIT ? REMOTE_MAX_SUBMIT : REMOTE_MAX_CONFIG;
        if ((h.op != OP_SUBMIT && h.op != OP_CONFIGURE) || h.size > limit) {
            apir_component_log("ctx %u: bad message from the host (op %u, %llu bytes)", ctx->ctx_id, h.op,
                               (unsigned long long)h.size);
            break;
        }
        if (h.size > cap) {
            char *p = realloc(buf, (size_t)h.size);
            if (!p)
                break;
            buf = p;
            cap = (size_t)h.size;
        }
        if (h.size && recv_full(sock, buf, (size_t)h.size, NULL) != 1)
            break;
        if (h.op == OP_SUBMIT) {
            apir_context_submit(ctx, buf, (size_t)h.size);
            if (ctx->activity) /* after the replies: a fence on it may signal now */
                atomic_fetch_add_explicit(&ctx->activity->submits_done, 1, memory_order_release);
        } else
            worker_configure(ctx, buf, (size_t)h.size, h.res_id == 1);
    }
    bool sandboxed = ctx->activity && atomic_load(&ctx->activity->sandboxed);
    apir_context_destroy(ctx);
    for (size_t i = 0; i < n_maps; i++)
        munmap(maps[i].ptr, maps[i].size);
    free(maps);
    free(buf);
    close(sock);
    /* _exit: the worker is a fork of the hypervisor, whose atexit handlers (a VMM's: restore
     * the terminal, remove a pid file) are not the worker's to run. The sanitizers' leak check
     * needs calls the filter refuses (see server_worker.c), so it runs only unsandboxed. */
#ifdef REMOTE_LEAK_CHECK
    if (!sandboxed)
        __lsan_do_leak_check();
#else
    (void)sandboxed;
#endif
    _exit(0);
}

/* closes every descriptor above stderr but keep[]: a worker holds nothing of the hypervisor's
 * (disk images, other guests' sockets) */
static void close_others(const int *keep, size_t n)
{
    int lo = 3;
    for (;;) {
        int next = INT_MAX;
        for (size_t i = 0; i < n; i++)
            if (keep[i] >= lo && keep[i] < next)
                next = keep[i];
        if (next > lo)
            syscall(SYS_close_range, (unsigned)lo, next == INT_MAX ? ~0u : (unsigned)next - 1, 0u);
        if (next == INT_MAX)
            return;
        lo = next + 1;
    }
}

__attribute__((noreturn)) static void worker_main(int sock, uint32_t ctx_id, uint32_t capset_id, struct apir_activity *activity)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    int keep[] = {sock, apir_component_log_fd()};
    close_others(keep, 2);
    struct apir_context *ctx = apir_context_create(ctx_id, capset_id);
    char up = ctx != NULL;
    struct remote_hdr ack = {.op = 0, .res_id = (uint32_t)up, .size = 0};
    if (send_msg(sock, &ack, NULL, -1) != 0 || !ctx) {
        apir_context_destroy(ctx);
        _exit(up ? 1 : 2);
    }
    apir_context_enter_worker_mode(ctx, activity);
    worker_serve(ctx, sock);
}

/* --- the hypervisor's side --- */

struct apir_remote_context *apir_remote_context_create(uint32_t ctx_id, uint32_t capset_id)
{
    struct apir_remote_context *r = calloc(1, sizeof *r);
    struct apir_activity *a = mmap(NULL, sizeof *a, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    int sv[2] = {-1, -1};
    if (!r || a == MAP_FAILED || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        apir_component_log("ctx %u: cannot set up a worker: %s", ctx_id, strerror(errno));
        goto fail;
    }
    atomic_store(&a->last_active_ns, apir_monotonic_ns());
    apir_component_log_fd(); /* opened before fork, so the worker logs to the same file */
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        free(r); /* the hypervisor's bookkeeping */
        worker_main(sv[1], ctx_id, capset_id, a);
    }
    close(sv[1]);
    sv[1] = -1;
    /* later workers must not inherit this one's page (and forge its activity) */
    madvise(a, sizeof *a, MADV_DONTFORK);
    if (pid < 0) {
        apir_component_log("ctx %u: cannot fork a worker: %s", ctx_id, strerror(errno));
        goto fail;
    }
    r->ctx_id = ctx_id;
    r->pid = pid;
    r->sock = sv[0];
    r->activity = a;
    apir_config_init_from_env(&r->shadow);
    struct remote_hdr ack;
    struct timeval tv = {.tv_sec = REMOTE_START_TIMEOUT_S};
    setsockopt(r->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int got = recv_full(r->sock, &ack, sizeof ack, NULL);
    if (got != 1 || ack.res_id != 1) {
        /* the worker logged why (a refused capset), or it is stuck: killed by the destroy */
        if (got != 1 && (errno == EAGAIN || errno == EWOULDBLOCK))
            apir_component_log("ctx %u: worker %d did not start within %d s: killed", ctx_id, (int)pid,
                               REMOTE_START_TIMEOUT_S);
        apir_remote_context_destroy(r);
        return NULL;
    }
    tv.tv_sec = 0; /* later reads block as long as the worker works */
    setsockopt(r->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return r;
fail:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (a != MAP_FAILED)
        munmap(a, sizeof *a);
    free(r);
    return NULL;
}

int apir_remote_context_configure(struct apir_remote_context *r, const char *key, const char *value)
{
    uint64_t n;
    enum apir_seccomp_mode m;
    if (!key || apir_config_set(&r->shadow, key, value) != 0 ||
        (value && strncmp(key, "apir.limit.", 11) == 0 && !apir_limit_parse(value, &n)) ||
        (value && strcmp(key, APIR_KEY_SANDBOX_SECCOMP) == 0 && !apir_seccomp_parse(value, &m))) {
        apir_component_log("ctx %u: configure: bad key or value (%s)", r->ctx_id, key ? key : "(null)");
        return -1;
    }
    size_t klen = strlen(key) + 1, vlen = value ? strlen(value) + 1 : 0;
    if (klen + vlen > REMOTE_MAX_CONFIG)
        return -1;
    char payload[REMOTE_MAX_CONFIG];
    memcpy(payload, key, klen);
    if (value)
        memcpy(payload + klen, value, vlen);
    struct remote_hdr h = {OP_CONFIGURE, value != NULL, klen + vlen};
    return send_msg(r->sock, &h, payload, -1);
}

int apir_remote_context_attach_resource(struct apir_remote_context *r, uint32_t res_id, int memfd, size_t size)
{
    int seals = fcntl(memfd, F_GET_SEALS);
    if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
        apir_component_log("ctx %u: resource %u refused: the descriptor is not a memfd sealed against shrinking "
                           "(apir_shared_memory_create makes one)",
                           r->ctx_id, res_id);
        return -1;
    }
    struct remote_hdr h = {OP_ATTACH, res_id, size};
    return send_msg(r->sock, &h, NULL, memfd);
}

void apir_remote_context_detach_resource(struct apir_remote_context *r, uint32_t res_id)
{
    struct remote_hdr h = {OP_DETACH, res_id, 0};
    send_msg(r->sock, &h, NULL, -1);
}

int apir_remote_context_submit(struct apir_remote_context *r, const void *cmd, size_t size)
{
    if (size > REMOTE_MAX_SUBMIT) {
        apir_component_log("ctx %u: command buffer of %zu bytes refused (max %u)", r->ctx_id, size,
                           REMOTE_MAX_SUBMIT);
        return -1;
    }
    struct remote_hdr h = {OP_SUBMIT, 0, size};
    return send_msg(r->sock, &h, cmd, -1);
}

pid_t apir_remote_context_pid(const struct apir_remote_context *r) { return r->pid; }

const struct apir_activity *apir_remote_context_activity(const struct apir_remote_context *r)
{
    return r->activity;
}

static void log_worker_end(const struct apir_remote_context *r)
{
    char last[96] = "none";
    if (atomic_load(&r->activity->since_ns))
        apir_command_describe(atomic_load(&r->activity->type), atomic_load(&r->activity->forward_index), last,
                              sizeof last);
    if (WIFSIGNALED(r->status))
        apir_component_log_always("ctx %u: worker %d killed by signal %d (%s)%s; last command %s", r->ctx_id,
                                  (int)r->pid, WTERMSIG(r->status), strsignal(WTERMSIG(r->status)),
                                  atomic_load(&r->activity->busy) ? " while running it" : "", last);
    else if (WEXITSTATUS(r->status) != 0)
        apir_component_log_always("ctx %u: worker %d exited with status %d; last command %s", r->ctx_id,
                                  (int)r->pid, WEXITSTATUS(r->status), last);
}

int apir_remote_context_poll(struct apir_remote_context *r, int *status)
{
    if (!r->reaped) {
        pid_t p = waitpid(r->pid, &r->status, WNOHANG);
        if (p == r->pid) {
            r->reaped = true;
            log_worker_end(r);
        }
    }
    if (r->reaped && status)
        *status = r->status;
    return r->reaped;
}

void apir_remote_context_destroy(struct apir_remote_context *r)
{
    if (!r)
        return;
    /* EOF tells the worker to free its context and exit */
    shutdown(r->sock, SHUT_RDWR);
    close(r->sock);
    uint64_t deadline = apir_monotonic_ns() + REMOTE_STOP_GRACE_MS * 1000000ull;
    while (!apir_remote_context_poll(r, NULL) && apir_monotonic_ns() < deadline) {
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    if (!r->reaped) {
        kill(r->pid, SIGKILL);
        if (waitpid(r->pid, &r->status, 0) == r->pid) {
            r->reaped = true;
            log_worker_end(r);
        }
    }
    munmap(r->activity, sizeof *r->activity);
    apir_config_free(&r->shadow);
    free(r);
}
