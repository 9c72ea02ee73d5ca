#include "vtest_raw.h"

#include "apir_protocol.h"
#include "vtest_ring.h"
#include "vtest_wire.h"

#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "vtest_raw: %s: %s\n", what, strerror(errno));
    exit(1);
}

const char *raw_socket_from_env(void)
{
    const char *s = getenv("GGML_VIRTGPU_SOCKET");
    if (!s) {
        fprintf(stderr, "GGML_VIRTGPU_SOCKET is not set: run me through tests/lib/with-server.sh\n");
        exit(2);
    }
    return s;
}

int raw_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die("connect");
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

void raw_send(int fd, const void *buf, size_t size)
{
    while (size) {
        ssize_t n = send(fd, buf, size, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        buf = (const char *)buf + n;
        size -= (size_t)n;
    }
}

void raw_cmd(int fd, uint32_t id, uint32_t len, const uint32_t *data, uint32_t words)
{
    uint32_t hdr[2] = {len, id};
    raw_send(fd, hdr, sizeof hdr);
    if (words)
        raw_send(fd, data, words * 4u);
}

static bool read_exact(int fd, void *buf, size_t size)
{
    while (size) {
        ssize_t n = recv(fd, buf, size, 0);
        if (n <= 0)
            return false;
        buf = (char *)buf + n;
        size -= (size_t)n;
    }
    return true;
}

bool raw_closed(int fd)
{
    char c;
    for (;;) {
        ssize_t n = recv(fd, &c, 1, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false; /* timeout: still open */
        /* a stray reply byte: keep draining */
    }
}

bool raw_ping(int fd)
{
    raw_cmd(fd, VTEST_CMD_PING_PROTOCOL_VERSION, 0, NULL, 0);
    uint32_t hdr[2];
    return read_exact(fd, hdr, sizeof hdr) && hdr[0] == 0 && hdr[1] == VTEST_CMD_PING_PROTOCOL_VERSION;
}

void raw_init(int fd, uint32_t capset)
{
    char name[8] = "test";
    uint32_t hdr[2] = {sizeof name, VTEST_CMD_CREATE_RENDERER};
    raw_send(fd, hdr, sizeof hdr);
    raw_send(fd, name, sizeof name);
    uint32_t v = 3;
    raw_cmd(fd, VTEST_CMD_PROTOCOL_VERSION, 1, &v, 1);
    uint32_t r[3];
    if (!read_exact(fd, r, sizeof r) || r[2] != 3)
        die("protocol version");
    raw_cmd(fd, VTEST_CMD_CONTEXT_INIT, 1, &capset, 1);
}

static int recv_fd(int fd)
{
    char dummy;
    struct iovec iov = {&dummy, 1};
    char ctl[CMSG_SPACE(sizeof(int))];
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    if (recvmsg(fd, &m, 0) != 1)
        return -1;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    if (!c || c->cmsg_type != SCM_RIGHTS)
        return -1;
    int out;
    memcpy(&out, CMSG_DATA(c), sizeof out);
    return out;
}

uint32_t raw_blob(int fd, uint64_t size, void **ptr)
{
    int mfd = -1;
    uint32_t res = raw_blob_fd(fd, size, ptr, &mfd);
    if (mfd >= 0)
        close(mfd);
    return res;
}

uint32_t raw_blob_fd(int fd, uint64_t size, void **ptr, int *out_fd)
{
    uint32_t req[6] = {VTEST_BLOB_TYPE_HOST3D, VTEST_BLOB_FLAG_MAPPABLE, (uint32_t)size, (uint32_t)(size >> 32), 0, 0};
    raw_cmd(fd, VTEST_CMD_RESOURCE_CREATE_BLOB, 6, req, 6);
    uint32_t r[3];
    if (!read_exact(fd, r, sizeof r) || r[0] != 1 || r[1] != VTEST_CMD_RESOURCE_CREATE_BLOB)
        return 0;
    if (r[2] == 0)
        return 0;
    int mfd = recv_fd(fd);
    if (mfd < 0)
        return 0;
    *ptr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    if (*ptr == MAP_FAILED) {
        close(mfd);
        return 0;
    }
    *out_fd = mfd;
    return r[2];
}

void raw_submit(int fd, const void *cmd, size_t size)
{
    uint32_t pad = (uint32_t)((4 - size % 4) % 4);
    uint32_t words = (uint32_t)((size + pad) / 4);
    uint32_t head[9] = {1, pad << VTEST_SUBMIT_FLAG_APIR_PAD_SHIFT, 9, words, 0, 0, 0, 0, 0};
    uint32_t hdr[2] = {9 + words, VTEST_CMD_SUBMIT_CMD2};
    raw_send(fd, hdr, sizeof hdr);
    raw_send(fd, head, sizeof head);
    raw_send(fd, cmd, size);
    static const char zero[4];
    raw_send(fd, zero, pad);
}

size_t raw_handshake_cmd(void *buf, uint32_t cmd_offset, uint32_t reply_res)
{
    struct {
        struct apir_command_header h;
        uint32_t v[2];
    } cmd = {{(int32_t)(APIR_COMMAND_TYPE_HANDSHAKE + cmd_offset), 0, reply_res}, {APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR}};
    memcpy(buf, &cmd, sizeof cmd);
    return sizeof cmd;
}

int raw_wait_reply(void *reply_page)
{
    _Atomic uint32_t *word = reply_page;
    for (int i = 0; i < 5000; i++) {
        uint32_t w = atomic_load(word);
        if (w)
            return (int)(w - 1);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

int raw_handshake(int fd, uint32_t cmd_offset, uint32_t reply_res, void *reply_page)
{
    atomic_store((_Atomic uint32_t *)reply_page, 0);
    uint8_t cmd[RAW_HANDSHAKE_BYTES];
    raw_submit(fd, cmd, raw_handshake_cmd(cmd, cmd_offset, reply_res));
    return raw_wait_reply(reply_page);
}

int raw_ring_attach(int fd, uint32_t res_id)
{
    raw_cmd(fd, VTEST_CMD_APIR_RING_ATTACH, VTEST_RING_ATTACH_WORDS, &res_id, 1);
    uint32_t hdr[2], ok;
    if (!read_exact(fd, hdr, sizeof hdr) || hdr[0] != 1 || hdr[1] != VTEST_CMD_APIR_RING_ATTACH ||
        !read_exact(fd, &ok, sizeof ok))
        return -1;
    return (int)ok;
}

void raw_kick(int fd)
{
    uint32_t none = 0;
    raw_cmd(fd, VTEST_CMD_SUBMIT_CMD2, 1, &none, 1);
}

bool raw_good_client(const char *path, uint32_t capset)
{
    int fd = raw_connect(path);
    raw_init(fd, capset);
    void *page = NULL;
    uint32_t res = raw_blob(fd, 4096, &page);
    bool ok = res != 0 &&
              raw_handshake(fd, capset == APIR_CAPSET_ID_VENUS ? APIR_VENUS_CMD_OFFSET : 0, res, page) ==
                  APIR_HANDSHAKE_MAGIC;
    if (page && page != MAP_FAILED)
        munmap(page, 4096);
    close(fd);
    return ok;
}
