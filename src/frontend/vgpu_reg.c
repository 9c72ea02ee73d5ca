/* The reg of libggml-virtgpu.so and its two exported entry points. In ggml_backend_init
 * (ggml's loader calls it once per load) the host is asked for its devices, and the connection
 * is given back at once: the answers are kept here, in the process, so that listing devices
 * holds no host context. The first call that needs the host (supports_op, a buffer, a
 * backend) connects again, and the hook below checks that the host still has the same
 * devices. Without a host the reg has zero devices and says why, so loading never aborts or
 * stalls an application. */
#include "guest_log.h"
#include "vgpu_internal.h"

#include "apir_forward.h"

#include "vgpu_outputs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* No runtime getter for the ggml backend API version exists: ggml's loader compares
 * reg.api_version (GGML_BACKEND_API_VERSION of the headers we build against, 2 for v0.5.0)
 * with its own and refuses the reg on mismatch, so an incompatible libggml never calls into
 * our interfaces. */
_Static_assert(GGML_BACKEND_API_VERSION == 2, "built against ggml v0.5.0 (backend API version 2)");

struct vgpu_reg_state {
    struct apir_client *client;
    struct vgpu_device *devices;
    size_t n_devices;
};

static struct vgpu_reg_state state;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static const char *reg_get_name(ggml_backend_reg_t reg) { return VGPU_REG_NAME; }

static size_t reg_get_device_count(ggml_backend_reg_t reg) { return state.n_devices; }

static ggml_backend_dev_t reg_get_device(ggml_backend_reg_t reg, size_t index)
{
    if (index >= state.n_devices) {
        GUEST_LOG_ERROR("device index %zu out of range (%zu devices)\n", index, state.n_devices);
        return NULL;
    }
    return &state.devices[index].dev;
}

static void *reg_get_proc_address(ggml_backend_reg_t reg, const char *name) { return NULL; }

static struct ggml_backend_reg vgpu_reg = {
    .api_version = GGML_BACKEND_API_VERSION,
    .iface = {
        .get_name = reg_get_name,
        .get_device_count = reg_get_device_count,
        .get_device = reg_get_device,
        .get_proc_address = reg_get_proc_address,
    },
    .context = NULL,
};

static void close_all(void)
{
    for (size_t i = 0; i < state.n_devices; i++)
        vgpu_device_fini(&state.devices[i]);
    free(state.devices);
    apir_client_close(state.client);
    memset(&state, 0, sizeof state);
    vgpu_outputs_free();
}

/* After a lazy reconnection: the devices, their buffer types and the handles the answers
 * cached at load name must be the host's now (a restarted host with other devices or another
 * build would make every cached answer wrong). */
static bool same_devices(struct apir_client *c, void *user, char *why, size_t why_len)
{
    (void)user;
    uint32_t version = 0, count = 0;
    int rc = vgpu_rpc_get_info(c, &version, &count);
    if (rc) {
        snprintf(why, why_len, "GET_INFO after reconnecting failed: %s", vgpu_rpc_status_str(rc));
        return false;
    }
    if (version != APIR_FORWARD_PROTOCOL_VERSION || count < state.n_devices) {
        snprintf(why, why_len, "the host now has %u devices (FORWARD protocol %u), %zu at load (protocol %u): "
                 "its devices changed since this process started", count, version, state.n_devices,
                 APIR_FORWARD_PROTOCOL_VERSION);
        return false;
    }
    for (size_t i = 0; i < state.n_devices; i++) {
        const struct vgpu_device *d = &state.devices[i];
        struct vgpu_host_device_info now;
        struct vgpu_host_buft_info buft;
        rc = vgpu_rpc_device_info(c, d->index, &now);
        if (!rc)
            rc = vgpu_rpc_buft_info(c, now.buft, &buft);
        if (rc) {
            snprintf(why, why_len, "%s: DEVICE_GET_INFO after reconnecting failed: %s", d->name,
                     vgpu_rpc_status_str(rc));
            return false;
        }
        char buft_name[sizeof d->buft.name];
        snprintf(buft_name, sizeof buft_name, "%s_%s", d->name, buft.name[0] ? buft.name : "buffer");
        if (strcmp(now.name, d->host.name) || strcmp(now.description, d->host.description) ||
            now.type != d->host.type || now.buft != d->host.buft || strcmp(buft_name, d->buft.name)) {
            snprintf(why, why_len, "%s: the host device is now %s (%s), it was %s (%s) at load: its devices changed "
                     "since this process started", d->name, now.name, now.description, d->host.name,
                     d->host.description);
            return false;
        }
    }
    return true;
}

/* asks the host for its devices; false (with a log line) if the host misbehaves */
static bool discover_devices(struct apir_client *c)
{
    uint32_t version = 0, count = 0;
    int rc = vgpu_rpc_get_info(c, &version, &count);
    if (rc) {
        GUEST_LOG_ERROR("GET_INFO failed: %s; no VirtGPU device\n", vgpu_rpc_status_str(rc));
        return false;
    }
    if (version != APIR_FORWARD_PROTOCOL_VERSION) {
        GUEST_LOG_ERROR("the host speaks FORWARD protocol %u, this guest %u: install matching guest and host "
                        "builds; no VirtGPU device\n", version, APIR_FORWARD_PROTOCOL_VERSION);
        return false;
    }
    if (count == 0) {
        GUEST_LOG_WARN("the host exposes no device\n");
        return true;
    }
    if (count > 64) /* a confused host: far more than any machine has */
        count = 64;
    state.devices = calloc(count, sizeof *state.devices);
    if (!state.devices) {
        GUEST_LOG_ERROR("out of memory\n");
        return false;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (!vgpu_device_init(&state.devices[state.n_devices], &vgpu_reg, c, i))
            break; /* keep the devices before it: indices must stay dense */
        state.n_devices++;
    }
    return true;
}

static void init_reg(void)
{
    char why[512] = "";
    struct apir_client *c = apir_client_open(why, sizeof why);
    if (!c) {
        /* every ggml program on a machine without a host loads this library: a warning only
         * when VirtGPU was asked for */
        if (getenv("GGML_VIRTGPU_SOCKET") || getenv("VTEST_SOCKET_NAME") || getenv("GGML_REMOTING_USE_APIR_CAPSET"))
            GUEST_LOG_WARN("no VirtGPU device: %s\n", why);
        else
            GUEST_LOG_INFO("no VirtGPU device: %s\n", why);
        return;
    }
    state.client = c;
    if (!discover_devices(c)) {
        close_all();
        return;
    }
    for (size_t i = 0; i < state.n_devices; i++)
        GUEST_LOG_INFO("%s: %s (host device %s)\n", state.devices[i].name, state.devices[i].host.description,
                       state.devices[i].host.name);
    if (state.n_devices == 0) {
        close_all();
        return;
    }
    /* lazy connection: hold no host context until VirtGPU is used */
    apir_client_set_connect_hook(c, same_devices, NULL);
    apir_client_disconnect(c);
}

/* dlclose (ggml_backend_unload, or ggml's registry at exit) must not leave the connection and
 * the caches behind. */
__attribute__((destructor)) static void vgpu_reg_unload(void) { close_all(); }

__attribute__((visibility("default"))) ggml_backend_reg_t ggml_backend_init(void)
{
    pthread_once(&init_once, init_reg);
    return &vgpu_reg;
}

/* Positive even without a host, so the loader takes the library; it then has zero devices. */
__attribute__((visibility("default"))) int ggml_backend_score(void) { return 1; }
