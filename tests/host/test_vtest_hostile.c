/* Hostile vtest input against a real apir-server (run under tests/lib/with-server.sh): each
 * attack is logged and disconnects (or is refused), and the server keeps serving the next,
 * well-behaved client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "apir_protocol.h"
#include "transport.h"
#include "vtest_raw.h"
#include "vtest_wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static const char *sock;

static void still_serving(void) { assert_true(raw_good_client(sock, APIR_CAPSET_ID_APIR)); }

static int fresh(void)
{
    int fd = raw_connect(sock);
    raw_init(fd, APIR_CAPSET_ID_APIR);
    return fd;
}

static void expect_disconnect(int fd)
{
    assert_true(raw_closed(fd));
    close(fd);
    still_serving();
}

static void test_good_client(void **state) { still_serving(); }

static void test_garbage_lengths(void **state)
{
    int fd = raw_connect(sock);
    raw_cmd(fd, VTEST_CMD_SUBMIT_CMD2, 0xffffffffu, NULL, 0);
    expect_disconnect(fd);
    fd = raw_connect(sock);
    raw_cmd(fd, VTEST_CMD_CREATE_RENDERER, 1u << 20, NULL, 0); /* 1 MiB "name" */
    expect_disconnect(fd);
    fd = raw_connect(sock);
    raw_cmd(fd, VTEST_CMD_PROTOCOL_VERSION, 7, NULL, 0); /* wrong fixed size */
    expect_disconnect(fd);
    fd = raw_connect(sock);
    uint8_t junk[64];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    raw_send(fd, junk, sizeof junk);
    expect_disconnect(fd);
}

static void test_unknown_commands(void **state)
{
    int fd = raw_connect(sock);
    raw_cmd(fd, 9999, 0, NULL, 0);
    expect_disconnect(fd);
    fd = raw_connect(sock);
    raw_cmd(fd, 1 /* GET_CAPS (v1, not served) */, 0, NULL, 0);
    expect_disconnect(fd);
}

static void test_truncated_message(void **state)
{
    int fd = fresh();
    uint32_t hdr[2] = {100, VTEST_CMD_SUBMIT_CMD2};
    uint32_t part[10] = {1};
    raw_send(fd, hdr, sizeof hdr);
    raw_send(fd, part, sizeof part);
    close(fd); /* mid-message */
    still_serving();
}

static void test_state_violations(void **state)
{
    /* resources and submits need a context */
    int fd = raw_connect(sock);
    uint32_t blob[6] = {VTEST_BLOB_TYPE_HOST3D, VTEST_BLOB_FLAG_MAPPABLE, 4096, 0, 0, 0};
    raw_cmd(fd, VTEST_CMD_RESOURCE_CREATE_BLOB, 6, blob, 6);
    expect_disconnect(fd);
    fd = raw_connect(sock);
    uint32_t sub[1] = {0};
    raw_cmd(fd, VTEST_CMD_SUBMIT_CMD2, 1, sub, 1);
    expect_disconnect(fd);
    /* a second CONTEXT_INIT, an unknown capset */
    fd = fresh();
    uint32_t capset = APIR_CAPSET_ID_APIR;
    raw_cmd(fd, VTEST_CMD_CONTEXT_INIT, 1, &capset, 1);
    expect_disconnect(fd);
    fd = raw_connect(sock);
    raw_init(fd, 99);
    expect_disconnect(fd);
    /* unsupported blob type / flags */
    fd = fresh();
    blob[0] = VTEST_BLOB_TYPE_GUEST;
    raw_cmd(fd, VTEST_CMD_RESOURCE_CREATE_BLOB, 6, blob, 6);
    expect_disconnect(fd);
    fd = fresh();
    blob[0] = VTEST_BLOB_TYPE_HOST3D;
    blob[1] = 0x80000000u;
    raw_cmd(fd, VTEST_CMD_RESOURCE_CREATE_BLOB, 6, blob, 6);
    expect_disconnect(fd);
}

static void test_absurd_blobs(void **state)
{
    int fd = fresh();
    void *p = NULL;
    assert_int_equal(raw_blob(fd, 1ull << 63, &p), 0);
    assert_int_equal(raw_blob(fd, 0, &p), 0);
    assert_int_equal(raw_blob(fd, ~0ull, &p), 0);
    assert_int_equal(raw_blob(fd, 1ull << 44, &p), 0); /* 16 TiB: over the limit */
    /* refused blobs do not cost the connection: a real one still works */
    uint32_t res = raw_blob(fd, 8192, &p);
    assert_int_not_equal(res, 0);
    assert_int_equal(raw_handshake(fd, 0, res, p), APIR_HANDSHAKE_MAGIC);
    /* unref of an unknown resource is logged, not fatal; a real unref works */
    uint32_t bogus = 12345;
    raw_cmd(fd, VTEST_CMD_RESOURCE_UNREF, 1, &bogus, 1);
    raw_cmd(fd, VTEST_CMD_RESOURCE_UNREF, 1, &res, 1);
    assert_true(raw_ping(fd));
    munmap(p, 8192);
    close(fd);
    still_serving();
}

static void bad_batch(const uint32_t batch[8], uint32_t total_words)
{
    int fd = fresh();
    uint32_t *msg = calloc(total_words, 4);
    msg[0] = 1;
    memcpy(&msg[1], batch, 8 * 4);
    raw_cmd(fd, VTEST_CMD_SUBMIT_CMD2, total_words, msg, total_words);
    free(msg);
    expect_disconnect(fd);
}

