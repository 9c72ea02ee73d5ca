/* One vtest connection, in its worker process: reads messages, checks each against its
 * command's size bounds, runs it from a table. A malformed message disconnects the client
 * (logged); the connection's context and resources are freed however it ends. */
#include "server.h"

#include "apir_component.h"
#include "apir_protocol.h"
#include "vtest_ring.h"
#include "vtest_wire.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int reply(struct client *c, uint32_t id, const uint32_t *data, uint32_t words)
{
    uint32_t hdr[VTEST_WIRE_HDR_WORDS] = {words, id};
    if (io_write_full(c->fd, hdr, sizeof hdr) != 0 || (words && io_write_full(c->fd, data, words * 4u) != 0))
        return -1;
    return 0;
}

static int need_ctx(struct client *c, const char *what)
{
    if (c->ctx)
        return 0;
    apir_component_log("client %u: %s before CONTEXT_INIT", c->id, what);
    return -1;
}

static int cmd_create_renderer(struct client *c, uint32_t len)
{
    (void)len; /* the client's name, for debugging only */
    return 0;
}

static int cmd_ping(struct client *c, uint32_t len)
{
    return reply(c, VTEST_CMD_PING_PROTOCOL_VERSION, NULL, 0);
}

static int cmd_protocol_version(struct client *c, uint32_t len)
{
    uint32_t v = c->msg[0] < VTEST_WIRE_PROTOCOL_VERSION ? c->msg[0] : VTEST_WIRE_PROTOCOL_VERSION;
    c->version = v;
    return reply(c, VTEST_CMD_PROTOCOL_VERSION, &v, 1);
}

static int cmd_get_param(struct client *c, uint32_t len)
{
    uint32_t r[2] = {0, 0}; /* no timelines, no syncobjs: invalid / 0 */
    return reply(c, VTEST_CMD_GET_PARAM, r, 2);
}

static int cmd_get_capset(struct client *c, uint32_t len)
{
    uint32_t id = c->msg[0];
    if (id != APIR_CAPSET_ID_APIR && id != APIR_CAPSET_ID_VENUS) {
        uint32_t invalid = 0;
        return reply(c, VTEST_CMD_GET_CAPSET, &invalid, 1);
    }
    /* whether a Venus context is routed is decided (and logged) at CONTEXT_INIT */
    uint32_t r[4] = {1, APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR, VTEST_FEATURE_RING};
    return reply(c, VTEST_CMD_GET_CAPSET, r, 4);
}

static int cmd_context_init(struct client *c, uint32_t len)
{
    if (c->ctx) {
        apir_component_log("client %u: second CONTEXT_INIT", c->id);
        return -1;
    }
    /* the connection number is unique in the server: logs of the listener, the worker and
     * the backend name the same guest alike */
    uint32_t ctx_id = c->id;
    c->ctx = apir_context_create(ctx_id, c->msg[0]);
    if (!c->ctx) {
        apir_component_log("client %u: context refused, disconnecting", c->id);
        return -1;
    }
    /* this process serves this context alone: record commands for the listener, sandbox
     * after LOADLIBRARY */
    apir_context_enter_worker_mode(c->ctx, c->activity);
    apir_component_log("client %u: context %u (capset %u)", c->id, ctx_id, c->msg[0]);
    return 0;
}

static int cmd_create_blob(struct client *c, uint32_t len)
{
    if (need_ctx(c, "RESOURCE_CREATE_BLOB"))
        return -1;
    const uint32_t *m = c->msg;
    uint32_t known = VTEST_BLOB_FLAG_MAPPABLE | VTEST_BLOB_FLAG_SHAREABLE | VTEST_BLOB_FLAG_CROSS_DEVICE;
    if (m[VTEST_BLOB_TYPE] != VTEST_BLOB_TYPE_HOST3D || (m[VTEST_BLOB_FLAGS] & ~known)) {
        apir_component_log("client %u: unsupported blob type %u / flags 0x%x", c->id, m[VTEST_BLOB_TYPE],
                           m[VTEST_BLOB_FLAGS]);
        return -1;
    }
    uint64_t size = (uint64_t)m[VTEST_BLOB_SIZE_HI] << 32 | m[VTEST_BLOB_SIZE_LO];
    uint32_t res_id = 0;
    int fd = -1;
    if (blob_create(c, size, &res_id, &fd) != 0) {
        res_id = 0; /* refused: no descriptor follows */
        return reply(c, VTEST_CMD_RESOURCE_CREATE_BLOB, &res_id, 1);
    }
    int rc = reply(c, VTEST_CMD_RESOURCE_CREATE_BLOB, &res_id, 1);
    if (rc == 0)
        rc = io_send_fd(c->fd, fd);
    close(fd);
    return rc;
}

