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
#include "transports/vtest_ring_producer.h"
#include "vtest_raw.h"
#include "vtest_wire.h"

#include <errno.h>
#include <stdatomic.h>
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

#define RING_BYTES (VTEST_RING_CONTROL_BYTES + 4096u)

/* a connection with a 4 KiB command ring attached */
static int ring_client(void **ring)
{
    int fd = fresh();
    uint32_t res = raw_blob(fd, RING_BYTES, ring);
    assert_int_not_equal(res, 0);
    assert_int_equal(raw_ring_attach(fd, res), 1);
    return fd;
}

/* refusals leave the connection usable; commands run from the ring, behind a socket mark, and
 * over the socket again once the guest releases its ring */
static void test_ring(void **state)
{
    int fd = fresh();
    void *odd = NULL, *ring = NULL, *page = NULL;
    assert_int_equal(raw_ring_attach(fd, 4242), 0); /* unknown resource */
    uint32_t odd_res = raw_blob(fd, VTEST_RING_CONTROL_BYTES + 3 * 4096, &odd);
    assert_int_equal(raw_ring_attach(fd, odd_res), 0); /* data area not a power of two */
    uint32_t res = raw_blob(fd, RING_BYTES, &ring);
    assert_int_equal(raw_ring_attach(fd, res), 1);
    assert_int_equal(raw_ring_attach(fd, res), 0); /* one ring per connection */
    assert_true(raw_ping(fd));

    uint32_t page_res = raw_blob(fd, 4096, &page);
    struct vtest_ring_producer p;
    vtest_ring_producer_init(&p, ring, RING_BYTES);
    uint8_t cmd[RAW_HANDSHAKE_BYTES];
    atomic_store((_Atomic uint32_t *)page, 0);
    assert_int_equal(vtest_ring_put(&p, cmd, (uint32_t)raw_handshake_cmd(cmd, 0, page_res)), 0);
    raw_kick(fd);
    assert_int_equal(raw_wait_reply(page), APIR_HANDSHAKE_MAGIC);
    assert_int_equal(vtest_ring_put_socket_mark(&p), 0);
    assert_int_equal(raw_handshake(fd, 0, page_res, page), APIR_HANDSHAKE_MAGIC);
    assert_true(vtest_ring_drained(&p));
    raw_cmd(fd, VTEST_CMD_RESOURCE_UNREF, 1, &res, 1);
    assert_int_equal(raw_handshake(fd, 0, page_res, page), APIR_HANDSHAKE_MAGIC);
    munmap(odd, VTEST_RING_CONTROL_BYTES + 3 * 4096);
    munmap(ring, RING_BYTES);
    munmap(page, 4096);
    close(fd);
    still_serving();
}

/* a ring the guest scribbled on, or a SUBMIT_CMD2 without its socket mark, ends that guest's
 * connection (its worker) alone */
static void test_ring_attacks(void **state)
{
    void *ring = NULL;
    int fd = ring_client(&ring);
    struct vtest_ring_control *ctl = ring;
    atomic_store(&ctl->tail, 4096 + 4); /* more than the ring holds */
    raw_kick(fd);
    expect_disconnect(fd);
    munmap(ring, RING_BYTES);

    fd = ring_client(&ring);
    ctl = ring;
    uint32_t len = 100; /* announced; 8 bytes published */
    memcpy((uint8_t *)ring + VTEST_RING_CONTROL_BYTES, &len, 4);
    atomic_store(&ctl->tail, 8);
    raw_kick(fd);
    expect_disconnect(fd);
    munmap(ring, RING_BYTES);

    fd = ring_client(&ring);
    uint8_t junk[13] = {0};
    raw_submit(fd, junk, sizeof junk);
    expect_disconnect(fd);
    munmap(ring, RING_BYTES);
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
        cmocka_unit_test(test_ring),
        cmocka_unit_test(test_ring_attacks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
