/* Isolation of guests from each other, against a real apir-server (tests/lib/with-server.sh):
 * a guest whose worker dies mid-compute (SIGKILL, a ggml abort, the command watchdog) loses
 * only its own device, while another guest's results stay exact and the listener keeps
 * serving and logs the signal and the command; idle guests are ended; the per-uid connection
 * limit; the per-guest quotas (buffer bytes, blob count and bytes); blobs cannot be resized
 * by the guest; workers are sandboxed (seen from outside, /proc); the listener's footprint
 * does not grow with guests.
 *
 * Usage: test-isolation GROUP, GROUP one of cross, timeouts, uid, quota, sandbox, seccomp-off
 * (each CTest entry starts the server with the limits its group needs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "apir_protocol.h"
#include "guest_script.h"
#include "proc_info.h"
#include "vtest_raw.h"

#include <ggml.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *sock_path(void) { return raw_socket_from_env(); }

static uint32_t capset(void)
{
    return getenv("GGML_REMOTING_USE_APIR_CAPSET") ? APIR_CAPSET_ID_APIR : APIR_CAPSET_ID_VENUS;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* true once the server log holds every needle on one line (waits up to ms) */
static bool log_has(int ms, const char *a, const char *b, const char *c)
{
    const char *path = getenv("APIR_SERVER_LOG");
    assert_non_null(path);
    for (int t = 0; t <= ms; t += 50) {
        FILE *f = fopen(path, "r");
        char line[2048];
        while (f && fgets(line, sizeof line, f)) {
            if (strstr(line, a) && (!b || strstr(line, b)) && (!c || strstr(line, c))) {
                fclose(f);
                return true;
            }
        }
        if (f)
            fclose(f);
        sleep_ms(50);
    }
    return false;
}

/* --- a guest that computes a small product again and again and checks every result --- */

#define K 4
#define M 3
#define N 2

static void small_open(struct guest_session *s) { assert_int_equal(guest_session_open(s, 4096), APIR_BACKEND_OK); }

/* one exact round: new inputs, compute, compare; 0 or the step that failed */
static int small_round(struct guest_session *s, int round)
{
    float a[K * M], b[K * N], got[M * N];
    for (int i = 0; i < K * M; i++)
        a[i] = (float)((i + round) % 7) - 3.0f;
    for (int i = 0; i < K * N; i++)
        b[i] = (float)((i * 3 + round) % 5) - 2.0f;
    struct guest_graph gg;
    guest_graph_init(&gg, s->buffer);
    struct ggml_tensor *ta = guest_tensor(&gg, GGML_TYPE_F32, "a", K, M, 0);
    struct ggml_tensor *tb = guest_tensor(&gg, GGML_TYPE_F32, "b", K, N, 256);
    guest_graph_add(&gg, guest_place(ggml_mul_mat(gg.ctx, ta, tb), 512));
    int32_t st;
    int step = 0;
    if (vgpu_rpc_buffer_set(s->c, s->buffer, 0, a, sizeof a) != APIR_BACKEND_OK ||
        vgpu_rpc_buffer_set(s->c, s->buffer, 256, b, sizeof b) != APIR_BACKEND_OK)
        step = 1;
    else if (guest_graph_compute(s->c, s->backend, &gg, &st) != APIR_BACKEND_OK || st != GGML_STATUS_SUCCESS)
        step = 2;
    guest_graph_free(&gg);
    if (step)
        return step;
    if (vgpu_rpc_buffer_get(s->c, s->buffer, 512, got, sizeof got) != APIR_BACKEND_OK)
        return 3;
    for (int j = 0; j < N; j++)
        for (int i = 0; i < M; i++) {
            float want = 0;
            for (int k = 0; k < K; k++)
                want += a[i * K + k] * b[j * K + k];
            if (got[j * M + i] != want) /* small integers: exact */
                return 4;
        }
    return 0;
}

/* guest B in a child process: computes for ms milliseconds; exit status 0 if every result
 * was exact, else 10 + the failing step */