static int cmd_resource_unref(struct client *c, uint32_t len)
{
    if (need_ctx(c, "RESOURCE_UNREF"))
        return -1;
    blob_unref(c, c->msg[0]); /* an unknown id is logged, not fatal */
    return 0;
}

static int cmd_busy_wait(struct client *c, uint32_t len)
{
    uint32_t busy = 0; /* commands complete before SUBMIT returns */
    return reply(c, VTEST_CMD_RESOURCE_BUSY_WAIT, &busy, 1);
}

static struct sync_obj *find_sync(struct client *c, uint32_t id)
{
    for (size_t i = 0; i < c->syncs_count; i++)
        if (c->syncs[i].id == id)
            return &c->syncs[i];
    apir_component_log("client %u: unknown sync %u", c->id, id);
    return NULL;
}

static int cmd_sync_create(struct client *c, uint32_t len)
{
    if (c->syncs_count >= SERVER_MAX_SYNCS) {
        apir_component_log("client %u: too many syncs", c->id);
        return -1;
    }
    uint32_t id = ++c->next_sync_id;
    c->syncs[c->syncs_count++] = (struct sync_obj){id, (uint64_t)c->msg[1] << 32 | c->msg[0]};
    return reply(c, VTEST_CMD_SYNC_CREATE, &id, 1);
}

static int cmd_sync_unref(struct client *c, uint32_t len)
{
    struct sync_obj *s = find_sync(c, c->msg[0]);
    if (s)
        *s = c->syncs[--c->syncs_count];
    return 0;
}

static int cmd_sync_read(struct client *c, uint32_t len)
{
    struct sync_obj *s = find_sync(c, c->msg[0]);
    uint64_t v = s ? s->value : 0;
    uint32_t r[2] = {(uint32_t)v, (uint32_t)(v >> 32)};
    return reply(c, VTEST_CMD_SYNC_READ, r, 2);
}

static int cmd_sync_write(struct client *c, uint32_t len)
{
    struct sync_obj *s = find_sync(c, c->msg[0]);
    if (s)
        s->value = (uint64_t)c->msg[2] << 32 | c->msg[1];
    return 0;
}

/* every batch must lie inside the message; checked for all batches before any runs */
static int check_batch(struct client *c, const struct vtest_submit_batch *b, uint32_t len)
{
    uint32_t known = VTEST_SUBMIT_FLAG_RING_IDX | VTEST_SUBMIT_FLAG_APIR_PAD_MASK;
    uint32_t pad = (b->flags & VTEST_SUBMIT_FLAG_APIR_PAD_MASK) >> VTEST_SUBMIT_FLAG_APIR_PAD_SHIFT;
    uint64_t cmd_end = (uint64_t)b->cmd_offset + b->cmd_size;
    uint64_t sync_end = (uint64_t)b->sync_offset + (uint64_t)b->sync_count * VTEST_SYNC_ENTRY_WORDS;
    if ((b->flags & ~known) || cmd_end > len || (b->sync_count && sync_end > len) || pad > (uint64_t)b->cmd_size * 4 ||
        b->num_in_syncobj || b->num_out_syncobj) {
        apir_component_log("client %u: SUBMIT_CMD2: bad batch (flags 0x%x, cmd %u+%u, sync %u+%u, %u words)", c->id,
                           b->flags, b->cmd_offset, b->cmd_size, b->sync_offset, b->sync_count, len);
        return -1;
    }
    return 0;
}

