/* The narrow "virtual GPU" interface the guest talks through, with two implementations:
 * transports/vtest.c (UNIX socket to apir-server) and transports/virtgpu.c (virtio-gpu DRM
 * render node). Command bytes and reply-page semantics are identical on both. */
#ifndef APIR_TRANSPORT_H
#define APIR_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A host-visible, guest-mappable blob resource. */
struct apir_shmem {
    uint32_t res_id;
    void *ptr;
    size_t size;
    uint32_t priv; /* transport-private (e.g. GEM handle) */
};

struct apir_transport;

/* How long connecting may take in total when the host is silent: vtest negotiation, page
 * creation and HANDSHAKE share it (docs/configuration.md: loading takes at most 1 s). */
#define APIR_CONNECT_TIMEOUT_MS 800

struct apir_transport_ops {
    /* create a mappable blob resource of size bytes, mapped at shm->ptr; 0 or -errno */
    int (*create_blob)(struct apir_transport *t, size_t size, struct apir_shmem *shm);
    void (*destroy_blob)(struct apir_transport *t, struct apir_shmem *shm);
    /* submit one command buffer to the APIR context; 0 or -errno */
    int (*submit)(struct apir_transport *t, const void *cmd, size_t size);
    /* a command nobody waits for: copied now, it may travel with the next submit (in order
     * with every later command); NULL: submit at once */
    int (*submit_later)(struct apir_transport *t, const void *cmd, size_t size);
    /* false once the host side is known to be gone (socket closed, device lost) */
    bool (*alive)(struct apir_transport *t);
    /* Connected (HANDSHAKE answered): from now on a submit or a host answer may take up to
     * timeout_ns; before, the transport's waits share the APIR_CONNECT_TIMEOUT_MS bound of
     * the open. NULL: the transport never blocks on the host. */
    void (*set_timeout)(struct apir_transport *t, uint64_t timeout_ns);
    void (*destroy)(struct apir_transport *t);
};

struct apir_transport {
    const struct apir_transport_ops *ops;
    const char *name;        /* "vtest" or "virtgpu" */
    uint32_t capset_id;      /* APIR_CAPSET_ID_APIR or APIR_CAPSET_ID_VENUS */
    /* the host wakes reply waiters with FUTEX_WAKE on the shared page (same-host vtest);
     * false in a VM, where the guest spins then backs off */
    bool host_futex_wake;
    /* the guest may keep blobs as memory of its own (apir_client_blob_create: host buffers).
     * Not over virtio-gpu yet: there each is a host-visible blob mapped through the device's
     * BAR, which QEMU unmaps asynchronously when it goes, and in the test VM (QEMU 10, TCG) one
     * run of seven stalled the virtio-gpu queue after a process that had kept three exited
     * (cause not found; not known to happen without them) */
    bool kept_blobs;
    /* set by the client before destroying a transport whose host is gone or hung: say
     * nothing more to it (a stopped host must not block the guest) */
    bool lost;
};

/* The operations, as the client calls them (as Mesa's vn_renderer.h wraps its ops). */
static inline int apir_transport_create_blob(struct apir_transport *t, size_t size, struct apir_shmem *shm)
{
    return t->ops->create_blob(t, size, shm);
}
static inline void apir_transport_destroy_blob(struct apir_transport *t, struct apir_shmem *shm)
{
    t->ops->destroy_blob(t, shm);
}
static inline int apir_transport_submit(struct apir_transport *t, const void *cmd, size_t size)
{
    return t->ops->submit(t, cmd, size);
}
static inline int apir_transport_submit_later(struct apir_transport *t, const void *cmd, size_t size)
{
    return t->ops->submit_later ? t->ops->submit_later(t, cmd, size) : t->ops->submit(t, cmd, size);
}
static inline bool apir_transport_alive(struct apir_transport *t) { return t->ops->alive(t); }
static inline void apir_transport_set_timeout(struct apir_transport *t, uint64_t timeout_ns)
{
    if (t->ops->set_timeout)
        t->ops->set_timeout(t, timeout_ns);
}
static inline void apir_transport_destroy(struct apir_transport *t) { t->ops->destroy(t); }

/* Each open returns NULL and a one-line reason in why[] on failure; they never block longer
 * than a connect/ioctl. */
struct apir_transport *apir_transport_vtest_open(const char *socket_path, uint32_t capset_id,
                                                 char *why, size_t why_len);
/* node_path NULL: use the first virtio_gpu render node found in /dev/dri */
struct apir_transport *apir_transport_virtgpu_open(const char *node_path, uint32_t capset_id,
                                                   char *why, size_t why_len);
/* true if a virtio_gpu render node exists (cheap: no context is created) */
bool apir_transport_virtgpu_present(void);

#endif
