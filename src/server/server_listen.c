/* The listening socket. A socket file left by a dead server is removed; one that something
 * still listens on, or a path that is not a socket, is left alone. */
#include "server.h"

#include "apir_component.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int make_addr(const char *path, struct sockaddr_un *addr)
{
    memset(addr, 0, sizeof *addr);
    addr->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr->sun_path) {
        apir_component_log("server: socket path too long (max %zu bytes): %s", sizeof addr->sun_path - 1, path);
        return -1;
    }
    strcpy(addr->sun_path, path);
    return 0;
}

static int remove_stale(const char *path, const struct sockaddr_un *addr)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        apir_component_log("server: %s exists and is not a socket: not touching it", path);
        return -1;
    }
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (probe < 0)
        return -1;
    int rc = connect(probe, (const struct sockaddr *)addr, sizeof *addr);
    int err = errno;
    close(probe);
    if (rc == 0) {
        apir_component_log("server: another server is listening on %s", path);
        return -1;
    }
    if (err != ECONNREFUSED) {
        apir_component_log("server: cannot probe %s: %s", path, strerror(err));
        return -1;
    }
    apir_component_log("server: removing stale socket %s", path);
    unlink(path);
    return 0;
}

int listen_socket(const char *path)
{
    struct sockaddr_un addr;
    if (make_addr(path, &addr) != 0 || remove_stale(path, &addr) != 0)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        apir_component_log("server: socket: %s", strerror(errno));
        return -1;
    }
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 64) != 0) {
        apir_component_log("server: cannot listen on %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}