static pid_t start_guest_b(int ms)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid > 0)
        return pid;
    struct guest_session s;
    small_open(&s);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rounds = 0;
    do {
        int rc = small_round(&s, rounds++);
        if (rc)
            _exit(10 + rc);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms || rounds < 20);
    apir_client_close(s.c);
    fprintf(stderr, "guest B: %d exact rounds\n", rounds);
    _exit(0);
}

static void expect_guest_b_exact(pid_t pid)
{
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* --- guest A: a compute long enough to be interrupted --- */

#define BIG 1024  /* a chain of BIG x BIG products: 2 GFLOP per node */
#define BIG_NODES 8

struct big {
    struct apir_client *c;
    pid_t worker;
    uint32_t buffer, backend;
};

/* connects guest A and finds its worker: the listener's child that appeared with it */
static void big_open(struct big *g)
{
    pid_t server = proc_server_pid(), known[512];
    int n = proc_children(server, known, 512);
    g->c = guest_open();
    g->worker = proc_new_child(server, known, n, 2000);
    assert_true(g->worker > 0);
    struct guest_dev dev;
    char name[128];
    assert_int_equal(guest_device_info(g->c, 0, &dev, name, sizeof name), APIR_BACKEND_OK);
    uint64_t bytes = (uint64_t)BIG * BIG * sizeof(float) * (BIG_NODES + 1);
    assert_int_equal(guest_alloc(g->c, dev.buft, bytes, &g->buffer), APIR_BACKEND_OK);
    assert_int_equal(vgpu_rpc_buffer_clear(g->c, g->buffer, 0), APIR_BACKEND_OK);
    assert_int_equal(vgpu_rpc_backend_init(g->c, 0, &g->backend), APIR_BACKEND_OK);
}

/* x_{i+1} = mul_mat(x_0, x_i): BIG_NODES products, each needing the one before */
static int big_compute(struct big *g)
{
    struct guest_graph gg;
    guest_graph_init(&gg, g->buffer);
    const uint64_t bytes = (uint64_t)BIG * BIG * sizeof(float);
    struct ggml_tensor *x0 = guest_tensor(&gg, GGML_TYPE_F32, "x0", BIG, BIG, 0), *x = x0;
    for (int i = 1; i <= BIG_NODES; i++) {
        x = guest_place(ggml_mul_mat(gg.ctx, x0, x), (uint64_t)i * bytes);
        ggml_format_name(x, "x%d", i);
    }
    guest_graph_add(&gg, x);
    int32_t st;
    int rc = guest_graph_compute(g->c, g->backend, &gg, &st);
    guest_graph_free(&gg);
    return rc;
}

struct killer {
    pid_t pid;
    int sig, delay_ms;
};

static void *kill_later(void *arg)
{
    struct killer *k = arg;
    sleep_ms(k->delay_ms);
    kill(k->pid, k->sig);
    return NULL;
}

static void expect_listener_serves(void)
{
    assert_true(raw_good_client(sock_path(), capset()));
    assert_true(kill(proc_server_pid(), 0) == 0);
}

/* guest A's worker is SIGKILLed in the middle of a compute while guest B computes */
static void test_worker_killed_mid_compute(void **state)
{
    struct big a;
    big_open(&a);
    pid_t b = start_guest_b(1500);
    struct killer k = {a.worker, SIGKILL, 300};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, kill_later, &k), 0);
    int rc = big_compute(&a);
    pthread_join(th, NULL);
    assert_true(rc < 0); /* the command never completed: A's device is lost */
    assert_true(log_has(5000, "killed by signal 9", "FORWARD GRAPH_COMPUTE (15)", "running for"));
    /* A's next command fails at once, it does not wait for its timeout */
    uint32_t v;
    assert_true(vgpu_rpc_get_info(a.c, &v, &v) < 0);
    apir_client_close(a.c);
    expect_guest_b_exact(b);
    expect_listener_serves();
}

/* guest A sends a hostile graph while guest B computes. Today's host either refuses it up
 * front or runs it into ggml, which ends A's worker with the expected signal (named in the
 * listener's log); either way B's results stay exact and the listener keeps serving. Before
 * workers these took the whole server, and B, down. */
