/* The per-user device cache (docs/frontend.md, "Listing without the host"): the answers of a
 * listing (vgpu_listing.h) kept in a file, so that a process that only lists devices needs no
 * host context, and on the socket transport not even a connection (apir-server forks a
 * worker per connection, which loads the host backend).
 *
 * The key changes whenever the host does, found without connecting: the socket's path, its
 * file's device, inode and change time (a restarted apir-server binds a new socket file), and
 * this library's protocol versions. The entry is used only while a socket of that path is
 * listening (/proc/net/unix, no connect): a host that died leaving its socket file behind is
 * then asked as before (and is found absent). Over virtio-gpu nothing the guest reads without a
 * host context tells one host instance from another (the capset holds only protocol versions and
 * flags), but the host is the VMM running this very guest: it lives as long as the guest's boot
 * (a restarted VMM reboots the guest), so the key is the kernel's boot_id, the capset and the
 * protocol versions. A guest migrated live to another host is caught at first use, where the
 * live answers are compared with the listed ones.
 *
 * Where: GGML_VIRTGPU_DEVICE_CACHE=DIR, or $XDG_RUNTIME_DIR/ggml-virtgpu, or
 * /tmp/ggml-virtgpu-UID; GGML_VIRTGPU_DEVICE_CACHE=0 turns it off. The folder must be the
 * user's and writable by no one else (a default one is made 0700); the file is written
 * atomically (a private temporary file renamed over it), mode 0600. */
#ifndef VGPU_DEVICE_CACHE_H
#define VGPU_DEVICE_CACHE_H

#include "apir_client.h"
#include "vgpu_listing.h"

#include <stdbool.h>
#include <stddef.h>

#define VGPU_DEVICE_CACHE_KEY_MAX 320

/* The key for ep, or false when its answers are not cached (cache off, socket not found, no
 * boot_id). */
bool vgpu_device_cache_key(const struct apir_client_endpoint *ep, char *key, size_t key_len);
/* The cached listing for key, when there is one and a socket of ep's path is listening;
 * false otherwise (nothing logged but at debug level: a miss only means asking the host). */
bool vgpu_device_cache_load(const struct apir_client_endpoint *ep, const char *key, struct vgpu_listing *l);
/* Writes (replaces) the entry; failures are logged at debug level and otherwise ignored. */
void vgpu_device_cache_store(const char *key, const struct vgpu_listing *l);

#endif
