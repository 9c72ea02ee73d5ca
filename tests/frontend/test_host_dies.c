/* The host goes away or stalls under an application (docs/frontend.md, "Device lost"):
 * Usage: test-vgpu-host-dies MODE PATH/libggml-virtgpu.so SERVER_PID
 * (GGML_VIRTGPU_SOCKET set; APIR_SERVER_LOG names the server's log), MODE one of
 *   kill         apir-server is killed mid-session: every later call fails at once, one log
 *                line says so, nothing aborts; the graph's output still reads back (it came
 *                with the compute), any other read-back is poisoned (NaN), never stale
 *   stop         apir-server is stopped mid-session (GGML_VIRTGPU_TIMEOUT=2): the first call
 *                fails after one timeout, later calls at once; the late reply written after
 *                SIGCONT is never taken as an answer; the host then frees the context
 *   silent-load  apir-server is stopped before the library loads: loading takes at most 1 s
 *   lazy         loading lists the devices and gives the host context back; the first
 *                backend connects again */
#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml.h>

#include "log_check.h"
#include "sqr_graph.h"

#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define N 1024

static pid_t server;

/* occurrences of needle in the server's log */
static int server_log_count(const char *needle)
{
    const char *path = getenv("APIR_SERVER_LOG");
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return -1;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    int count = 0;
    for (const char *p = buf; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        count++;
    return count;
}

static void wait_gone(pid_t pid)
{
    for (int i = 0; i < 200 && kill(pid, 0) == 0; i++) {
        char state[64] = "";
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = fopen(path, "r");
        if (f) { /* a zombie (its parent reaps it) is dead enough */
            if (fgets(state, sizeof state, f) && strstr(state, ") Z"))
                i = 200;
            fclose(f);
        }
        usleep(10000);
    }
}

/* the listener's worker processes (one per guest), at most cap */
static int host_workers(pid_t *out, int cap)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)server, (int)server);
    FILE *f = fopen(path, "r");
    int n = 0, child;
    while (f && n < cap && fscanf(f, "%d", &child) == 1)
        out[n++] = child;
    if (f)
        fclose(f);
    return n;
}

/* the host is the listener and its worker processes (one per guest): stop or resume them all */
static int signal_host(int sig)
{
    int rc = kill(server, sig);
    pid_t workers[64];
    for (int i = 0, n = host_workers(workers, 64); i < n; i++)
        kill(workers[i], sig);
    return rc;
}

/* SIGSTOP is delivered asynchronously: wait until the server is really stopped ('T') */
static bool stop_server(void)
{
    if (signal_host(SIGSTOP) != 0)
        return false;
    for (int i = 0; i < 500; i++) {
        char stat[256] = "", path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)server);
        FILE *f = fopen(path, "r");
        if (f) {
            bool got = fgets(stat, sizeof stat, f) != NULL;
            fclose(f);
            const char *p = got ? strrchr(stat, ')') : NULL;
            if (p && (p[2] == 'T' || p[2] == 't'))
                return true;
        }
        usleep(2000);
    }
    return false;
}

struct session {
    ggml_backend_reg_t reg;
    ggml_backend_dev_t dev;
    struct ggml_context *ctx;
    struct ggml_tensor *a, *out, *scratch;
    struct ggml_cgraph *gf;
    ggml_backend_t be;
    ggml_backend_buffer_t buf;
    float x[N];
    size_t mem_free, mem_total; /* the device's memory while the host is up */
};

/* loads, and computes out = a^2 (a graph output, like llama.cpp's logits) and scratch = -a
 * (not an output) once while the host is up */