static void attack_while_b_computes(void (*build)(struct guest_graph *gg), int signal_if_run)
{
    struct guest_session a;
    small_open(&a);
    struct guest_graph gg;
    guest_graph_init(&gg, a.buffer);
    build(&gg);
    pid_t b = start_guest_b(1000);
    int32_t st = 0;
    sleep_ms(200); /* B is computing */
    int rc = guest_graph_compute(a.c, a.backend, &gg, &st);
    if (rc < 0) {
        char what[64];
        snprintf(what, sizeof what, "killed by signal %d ", signal_if_run);
        assert_true(log_has(5000, what, "FORWARD GRAPH_COMPUTE (15)", NULL));
    } else {
        assert_int_not_equal(rc == APIR_BACKEND_OK && st == GGML_STATUS_SUCCESS, 1);
        fprintf(stderr, "refused by the host (status %d, ggml %d): no worker death to observe\n", rc, st);
    }
    guest_graph_free(&gg);
    apir_client_close(a.c);
    expect_guest_b_exact(b);
    expect_listener_serves();
}

/* GELU on bf16 has no CPU kernel: GGML_ABORT (SIGABRT) */
static void gelu_bf16(struct guest_graph *gg)
{
    struct ggml_tensor *x = guest_tensor(gg, GGML_TYPE_BF16, "x", 64, 4, 0);
    guest_graph_add(gg, guest_place(ggml_gelu(gg->ctx, x), 1024));
}

static void test_ggml_abort_ends_only_its_worker(void **state) { attack_while_b_computes(gelu_bf16, SIGABRT); }

/* GET_ROWS from Q8_1 rows: the CPU backend has no to_float for Q8_1 (NULL call: SIGSEGV) */
static void get_rows_q8_1(struct guest_graph *gg)
{
    struct ggml_tensor *a = guest_tensor(gg, GGML_TYPE_Q8_1, "a", 32, 4, 0); /* one block of 32 per row */
    struct ggml_tensor *i = guest_tensor(gg, GGML_TYPE_I32, "i", 2, 1, 1024);
    guest_graph_add(gg, guest_place(ggml_get_rows(gg->ctx, a, i), 2048));
}

static void test_ggml_crash_ends_only_its_worker(void **state) { attack_while_b_computes(get_rows_q8_1, SIGSEGV); }

/* VIRGL_APIR_COMMAND_TIMEOUT=1: a compute that runs longer is ended by the watchdog */
static void test_command_timeout(void **state)
{
    struct big a;
    big_open(&a);
    pid_t b = start_guest_b(500);
    int rc = big_compute(&a);
    if (rc >= 0) {
        /* a machine fast enough to finish 16 GFLOP within the limit: nothing to observe */
        fprintf(stderr, "the compute finished within the limit: skipping the watchdog check\n");
    } else {
        assert_true(log_has(5000, "killed by signal 9", "VIRGL_APIR_COMMAND_TIMEOUT", "GRAPH_COMPUTE"));
    }
    apir_client_close(a.c);
    expect_guest_b_exact(b);
    expect_listener_serves();
}

/* VIRGL_APIR_IDLE_TIMEOUT=2: an idle guest is ended, a busy one is not */
static void test_idle_timeout(void **state)
{
    int idle = raw_connect(sock_path());
    raw_init(idle, capset());
    int busy = raw_connect(sock_path());
    raw_init(busy, capset());
    for (int i = 0; i < 12; i++) { /* 3.6 s */
        assert_true(raw_ping(busy));
        sleep_ms(300);
    }
    assert_true(raw_closed(idle));
    assert_true(raw_ping(busy));
    assert_true(log_has(2000, "idle longer than", "VIRGL_APIR_IDLE_TIMEOUT", NULL));
    close(idle);
    close(busy);
}

