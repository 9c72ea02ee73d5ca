/* The client's connection: choosing and opening a transport, the reply and data pages,
 * HANDSHAKE and LOADLIBRARY, lazy reconnection, and declaring the device lost. The call path
 * is in apir_client.c. */
#include "apir_client.h"
#include "apir_client_internal.h"

#include "apir_forward.h"
#include "apir_protocol.h"
#include "guest_log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define DEFAULT_TIMEOUT_S 300

static bool socket_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static const char *load_library_reason(int code)
{
    switch (code) {
    case APIR_LOAD_LIBRARY_HYPERCALL_INITIALIZATION_ERROR: return "the host APIR component failed to initialize";
    case APIR_LOAD_LIBRARY_ALREADY_LOADED: return "the backend library is already loaded in this context";
    case APIR_LOAD_LIBRARY_ENV_VAR_MISSING:
        return "the host does not know which backend library to load: set VIRGL_APIR_BACKEND_LIBRARY "
               "(key apir.load_library.path) on the host";
    case APIR_LOAD_LIBRARY_CANNOT_OPEN:
        return "the host cannot open the backend library: check VIRGL_APIR_BACKEND_LIBRARY on the host";
    case APIR_LOAD_LIBRARY_SYMBOL_MISSING:
        return "the host backend library lacks the apir_backend_* entry points: point "
               "VIRGL_APIR_BACKEND_LIBRARY at libggml-virtgpu-backend.so";
    default: break;
    }
    switch (code - APIR_LOAD_LIBRARY_INIT_BASE_INDEX) {
    case APIR_BACKEND_INIT_GGML_PATH_MISSING:
        return "the host has no GGML library to run: set APIR_LLAMA_CPP_GGML_LIBRARY_PATH on the host";
    case APIR_BACKEND_INIT_GGML_CANNOT_OPEN:
        return "the host cannot open the GGML library: check APIR_LLAMA_CPP_GGML_LIBRARY_PATH on the host";
    case APIR_BACKEND_INIT_REG_SYMBOL_MISSING:
        return "the host GGML library lacks its registration function: set APIR_LLAMA_CPP_GGML_LIBRARY_REG "
               "on the host (e.g. ggml_backend_cuda_reg)";
    case APIR_BACKEND_INIT_REG_NAMED_MISSING:
        return "the host GGML library has no function of the name APIR_LLAMA_CPP_GGML_LIBRARY_REG gives: "
               "fix that variable on the host (its log names the symbol and the library)";
    case APIR_BACKEND_INIT_REG_FAILED: return "the host GGML library's registration function failed";
    case APIR_BACKEND_INIT_API_VERSION:
        return "the host GGML library has another ggml backend API version (need 2, llama.cpp v0.5.0)";
    case APIR_BACKEND_INIT_NO_DEVICE: return "the host GGML library exposes no device";
    default: return "the host backend library failed to initialize (see the host log)";
    }
}

