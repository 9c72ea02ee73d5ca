/* The listener: accepts guest connections, forks a worker for each, and supervises them. It
 * is single-threaded (so fork is safe), never loads a backend or GGML library and never reads
 * a guest's messages. It enforces the per-uid connection limit at accept, kills workers whose
 * one command runs too long or that sit idle too long, and logs how each worker ended: exit
 * status or signal, and the command it was running (from the activity page it shares with
 * the worker, set up before fork). */
#include "server.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define WATCHDOG_PERIOD_MS 200

struct worker {
    pid_t pid;
    unsigned id;
    uid_t uid;
    struct apir_activity *activity; /* MAP_SHARED with this worker alone */
    uint64_t started_ns;
    const char *killed_for; /* the watchdog's reason, NULL if it did not kill it */
    struct worker *next;
};

static struct worker *workers;
static size_t workers_count;

static size_t count_uid(uid_t uid)
{
    size_t n = 0;
    for (struct worker *w = workers; w; w = w->next)
        n += w->uid == uid;
    return n;
}

static void log_end(const struct worker *w, int status)
{
    char last[96] = "none";
    struct apir_activity *a = w->activity;
    uint64_t now = apir_monotonic_ns();
    bool busy = atomic_load(&a->busy);
    uint64_t since = atomic_load(&a->since_ns);
    if (since)
        apir_command_describe(atomic_load(&a->type), atomic_load(&a->forward_index), last, sizeof last);
    double life = (double)(now - w->started_ns) / 1e9;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        apir_component_log("client %u: worker %d ended (exit 0) after %.1f s; last command %s", w->id, (int)w->pid,
                           life, last);
        return;
    }
    char how[96];
    if (WIFSIGNALED(status))
        snprintf(how, sizeof how, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
    char running[64] = "";
    if (busy && since)
        snprintf(running, sizeof running, " (running for %.3f s)", (double)(now - since) / 1e9);
    apir_component_log_always("client %u: worker %d (uid %u) %s after %.1f s%s%s; last command %s%s; its guest "
                              "sees the device lost, other guests are not affected",
                              w->id, (int)w->pid, (unsigned)w->uid, how, life, w->killed_for ? ": " : "",
                              w->killed_for ? w->killed_for : "", last, running);
}

/* reaps one ended worker (waitpid flags: WNOHANG or 0); false if none */
static bool reap_one(int flags)
{
    int status;
    pid_t pid = waitpid(-1, &status, flags);
    if (pid <= 0)
        return pid < 0 && errno == EINTR;
    for (struct worker **pp = &workers; *pp; pp = &(*pp)->next) {
        struct worker *w = *pp;
        if (w->pid != pid)
            continue;
        log_end(w, status);
        munmap(w->activity, sizeof *w->activity);
        *pp = w->next;
        workers_count--;
        free(w);
        break;
    }
    return true;
}

static void reap(void)
{
    while (reap_one(WNOHANG))
        ;
}

static void watchdog(const struct apir_limits *lim)
{
    uint64_t now = apir_monotonic_ns();
    for (struct worker *w = workers; w; w = w->next) {
        if (w->killed_for)
            continue;
        struct apir_activity *a = w->activity;
        if (atomic_load_explicit(&a->busy, memory_order_acquire)) {
            uint64_t since = atomic_load(&a->since_ns);
            if (lim->command_seconds && since && now > since && now - since > lim->command_seconds * 1000000000ull)
                w->killed_for = "one command ran longer than " APIR_ENV_LIMIT_COMMAND_SECONDS " (key "
                                APIR_KEY_LIMIT_COMMAND_SECONDS ") allows";
        } else {
            uint64_t last = atomic_load(&a->last_active_ns);
            if (lim->idle_seconds && now > last && now - last > lim->idle_seconds * 1000000000ull)
                w->killed_for = "the guest was idle longer than " APIR_ENV_LIMIT_IDLE_SECONDS " (key "
                                APIR_KEY_LIMIT_IDLE_SECONDS ") allows";
        }
        if (w->killed_for)
            kill(w->pid, SIGKILL);
    }
}

