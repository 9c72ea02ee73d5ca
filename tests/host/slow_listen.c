/* LD_PRELOAD shim for test_server_cli.sh: listen() waits 300 ms before it listens, so that
 * the moment between a socket's bind and its listen, microseconds in a real start, is long
 * enough for a guest to meet it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <sys/socket.h>
#include <unistd.h>

int listen(int fd, int backlog)
{
    int (*real_listen)(int, int) = (int (*)(int, int))dlsym(RTLD_NEXT, "listen");
    usleep(300 * 1000);
    return real_listen(fd, backlog);
}