static bool handshake_and_load(struct apir_client *c, uint64_t deadline_ns, char *why, size_t why_len)
{
    uint32_t hs[2] = {APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR};
    struct apir_decoder reply;
    /* the host answers HANDSHAKE without loading anything: silence means a stopped or hung
     * host (or, in a VM, a Venus context the host does not route to APIR); the whole connect
     * shares one short bound so that loading the backend never stalls an application */
    uint64_t now = apir_client_now_ns();
    uint64_t hs_timeout = deadline_ns > now ? deadline_ns - now : 1000000;
    if (hs_timeout > c->timeout_ns)
        hs_timeout = c->timeout_ns;
    int rc = apir_client_command_timed(c, APIR_COMMAND_TYPE_HANDSHAKE, hs, sizeof hs, &reply, hs_timeout);
    if (rc < 0) {
        bool venus_silent = rc == APIR_CLIENT_ERR_TIMEOUT && c->transport->capset_id == APIR_CAPSET_ID_VENUS;
        snprintf(why, why_len, "HANDSHAKE over %s failed: %s%s", c->transport->name,
                 rc == APIR_CLIENT_ERR_TIMEOUT ? "the host did not answer within the connect bound (stopped or hung host?)"
                                               : apir_client_status_str(rc),
                 venus_silent ? " (a Venus context needs VIRGL_ROUTE_VENUS_TO_APIR=1 on the host; or set "
                                "GGML_REMOTING_USE_APIR_CAPSET=1 if the hypervisor supports APIR)"
                              : "");
        return false;
    }
    c->host_major = apir_get_u32(&reply);
    c->host_minor = apir_get_u32(&reply);
    if (rc != APIR_HANDSHAKE_MAGIC) {
        snprintf(why, why_len, "HANDSHAKE over %s: the host answered %d, not the APIR magic 0x%x "
                 "(is this an APIR host? a Venus capset needs VIRGL_ROUTE_VENUS_TO_APIR on the host)",
                 c->transport->name, rc, APIR_HANDSHAKE_MAGIC);
        return false;
    }
    if (c->host_major != APIR_PROTOCOL_MAJOR) {
        snprintf(why, why_len, "HANDSHAKE: host protocol %u.%u, guest %u.%u: major versions differ, "
                 "install matching guest and host builds", c->host_major, c->host_minor,
                 APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR);
        return false;
    }
    /* the host has answered: loading its GGML library may legitimately take long (a GPU
     * backend), so LOADLIBRARY gets the ordinary command timeout */
    rc = apir_client_command_timed(c, APIR_COMMAND_TYPE_LOADLIBRARY, NULL, 0, NULL, c->timeout_ns);
    if (rc != APIR_LOAD_LIBRARY_SUCCESS) {
        if (rc < 0)
            snprintf(why, why_len, "LOADLIBRARY failed: %s", apir_client_status_str(rc));
        else
            snprintf(why, why_len, "LOADLIBRARY failed with code %d: %s", rc, load_library_reason(rc));
        return false;
    }
    return true;
}

/* Closes the transport and unmaps the pages. lost: the host is gone or hung, so nothing is
 * said to it (a stopped host must not block us); closing the connection is what makes it free
 * the context once it runs again. Caller holds c->lock (or owns c alone). */
static void drop_transport(struct apir_client *c, bool lost)
{
    struct apir_transport *t = c->transport;
    if (!t)
        return;
    if (lost)
        t->lost = true;
    if (c->data.ptr && c->on_page_change)
        c->on_page_change();
    if (c->data.ptr)
        apir_transport_destroy_blob(t, &c->data);
    if (c->reply.ptr)
        apir_transport_destroy_blob(t, &c->reply);
    apir_transport_destroy(t);
    c->transport = NULL;
    memset(&c->data, 0, sizeof c->data);
    memset(&c->reply, 0, sizeof c->reply);
    c->noreply_pending = false;
    c->data_queued = 0;
}

/* pages + HANDSHAKE + LOADLIBRARY over t (taken over, also on failure) */
static bool attach_transport(struct apir_client *c, struct apir_transport *t, uint64_t deadline_ns, char *why,
                             size_t why_len)
{
    /* under the lock: apir_client_blob_destroy must see both or neither (blobs kept from an
     * earlier connection no longer name anything) */
    pthread_mutex_lock(&c->lock);
    c->generation++;
    c->transport = t;
    pthread_mutex_unlock(&c->lock);
    c->cmd_offset = t->capset_id == APIR_CAPSET_ID_VENUS ? APIR_VENUS_CMD_OFFSET : 0;
    int err = apir_transport_create_blob(t, APIR_CLIENT_REPLY_PAGE_SIZE, &c->reply);
    if (err) {
        snprintf(why, why_len, "cannot create the reply page over %s: %s", t->name, strerror(-err));
        goto fail;
    }
    err = apir_transport_create_blob(t, APIR_CLIENT_DATA_PAGE_SIZE, &c->data);
    if (err) {
        snprintf(why, why_len, "cannot create the data page over %s: %s", t->name, strerror(-err));
        goto fail;
    }
    if (!handshake_and_load(c, deadline_ns, why, why_len))
        goto fail;
    apir_transport_set_timeout(t, c->timeout_ns);
    return true;
fail:
    drop_transport(c, true);
    return false;
}

