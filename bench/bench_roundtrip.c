/* bench-roundtrip: the cost of one synchronous command, nothing else: N no-op FORWARD commands
 * (GET_INFO, which the host answers from memory) through the transport the guest library
 * would use (GGML_VIRTGPU_SOCKET / VTEST_SOCKET_NAME, or virtio-gpu), timed one by one: the
 * guest's submit, the host's wake-up, dispatch and reply, the guest's wake-up.
 * Prints the median and the 90th and 99th percentiles.
 *
 * Usage: bench-roundtrip [N]   (default 20000, after 1000 warm-up calls) */
#include "apir_client.h"
#include "vgpu_rpc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    if (n < 1 || n > 10000000) {
        fprintf(stderr, "usage: bench-roundtrip [N (1..10000000)]\n");
        return 2;
    }
    char why[512];
    struct apir_client *c = apir_client_open(why, sizeof why);
    if (!c) {
        fprintf(stderr, "bench-roundtrip: cannot connect: %s\n", why);
        return 1;
    }
    uint64_t *t = malloc((size_t)n * sizeof *t);
    if (!t)
        return 1;
    uint32_t version, n_dev;
    for (long i = -1000; i < n; i++) {
        uint64_t t0 = now_ns();
        int rc = vgpu_rpc_get_info(c, &version, &n_dev);
        if (rc) {
            fprintf(stderr, "bench-roundtrip: GET_INFO failed: %s\n", vgpu_rpc_status_str(rc));
            return 1;
        }
        if (i >= 0)
            t[i] = now_ns() - t0;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_u64);
    printf("no-op round trip (GET_INFO), %ld calls: p50 %.1f us, p90 %.1f us, p99 %.1f us\n", n, t[n / 2] / 1e3,
           t[n * 9 / 10] / 1e3, t[n * 99 / 100] / 1e3);
    free(t);
    apir_client_close(c);
    return 0;
}