static int cmd_submit2(struct client *c, uint32_t len)
{
    if (need_ctx(c, "SUBMIT_CMD2"))
        return -1;
    uint32_t count = c->msg[0];
    if (count > (len - 1) / VTEST_SUBMIT_BATCH_WORDS) {
        apir_component_log("client %u: SUBMIT_CMD2: %u batches do not fit %u words", c->id, count, len);
        return -1;
    }
    struct vtest_submit_batch *batches = (struct vtest_submit_batch *)(c->msg + 1);
    /* batches may not share words: otherwise one message runs the same commands (or sync
     * list) once per batch, O(n^2) work. Each word is then used at most once. */
    uint64_t used = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (check_batch(c, &batches[i], len) != 0)
            return -1;
        used += batches[i].cmd_size + (uint64_t)batches[i].sync_count * VTEST_SYNC_ENTRY_WORDS;
    }
    if (used > len) {
        apir_component_log("client %u: SUBMIT_CMD2: %u batches use %llu words of a %u-word message", c->id, count,
                           (unsigned long long)used, len);
        return -1;
    }
    for (uint32_t i = 0; i < count; i++) {
        const struct vtest_submit_batch *b = &batches[i];
        uint32_t pad = (b->flags & VTEST_SUBMIT_FLAG_APIR_PAD_MASK) >> VTEST_SUBMIT_FLAG_APIR_PAD_SHIFT;
        /* a malformed APIR buffer is logged by the component; the connection stays usable */
        apir_context_submit(c->ctx, c->msg + b->cmd_offset, (size_t)b->cmd_size * 4 - pad);
        for (uint32_t j = 0; j < b->sync_count; j++) {
            const uint32_t *e = c->msg + b->sync_offset + (size_t)j * VTEST_SYNC_ENTRY_WORDS;
            struct sync_obj *s = find_sync(c, e[0]);
            if (s)
                s->value = (uint64_t)e[2] << 32 | e[1];
        }
    }
    return 0;
}

/* the guest's command ring (src/protocol/vtest_ring.h): refused (0) if there is one already or
 * the resource is not a ring's size; the guest then keeps using the socket */
static int cmd_ring_attach(struct client *c, uint32_t len)
{
    if (need_ctx(c, "APIR_RING_ATTACH"))
        return -1;
    uint32_t res_id = c->msg[0], ok = 0;
    const struct blob *b = blob_find(c, res_id);
    if (c->ring.ctl)
        apir_component_log("client %u: APIR_RING_ATTACH: a command ring is attached already", c->id);
    else if (!b)
        apir_component_log("client %u: APIR_RING_ATTACH: unknown resource %u", c->id, res_id);
    else if (!ring_attach(&c->ring, res_id, b->ptr, b->size))
        apir_component_log("client %u: APIR_RING_ATTACH: resource %u has %zu bytes, not %u + a power of two "
                           "from %u to %u",
                           c->id, res_id, b->size, VTEST_RING_CONTROL_BYTES, VTEST_RING_MIN_DATA_BYTES,
                           VTEST_RING_MAX_DATA_BYTES);
    else {
        apir_component_log("client %u: command ring of %u KiB attached (resource %u)", c->id, c->ring.size / 1024,
                           res_id);
        ok = 1;
    }
    return reply(c, VTEST_CMD_APIR_RING_ATTACH, &ok, 1);
}