static struct apir_transport *open_endpoint(const struct apir_client_endpoint *ep, char *why, size_t why_len)
{
    switch (ep->kind) {
    case APIR_ENDPOINT_VTEST: return apir_transport_vtest_open(ep->path, ep->capset, why, why_len);
    case APIR_ENDPOINT_VIRTGPU: return apir_transport_virtgpu_open(NULL, ep->capset, why, why_len);
    default: snprintf(why, why_len, "no endpoint to reconnect to"); return NULL;
    }
}

static const char *endpoint_str(const struct apir_client_endpoint *ep, char *buf, size_t len)
{
    if (ep->kind == APIR_ENDPOINT_VTEST)
        snprintf(buf, len, "apir-server at %s", ep->path);
    else if (ep->kind == APIR_ENDPOINT_VIRTGPU)
        snprintf(buf, len, "the virtio-gpu host (hypervisor)");
    else
        snprintf(buf, len, "the host");
    return buf;
}

/* the one line that says the device is gone; everything after it fails without a word */
static void log_loss(struct apir_client *c, const char *what)
{
    char ep[160];
    GUEST_LOG_ERROR("VirtGPU device lost: %s; every later VirtGPU call in this process fails at once "
                    "(compute errors, no waiting). Restart the application once %s answers again\n",
                    what, endpoint_str(&c->endpoint, ep, sizeof ep));
}

void apir_client_lose_locked(struct apir_client *c, int rc, const char *what)
{
    if (atomic_load(&c->state) == APIR_CLIENT_DEAD)
        return;
    char buf[256];
    if (!what) {
        const char *cmd = apir_forward_cmd_name(c->cur_cmd);
        if (rc == APIR_CLIENT_ERR_TIMEOUT)
            snprintf(buf, sizeof buf, "the host did not answer %s within GGML_VIRTGPU_TIMEOUT=%llu s (stopped or "
                     "hung host)", cmd, (unsigned long long)(c->timeout_ns / 1000000000ull));
        else
            snprintf(buf, sizeof buf, "the connection to the host was lost during %s (host stopped or died)", cmd);
        what = buf;
    }
    atomic_store(&c->state, APIR_CLIENT_DEAD);
    log_loss(c, what);
    drop_transport(c, true);
}

void apir_client_mark_dead(struct apir_client *c, const char *what)
{
    pthread_mutex_lock(&c->lock);
    apir_client_lose_locked(c, 0, what);
    pthread_mutex_unlock(&c->lock);
}

/* DISCONNECTED -> CONNECTED (or DEAD): new transport, pages, HANDSHAKE, LOADLIBRARY, hook.
 * Caller holds connect_lock. */
static int reconnect(struct apir_client *c)
{
    c->connecting_thread = pthread_self();
    atomic_store(&c->state, APIR_CLIENT_CONNECTING);
    char why[512] = "", twhy[256] = "";
    uint64_t deadline = apir_client_now_ns() + APIR_CONNECT_TIMEOUT_MS * 1000000ull;
    struct apir_transport *t = open_endpoint(&c->endpoint, twhy, sizeof twhy);
    bool ok = false;
    if (!t) {
        snprintf(why, sizeof why, "cannot reconnect: %s", twhy);
    } else {
        /* no c->lock: HANDSHAKE takes it; other threads wait on connect_lock meanwhile */
        char awhy[400] = "";
        ok = attach_transport(c, t, deadline, awhy, sizeof awhy);
        if (!ok)
            snprintf(why, sizeof why, "cannot reconnect: %s", awhy);
    }
    if (ok && c->on_connect && !c->on_connect(c, c->on_connect_user, why, sizeof why))
        ok = false;
    pthread_mutex_lock(&c->lock);
    if (ok && atomic_load(&c->state) == APIR_CLIENT_CONNECTING) {
        atomic_store(&c->state, APIR_CLIENT_CONNECTED);
    } else if (atomic_load(&c->state) != APIR_CLIENT_DEAD) {
        apir_client_lose_locked(c, 0, why);
    }
    int rc = atomic_load(&c->state) == APIR_CLIENT_CONNECTED ? 0 : APIR_CLIENT_ERR_LOST;
    pthread_mutex_unlock(&c->lock);
    return rc;
}

