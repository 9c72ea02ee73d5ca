/* The client's call path: one FORWARD (or raw APIR command) at a time, submit and wait for
 * the reply word. Connecting, HANDSHAKE/LOADLIBRARY and losing the device are in
 * apir_client_connect.c. */
#include "apir_client.h"
#include "apir_client_internal.h"

#include "apir_forward.h"
#include "apir_protocol.h"
#include "vgpu_stats.h"

#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How long to spin on the reply word before blocking. Same host (futex wake), CPU host: do
 * not spin, since a spinning guest takes a core from the host's compute threads, whose spin
 * barriers then lose whole scheduler slices (measured: 0.14x instead of 0.8x native on 2
 * cores). A host that computes on a GPU leaves its cores idle while it computes, and there a
 * futex wake-up cost 60-110 us per token (H200: the guest waited 1168-1216 us for a 1105 us
 * handler); spin through a whole compute, as a native CUDA process does in its stream
 * synchronizations (generation 0.87-0.92x -> 0.95x of native). In a VM there is no futex
 * across the boundary: spin briefly, then back off. GGML_VIRTGPU_SPIN_US overrides all. */
#define SPIN_NS_VM 50000
#define SPIN_NS_GPU_HOST 5000000

static uint64_t spin_ns(const struct apir_client *c)
{
    static long v = -2;
    if (v == -2) {
        const char *e = getenv("GGML_VIRTGPU_SPIN_US");
        long us = e ? strtol(e, NULL, 10) : -1;
        v = us >= 0 && us < 1000000 ? us * 1000 : -1;
    }
    if (v >= 0)
        return (uint64_t)v;
    if (atomic_load_explicit(&c->host_off_cpu, memory_order_relaxed))
        return SPIN_NS_GPU_HOST;
    return c->transport->host_futex_wake ? 0 : SPIN_NS_VM;
}

void apir_client_set_host_off_cpu(struct apir_client *c, bool off_cpu)
{
    atomic_store_explicit(&c->host_off_cpu, off_cpu, memory_order_relaxed);
}

uint64_t apir_client_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool ensure_cmd_cap(struct apir_client *c, size_t need)
{
    if (need <= c->cmd_cap)
        return true;
    size_t cap = c->cmd_cap ? c->cmd_cap : 4096;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(c->cmd_buf, cap);
    if (!p)
        return false;
    c->cmd_buf = p;
    c->cmd_cap = cap;
    return true;
}

static void put_header(struct apir_encoder *enc, struct apir_client *c, uint32_t cmd_type, uint32_t reply_res_id)
{
    apir_put_i32(enc, (int32_t)(cmd_type + c->cmd_offset));
    apir_put_i32(enc, APIR_CMD_FLAG_NONE);
    apir_put_u32(enc, reply_res_id);
}

/* Waits for the reply word: spin briefly, then block on a futex (same host) or back off
 * exponentially (VM); gives up at the timeout or when the transport dies. The first futex
 * wait goes without asking the transport whether the host lives (a poll() a token, 3% of a
 * CPU host guest's time): a host that died leaves the wait at its 100 ms re-check. */
static int wait_reply(struct apir_client *c, uint32_t *value, uint64_t timeout_ns)
{
    _Atomic uint32_t *word = (_Atomic uint32_t *)c->reply.ptr;
    uint64_t start = apir_client_now_ns();
    uint64_t sleep_ns = 1000;
    bool first_block = true;
    for (;;) {
        uint32_t v = atomic_load_explicit(word, memory_order_acquire);
        if (v) {
            *value = v;
            return 0;
        }
        uint64_t elapsed = apir_client_now_ns() - start;
        if (elapsed < spin_ns(c))
            continue;
        if (elapsed > timeout_ns)
            return APIR_CLIENT_ERR_TIMEOUT;
        bool check = !(first_block && c->transport->host_futex_wake);
        first_block = false;
        if (check && !apir_transport_alive(c->transport))
            return APIR_CLIENT_ERR_TRANSPORT;
        if (c->transport->host_futex_wake) {
            struct timespec ts = {0, 100 * 1000 * 1000}; /* re-check liveness every 100 ms */
            syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT, 0, &ts, NULL, 0);
        } else {
            struct timespec ts = {0, (long)sleep_ns};
            nanosleep(&ts, NULL);
            if (sleep_ns < 1000000)
                sleep_ns *= 2;
        }
    }
}

