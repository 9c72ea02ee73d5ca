/* A guest over the emulated virtio-gpu render node (run under LD_PRELOAD=libvirtgpu_emu.so by
 * run_emu_test.sh). Each mode sets the guest/host environment, opens the connection through
 * apir_client_open() -- no socket configured, so it must take the render-node path -- and checks
 * the outcome, then checks the ioctl sequence the emulation recorded (VIRTGPU_EMU_STATS).
 * Modes: apir, apir-any-value, venus (routed), venus-unrouted, apir-not-offered, no-blob, no-backend, bad-node,
 * device-lost, bad-ioctls, denied. */
#include "apir_client.h"
#include "apir_forward.h"
#include "apir_protocol.h"
#include "emu_check.h"
#include "virtgpu_uapi.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char stats_path[256], log_path[256];
static unsigned n_forward; /* FORWARD commands sent, for the EXECBUFFER count */

/* ---- reading what the emulation recorded ---- */

static char stats[8192];

static void load_stats(void)
{
    stats[0] = '\0';
    /* the shim writes the record when the node closes; ask for it now in case none was opened */
    void (*dump)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "emu_stats_dump");
    CHECK(dump != NULL, "not running under the virtgpu emulation shim");
    if (dump)
        dump();
    FILE *f = fopen(stats_path, "r");
    CHECK(f != NULL, "no stats file %s (did the emulated node get closed?)", stats_path);
    if (!f)
        return;
    size_t n = fread(stats, 1, sizeof stats - 1, f);
    stats[n] = '\0';
    fclose(f);
}

static unsigned long stat_count(const char *name)
{
    size_t len = strlen(name);
    for (const char *p = stats; *p;) {
        if (strncmp(p, name, len) == 0 && p[len] == ' ')
            return strtoul(p + len + 1, NULL, 10);
        const char *nl = strchr(p, '\n');
        if (!nl)
            break;
        p = nl + 1;
    }
    return 0;
}

static const char *stat_seq(void)
{
    const char *s = strstr(stats, "seq ");
    return s ? s + 4 : "";
}

static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[2048];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* the sequence apir_client_open() + apir_client_close() must produce: a probe (present()),
 * then params, capset, context, reply page, data page, commands, and the teardown */
#define SEQ_OPEN                                                                                  \
    "OPEN VERSION CLOSE OPEN VERSION GETPARAM*5 GET_CAPS CONTEXT_INIT RESOURCE_CREATE_BLOB MAP " \
    "MMAP RESOURCE_CREATE_BLOB MAP MMAP EXECBUFFER"
#define SEQ_CLOSE " GEM_CLOSE*2 CLOSE"