static int setup(struct session *s, const char *lib)
{
    s->reg = ggml_backend_load(lib);
    CHECK(s->reg && ggml_backend_reg_dev_count(s->reg) >= 1, "no device");
    s->dev = ggml_backend_reg_dev_get(s->reg, 0);
    struct ggml_init_params p = {ggml_tensor_overhead() * 16 + ggml_graph_overhead() + 1024, NULL, true};
    s->ctx = ggml_init(p);
    s->a = ggml_new_tensor_1d(s->ctx, GGML_TYPE_F32, N);
    s->out = ggml_sqr(s->ctx, s->a);
    ggml_set_output(s->out);
    s->scratch = ggml_neg(s->ctx, s->a);
    s->gf = ggml_new_graph(s->ctx);
    ggml_build_forward_expand(s->gf, s->out);
    ggml_build_forward_expand(s->gf, s->scratch);
    s->be = ggml_backend_dev_init(s->dev, NULL);
    CHECK(s->be != NULL, "backend");
    s->buf = ggml_backend_alloc_ctx_tensors(s->ctx, s->be);
    CHECK(s->buf != NULL, "buffer");
    for (int i = 0; i < N; i++)
        s->x[i] = (float)i;
    ggml_backend_tensor_set(s->a, s->x, 0, sizeof s->x);
    CHECK(ggml_backend_graph_compute(s->be, s->gf) == GGML_STATUS_SUCCESS, "compute while the host is up");
    /* read (an output nobody reads is not fetched again), then again: a GRAPH_RECOMPUTE, whose
     * output stays in the data page until the page changes */
    float y[N];
    ggml_backend_tensor_get(s->out, y, 0, sizeof y);
    CHECK(ggml_backend_graph_compute(s->be, s->gf) == GGML_STATUS_SUCCESS, "recompute while the host is up");
    CHECK(ggml_backend_dev_supports_op(s->dev, s->out), "sqr is supported");
    ggml_backend_dev_memory(s->dev, &s->mem_free, &s->mem_total);
    CHECK(s->mem_total > 0, "memory while the host is up");
    return 0;
}

static void teardown(struct session *s)
{
    ggml_backend_buffer_free(s->buf);
    ggml_backend_free(s->be);
    ggml_free(s->ctx);
    ggml_backend_unload(s->reg);
}

/* every call on a lost device: fails (or answers as it did while alive), at once */
static int lost_device_calls(struct session *s)
{
    double t0 = now_s();
    ggml_backend_tensor_set(s->a, s->x, 0, sizeof s->x);
    CHECK(ggml_backend_graph_compute(s->be, s->gf) != GGML_STATUS_SUCCESS, "compute must fail without a host");
    CHECK(ggml_backend_graph_compute(s->be, s->gf) != GGML_STATUS_SUCCESS, "recompute must fail without a host");
    /* a read-back that fails leaves no plausible data: every float is a NaN */
    float y[N];
    memset(y, 0, sizeof y);
    ggml_backend_tensor_get(s->scratch, y, 0, sizeof y);
    for (int i = 0; i < N; i++)
        CHECK(isnan(y[i]), "a failed read-back left %g at %d", (double)y[i], i);
    size_t free_b = 0, total_b = 0;
    ggml_backend_dev_memory(s->dev, &free_b, &total_b);
    CHECK(free_b == s->mem_free && total_b == s->mem_total, "a lost device keeps its last memory answer (%zu/%zu)",
          free_b, total_b);
    struct ggml_tensor *c = ggml_exp(s->ctx, s->a); /* a signature never asked before */
    CHECK(ggml_backend_dev_supports_op(s->dev, c), "a lost device accepts ops: their compute fails instead");
    CHECK(ggml_backend_dev_supports_op(s->dev, s->out), "cached supports_op answer");
    CHECK(ggml_backend_dev_init(s->dev, NULL) == NULL, "a new backend without a host");
    CHECK(ggml_backend_buft_alloc_buffer(ggml_backend_dev_buffer_type(s->dev), 4096) == NULL, "alloc without a host");
    ggml_backend_buffer_clear(s->buf, 0);
    ggml_backend_synchronize(s->be);
    double dt = now_s() - t0;
    CHECK(dt < 0.5, "failing calls took %.2f s", dt);
    return 0;
}

