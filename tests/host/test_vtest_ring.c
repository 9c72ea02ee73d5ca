/* The vtest command ring, both ends in one process: the guest's producer
 * (src/frontend/transports/vtest_ring_producer.c) against the worker's consumer
 * (src/server/server_ring.c). Order, wrap-around, socket marks and back-pressure; then a guest
 * that scribbles on the shared memory, which the consumer must refuse without reading or
 * copying anything outside the data area. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server_ring.h"
#include "vtest_ring_producer.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define DATA_BYTES 4096u

struct both {
    void *blob;
    struct vtest_ring_producer p;
    struct server_ring r;
    uint32_t *buf;
    size_t cap;
};

static int setup(void **state)
{
    struct both *b = calloc(1, sizeof *b);
    b->blob = aligned_alloc(4096, VTEST_RING_CONTROL_BYTES + DATA_BYTES);
    memset(b->blob, 0xa5, VTEST_RING_CONTROL_BYTES + DATA_BYTES);
    vtest_ring_producer_init(&b->p, b->blob, VTEST_RING_CONTROL_BYTES + DATA_BYTES);
    assert_true(ring_attach(&b->r, 7, b->blob, VTEST_RING_CONTROL_BYTES + DATA_BYTES));
    *state = b;
    return 0;
}

static int teardown(void **state)
{
    struct both *b = *state;
    free(b->buf);
    free(b->blob);
    free(b);
    return 0;
}

static void fill(uint8_t *cmd, uint32_t size, uint32_t seq)
{
    for (uint32_t i = 0; i < size; i++)
        cmd[i] = (uint8_t)(seq * 31 + i * 7);
}

static void expect_command(struct both *b, uint32_t size, uint32_t seq)
{
    uint8_t want[DATA_BYTES];
    uint32_t len = ~0u;
    fill(want, size, seq);
    assert_int_equal(ring_next(&b->r, &b->buf, &b->cap, &len), RING_COMMAND);
    assert_int_equal(len, size);
    assert_memory_equal(b->buf, want, size);
}

/* thousands of commands of every size the ring takes, odd ones included, through a 4 KiB
 * ring: each comes out once, whole and in order, across hundreds of wraps */
static void test_order_across_wraps(void **state)
{
    struct both *b = *state;
    uint8_t cmd[DATA_BYTES];
    uint32_t put = 0, got = 0, sizes[8192], rnd = 12345;
    while (put < 8192) {
        rnd = rnd * 1103515245u + 12345u;
        uint32_t size = (rnd >> 8) % (DATA_BYTES / 2 - 4 + 1);
        assert_true(vtest_ring_takes(&b->p, size));
        fill(cmd, size, put);
        int rc = vtest_ring_put(&b->p, cmd, size);
        if (rc == -ENOSPC) { /* the host has not caught up: it takes one, the guest retries */
            assert_true(ring_has_work(&b->r));
            expect_command(b, sizes[got], got);
            got++;
            continue;
        }
        assert_int_equal(rc, 0);
        sizes[put++] = size;
    }
    while (got < put) {
        expect_command(b, sizes[got], got);
        got++;
    }
    uint32_t len;
    assert_int_equal(ring_next(&b->r, &b->buf, &b->cap, &len), RING_EMPTY);
    assert_false(ring_has_work(&b->r));
    assert_true(vtest_ring_drained(&b->p));
    assert_true(b->p.tail > 100u * DATA_BYTES); /* it did wrap, many times */
}

static void test_takes_half_at_most(void **state)
{
    struct both *b = *state;
    assert_true(vtest_ring_takes(&b->p, 0));
    assert_true(vtest_ring_takes(&b->p, DATA_BYTES / 2 - 4));
    assert_false(vtest_ring_takes(&b->p, DATA_BYTES / 2 - 3));
    assert_false(vtest_ring_takes(&b->p, (size_t)1 << 40));
}

/* a socket mark stays at the head until the SUBMIT_CMD2 it stands for takes it; the
 * commands after it wait */
static void test_socket_mark_holds_order(void **state)
{
    struct both *b = *state;
    uint8_t cmd[64];
    fill(cmd, 10, 0);
    assert_int_equal(vtest_ring_put(&b->p, cmd, 10), 0);
    assert_int_equal(vtest_ring_put_socket_mark(&b->p), 0);
    fill(cmd, 20, 1);
    assert_int_equal(vtest_ring_put(&b->p, cmd, 20), 0);

    assert_true(ring_has_work(&b->r));
    expect_command(b, 10, 0);
    uint32_t len;
    assert_false(ring_has_work(&b->r)); /* only the mark: wait for the socket */
    assert_int_equal(ring_next(&b->r, &b->buf, &b->cap, &len), RING_SOCKET);
    assert_int_equal(ring_next(&b->r, &b->buf, &b->cap, &len), RING_SOCKET);
    assert_true(ring_take_socket_mark(&b->r));
    assert_false(ring_take_socket_mark(&b->r)); /* a command is at the head now */
    expect_command(b, 20, 1);
    assert_false(ring_take_socket_mark(&b->r)); /* nothing at all */
}

