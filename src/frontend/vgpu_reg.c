/* The reg of libggml-virtgpu.so and its two exported entry points. In ggml_backend_init
 * (ggml's loader calls it once per load) the devices are listed: from the per-user device
 * cache when it has the answers of this very host (vgpu_device_cache.h: no connection at all),
 * otherwise by asking the host, after which the connection is given back at once (and the
 * answers cached). Listing devices thus holds no host context. The first call that needs the
 * host (supports_op, a buffer, a backend) connects, and the hook below checks that the host
 * still has the devices listed. Without a host the reg has zero devices and says why, so
 * loading never aborts or stalls an application. */
#include "guest_log.h"
#include "vgpu_internal.h"

#include "apir_forward.h"

#include "vgpu_device_cache.h"
#include "vgpu_listing.h"
#include "vgpu_outputs.h"
#include "vgpu_stats.h"

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
    struct vgpu_listing listed; /* the answers the devices were made from */
    bool cached;                /* ... read from the device cache, under this key */
    char cache_key[VGPU_DEVICE_CACHE_KEY_MAX];
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
    vgpu_listing_free(&state.listed);
    apir_client_close(state.client);
    memset(&state, 0, sizeof state);
    vgpu_outputs_free();
}

/* After a lazy (re)connection: the devices, their buffer types and the handles the listing
 * named must be the host's now (a host whose backend changed would make every answer wrong).
 * Answers that came from the device cache and differ are replaced there by the live ones,
 * so that the next process lists the host as it is; this one cannot take them (ggml holds
 * the devices and buffer types it listed), so the device is lost for it. */
static bool same_devices(struct apir_client *c, void *user, char *why, size_t why_len)
{
    (void)user;
    struct vgpu_listing live;
    char fwhy[256] = "";
    if (!vgpu_listing_fetch(c, &live, fwhy, sizeof fwhy)) {
        snprintf(why, why_len, "after connecting: %s", fwhy);
        return false;
    }
    char diff[512] = "";
    bool same = vgpu_listing_same(&state.listed, &live, diff, sizeof diff);
    if (!same && state.cached) {
        vgpu_device_cache_store(state.cache_key, &live);
        snprintf(why, why_len, "%s since the device cache was written (the cache now holds the live answers; "
                 "GGML_VIRTGPU_DEVICE_CACHE=0 turns it off)", diff);
    } else if (!same) {
        snprintf(why, why_len, "%s since this process started", diff);
    }
    vgpu_listing_free(&live);
    return same;
}

/* the devices from the listing; false (with a log line) if none can be made */
static bool make_devices(struct apir_client *c)
{
    if (state.listed.n == 0) {
        GUEST_LOG_WARN("the host exposes no device\n");
        return true;
    }
    state.devices = calloc(state.listed.n, sizeof *state.devices);
    if (!state.devices) {
        GUEST_LOG_ERROR("out of memory\n");
        return false;
    }
    for (size_t i = 0; i < state.listed.n; i++) {
        if (!vgpu_device_init(&state.devices[state.n_devices], &vgpu_reg, c, (uint32_t)i, &state.listed.dev[i]))
            break; /* keep the devices before it: indices must stay dense */
        state.n_devices++;
    }
    bool off_cpu = state.n_devices > 0;
    for (size_t i = 0; i < state.n_devices; i++)
        off_cpu = off_cpu && (state.devices[i].host.type == GGML_BACKEND_DEVICE_TYPE_GPU ||
                              state.devices[i].host.type == GGML_BACKEND_DEVICE_TYPE_IGPU);
    apir_client_set_host_off_cpu(c, off_cpu);
    if (off_cpu)
        GUEST_LOG_DEBUG("every host device is a GPU: waits for the host spin before they sleep (GGML_VIRTGPU_SPIN_US)\n");
    return true;
}

static void no_device(const char *why)
{
    /* every ggml program on a machine without a host loads this library: a warning only
     * when VirtGPU was asked for */
    if (getenv("GGML_VIRTGPU_SOCKET") || getenv("VTEST_SOCKET_NAME") || getenv("GGML_REMOTING_USE_APIR_CAPSET"))
        GUEST_LOG_WARN("no VirtGPU device: %s\n", why);
    else
        GUEST_LOG_INFO("no VirtGPU device: %s\n", why);
}

/* Lists the devices from the cache: true with state.client a client that has not connected */
static bool list_from_cache(const struct apir_client_endpoint *ep)
{
    if (!vgpu_device_cache_load(ep, state.cache_key, &state.listed))
        return false;
    state.cached = true;
    state.client = apir_client_new_disconnected(ep);
    if (!state.client) {
        vgpu_listing_free(&state.listed);
        state.cached = false;
        return false;
    }
    return true;
}

static void init_reg(void)
{
    char why[512] = "";
    struct apir_client_endpoint ep;
    if (!apir_client_find_endpoint(&ep, why, sizeof why)) {
        no_device(why);
        return;
    }
    /* the key before connecting: a host restarted in between leaves an entry no one uses */
    bool cacheable = vgpu_device_cache_key(&ep, state.cache_key, sizeof state.cache_key);
    if (!cacheable || !list_from_cache(&ep)) {
        struct apir_client *c = apir_client_open(why, sizeof why);
        if (!c) {
            no_device(why);
            return;
        }
        state.client = c;
        if (!vgpu_listing_fetch(c, &state.listed, why, sizeof why)) {
            GUEST_LOG_ERROR("%s; no VirtGPU device\n", why);
            close_all();
            return;
        }
        if (cacheable)
            vgpu_device_cache_store(state.cache_key, &state.listed);
    }
    if (!make_devices(state.client)) {
        close_all();
        return;
    }
    for (size_t i = 0; i < state.n_devices; i++)
        GUEST_LOG_INFO("%s: %s (host device %s%s)\n", state.devices[i].name, state.devices[i].host.description,
                       state.devices[i].host.name, state.cached ? ", listed from the device cache" : "");
    if (state.n_devices == 0) {
        close_all();
        return;
    }
    /* lazy connection: hold no host context until VirtGPU is used */
    apir_client_set_connect_hook(state.client, same_devices, NULL);
    apir_client_set_page_hook(state.client, vgpu_outputs_page_changing);
    apir_client_disconnect(state.client);
}

/* dlclose (ggml_backend_unload, or ggml's registry at exit) must not leave the connection and
 * the caches behind. */
__attribute__((destructor)) static void vgpu_reg_unload(void)
{
    vgpu_stats_report_total(); /* GGML_VIRTGPU_STATS */
    close_all();
}

__attribute__((visibility("default"))) ggml_backend_reg_t ggml_backend_init(void)
{
    pthread_once(&init_once, init_reg);
    return &vgpu_reg;
}

/* Positive even without a host, so the loader takes the library; it then has zero devices. */
__attribute__((visibility("default"))) int ggml_backend_score(void) { return 1; }