/* submits c->enc's bytes and waits; returns the command's return value or an error */
static int submit_and_wait(struct apir_client *c, struct apir_decoder *reply, uint64_t timeout_ns)
{
    if (c->enc.error)
        return APIR_CLIENT_ERR_ENCODE;
    if (!c->transport)
        return APIR_CLIENT_ERR_LOST;
    struct apir_reply_header *rh = c->reply.ptr;
    atomic_store_explicit((_Atomic uint32_t *)&rh->status_plus_one, 0, memory_order_release);
    rh->payload_len = 0;
    if (apir_transport_submit(c->transport, c->enc.buf, c->enc.pos) != 0)
        return APIR_CLIENT_ERR_TRANSPORT;
    uint32_t word = 0;
    int rc = wait_reply(c, &word, timeout_ns);
    if (rc)
        return rc;
    c->data_queued = 0; /* the host ran every earlier command: their bytes are read */
    uint32_t len = rh->payload_len;
    if (len > c->reply.size - APIR_REPLY_HEADER_SIZE)
        len = 0; /* a confused host: treat as empty */
    if (reply)
        apir_decoder_init(reply, (uint8_t *)c->reply.ptr + APIR_REPLY_HEADER_SIZE, len);
    return (int)(word - 1);
}

int apir_client_command_timed(struct apir_client *c, uint32_t cmd_type, const void *payload, size_t size,
                         struct apir_decoder *reply, uint64_t timeout_ns)
{
    pthread_mutex_lock(&c->lock);
    int rc = APIR_CLIENT_ERR_ENCODE;
    if (ensure_cmd_cap(c, APIR_COMMAND_HEADER_SIZE + size)) {
        apir_encoder_init(&c->enc, c->cmd_buf, c->cmd_cap);
        put_header(&c->enc, c, cmd_type, c->reply.res_id);
        apir_put_bytes(&c->enc, payload, size);
        rc = submit_and_wait(c, reply, timeout_ns);
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

static struct apir_encoder *begin(struct apir_client *c, uint32_t cmd, size_t extra, bool want_reply)
{
    int err = apir_client_ensure_connected(c);
    pthread_mutex_lock(&c->lock);
    c->cur_cmd = cmd;
    c->begin_error = err ? err : (atomic_load(&c->state) == APIR_CLIENT_DEAD ? APIR_CLIENT_ERR_LOST : 0);
    if (c->begin_error) {
        /* nothing is sent: a zero-sized encoder in the error state swallows the arguments */
        apir_encoder_init(&c->enc, c->cmd_buf, 0);
        c->enc.error = true;
        return &c->enc;
    }
    const struct apir_forward_cmd_info *info = apir_forward_cmd(cmd);
    size_t need = APIR_COMMAND_HEADER_SIZE + 4 + (info ? info->request.bytes : 0) + extra;
    if (!ensure_cmd_cap(c, need)) {
        apir_encoder_init(&c->enc, c->cmd_buf, 0);
        c->enc.error = true;
        return &c->enc;
    }
    apir_encoder_init(&c->enc, c->cmd_buf, need);
    /* the reply page of the connection as it is now, under the lock (a reconnection makes a
     * new one, and none can happen before apir_client_end) */
    put_header(&c->enc, c, APIR_COMMAND_TYPE_FORWARD, want_reply ? c->reply.res_id : 0);
    apir_put_u32(&c->enc, cmd);
    return &c->enc;
}

struct apir_encoder *apir_client_begin(struct apir_client *c, uint32_t cmd, size_t extra)
{
    return begin(c, cmd, extra, true);
}

struct apir_encoder *apir_client_begin_noreply(struct apir_client *c, uint32_t cmd, size_t extra)
{
    return begin(c, cmd, extra, false);
}

int apir_client_send(struct apir_client *c)
{
    if (c->begin_error)
        return c->begin_error;
    if (c->enc.error)
        return APIR_CLIENT_ERR_ENCODE;
    /* the transport copies the bytes out (socket write / execbuffer, or its queue of commands
     * that go with the next submit), so the caller's memory and cmd_buf are free again when
     * this returns */
    if (apir_transport_submit_later(c->transport, c->enc.buf, c->enc.pos) != 0) {
        apir_client_lose_locked(c, APIR_CLIENT_ERR_TRANSPORT, NULL);
        return APIR_CLIENT_ERR_TRANSPORT;
    }
    c->noreply_pending = true;
    if (vgpu_stats_on())
        vgpu_stats_command(c->cur_cmd, c->enc.pos, 0, false, 0);
    return APIR_BACKEND_OK;
}

bool apir_client_take_noreply(struct apir_client *c)
{
    bool was = c->noreply_pending;
    c->noreply_pending = false;
    return was;
}

int apir_client_call(struct apir_client *c, struct apir_decoder *reply)
{
    if (c->begin_error)
        return c->begin_error;
    const struct apir_forward_cmd_info *info = apir_forward_cmd(c->cur_cmd);
    if (info && info->waits)
        c->noreply_pending = false; /* the host reports their deferred error here, if any */
    uint64_t t0 = vgpu_stats_on() ? apir_client_now_ns() : 0;
    int rc = submit_and_wait(c, reply, c->timeout_ns);
    if (t0)
        vgpu_stats_command(c->cur_cmd, c->enc.pos, rc >= 0 && reply ? reply->len : 0, true, apir_client_now_ns() - t0);
    if (rc == APIR_CLIENT_ERR_TRANSPORT || rc == APIR_CLIENT_ERR_TIMEOUT) {
        apir_client_lose_locked(c, rc, NULL);
        return rc;
    }
    if (rc < 0)
        return rc;
    if (rc < APIR_FORWARD_BASE_INDEX)
        return APIR_CLIENT_ERR_COMPONENT;
    return rc - APIR_FORWARD_BASE_INDEX;
}

void apir_client_end(struct apir_client *c) { pthread_mutex_unlock(&c->lock); }

const struct apir_shmem *apir_client_data_page(const struct apir_client *c)
{
    return c->begin_error || !c->data.ptr ? NULL : &c->data;
}

const struct apir_shmem *apir_client_data_page_claim(struct apir_client *c)
{
    const struct apir_shmem *page = apir_client_data_page(c);
    if (page && c->on_page_change)
        c->on_page_change();
    return page;
}

uint32_t apir_client_blob_res_id(const struct apir_client *c, const struct apir_client_blob *b)
{
    return apir_client_data_page(c) && b->shm.ptr && b->generation == c->generation ? b->shm.res_id : 0;
}

/* fire-and-forget writes keep 64-byte aligned slices, as the host's copies like them */
#define DATA_SLICE_ALIGN 64u

uint64_t apir_client_data_free(const struct apir_client *c, size_t *room)
{
    *room = c->data.size > c->data_queued ? c->data.size - c->data_queued : 0;
    return c->data_queued;
}

bool apir_client_data_keep(struct apir_client *c, size_t n, uint64_t *offset)
{
    size_t slice = (n + DATA_SLICE_ALIGN - 1) & ~(size_t)(DATA_SLICE_ALIGN - 1);
    size_t half = c->data.size / 2;
    if (!apir_client_data_page(c) || slice < n || c->data_queued > half || slice > half - c->data_queued)
        return false;
    *offset = c->data_queued;
    c->data_queued += slice;
    return true;
}

const char *apir_client_status_str(int status)
{
    static const char *const backend[] = {
        [APIR_BACKEND_OK] = "success",
        [APIR_BACKEND_ERR_NOT_INITIALIZED] = "the host backend library is not initialized",
        [APIR_BACKEND_ERR_UNKNOWN_CMD] = "unknown command (host and guest versions differ?)",
        [APIR_BACKEND_ERR_DECODE] = "the host could not decode the command",
        [APIR_BACKEND_ERR_HANDLE] = "stale or invalid handle",
        [APIR_BACKEND_ERR_BOUNDS] = "offset or size out of bounds",
        [APIR_BACKEND_ERR_INVALID_TENSOR] = "invalid tensor",
        [APIR_BACKEND_ERR_OUT_OF_MEMORY] = "host out of memory",
        [APIR_BACKEND_ERR_REPLY_TOO_SMALL] = "reply page too small",
        [APIR_BACKEND_ERR_BACKEND] = "the host ggml backend failed",
        [APIR_BACKEND_ERR_NO_GRAPH] = "no graph to recompute",
        [APIR_BACKEND_ERR_UNSUPPORTED] = "operation not supported by the host device",
    };
    switch (status) {
    case APIR_CLIENT_ERR_TRANSPORT: return "lost the connection to the host";
    case APIR_CLIENT_ERR_TIMEOUT: return "timed out waiting for the host (GGML_VIRTGPU_TIMEOUT)";
    case APIR_CLIENT_ERR_ENCODE: return "command too large to encode";
    case APIR_CLIENT_ERR_COMPONENT: return "the host APIR component refused the command";
    case APIR_CLIENT_ERR_LOST: return "the VirtGPU device was lost earlier in this process";
    default: break;
    }
    if (status >= 0 && (size_t)status < sizeof backend / sizeof backend[0] && backend[status])
        return backend[status];
    return "unknown error";
}