/* default limits: 256 connections from one uid get 16 workers; another uid is still served */
static void test_connections_per_uid(void **state)
{
    enum { COUNT = 256, LIMIT = 16 };
    int fds[COUNT];
    for (int i = 0; i < COUNT; i++)
        fds[i] = raw_connect(sock_path());
    int served = 0;
    for (int i = 0; i < COUNT; i++)
        served += raw_ping(fds[i]);
    assert_int_equal(served, LIMIT);
    assert_true(log_has(2000, "already has 16 connections", "VIRGL_APIR_MAX_CONNECTIONS_PER_UID", NULL));
    if (geteuid() == 0) {
        /* another uid: reachable through the socket's folder, then served */
        char dir[256];
        snprintf(dir, sizeof dir, "%s", sock_path());
        *strrchr(dir, '/') = 0;
        assert_int_equal(chmod(dir, 0755), 0);
        assert_int_equal(chmod(sock_path(), 0777), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0)
                _exit(2);
            _exit(raw_good_client(sock_path(), capset()) ? 0 : 1);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    } else {
        fprintf(stderr, "not root: the other-uid half is not run\n");
    }
    /* ours leave: their places are free again */
    for (int i = 0; i < COUNT; i++)
        close(fds[i]);
    sleep_ms(500);
    assert_true(raw_good_client(sock_path(), capset()));
}

/* VIRGL_APIR_MAX_BUFFER_BYTES=8388608: the backend refuses buffers past the guest's quota */
static void test_buffer_bytes(void **state)
{
    struct apir_client *c = guest_open();
    struct guest_dev dev;
    char name[128];
    assert_int_equal(guest_device_info(c, 0, &dev, name, sizeof name), APIR_BACKEND_OK);
    uint32_t b1, b2, b3;
    assert_int_equal(guest_alloc(c, dev.buft, 5 << 20, &b1), APIR_BACKEND_OK);
    assert_int_equal(guest_alloc(c, dev.buft, 4 << 20, &b2), APIR_BACKEND_ERR_OUT_OF_MEMORY);
    assert_int_equal(guest_alloc(c, dev.buft, 2 << 20, &b2), APIR_BACKEND_OK);
    assert_int_equal(guest_alloc(c, dev.buft, 2 << 20, &b3), APIR_BACKEND_ERR_OUT_OF_MEMORY);
    assert_int_equal(vgpu_rpc_buffer_free(c, b1), APIR_BACKEND_OK);
    assert_int_equal(guest_alloc(c, dev.buft, 5 << 20, &b1), APIR_BACKEND_OK);
    assert_true(log_has(2000, "VIRGL_APIR_MAX_BUFFER_BYTES=8388608", NULL, NULL));
    apir_client_close(c);
}

/* VIRGL_APIR_MAX_BLOBS=4, VIRGL_APIR_MAX_BLOB_BYTES=41943040 (40 MiB) */
static void test_blob_limits(void **state)
{
    int fd = raw_connect(sock_path());
    raw_init(fd, capset());
    void *p[5] = {0};
    for (int i = 0; i < 4; i++)
        assert_int_not_equal(raw_blob(fd, 4096, &p[i]), 0);
    assert_int_equal(raw_blob(fd, 4096, &p[4]), 0);
    assert_true(raw_ping(fd)); /* refused, not disconnected */
    close(fd);
    for (int i = 0; i < 4; i++)
        munmap(p[i], 4096);
    assert_true(log_has(2000, "VIRGL_APIR_MAX_BLOBS=4", NULL, NULL));

    fd = raw_connect(sock_path());
    raw_init(fd, capset());
    void *big = NULL, *more = NULL;
    assert_int_not_equal(raw_blob(fd, 36u << 20, &big), 0);
    assert_int_equal(raw_blob(fd, 8u << 20, &more), 0);
    assert_int_not_equal(raw_blob(fd, 4u << 20, &more), 0);
    assert_true(raw_ping(fd));
    munmap(big, 36u << 20);
    munmap(more, 4u << 20);
    close(fd);
    assert_true(log_has(2000, "VIRGL_APIR_MAX_BLOB_BYTES=41943040", NULL, NULL));
}