int apir_client_ensure_connected(struct apir_client *c)
{
    int st = atomic_load(&c->state);
    if (st == APIR_CLIENT_CONNECTED)
        return 0;
    if (st == APIR_CLIENT_DEAD)
        return APIR_CLIENT_ERR_LOST;
    /* the hook's own commands, run by the connecting thread */
    if (st == APIR_CLIENT_CONNECTING && pthread_equal(c->connecting_thread, pthread_self()))
        return 0;
    pthread_mutex_lock(&c->connect_lock);
    int rc = 0;
    st = atomic_load(&c->state);
    if (st == APIR_CLIENT_DISCONNECTED)
        rc = reconnect(c);
    else if (st != APIR_CLIENT_CONNECTED)
        rc = APIR_CLIENT_ERR_LOST;
    pthread_mutex_unlock(&c->connect_lock);
    return rc;
}

static struct apir_client *client_new(void)
{
    struct apir_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->lock, NULL);
    pthread_mutex_init(&c->connect_lock, NULL);
    atomic_init(&c->state, APIR_CLIENT_DISCONNECTED);
    const char *to = getenv("GGML_VIRTGPU_TIMEOUT");
    long secs = to ? strtol(to, NULL, 10) : 0;
    c->timeout_ns = (uint64_t)(secs > 0 ? secs : DEFAULT_TIMEOUT_S) * 1000000000ull;
    return c;
}

static struct apir_client *open_with(struct apir_client *c, struct apir_transport *t, uint64_t deadline,
                                     char *why, size_t why_len)
{
    if (!attach_transport(c, t, deadline, why, why_len)) {
        apir_client_close(c);
        return NULL;
    }
    atomic_store(&c->state, APIR_CLIENT_CONNECTED);
    return c;
}