/* the room the producer sees is the room the consumer has freed */
static void test_full_then_room(void **state)
{
    struct both *b = *state;
    uint8_t cmd[1000] = {0};
    int n = 0;
    while (vtest_ring_put(&b->p, cmd, sizeof cmd) == 0)
        n++;
    assert_int_equal(n, 4); /* 4 x 1004 bytes of 4096 */
    assert_int_equal(vtest_ring_put_socket_mark(&b->p), 0); /* 80 bytes were left */
    assert_false(vtest_ring_drained(&b->p));
    uint32_t len;
    assert_int_equal(ring_next(&b->r, &b->buf, &b->cap, &len), RING_COMMAND);
    assert_int_equal(vtest_ring_put(&b->p, cmd, sizeof cmd), 0);
}

static void test_kick_once(void **state)
{
    struct both *b = *state;
    assert_false(vtest_ring_take_kick(&b->p));
    ring_set_waiting(&b->r, true);
    assert_true(vtest_ring_take_kick(&b->p));
    assert_false(vtest_ring_take_kick(&b->p)); /* one kick answers one wait */
    ring_set_waiting(&b->r, true);
    ring_set_waiting(&b->r, false);
    assert_false(vtest_ring_take_kick(&b->p));
}

static struct vtest_ring_control *ctl(struct both *b) { return b->blob; }
static uint8_t *data(struct both *b) { return (uint8_t *)b->blob + VTEST_RING_CONTROL_BYTES; }

static void expect_corrupt(struct both *b)
{
    uint32_t len;
    assert_true(ring_has_work(&b->r)); /* so the worker looks, and says why */
    assert_int_equal(ring_next(&b->r, &b->buf, &b->cap, &len), RING_CORRUPT);
    assert_false(ring_take_socket_mark(&b->r));
}

static void put_word(struct both *b, uint32_t off, uint32_t w) { memcpy(data(b) + off, &w, 4); }

static void test_hostile_tail(void **state)
{
    struct both *b = *state;
    atomic_store(&ctl(b)->tail, DATA_BYTES + 4); /* more than the ring holds */
    expect_corrupt(b);
    atomic_store(&ctl(b)->tail, 6); /* not a whole word */
    expect_corrupt(b);
    atomic_store(&ctl(b)->tail, 0xfffffffcu); /* "behind" the head */
    expect_corrupt(b);
}

static void test_hostile_lengths(void **state)
{
    struct both *b = *state;
    put_word(b, 0, 100); /* 100 bytes announced, 8 published */
    atomic_store(&ctl(b)->tail, 8);
    expect_corrupt(b);
    put_word(b, 0, 0xfffffffdu); /* rounds up past 2^32 */
    atomic_store(&ctl(b)->tail, DATA_BYTES);
    expect_corrupt(b);
    put_word(b, 0, DATA_BYTES); /* the whole data area, and its own word: past the end */
    expect_corrupt(b);
}

/* an entry may not run past the end of the data area (the guest must wrap), and a wrap mark
 * may not skip more than was published */
static void test_hostile_end_of_area(void **state)
{
    struct both *b = *state;
    uint8_t cmd[2040] = {0};
    assert_int_equal(vtest_ring_put(&b->p, cmd, sizeof cmd), 0);
    assert_int_equal(vtest_ring_put(&b->p, cmd, sizeof cmd), 0); /* 4088 of 4096 */
    uint32_t len;
    assert_int_equal(ring_next(&b->r, &b->buf, &b->cap, &len), RING_COMMAND);
    assert_int_equal(ring_next(&b->r, &b->buf, &b->cap, &len), RING_COMMAND);
    put_word(b, 4088, 8); /* 4 + 8 bytes from 4088: 4 past the end */
    atomic_store(&ctl(b)->tail, 4088 + 12);
    expect_corrupt(b);
    put_word(b, 4088, VTEST_RING_WRAP_MARK); /* skips 8, 4 published */
    atomic_store(&ctl(b)->tail, 4088 + 4);
    expect_corrupt(b);
}

/* The head in shared memory is the host's to publish, never to read: a guest that rewrites
 * it changes nothing. A word rewritten after it was copied out changes nothing either. */
static void test_host_keeps_its_own_head(void **state)
{
    struct both *b = *state;
    uint8_t cmd[16];
    fill(cmd, 16, 3);
    assert_int_equal(vtest_ring_put(&b->p, cmd, 16), 0);
    atomic_store(&ctl(b)->head, 2000);
    expect_command(b, 16, 3);
    assert_int_equal(atomic_load(&ctl(b)->head), 20);
    memset(data(b), 0xff, 20); /* after the copy */
    uint8_t want[16];
    fill(want, 16, 3);
    assert_memory_equal(b->buf, want, 16);
}

static void test_attach_sizes(void **state)
{
    struct both *b = *state;
    struct server_ring r;
    assert_false(ring_attach(&r, 1, b->blob, VTEST_RING_CONTROL_BYTES + 3 * 4096)); /* not a power of two */
    assert_false(ring_attach(&r, 1, b->blob, VTEST_RING_CONTROL_BYTES + 2048));     /* too small */
    assert_false(ring_attach(&r, 1, b->blob, VTEST_RING_CONTROL_BYTES + 2 * (size_t)VTEST_RING_MAX_DATA_BYTES));
    assert_false(ring_attach(&r, 1, b->blob, 100)); /* smaller than the control page */
    assert_true(ring_attach(&r, 1, b->blob, VTEST_RING_CONTROL_BYTES + DATA_BYTES));
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_order_across_wraps),   T(test_takes_half_at_most), T(test_socket_mark_holds_order),
        T(test_full_then_room),       T(test_kick_once),          T(test_hostile_tail),
        T(test_hostile_lengths),      T(test_hostile_end_of_area), T(test_host_keeps_its_own_head),
        T(test_attach_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
