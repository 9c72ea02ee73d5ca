/* apir-server: options, limits, signals; then the listener (server_listener.c). */
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
            "  APIR_LLAMA_CPP_LOG_TO_FILE        log the GGML backend library to this file\n"
            "  VIRGL_APIR_STATS                  1: log each context's command and compute times at\n"
            "                                    its end; N: also every N graph computes\n"
            "\n"
            "Each guest connection is served by a worker process of its own, sandboxed once its\n"
            "libraries are loaded. Per-guest limits (0: none; docs/configuration.md):\n"
            "  VIRGL_APIR_MAX_BUFFER_BYTES        bytes of backend buffers (default: 3/4 of RAM)\n"
            "  VIRGL_APIR_MAX_HANDLES             host objects (default %s)\n"
            "  VIRGL_APIR_MAX_BLOBS               shared-memory blobs (default %s)\n"
            "  VIRGL_APIR_MAX_BLOB_BYTES          their total bytes (default %s)\n"
            "  VIRGL_APIR_MAX_CONNECTIONS_PER_UID connections per peer uid (default %s)\n"
            "  VIRGL_APIR_IDLE_TIMEOUT            seconds a guest may stay idle (default %s)\n"
            "  VIRGL_APIR_COMMAND_TIMEOUT         seconds one command may run (default %s)\n"
            "  VIRGL_APIR_SECCOMP                 auto, on or off: the worker's seccomp filter\n"
            "                                     (default auto: for the CPU backend)\n",
            APIR_DEFAULT_SOCKET_PATH, (unsigned long long)SERVER_DEFAULT_MAX_BLOB_SIZE, APIR_DEFAULT_LIMIT_HANDLES,
            APIR_DEFAULT_LIMIT_BLOBS, APIR_DEFAULT_LIMIT_BLOB_BYTES, APIR_DEFAULT_LIMIT_CONNECTIONS_PER_UID,
            APIR_DEFAULT_LIMIT_IDLE_SECONDS, APIR_DEFAULT_LIMIT_COMMAND_SECONDS);
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

int main(int argc, char **argv)
{
    struct server_options opts;
    int rc = parse_options(argc, argv, &opts);
    if (rc >= 0)
        return rc;

    if (apir_limits_from_env(&opts.limits) != 0) {
        fprintf(stderr, "apir-server: bad limit in the environment (see the log)\n");
        return 2;
    }

    /* signals arrive through a descriptor in the listener's loop; workers unblock them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    int lfd = sfd < 0 ? -1 : listen_socket(opts.socket_path);
    if (lfd < 0) {
        fprintf(stderr, "apir-server: cannot listen on %s (see the log)\n", opts.socket_path);
        if (sfd >= 0)
            close(sfd);
        return 1;
    }
    apir_component_log_always("server: listening on %s (a worker process per guest; limits: %llu connections per "
                              "uid, idle %llu s, command %llu s)",
                              opts.socket_path, (unsigned long long)opts.limits.connections_per_uid,
                              (unsigned long long)opts.limits.idle_seconds,
                              (unsigned long long)opts.limits.command_seconds);
    rc = listener_run(lfd, sfd, &opts);
    close(sfd);
    apir_component_log_always("server: stopped");
    return rc;
}