/* Sizes are in words, except CREATE_RENDERER's (bytes). */
static const struct command {
    uint32_t id;
    uint32_t min_len, max_len;
    int (*run)(struct client *c, uint32_t len);
} commands[] = {
    {VTEST_CMD_CREATE_RENDERER, 0, SERVER_MAX_RENDERER_NAME, cmd_create_renderer},
    {VTEST_CMD_PING_PROTOCOL_VERSION, 0, 0, cmd_ping},
    {VTEST_CMD_PROTOCOL_VERSION, VTEST_PROTOCOL_VERSION_WORDS, VTEST_PROTOCOL_VERSION_WORDS, cmd_protocol_version},
    {VTEST_CMD_GET_PARAM, VTEST_GET_PARAM_WORDS, VTEST_GET_PARAM_WORDS, cmd_get_param},
    {VTEST_CMD_GET_CAPSET, VTEST_GET_CAPSET_WORDS, VTEST_GET_CAPSET_WORDS, cmd_get_capset},
    {VTEST_CMD_CONTEXT_INIT, VTEST_CONTEXT_INIT_WORDS, VTEST_CONTEXT_INIT_WORDS, cmd_context_init},
    {VTEST_CMD_RESOURCE_CREATE_BLOB, VTEST_BLOB_WORDS, VTEST_BLOB_WORDS, cmd_create_blob},
    {VTEST_CMD_RESOURCE_UNREF, VTEST_RESOURCE_UNREF_WORDS, VTEST_RESOURCE_UNREF_WORDS, cmd_resource_unref},
    {VTEST_CMD_RESOURCE_BUSY_WAIT, VTEST_BUSY_WAIT_WORDS, VTEST_BUSY_WAIT_WORDS, cmd_busy_wait},
    {VTEST_CMD_SYNC_CREATE, VTEST_SYNC_CREATE_WORDS, VTEST_SYNC_CREATE_WORDS, cmd_sync_create},
    {VTEST_CMD_SYNC_UNREF, VTEST_SYNC_UNREF_WORDS, VTEST_SYNC_UNREF_WORDS, cmd_sync_unref},
    {VTEST_CMD_SYNC_READ, VTEST_SYNC_READ_WORDS, VTEST_SYNC_READ_WORDS, cmd_sync_read},
    {VTEST_CMD_SYNC_WRITE, VTEST_SYNC_WRITE_WORDS, VTEST_SYNC_WRITE_WORDS, cmd_sync_write},
    {VTEST_CMD_SUBMIT_CMD2, 1, SERVER_MAX_MESSAGE_BYTES / 4, cmd_submit2},
    {VTEST_CMD_APIR_RING_ATTACH, VTEST_RING_ATTACH_WORDS, VTEST_RING_ATTACH_WORDS, cmd_ring_attach},
};

static const struct command *find_command(uint32_t id)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].id == id)
            return &commands[i];
    return NULL;
}

/* reads one message's data into c->msg; 0, or -1 to disconnect */
static int read_message(struct client *c, const struct command *cmd, uint32_t len)
{
    size_t bytes = cmd->id == VTEST_CMD_CREATE_RENDERER ? len : (size_t)len * 4;
    size_t need = bytes + 4; /* room to read words past a byte-sized message safely */
    if (need > c->msg_cap) {
        uint32_t *p = realloc(c->msg, need);
        if (!p) {
            apir_component_log("client %u: out of memory for a %zu-byte message", c->id, bytes);
            return -1;
        }
        c->msg = p;
        c->msg_cap = need;
    }
    memset(c->msg, 0, need < 64 ? need : 64);
    if (bytes && io_read_full(c->fd, c->msg, bytes) != 1) {
        apir_component_log("client %u: connection lost in the middle of a message", c->id);
        return -1;
    }
    return 0;
}

/* How long a worker whose devices compute off the CPUs (apir_context_computes_off_cpu) polls
 * for the guest's next command before it blocks. The guest's next command usually comes within
 * microseconds to a millisecond (it builds its next graph, or computes a prompt's embeddings on
 * its CPU), and a blocking read then adds an idle thread's wake-up to it: on an H200 host the
 * guest waited 315 us for two prompt-batch writes the host handled in 167. The poll yields its
 * core to any runnable thread (the guest's own CPU threads may share the machine). */
#define POLL_FOR_COMMAND_NS 2000000ull

static void stamp_activity(struct client *c)
{
    if (c->activity) /* for the listener's idle limit */
        atomic_store_explicit(&c->activity->last_active_ns, apir_monotonic_ns(), memory_order_relaxed);
}

/* Runs the ring's commands up to its end or a socket mark; 0, or -1 to disconnect. A malformed
 * APIR buffer is the component's to log, as over the socket. */
static int run_ring(struct client *c)
{
    if (!c->ring.ctl)
        return 0;
    bool ran = false;
    for (;;) {
        uint32_t len = 0;
        switch (ring_next(&c->ring, &c->msg, &c->msg_cap, &len)) {
        case RING_COMMAND:
            apir_context_submit(c->ctx, c->msg, len);
            ran = true;
            continue;
        case RING_EMPTY:
        case RING_SOCKET:
            if (ran)
                stamp_activity(c);
            return 0;
        case RING_CORRUPT:
            apir_component_log("client %u: the command ring's tail or an entry's length is impossible: "
                               "disconnecting", c->id);
            return -1;
        case RING_NO_MEMORY:
            apir_component_log("client %u: out of memory for a command of the ring: disconnecting", c->id);
            return -1;
        }
    }
}