static void test_bad_batches(void **state)
{
    /* flags, cmd_offset, cmd_size, sync_offset, sync_count, ring_idx, in, out */
    const uint32_t beyond[8] = {0, 9, 100, 0, 0, 0, 0, 0};
    bad_batch(beyond, 12);
    const uint32_t wraps[8] = {0, 0xffffffffu, 2, 0, 0, 0, 0, 0};
    bad_batch(wraps, 12);
    const uint32_t syncs[8] = {0, 9, 1, 10, 0x55555556u, 0, 0, 0};
    bad_batch(syncs, 12);
    const uint32_t flags[8] = {0x40, 9, 1, 0, 0, 0, 0, 0};
    bad_batch(flags, 12);
    const uint32_t pad[8] = {3u << VTEST_SUBMIT_FLAG_APIR_PAD_SHIFT, 9, 0, 0, 0, 0, 0, 0};
    bad_batch(pad, 12);
    const uint32_t syncobj[8] = {0, 9, 1, 0, 0, 0, 5, 0};
    bad_batch(syncobj, 12);
    /* more batches than the message can hold */
    int fd = fresh();
    uint32_t count[4] = {0x10000000u, 0, 0, 0};
    raw_cmd(fd, VTEST_CMD_SUBMIT_CMD2, 4, count, 4);
    expect_disconnect(fd);
}

static void test_bad_apir_buffers(void **state)
{
    /* well-framed vtest, garbage APIR commands: logged, the connection keeps working */
    int fd = fresh();
    void *p = NULL;
    uint32_t res = raw_blob(fd, 4096, &p);
    assert_int_not_equal(res, 0);
    uint8_t junk[13] = {0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    raw_submit(fd, junk, sizeof junk);
    raw_submit(fd, junk, 3);
    struct apir_command_header h = {APIR_COMMAND_TYPE_HANDSHAKE, 0, res}; /* no payload */
    raw_submit(fd, &h, sizeof h);
    struct apir_command_header fw = {APIR_COMMAND_TYPE_FORWARD, 0, 424242}; /* unknown reply res */
    raw_submit(fd, &fw, sizeof fw);
    assert_int_equal(raw_handshake(fd, 0, res, p), APIR_HANDSHAKE_MAGIC);
    munmap(p, 4096);
    close(fd);
    still_serving();
}

static void test_transport_fails_fast(void **state)
{
    char why[256];
    char path[] = "/tmp/apir-no-such-socket-XXXXXX";
    int tmp = mkstemp(path);
    close(tmp);
    unlink(path);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_null(apir_transport_vtest_open(path, APIR_CAPSET_ID_APIR, why, sizeof why));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_true(ms < 100);
    assert_non_null(strstr(why, path));
    assert_non_null(strstr(why, "apir-server"));
    assert_non_null(strstr(why, "GGML_VIRTGPU_SOCKET"));
}

static void test_transport_roundtrip(void **state)
{
    char why[256];
    struct apir_transport *t = apir_transport_vtest_open(sock, APIR_CAPSET_ID_APIR, why, sizeof why);
    assert_non_null(t);
    assert_true(t->host_futex_wake);
    struct apir_shmem shm;
    assert_int_equal(t->ops->create_blob(t, 4096, &shm), 0);
    assert_int_equal(t->ops->create_blob(t, 1ull << 50, &(struct apir_shmem){0}), -ENOMEM);
    /* an odd-sized command: the transport pads and announces the pad */
    struct {
        struct apir_command_header h;
        uint32_t v[2];
    } cmd = {{APIR_COMMAND_TYPE_HANDSHAKE, 0, shm.res_id}, {APIR_PROTOCOL_MAJOR, 0}};
    uint8_t odd[sizeof cmd + 12 + 1];
    memcpy(odd, &cmd, sizeof cmd);
    struct apir_command_header ll = {APIR_COMMAND_TYPE_FORWARD, 0, shm.res_id};
    memcpy(odd + sizeof cmd, &ll, 12);
    odd[sizeof odd - 1] = 0; /* 1-byte FORWARD payload: no command index -> DECODE error */
    *(volatile uint32_t *)shm.ptr = 0;
    assert_int_equal(t->ops->submit(t, odd, sizeof odd), 0);
    for (int i = 0; i < 5000 && !*(volatile uint32_t *)shm.ptr; i++)
        usleep(1000);
    assert_int_equal(*(volatile uint32_t *)shm.ptr, 4 + 3 + 1); /* BASE_INDEX + ERR_DECODE, +1 */
    assert_true(t->ops->alive(t));
    t->ops->destroy_blob(t, &shm);
    t->ops->destroy(t);
}

int main(void)
{
    sock = raw_socket_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_client),
        cmocka_unit_test(test_garbage_lengths),
        cmocka_unit_test(test_unknown_commands),
        cmocka_unit_test(test_truncated_message),
        cmocka_unit_test(test_state_violations),
        cmocka_unit_test(test_absurd_blobs),
        cmocka_unit_test(test_bad_batches),
        cmocka_unit_test(test_bad_apir_buffers),
        cmocka_unit_test(test_transport_fails_fast),
        cmocka_unit_test(test_transport_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