/* one error line, the loss; the failing calls after it are debug-level */
static int one_loss_line(const char *why)
{
    CHECK(log_count("VirtGPU device lost") == 1, "the loss must be logged once");
    CHECK(log_count("[E] ggml-virtgpu") == 1, "one error line from ggml-virtgpu");
    CHECK(strstr(logbuf, why) != NULL, "the log says '%s'", why);
    CHECK(strstr(logbuf, "Restart the application") != NULL, "the log says how to recover");
    return 0;
}

static int mode_kill(const char *lib)
{
    struct session s;
    if (setup(&s, lib))
        return 1;
    /* the listener killed, its workers end on their own (SIGTERM at their parent's death),
     * each after the command it is running: wait for them too, else a call racing with a
     * worker's end could still be served */
    pid_t workers[64];
    int n_workers = host_workers(workers, 64);
    CHECK(kill(server, SIGKILL) == 0, "kill %d", (int)server);
    wait_gone(server);
    for (int i = 0; i < n_workers; i++)
        wait_gone(workers[i]);
    logbuf[0] = '\0';
    /* the output came back with the compute: still the right values */
    float y[N];
    ggml_backend_tensor_get(s.out, y, 0, sizeof y);
    for (int i = 0; i < N; i++)
        CHECK(y[i] == s.x[i] * s.x[i], "output %d is %g, not %g", i, (double)y[i], (double)(s.x[i] * s.x[i]));
    /* a command finds the host gone and unmaps the data page: the output was copied out of it
     * first */
    CHECK(ggml_backend_dev_init(s.dev, NULL) == NULL, "a new backend without a host");
    memset(y, 0, sizeof y);
    ggml_backend_tensor_get(s.out, y, 0, sizeof y);
    for (int i = 0; i < N; i++)
        CHECK(y[i] == s.x[i] * s.x[i], "after the loss, output %d is %g, not %g", i, (double)y[i],
              (double)(s.x[i] * s.x[i]));
    if (lost_device_calls(&s))
        return 1;
    if (one_loss_line("the connection to the host was lost"))
        return 1;
    teardown(&s);
    printf("host killed: every later call failed at once; log:\n%s", logbuf);
    return 0;
}

static int mode_stop(const char *lib)
{
    struct session s;
    if (setup(&s, lib))
        return 1;
    int created = server_log_count("created (capset");
    CHECK(stop_server(), "stop %d", (int)server);
    logbuf[0] = '\0';
    double t0 = now_s();
    ggml_backend_tensor_set(s.a, s.x, 0, sizeof s.x);
    CHECK(ggml_backend_graph_compute(s.be, s.gf) != GGML_STATUS_SUCCESS, "compute on a stopped host must fail");
    double first = now_s() - t0;
    CHECK(first > 1.5 && first < 4.0, "the first call failed after %.2f s, expected one timeout (2 s)", first);
    if (lost_device_calls(&s))
        return 1;
    /* the host runs again and writes its late reply: never taken as an answer */
    signal_host(SIGCONT);
    usleep(300000);
    t0 = now_s();
    if (lost_device_calls(&s))
        return 1;
    CHECK(now_s() - t0 < 0.5, "calls after the late reply waited");
    if (one_loss_line("COMPUTE within GGML_VIRTGPU_TIMEOUT=2 s (stopped or hung host)"))
        return 1;
    /* the guest closed the connection: the host frees the context once it runs again */
    int destroyed = 0;
    for (int i = 0; i < 100 && (destroyed = server_log_count("destroyed")) < created; i++)
        usleep(20000);
    CHECK(destroyed == created, "the host kept a context: %d created, %d destroyed", created, destroyed);
    teardown(&s);
    printf("host stopped: first call failed after %.2f s (one timeout), later calls at once; log:\n%s", first, logbuf);
    return 0;
}

