/* apir-server: options, the accept loop, and clean shutdown on SIGINT/SIGTERM. */
#include "server.h"

#include "apir_component.h"
#include "apir_protocol.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define SERVER_VERSION "0.1.0"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: apir-server [OPTIONS]\n"
            "Serves the APIR component (ggml API remoting) over virglrenderer's vtest protocol\n"
            "(version 3) on a UNIX socket, so that guests on this host (containers, tests) can\n"
            "use this host's ggml backend through libggml-virtgpu.so.\n"
            "\n"
            "Options:\n"
            "  --socket-path PATH     listen on PATH (default %s; guests find it through\n"
            "                         GGML_VIRTGPU_SOCKET or VTEST_SOCKET_NAME)\n"
            "  --max-blob-size BYTES  largest shared-memory blob a guest may create\n"
            "                         (default %llu)\n"
            "  --help                 show this help and exit\n"
            "  --version              show the version and exit\n"
            "\n"
            "Environment:\n"
            "  VIRGL_APIR_BACKEND_LIBRARY        backend library to load (key apir.load_library.path),\n"
            "                                    e.g. /path/to/libggml-virtgpu-backend.so (required)\n"
            "  APIR_LLAMA_CPP_GGML_LIBRARY_PATH  GGML backend library the backend runs (key\n"
            "                                    ggml.library.path), e.g. libggml-cpu-*.so (required)\n"
            "  APIR_LLAMA_CPP_GGML_LIBRARY_REG   its registration function (key ggml.library.reg,\n"
            "                                    default ggml_backend_init)\n"
            "  VIRGL_ROUTE_VENUS_TO_APIR         set: accept Venus (capset 4) contexts as APIR\n"
            "  VIRGL_APIR_LOG_TO_FILE            log the APIR component to this file (default stderr)\n"
            "  APIR_LLAMA_CPP_LOG_TO_FILE        log the GGML backend library to this file\n",
            APIR_DEFAULT_SOCKET_PATH, (unsigned long long)SERVER_DEFAULT_MAX_BLOB_SIZE);
}

static int parse_options(int argc, char **argv, struct server_options *o)
{
    static const struct option longopts[] = {
        {"socket-path", required_argument, NULL, 's'},
        {"max-blob-size", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'v'},
        {NULL, 0, NULL, 0},
    };
    o->socket_path = APIR_DEFAULT_SOCKET_PATH;
    o->max_blob_size = SERVER_DEFAULT_MAX_BLOB_SIZE;
    int opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            o->socket_path = optarg;
            break;
        case 'b': {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 0);
            if (errno || *end || v == 0) {
                fprintf(stderr, "apir-server: bad --max-blob-size '%s'\n", optarg);
                return 2;
            }
            o->max_blob_size = v;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        case 'v':
            printf("apir-server %s (APIR protocol %d.%d, vtest protocol 3)\n", SERVER_VERSION, APIR_PROTOCOL_MAJOR,
                   APIR_PROTOCOL_MINOR);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "apir-server: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    return -1;
}

static struct client *clients;
static size_t clients_count;
static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;

static void reap(bool all)
{
    pthread_mutex_lock(&clients_lock);
    struct client **pp = &clients;
    while (*pp) {
        struct client *c = *pp;
        if (all && !atomic_load(&c->done))
            shutdown(c->fd, SHUT_RDWR); /* wakes its thread out of recv() */
        if (all || atomic_load(&c->done)) {
            pthread_join(c->thread, NULL);
            close(c->fd);
            *pp = c->next;
            clients_count--;
            free(c);
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&clients_lock);
}

static void accept_client(int lfd, const struct server_options *o)
{
    static unsigned next_id = 1;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    pthread_mutex_lock(&clients_lock);
    size_t live = clients_count;
    pthread_mutex_unlock(&clients_lock);
    if (live >= SERVER_MAX_CLIENTS) {
        apir_component_log("server: %zu clients already connected: refusing a new one", live);
        close(fd);
        return;
    }
    struct client *c = calloc(1, sizeof *c);
    if (!c) {
        apir_component_log("server: out of memory for a new client");
        close(fd);
        return;
    }
    c->fd = fd;
    c->id = next_id++;
    c->opts = o;
    atomic_init(&c->done, false);
    if (pthread_create(&c->thread, NULL, client_thread, c) != 0) {
        apir_component_log("server: cannot start a thread for client %u", c->id);
        close(fd);
        free(c);
        return;
    }
    apir_component_log("server: client %u connected", c->id);
    pthread_mutex_lock(&clients_lock);
    c->next = clients;
    clients = c;
    clients_count++;
    pthread_mutex_unlock(&clients_lock);
}

int main(int argc, char **argv)
{
    struct server_options opts;
    int rc = parse_options(argc, argv, &opts);
    if (rc >= 0)
        return rc;

    /* signals arrive through a descriptor in the accept loop; threads inherit the mask */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    int lfd = sfd < 0 ? -1 : listen_socket(opts.socket_path);
    if (lfd < 0) {
        fprintf(stderr, "apir-server: cannot listen on %s (see the log)\n", opts.socket_path);
        if (sfd >= 0)
            close(sfd);
        return 1;
    }
    apir_component_log("server: listening on %s", opts.socket_path);

    for (;;) {
        struct pollfd pfd[2] = {{.fd = lfd, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};
        int n = poll(pfd, 2, 1000);
        if (n < 0 && errno != EINTR)
            break;
        if (pfd[1].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
                apir_component_log("server: signal %u, shutting down", si.ssi_signo);
            break;
        }
        if (pfd[0].revents & POLLIN)
            accept_client(lfd, &opts);
        reap(false);
    }
    close(lfd);
    unlink(opts.socket_path);
    reap(true);
    close(sfd);
    apir_component_log("server: stopped");
    return 0;
}
