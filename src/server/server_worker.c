/* A worker: the process that serves one guest connection. Forked by the listener; owns the
 * connection's descriptor, its APIR context and everything the backend creates for it. If it
 * dies (a ggml assertion, a signal, the listener's watchdog) only this guest loses its device:
 * the listener holds no copy of the connection, so the guest sees EOF at once. */
#include "server.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t conn_fd = -1;

/* SIGTERM (the listener stopping): end the connection; the serving loop then sees EOF after
 * the command in progress and frees the context as on any disconnect */
static void on_term(int sig)
{
    (void)sig;
    if (conn_fd >= 0)
        shutdown(conn_fd, SHUT_RDWR);
}

void worker_run(int fd, unsigned id, struct apir_activity *activity, const struct server_options *o,
                const int *close_fds, size_t n_close_fds)
{
    for (size_t i = 0; i < n_close_fds; i++)
        close(close_fds[i]);
    /* a worker must not outlive its supervisor (nobody would watch it) */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        _exit(0);
    conn_fd = fd;
    struct sigaction sa = {.sa_handler = on_term};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGCHLD, SIG_DFL);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL); /* the listener blocks them for its signalfd */

    struct client c = {.fd = fd, .id = id, .opts = o, .activity = activity};
    client_serve(&c);
    bool sandboxed = activity && atomic_load(&activity->sandboxed);
    close(fd);
    /* A sandboxed worker skips atexit handlers: the sanitizers' leak check at exit needs
     * system calls the filter refuses (ptrace, /proc), and would report that as an error.
     * Everything the guest created has been freed by client_serve either way. */
    if (sandboxed)
        _exit(0);
    exit(0);
}