static void check_no_anomaly(void)
{
    static const char *const bad[] = {"UNKNOWN_IOCTL", "BAD_IOCTL_LAYOUT", "MMAP_REFUSED", "HOST_SUBMIT_ERROR",
                                      "HOST_ATTACH_FAILED", "BLOB_ID_REUSED",
                                      "CMD_UNKNOWN_NUMBERING"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(stat_count(bad[i]) == 0, "emulation recorded %s %lu", bad[i], stat_count(bad[i]));
}

/* ---- FORWARD commands over the connection ---- */

static int forward_simple(struct apir_client *c, uint32_t cmd, const void *args, size_t len,
                          struct apir_decoder *reply)
{
    struct apir_encoder *enc = apir_client_begin(c, cmd, len);
    apir_put_bytes(enc, args, len);
    n_forward++;
    return apir_client_call(c, reply);
}

/* BUFFER_SET or BUFFER_GET of size bytes at offset 0 of buf, through the data page at data_off */
static int transfer(struct apir_client *c, uint32_t cmd, uint32_t buf, uint64_t size, uint64_t data_off)
{
    struct apir_encoder *enc = apir_client_begin(c, cmd, 32);
    apir_put_u32(enc, buf);
    apir_put_u64(enc, 0);
    apir_put_u64(enc, size);
    apir_put_u32(enc, c->data.res_id);
    apir_put_u64(enc, data_off);
    n_forward++;
    struct apir_decoder r;
    int st = apir_client_call(c, &r);
    apir_client_end(c);
    return st;
}

static void run_forward_commands(struct apir_client *c)
{
    struct apir_decoder r;
    char name[256], desc[256];

    /* GET_INFO */
    int st = forward_simple(c, APIR_FWD_GET_INFO, NULL, 0, &r);
    uint32_t version = apir_get_u32(&r), n_dev = apir_get_u32(&r);
    CHECK(st == APIR_BACKEND_OK && apir_decoder_done(&r), "GET_INFO: %s", apir_client_status_str(st));
    CHECK(version == APIR_FORWARD_PROTOCOL_VERSION && n_dev >= 1, "GET_INFO: version %u, %u devices", version, n_dev);
    apir_client_end(c);

    /* DEVICE_GET_INFO 0 */
    struct apir_encoder *enc = apir_client_begin(c, APIR_FWD_DEVICE_GET_INFO, 4);
    apir_put_u32(enc, 0);
    n_forward++;
    st = apir_client_call(c, &r);
    apir_get_str(&r, name, sizeof name);
    apir_get_str(&r, desc, sizeof desc);
    uint32_t type = apir_get_u32(&r);
    for (int i = 0; i < 4; i++)
        apir_get_u8(&r);
    uint32_t buft = apir_get_u32(&r);
    apir_get_u32(&r);
    CHECK(st == APIR_BACKEND_OK && apir_decoder_done(&r), "DEVICE_GET_INFO: %s", apir_client_status_str(st));
    CHECK(strncmp(name, "CPU", 3) == 0 && type == 0 && buft != 0, "device 0: '%s' type %u buft %u", name, type, buft);
    apir_client_end(c);
    printf("host device 0: %s (%s)\n", name, desc);

    /* BUFT_ALLOC_BUFFER 4096 */
    enc = apir_client_begin(c, APIR_FWD_BUFT_ALLOC_BUFFER, 12);
    apir_put_u32(enc, buft);
    apir_put_u64(enc, 4096);
    n_forward++;
    st = apir_client_call(c, &r);
    uint32_t buf = apir_get_u32(&r);
    uint64_t size = apir_get_u64(&r);
    CHECK(st == APIR_BACKEND_OK && buf != 0 && size >= 4096, "ALLOC_BUFFER: %s, size %llu",
          apir_client_status_str(st), (unsigned long long)size);
    apir_client_end(c);

    /* BUFFER_SET from the data page, wipe the page, BUFFER_GET back into it */
    uint8_t *data = c->data.ptr;
    for (int i = 0; i < 4096; i++)
        data[100 + i] = (uint8_t)(i * 7 + 3);
    st = transfer(c, APIR_FWD_BUFFER_SET, buf, 4096, 100);
    CHECK(st == APIR_BACKEND_OK, "BUFFER_SET: %s", apir_client_status_str(st));
    memset(data, 0, 8192);
    st = transfer(c, APIR_FWD_BUFFER_GET, buf, 4096, 0);
    CHECK(st == APIR_BACKEND_OK, "BUFFER_GET: %s", apir_client_status_str(st));
    int bad = 0;
    for (int i = 0; i < 4096; i++)
        bad += data[i] != (uint8_t)(i * 7 + 3);
    CHECK(bad == 0, "%d bytes differ after a set/get round trip through the host buffer", bad);

    /* the host checks the transfer against the shared resource: past the end of the data page */
    st = transfer(c, APIR_FWD_BUFFER_GET, buf, 4096, c->data.size - 100);
    CHECK(st == APIR_BACKEND_ERR_BOUNDS, "GET past the data page: %s", apir_client_status_str(st));

    /* free, then the handle is stale */
    for (int round = 0; round < 2; round++) {
        enc = apir_client_begin(c, APIR_FWD_BUFFER_FREE, 4);
        apir_put_u32(enc, buf);
        n_forward++;
        st = apir_client_call(c, &r);
        CHECK(st == (round ? APIR_BACKEND_ERR_HANDLE : APIR_BACKEND_OK), "BUFFER_FREE #%d: %s", round,
              apir_client_status_str(st));
        apir_client_end(c);
    }
}

/* ---- modes ---- */

static void set_env(const char *k, const char *v)
{
    if (v)
        setenv(k, v, 1);
    else
        unsetenv(k);
}

/* a full session; numbering is which command types the host must have seen */
/* use_apir: the value of GGML_REMOTING_USE_APIR_CAPSET (presence-based: any value, even "0",
 * selects the APIR capset), NULL for Venus */
static void mode_connect(const char *use_apir)
{
    bool apir_capset = use_apir != NULL;
    set_env("GGML_REMOTING_USE_APIR_CAPSET", use_apir);
    set_env("VIRGL_ROUTE_VENUS_TO_APIR", apir_capset ? NULL : "1");
    char why[512] = "";
    struct apir_client *c = apir_client_open(why, sizeof why);
    CHECK(c != NULL, "apir_client_open: %s", why);
    if (!c)
        return;
    CHECK(strcmp(c->transport->name, "virtgpu") == 0, "transport %s", c->transport->name);
    CHECK(c->transport->capset_id == (apir_capset ? APIR_CAPSET_ID_APIR : APIR_CAPSET_ID_VENUS), "capset %u",
          c->transport->capset_id);
    CHECK(!c->transport->host_futex_wake, "a VM transport cannot wake with a futex");
    CHECK(c->host_major == APIR_PROTOCOL_MAJOR, "host protocol %u.%u", c->host_major, c->host_minor);
    run_forward_commands(c);
    apir_client_close(c);

    load_stats();
    unsigned long execbuf = 2 + n_forward; /* HANDSHAKE, LOADLIBRARY, then the FORWARDs */
    char expect[512];
    snprintf(expect, sizeof expect, SEQ_OPEN "*%lu" SEQ_CLOSE "\n", execbuf);
    CHECK(strcmp(stat_seq(), expect) == 0, "ioctl sequence\n  got:      %s  expected: %s", stat_seq(), expect);
    CHECK(stat_count("EXECBUFFER") == execbuf, "EXECBUFFER %lu, expected %lu", stat_count("EXECBUFFER"), execbuf);
    CHECK(stat_count("CONTEXT_INIT") == 1 && stat_count("GEM_CLOSE") == 2 && stat_count("MMAP") == 2,
          "context/blob counts: %s", stats);
    CHECK(stat_count(apir_capset ? "CMD_APIR_NUMBERING" : "CMD_VENUS_NUMBERING") == execbuf,
          "command numbering: %s", stats);
    CHECK(stat_count(apir_capset ? "CMD_VENUS_NUMBERING" : "CMD_APIR_NUMBERING") == 0, "mixed numbering: %s", stats);
    CHECK(stat_count("HOST_CONTEXT_REFUSED") == 0, "host refused the context");
    check_no_anomaly();
}

/* open must fail; why must contain `expect` */
static void expect_open_failure(const char *expect)
{
    char why[512] = "";
    struct apir_client *c = apir_client_open(why, sizeof why);
    CHECK(c == NULL, "apir_client_open succeeded, expected a failure with '%s'", expect);
    if (c)
        apir_client_close(c);
    CHECK(strstr(why, expect) != NULL, "reason '%s' lacks '%s'", why, expect);
    printf("refused as expected: %s\n", why);
    load_stats();
    check_no_anomaly();
}

static void mode_venus_unrouted(void)
{
    /* A real kernel does not wait for the host's answer to CONTEXT_INIT, so the guest only sees
     * that nothing replies; the host log says why. */
    set_env("GGML_REMOTING_USE_APIR_CAPSET", NULL);
    set_env("VIRGL_ROUTE_VENUS_TO_APIR", NULL);
    /* sync: the default command timeout, which HANDSHAKE must not wait out; async: a short one */
    bool short_timeout = getenv("VIRTGPU_EMU_ASYNC") != NULL;
    set_env("GGML_VIRTGPU_TIMEOUT", short_timeout ? "1" : NULL);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    expect_open_failure("needs VIRGL_ROUTE_VENUS_TO_APIR=1 on the host");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(secs < (short_timeout ? 3.0 : 10.0), "the refusal took %.1f s", secs);
    CHECK(stat_count("HOST_CONTEXT_REFUSED") == 1 && stat_count("EXECBUFFER_DROPPED") == 1, "%s", stats);
    CHECK(file_contains(log_path, "refusing a Venus"), "host log %s does not say why", log_path);
}

static void mode_apir_not_offered(void)
{
    set_env("GGML_REMOTING_USE_APIR_CAPSET", "1");
    set_env("VIRTGPU_EMU_CAPSETS", "4");
    expect_open_failure("does not offer capset 10");
    CHECK(stat_count("CONTEXT_INIT") == 0 && stat_count("GET_CAPS") == 0, "%s", stats);
}

static void mode_no_blob(void)
{
    set_env("GGML_REMOTING_USE_APIR_CAPSET", "1");
    set_env("VIRTGPU_EMU_NO_BLOB", "1");
    expect_open_failure("lacks RESOURCE_BLOB");
    CHECK(stat_count("CONTEXT_INIT") == 0, "%s", stats);
}

static void mode_no_backend(void)
{
    set_env("GGML_REMOTING_USE_APIR_CAPSET", "1");
    set_env("VIRGL_APIR_BACKEND_LIBRARY", "/nonexistent/libggml-virtgpu-backend.so");
    expect_open_failure("LOADLIBRARY failed with code 4");
    CHECK(stat_count("EXECBUFFER") == 2 && stat_count("GEM_CLOSE") == 2, "%s", stats);
}

/* the device goes away (ENODEV) after HANDSHAKE and LOADLIBRARY: the next command fails at
 * once with a transport error instead of waiting for a timeout, the client is dead from then
 * on (later commands fail without being sent), and closing stays clean */
static void mode_device_lost(void)
{
    set_env("GGML_REMOTING_USE_APIR_CAPSET", "1");
    set_env("VIRTGPU_EMU_LOSE_AT", "3");
    char why[512] = "";
    struct apir_client *c = apir_client_open(why, sizeof why);
    CHECK(c != NULL, "apir_client_open: %s", why);
    if (!c)
        return;
    for (int i = 0; i < 2; i++) {
        struct apir_decoder r;
        int st = forward_simple(c, APIR_FWD_GET_INFO, NULL, 0, &r);
        apir_client_end(c);
        int want = i == 0 ? APIR_CLIENT_ERR_TRANSPORT : APIR_CLIENT_ERR_LOST;
        CHECK(st == want, "GET_INFO %d on a lost device: %s", i, apir_client_status_str(st));
    }
    CHECK(apir_client_is_dead(c) && c->transport == NULL, "the client did not give the lost transport up");
    apir_client_close(c);
    load_stats();
    CHECK(stat_count("DEVICE_LOST") >= 2, "%s", stats);
}

/* a user who may not open the node hears that, not "no device" (the node is recognised
 * through sysfs) */
static void mode_denied(void)
{
    set_env("GGML_REMOTING_USE_APIR_CAPSET", "1");
    set_env("VIRTGPU_EMU_DENY", "1");
    CHECK(apir_transport_virtgpu_present(), "a node we may not open must still count as present");
    expect_open_failure("cannot open /dev/dri/renderD128: Permission denied");
    CHECK(stat_count("OPEN_DENIED") >= 2 && stat_count("OPEN") == 0, "%s", stats);
}

static void mode_bad_ioctls(void)
{
    /* layouts the kernel ABI does not have are refused by the emulated driver */
    int fd = open("/dev/dri/renderD128", O_RDWR | O_CLOEXEC);
    CHECK(fd >= 0, "open the emulated node");
    struct {
        uint8_t bytes[32];
    } old_execbuffer = {{0}}; /* the pre-ring_idx 32-byte struct: not the current ABI */
    CHECK(ioctl(fd, DRM_IOWR(DRM_COMMAND_BASE + 0x02, old_execbuffer), &old_execbuffer) == -1 && errno == EINVAL,
          "a 32-byte EXECBUFFER was accepted");
    CHECK(ioctl(fd, DRM_IOWR(DRM_COMMAND_BASE + 0x30, old_execbuffer), &old_execbuffer) == -1 && errno == ENOTTY,
          "an unknown virtio-gpu ioctl was accepted");
    CHECK(ioctl(fd, DRM_IOCTL_VIRTGPU_MAP, &(struct drm_virtgpu_map){.handle = 77}) == -1 && errno == ENOENT,
          "MAP of an unknown handle");
    struct drm_virtgpu_resource_create_blob blob = {.blob_mem = VIRTGPU_BLOB_MEM_HOST3D, .size = 4096};
    CHECK(ioctl(fd, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB, &blob) == -1 && errno == EINVAL,
          "a blob before CONTEXT_INIT");
    close(fd);
    load_stats();
    CHECK(stat_count("BAD_IOCTL_LAYOUT") == 1 && stat_count("UNKNOWN_IOCTL") == 1, "%s", stats);
}

static void mode_bad_node(void)
{
    char why[256] = "";
    struct apir_transport *t = apir_transport_virtgpu_open("/dev/null", APIR_CAPSET_ID_APIR, why, sizeof why);
    CHECK(t == NULL && strstr(why, "not a virtio_gpu device"), "/dev/null: %s", why);
    t = apir_transport_virtgpu_open("/nonexistent/renderD128", APIR_CAPSET_ID_APIR, why, sizeof why);
    CHECK(t == NULL && strstr(why, "open /nonexistent/renderD128 failed"), "missing node: %s", why);
    t = apir_transport_virtgpu_open("/dev/dri/renderD128", 7, why, sizeof why);
    CHECK(t == NULL && strstr(why, "capset 7"), "capset 7: %s", why);
    /* the emulated node given by path: a context opens, and closes cleanly */
    set_env("VIRGL_ROUTE_VENUS_TO_APIR", "1");
    t = apir_transport_virtgpu_open("/dev/dri/renderD128", APIR_CAPSET_ID_VENUS, why, sizeof why);
    CHECK(t != NULL, "explicit node: %s", why);
    if (t) {
        struct apir_shmem shm = {0};
        CHECK(t->ops->create_blob(t, 5000, &shm) == 0 && shm.ptr && shm.size >= 5000 && shm.res_id, "blob");
        if (shm.ptr) {
            memset(shm.ptr, 0xa5, shm.size); /* the guest mapping is writable end to end */
            t->ops->destroy_blob(t, &shm);
        }
        CHECK(t->ops->submit(t, "", 0) < 0, "an empty submit must be refused by the transport");
        CHECK(t->ops->alive(t), "transport died");
        t->ops->destroy(t);
    }
    load_stats();
    check_no_anomaly();
}

static void mode_apir(void) { mode_connect("1"); }
static void mode_apir_any_value(void) { mode_connect("0"); }
static void mode_venus(void) { mode_connect(NULL); }

/* the modes run_emu_test.sh runs, one process each */
static const struct emu_mode {
    const char *name;
    void (*run)(void);
} modes[] = {
    {"apir", mode_apir},
    {"apir-any-value", mode_apir_any_value},
    {"venus", mode_venus},
    {"venus-unrouted", mode_venus_unrouted},
    {"apir-not-offered", mode_apir_not_offered},
    {"no-blob", mode_no_blob},
    {"no-backend", mode_no_backend},
    {"bad-node", mode_bad_node},
    {"denied", mode_denied},
    {"device-lost", mode_device_lost},
    {"bad-ioctls", mode_bad_ioctls},
    {NULL, NULL},
};

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODE\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    /* the render-node path only: no socket */
    unsetenv("GGML_VIRTGPU_SOCKET");
    unsetenv("VTEST_SOCKET_NAME");
    snprintf(stats_path, sizeof stats_path, "/tmp/virtgpu-emu-%d.stats", (int)getpid());
    snprintf(log_path, sizeof log_path, "/tmp/virtgpu-emu-%d.log", (int)getpid());
    setenv("VIRTGPU_EMU_STATS", stats_path, 1);
    setenv("VIRGL_APIR_LOG_TO_FILE", log_path, 1);
    if (!getenv("VIRGL_APIR_BACKEND_LIBRARY") || !getenv("APIR_LLAMA_CPP_GGML_LIBRARY_PATH")) {
        fprintf(stderr, "set VIRGL_APIR_BACKEND_LIBRARY and APIR_LLAMA_CPP_GGML_LIBRARY_PATH (run_emu_test.sh does)\n");
        return 2;
    }

    const struct emu_mode *m = modes;
    while (m->name && strcmp(m->name, mode))
        m++;
    if (!m->name) {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    m->run();
    if (failures)
        fprintf(stderr, "--- emulation record:\n%s--- host log %s kept\n", stats, log_path);
    else
        unlink(log_path);
    if (!getenv("VIRTGPU_EMU_KEEP"))
        unlink(stats_path);
    printf("%s: %s\n", mode, failures ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
