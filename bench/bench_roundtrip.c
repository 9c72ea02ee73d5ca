/* bench-roundtrip: the cost of one synchronous command, nothing else: N no-op FORWARD commands
 * (GET_INFO, which the host answers from memory) through the transport the guest library
 * would use (GGML_VIRTGPU_SOCKET / VTEST_SOCKET_NAME, or virtio-gpu), timed one by one: the
 * guest's submit, the host's wake-up, dispatch and reply, the guest's wake-up.
 * Prints the median and the 90th and 99th percentiles.
 * With a second argument BYTES, then also N tensor writes of BYTES each (vgpu_rpc_buffer_set:
 * inline up to APIR_MAX_INLINE_SET, else through the data page) into a buffer of device 0,
 * each followed by a no-op command so that writes sent without a reply are counted too.
 *
 * Usage: bench-roundtrip [N [BYTES]]   (default 20000, after 1000 warm-up calls) */
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

static void print_percentiles(const char *what, uint64_t *t, long n)
{
    qsort(t, (size_t)n, sizeof *t, cmp_u64);
    printf("%s, %ld calls: p50 %.1f us, p90 %.1f us, p99 %.1f us\n", what, n, t[n / 2] / 1e3, t[n * 9 / 10] / 1e3,
           t[n * 99 / 100] / 1e3);
}

/* one write of size bytes into a fresh buffer of device 0's buffer type, then GET_INFO */
static int time_writes(struct apir_client *c, uint64_t *t, long n, size_t size)
{
    struct vgpu_host_device_info dev;
    uint32_t buffer = 0, version, n_dev;
    uint64_t got = 0;
    uint8_t *data = calloc(1, size);
    int rc = data ? vgpu_rpc_device_info(c, 0, &dev) : -1;
    if (rc == 0)
        rc = vgpu_rpc_buft_alloc(c, dev.buft, size, &buffer, &got);
    for (long i = -100; rc == 0 && i < n; i++) {
        data[0] = (uint8_t)i; /* not the same bytes every time */
        uint64_t t0 = now_ns();
        rc = vgpu_rpc_buffer_set(c, buffer, 0, data, size);
        if (rc == 0)
            rc = vgpu_rpc_get_info(c, &version, &n_dev);
        if (i >= 0)
            t[i] = now_ns() - t0;
    }
    if (rc)
        fprintf(stderr, "bench-roundtrip: writing %zu bytes failed: %s\n", size, vgpu_rpc_status_str(rc));
    if (buffer)
        vgpu_rpc_buffer_free(c, buffer);
    free(data);
    return rc;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 20000;
    long bytes = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
    if (n < 1 || n > 10000000 || bytes < 0 || bytes > (1l << 30)) {
        fprintf(stderr, "usage: bench-roundtrip [N (1..10000000) [BYTES (0..2^30)]]\n");
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
    print_percentiles("no-op round trip (GET_INFO)", t, n);
    int rc = 0;
    if (bytes) {
        char what[96];
        snprintf(what, sizeof what, "write of %ld bytes and a no-op round trip", bytes);
        rc = time_writes(c, t, n, (size_t)bytes);
        if (rc == 0)
            print_percentiles(what, t, n);
    }
    free(t);
    apir_client_close(c);
    return rc ? 1 : 0;
}