struct apir_client *apir_client_open_transport(struct apir_transport *t, char *why, size_t why_len)
{
    uint64_t deadline = apir_client_now_ns() + APIR_CONNECT_TIMEOUT_MS * 1000000ull;
    struct apir_client *c = client_new();
    if (!c) {
        apir_transport_destroy(t);
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    return open_with(c, t, deadline, why, why_len);
}

bool apir_client_find_endpoint(struct apir_client_endpoint *ep, char *why, size_t why_len)
{
    memset(ep, 0, sizeof *ep);
    ep->capset = getenv("GGML_REMOTING_USE_APIR_CAPSET") ? APIR_CAPSET_ID_APIR : APIR_CAPSET_ID_VENUS;
    const char *sock = getenv("GGML_VIRTGPU_SOCKET");
    if (!sock)
        sock = getenv("VTEST_SOCKET_NAME");
    if (sock && strlen(sock) >= sizeof ep->path) {
        snprintf(why, why_len, "vtest: socket path too long: %s", sock);
        return false;
    }
    if (sock) {
        ep->kind = APIR_ENDPOINT_VTEST;
        snprintf(ep->path, sizeof ep->path, "%s", sock);
    } else if (apir_transport_virtgpu_present()) {
        ep->kind = APIR_ENDPOINT_VIRTGPU;
    } else if (socket_exists(APIR_DEFAULT_SOCKET_PATH)) {
        ep->kind = APIR_ENDPOINT_VTEST;
        snprintf(ep->path, sizeof ep->path, "%s", APIR_DEFAULT_SOCKET_PATH);
    } else {
        snprintf(why, why_len, "no host found: no virtio_gpu render node in /dev/dri and no apir-server "
                 "socket at %s; start apir-server on the host or set GGML_VIRTGPU_SOCKET=PATH",
                 APIR_DEFAULT_SOCKET_PATH);
        return false;
    }
    return true;
}

struct apir_client *apir_client_new_disconnected(const struct apir_client_endpoint *ep)
{
    if (ep->kind == APIR_ENDPOINT_NONE)
        return NULL;
    struct apir_client *c = client_new();
    if (c)
        c->endpoint = *ep;
    return c;
}

struct apir_client *apir_client_open(char *why, size_t why_len)
{
    uint64_t deadline = apir_client_now_ns() + APIR_CONNECT_TIMEOUT_MS * 1000000ull;
    struct apir_client_endpoint ep;
    if (!apir_client_find_endpoint(&ep, why, why_len))
        return NULL;
    char twhy[256] = "";
    struct apir_transport *t = open_endpoint(&ep, twhy, sizeof twhy);
    if (!t) {
        snprintf(why, why_len, "%s", twhy);
        return NULL;
    }
    struct apir_client *c = client_new();
    if (!c) {
        apir_transport_destroy(t);
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    c->endpoint = ep;
    return open_with(c, t, deadline, why, why_len);
}

void apir_client_disconnect(struct apir_client *c)
{
    if (c->endpoint.kind == APIR_ENDPOINT_NONE)
        return; /* could not come back: keep the connection */
    pthread_mutex_lock(&c->connect_lock);
    pthread_mutex_lock(&c->lock);
    if (atomic_load(&c->state) == APIR_CLIENT_CONNECTED) {
        drop_transport(c, false);
        atomic_store(&c->state, APIR_CLIENT_DISCONNECTED);
    }
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&c->connect_lock);
}

void apir_client_set_connect_hook(struct apir_client *c, apir_client_connect_hook hook, void *user)
{
    c->on_connect = hook;
    c->on_connect_user = user;
}

void apir_client_set_page_hook(struct apir_client *c, apir_client_page_hook hook) { c->on_page_change = hook; }

bool apir_client_is_dead(struct apir_client *c) { return c && atomic_load(&c->state) == APIR_CLIENT_DEAD; }

bool apir_client_is_connected(struct apir_client *c)
{
    return c && atomic_load(&c->state) == APIR_CLIENT_CONNECTED;
}

bool apir_client_lost_error(int rc)
{
    return rc == APIR_CLIENT_ERR_TRANSPORT || rc == APIR_CLIENT_ERR_TIMEOUT || rc == APIR_CLIENT_ERR_LOST;
}

void apir_client_close(struct apir_client *c)
{
    if (!c)
        return;
    drop_transport(c, false);
    free(c->cmd_buf);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->connect_lock);
    free(c);
}

int apir_client_blob_create(struct apir_client *c, size_t size, struct apir_client_blob *b)
{
    memset(b, 0, sizeof *b);
    if (apir_client_ensure_connected(c))
        return -ENOTCONN;
    pthread_mutex_lock(&c->lock);
    int rc = -ENOTCONN;
    bool up = atomic_load(&c->state) == APIR_CLIENT_CONNECTED && c->transport;
    if (up && !c->transport->kept_blobs) {
        rc = -EOPNOTSUPP;
    } else if (up) {
        rc = apir_transport_create_blob(c->transport, size, &b->shm);
        b->generation = c->generation;
        /* refused (or out of address space): the connection is fine. Anything else may leave
         * the vtest stream in the middle of a reply: the device is lost, as for a command. */
        if (rc && rc != -ENOMEM && rc != -EINVAL && rc != -ENOSPC) {
            char what[160];
            snprintf(what, sizeof what, "making a %zu-byte shared host buffer over %s failed: %s", size,
                     c->transport->name, strerror(-rc));
            apir_client_lose_locked(c, APIR_CLIENT_ERR_TRANSPORT, what);
            rc = -ENOTCONN;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void apir_client_blob_destroy(struct apir_client *c, struct apir_client_blob *b)
{
    if (!b->shm.ptr)
        return;
    pthread_mutex_lock(&c->lock);
    if (c->transport && b->generation == c->generation)
        apir_transport_destroy_blob(c->transport, &b->shm);
    else
        munmap(b->shm.ptr, b->shm.size); /* both transports map blobs with mmap */
    pthread_mutex_unlock(&c->lock);
    memset(b, 0, sizeof *b);
}
