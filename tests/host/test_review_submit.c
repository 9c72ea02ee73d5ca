/* Review attacks on SUBMIT_CMD2 (run under tests/lib/with-server.sh): batches that point at
 * the same words would make the server run one command buffer (or one sync list) once per
 * batch, so a single message could cost O(n^2) work. The server must refuse them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "apir_protocol.h"
#include "vtest_raw.h"
#include "vtest_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *sock;

/* n batches, each = batch, followed by `extra` zero words */
static void send_batches(int fd, uint32_t n, const uint32_t batch[8], uint32_t extra)
{
    uint32_t words = 1 + n * VTEST_SUBMIT_BATCH_WORDS + extra;
    uint32_t *msg = calloc(words, 4);
    assert_non_null(msg);
    msg[0] = n;
    for (uint32_t i = 0; i < n; i++)
        memcpy(&msg[1 + i * VTEST_SUBMIT_BATCH_WORDS], batch, 8 * 4);
    raw_cmd(fd, VTEST_CMD_SUBMIT_CMD2, words, msg, words);
    free(msg);
}

static void refused(uint32_t n, const uint32_t batch[8], uint32_t extra)
{
    int fd = raw_connect(sock);
    raw_init(fd, APIR_CAPSET_ID_APIR);
    send_batches(fd, n, batch, extra);
    assert_true(raw_closed(fd));
    close(fd);
    assert_true(raw_good_client(sock, APIR_CAPSET_ID_APIR));
}

static void test_batches_share_commands(void **state)
{
    (void)state;
    /* flags, cmd_offset, cmd_size, sync_offset, sync_count, ring_idx, in, out: two batches
     * over the same 64 command words (1 + 2*8 = 17 words of header first) */
    const uint32_t b[8] = {0, 17, 64, 0, 0, 0, 0, 0};
    refused(2, b, 64);
}

static void test_batches_share_syncs(void **state)
{
    (void)state;
    const uint32_t b[8] = {0, 17, 0, 17, 20, 0, 0, 0};
    refused(2, b, 60);
}

static void test_disjoint_batches_run(void **state)
{
    (void)state;
    /* two batches over their own (empty) ranges still work */
    int fd = raw_connect(sock);
    raw_init(fd, APIR_CAPSET_ID_APIR);
    uint32_t msg[1 + 16] = {2, 0, 17, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0, 0, 0};
    raw_cmd(fd, VTEST_CMD_SUBMIT_CMD2, 17, msg, 17);
    assert_true(raw_ping(fd));
    close(fd);
}

int main(void)
{
    sock = raw_socket_from_env();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_share_commands),
        cmocka_unit_test(test_batches_share_syncs),
        cmocka_unit_test(test_disjoint_batches_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