/* The next thing to do: 2 when the ring has commands, else io_read_full's answer for the next
 * message's header. Polled for first where the worker polls (the ring is a memory read, the
 * socket one non-blocking read), then blocking: a worker with a ring says so first, and the
 * guest that publishes a command then sends a kick. */
static int next_event(struct client *c, uint32_t *hdr, size_t size)
{
    size_t got = 0;
    struct server_ring *r = c->ring.ctl ? &c->ring : NULL;
    if (c->ctx && apir_context_computes_off_cpu(c->ctx)) {
        uint64_t start = apir_monotonic_ns();
        do {
            if (r && !got && ring_has_work(r))
                return 2;
            ssize_t n = recv(c->fd, (char *)hdr + got, size - got, MSG_DONTWAIT);
            if (n > 0 && (got += (size_t)n) == size)
                return 1;
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                break; /* the end or an error: the blocking read below says which */
            if (n < 0)
                sched_yield();
        } while (apir_monotonic_ns() - start < POLL_FOR_COMMAND_NS);
    }
    if (r && !got) {
        ring_set_waiting(r, true);
        if (ring_has_work(r)) {
            ring_set_waiting(r, false);
            return 2;
        }
    }
    int rc = io_read_full(c->fd, (char *)hdr + got, size - got);
    if (r)
        ring_set_waiting(r, false);
    return rc == 0 && got ? -1 : rc; /* an end inside the header is a lost connection */
}

/* With a ring, a SUBMIT_CMD2 that carries commands stands for the socket mark at the ring's
 * head (after the commands published before it): it runs in ring order. */
static int take_socket_mark(struct client *c, uint32_t id)
{
    if (!c->ring.ctl || id != VTEST_CMD_SUBMIT_CMD2 || c->msg[0] == 0)
        return 0;
    if (ring_take_socket_mark(&c->ring))
        return 0;
    apir_component_log("client %u: SUBMIT_CMD2 with batches but no socket mark in the command ring: disconnecting",
                       c->id);
    return -1;
}

static void serve(struct client *c)
{
    for (;;) {
        if (run_ring(c) != 0)
            return;
        uint32_t hdr[VTEST_WIRE_HDR_WORDS];
        int rc = next_event(c, hdr, sizeof hdr);
        if (rc == 2)
            continue;
        stamp_activity(c);
        if (rc == 0) {
            apir_component_log("client %u: disconnected", c->id);
            run_ring(c); /* what the guest published before it closed */
            return;
        }
        if (rc < 0) {
            apir_component_log("client %u: connection lost", c->id);
            return;
        }
        uint32_t len = hdr[VTEST_WIRE_HDR_LEN], id = hdr[VTEST_WIRE_HDR_ID];
        const struct command *cmd = find_command(id);
        if (!cmd) {
            apir_component_log("client %u: unknown vtest command %u (length %u): disconnecting", c->id, id, len);
            return;
        }
        if (len < cmd->min_len || len > cmd->max_len) {
            apir_component_log("client %u: vtest command %u with bad length %u (%u..%u): disconnecting", c->id, id,
                               len, cmd->min_len, cmd->max_len);
            return;
        }
        /* the ring's commands published before this message run before it */
        if (run_ring(c) != 0 || read_message(c, cmd, len) != 0 || take_socket_mark(c, id) != 0)
            return;
        if (cmd->run(c, len) != 0) {
            apir_component_log("client %u: vtest command %u failed: disconnecting", c->id, id);
            return;
        }
    }
}

void client_serve(struct client *c)
{
    serve(c);
    /* the peer sees the end now, even if freeing takes a while */
    shutdown(c->fd, SHUT_RDWR);
    /* the context first: the backend frees the guest's objects before their memory goes */
    apir_context_destroy(c->ctx);
    c->ctx = NULL;
    blob_free_all(c);
    free(c->msg);
    c->msg = NULL;
}