static int count_log_lines(const char *needle)
{
    FILE *f = fopen(getenv("APIR_SERVER_LOG"), "r");
    assert_non_null(f);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* a guest whose every command fails gets a bounded number of log lines (component and backend) */
static void test_log_lines_are_rate_limited(void **state)
{
    enum { BAD = 1000 };
    struct apir_client *c = guest_open();
    for (int i = 0; i < BAD; i++)
        assert_int_equal(vgpu_rpc_buffer_clear(c, 0xdead0000u + (uint32_t)i, 0), APIR_BACKEND_ERR_HANDLE);
    int fd = raw_connect(sock_path());
    raw_init(fd, capset());
    for (int i = 0; i < BAD; i++) {
        struct apir_command_header h = {0x7fff0000, 0, 0}; /* unknown command type */
        raw_submit(fd, &h, sizeof h);
    }
    assert_true(raw_ping(fd)); /* all handled */
    int backend = count_log_lines("BUFFER_CLEAR failed"), component = count_log_lines("unknown command type");
    fprintf(stderr, "%d failing commands each: %d backend lines, %d component lines\n", BAD, backend, component);
    assert_true(backend >= 50 && backend <= 200);
    assert_true(component >= 50 && component <= 200);
    /* once lines flow again, the count dropped is logged */
    sleep_ms(1000);
    assert_int_equal(vgpu_rpc_buffer_clear(c, 0xdeadffffu, 0), APIR_BACKEND_ERR_HANDLE);
    struct apir_command_header h = {0x7fff0000, 0, 0};
    raw_submit(fd, &h, sizeof h);
    assert_true(raw_ping(fd));
    assert_true(log_has(2000, "ggml-virtgpu-backend:", "log lines dropped", NULL));
    assert_true(log_has(2000, "apir:", "log lines dropped", NULL));
    close(fd);
    apir_client_close(c);
}

/* a guest cannot resize a blob it was given; the host then keeps using it safely */
static void test_blob_cannot_be_truncated(void **state)
{
    int fd = raw_connect(sock_path());
    raw_init(fd, capset());
    void *page = NULL;
    int mfd = -1;
    uint32_t res = raw_blob_fd(fd, 65536, &page, &mfd);
    assert_int_not_equal(res, 0);
    errno = 0;
    assert_int_equal(ftruncate(mfd, 0), -1);
    assert_int_equal(errno, EPERM);
    assert_int_equal(ftruncate(mfd, 1 << 20), -1);
    assert_int_equal(errno, EPERM);
    int seals = fcntl(mfd, F_GET_SEALS);
    assert_true((seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
    /* the host writes the reply into that page: it is still whole */
    uint32_t off = capset() == APIR_CAPSET_ID_VENUS ? APIR_VENUS_CMD_OFFSET : 0;
    assert_int_equal(raw_handshake(fd, off, res, page), APIR_HANDSHAKE_MAGIC);
    close(mfd);
    munmap(page, 65536);
    close(fd);
    expect_listener_serves();
}

/* a worker that loaded the libraries runs sandboxed; the listener loaded none of them */
static void check_worker_sandbox(long want_seccomp)
{
    pid_t server = proc_server_pid(), known[512];
    int n = proc_children(server, known, 512);
    struct apir_client *c = guest_open(); /* HANDSHAKE + LOADLIBRARY */
    pid_t worker = proc_new_child(server, known, n, 2000);
    assert_true(worker > 0);
    uint32_t v;
    assert_int_equal(vgpu_rpc_get_info(c, &v, &v), APIR_BACKEND_OK);
    long seccomp = proc_status_field(worker, "Seccomp"), nnp = proc_status_field(worker, "NoNewPrivs");
    fprintf(stderr, "worker %d: Seccomp %ld, NoNewPrivs %ld\n", (int)worker, seccomp, nnp);
    assert_int_equal(nnp, 1);
    assert_int_equal(seccomp, want_seccomp);
    assert_true(proc_maps_contain(worker, "libggml-virtgpu-backend"));
    assert_false(proc_maps_contain(server, "libggml"));
    assert_false(proc_maps_contain(server, "libggml-virtgpu-backend"));
    assert_int_equal(proc_status_field(server, "Seccomp"), 0); /* the listener keeps accept() */
    assert_int_equal(proc_status_field(server, "Threads"), 1);
    /* the filter leaves speculation mitigations as the listener has them: a kernel in
     * "seccomp" mode would force them on (component_sandbox.c: the CPU backend 6x slower) */
    static const char *const spec[] = {"Speculation_Store_Bypass", "SpeculationIndirectBranch"};
    for (int i = 0; i < 2; i++) {
        char w[128], l[128];
        proc_status_text(worker, spec[i], w, sizeof w);
        proc_status_text(server, spec[i], l, sizeof l);
        fprintf(stderr, "%s: worker '%s', listener '%s'\n", spec[i], w, l);
        assert_string_equal(w, l);
    }
    apir_client_close(c);
}

static void test_worker_sandboxed(void **state) { check_worker_sandbox(2); }
static void test_worker_seccomp_off(void **state) { check_worker_sandbox(0); }

/* the listener's memory and descriptors before and after many guests */
static void test_listener_footprint(void **state)
{
    pid_t server = proc_server_pid();
    expect_listener_serves(); /* first allocations of the log and the accept path */
    sleep_ms(300);
    long rss0 = proc_status_field(server, "VmRSS");
    int fds0 = proc_fd_count(server);
    enum { GUESTS = 24 };
    for (int i = 0; i < GUESTS; i++) {
        struct guest_session s;
        small_open(&s);
        assert_int_equal(small_round(&s, i), 0);
        apir_client_close(s.c);
    }
    pid_t kids[8];
    for (int t = 0; t < 100 && proc_children(server, kids, 8) > 0; t++)
        sleep_ms(50);
    long rss1 = proc_status_field(server, "VmRSS");
    int fds1 = proc_fd_count(server);
    fprintf(stderr, "listener: VmRSS %ld kB -> %ld kB, %d -> %d descriptors after %d guests\n", rss0, rss1, fds0,
            fds1, GUESTS);
    assert_int_equal(fds1, fds0);
    assert_true(rss1 - rss0 < 1024);
}

int main(int argc, char **argv)
{
    const char *group = argc > 1 ? argv[1] : "";
    static const struct CMUnitTest cross[] = {
        cmocka_unit_test(test_worker_killed_mid_compute),
        cmocka_unit_test(test_ggml_abort_ends_only_its_worker),
        cmocka_unit_test(test_ggml_crash_ends_only_its_worker),
    };
    static const struct CMUnitTest timeouts[] = {
        cmocka_unit_test(test_command_timeout),
        cmocka_unit_test(test_idle_timeout),
    };
    static const struct CMUnitTest uid[] = {cmocka_unit_test(test_connections_per_uid)};
    static const struct CMUnitTest quota[] = {
        cmocka_unit_test(test_buffer_bytes),
        cmocka_unit_test(test_blob_limits),
        cmocka_unit_test(test_log_lines_are_rate_limited),
    };
    static const struct CMUnitTest sandbox[] = {
        cmocka_unit_test(test_blob_cannot_be_truncated),
        cmocka_unit_test(test_worker_sandboxed),
        cmocka_unit_test(test_listener_footprint),
    };
    static const struct CMUnitTest seccomp_off[] = {cmocka_unit_test(test_worker_seccomp_off)};
    if (!strcmp(group, "cross"))
        return cmocka_run_group_tests_name("cross", cross, NULL, NULL);
    if (!strcmp(group, "timeouts"))
        return cmocka_run_group_tests_name("timeouts", timeouts, NULL, NULL);
    if (!strcmp(group, "uid"))
        return cmocka_run_group_tests_name("uid", uid, NULL, NULL);
    if (!strcmp(group, "quota"))
        return cmocka_run_group_tests_name("quota", quota, NULL, NULL);
    if (!strcmp(group, "sandbox"))
        return cmocka_run_group_tests_name("sandbox", sandbox, NULL, NULL);
    if (!strcmp(group, "seccomp-off"))
        return cmocka_run_group_tests_name("seccomp-off", seccomp_off, NULL, NULL);
    fprintf(stderr, "usage: %s cross|timeouts|uid|quota|sandbox|seccomp-off\n", argv[0]);
    return 2;
}