static void accept_client(int lfd, int sfd, const struct server_options *o)
{
    static unsigned next_id = 1;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    unsigned id = next_id++;
    struct ucred cred = {.uid = (uid_t)-1};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        apir_component_log("client %u: cannot read its credentials (SO_PEERCRED): %s; refused", id, strerror(errno));
        close(fd);
        return;
    }
    if (workers_count >= SERVER_MAX_CLIENTS) {
        apir_component_log("client %u: %zu clients already connected: refused", id, workers_count);
        close(fd);
        return;
    }
    size_t same = count_uid(cred.uid);
    if (o->limits.connections_per_uid && same >= o->limits.connections_per_uid) {
        apir_component_log("client %u: uid %u already has %zu connections (limit %s=%llu, key %s): refused", id,
                           (unsigned)cred.uid, same, APIR_ENV_LIMIT_CONNECTIONS_PER_UID,
                           (unsigned long long)o->limits.connections_per_uid, APIR_KEY_LIMIT_CONNECTIONS_PER_UID);
        close(fd);
        return;
    }
    struct worker *w = calloc(1, sizeof *w);
    struct apir_activity *a = mmap(NULL, sizeof *a, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!w || a == MAP_FAILED) {
        apir_component_log("client %u: out of memory for its worker: refused", id);
        free(w);
        if (a != MAP_FAILED)
            munmap(a, sizeof *a);
        close(fd);
        return;
    }
    w->id = id;
    w->uid = cred.uid;
    w->activity = a;
    w->started_ns = apir_monotonic_ns();
    atomic_store(&a->last_active_ns, w->started_ns);
    pid_t pid = fork();
    if (pid == 0) {
        /* the worker may only see its own activity page, and keeps none of the listener's
         * bookkeeping */
        while (workers) {
            struct worker *o2 = workers;
            workers = o2->next;
            munmap(o2->activity, sizeof *o2->activity);
            free(o2);
        }
        free(w);
        int close_fds[] = {lfd, sfd};
        worker_run(fd, id, a, o, close_fds, 2);
    }
    /* the worker owns the connection now: without our copy, its death is the guest's EOF */
    close(fd);
    if (pid < 0) {
        apir_component_log("client %u: cannot fork its worker: %s; refused", id, strerror(errno));
        munmap(a, sizeof *a);
        free(w);
        return;
    }
    w->pid = pid;
    w->next = workers;
    workers = w;
    workers_count++;
    apir_component_log("client %u: connected (uid %u), worker %d", id, (unsigned)cred.uid, (int)pid);
}

/* SIGTERM to every worker, SIGKILL to those still there after the grace period */
static void stop_workers(int sfd)
{
    for (struct worker *w = workers; w; w = w->next)
        kill(w->pid, SIGTERM);
    uint64_t deadline = apir_monotonic_ns() + SERVER_STOP_GRACE_MS * 1000000ull;
    while (workers && apir_monotonic_ns() < deadline) {
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        if (poll(&p, 1, 100) > 0) {
            struct signalfd_siginfo si;
            (void)!read(sfd, &si, sizeof si);
        }
        reap();
    }
    for (struct worker *w = workers; w; w = w->next) {
        w->killed_for = "it did not stop within the listener's grace period";
        kill(w->pid, SIGKILL);
    }
    while (workers && reap_one(0))
        ;
}

int listener_run(int lfd, int sfd, const struct server_options *o)
{
    for (;;) {
        struct pollfd pfd[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        int n = poll(pfd, 2, WATCHDOG_PERIOD_MS);
        if (n < 0 && errno != EINTR)
            break;
        bool stop = false;
        if (pfd[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
                if (si.ssi_signo == SIGINT || si.ssi_signo == SIGTERM) {
                    apir_component_log_always("server: signal %u, shutting down", si.ssi_signo);
                    stop = true;
                }
            }
        }
        reap();
        if (stop)
            break;
        if (pfd[0].revents & POLLIN)
            accept_client(lfd, sfd, o);
        watchdog(&o->limits);
    }
    close(lfd);
    unlink(o->socket_path);
    stop_workers(sfd);
    return 0;
}