static int mode_silent_load(const char *lib)
{
    CHECK(stop_server(), "stop %d", (int)server);
    double t0 = now_s();
    ggml_backend_reg_t reg = ggml_backend_load(lib);
    double dt = now_s() - t0;
    signal_host(SIGCONT);
    CHECK(reg != NULL, "the library must load with a silent host");
    CHECK(ggml_backend_reg_dev_count(reg) == 0, "%zu devices", ggml_backend_reg_dev_count(reg));
    CHECK(dt <= 1.0, "loading with a silent host took %.3f s", dt);
    /* GGML_VIRTGPU_SOCKET is set: VirtGPU was asked for, so this is a warning */
    CHECK(strstr(logbuf, "[W] ggml-virtgpu: no VirtGPU device") != NULL, "no warning");
    CHECK(strstr(logbuf, "stopped or hung") != NULL, "the log names the likely cause");
    ggml_backend_unload(reg);
    printf("silent host: loaded in %.3f s with 0 devices; log:\n%s", dt, logbuf);
    return 0;
}

static int mode_lazy(const char *lib)
{
    double t0 = now_s();
    ggml_backend_reg_t reg = ggml_backend_load(lib);
    double load_s = now_s() - t0;
    CHECK(reg && ggml_backend_reg_dev_count(reg) >= 1, "no device");
    ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, 0);
    struct ggml_backend_dev_props props;
    ggml_backend_dev_get_props(dev, &props);
    CHECK(props.memory_total > 0 && props.description && props.description[0], "cached device properties");
    CHECK(strncmp(ggml_backend_buft_name(ggml_backend_dev_buffer_type(dev)), "VirtGPU0_", 9) == 0, "buffer type");
    /* listing held no context: the one made to ask was given back */
    int created = -1, destroyed = -2;
    for (int i = 0; i < 100; i++) {
        created = server_log_count("created (capset");
        destroyed = server_log_count("destroyed");
        if (created == 1 && destroyed == 1)
            break;
        usleep(20000);
    }
    CHECK(created == 1 && destroyed == 1, "after listing: %d contexts created, %d destroyed", created, destroyed);
    /* first use connects again */
    ggml_backend_t be = ggml_backend_dev_init(dev, NULL);
    CHECK(be != NULL, "backend after a lazy connection");
    CHECK(server_log_count("created (capset") == 2 && server_log_count("destroyed") == 1, "no second context");
    struct sqr_graph g = sqr_graph_new(N);
    ggml_backend_buffer_t buf = ggml_backend_alloc_ctx_tensors(g.ctx, be);
    CHECK(buf != NULL, "buffer");
    float x[N], y[N];
    for (int i = 0; i < N; i++)
        x[i] = (float)(i % 7) - 3.0f;
    for (int round = 0; round < 3; round++) { /* the output is read, then recomputed */
        ggml_backend_tensor_set(g.x, x, 0, sizeof x);
        CHECK(ggml_backend_graph_compute(be, g.gf) == GGML_STATUS_SUCCESS, "compute %d", round);
        ggml_backend_tensor_get(g.y, y, 0, sizeof y);
        for (int i = 0; i < N; i++)
            CHECK(y[i] == x[i] * x[i], "round %d: y[%d] = %g", round, i, (double)y[i]);
        x[round] += 1.0f;
    }
    ggml_backend_buffer_free(buf);
    ggml_backend_free(be);
    ggml_free(g.ctx);
    ggml_backend_unload(reg);
    CHECK(log_count("[E]") == 0 && log_count("[W]") == 0, "no error or warning expected");
    printf("lazy: loaded and listed in %.3f s holding no host context; first backend connected\n", load_s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s kill|stop|silent-load|lazy PATH/libggml-virtgpu.so SERVER_PID\n", argv[0]);
        return 2;
    }
    ggml_log_set(log_capture, NULL);
    server = (pid_t)atoi(argv[3]);
    int rc = 2;
    if (!strcmp(argv[1], "kill"))
        rc = mode_kill(argv[2]);
    else if (!strcmp(argv[1], "stop"))
        rc = mode_stop(argv[2]);
    else if (!strcmp(argv[1], "silent-load"))
        rc = mode_silent_load(argv[2]);
    else if (!strcmp(argv[1], "lazy"))
        rc = mode_lazy(argv[2]);
    else
        fprintf(stderr, "unknown mode %s\n", argv[1]);
    ggml_log_set(NULL, NULL);
    return rc;
}
