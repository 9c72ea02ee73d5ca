/* What listing the devices needs from the host: GET_INFO, then per device DEVICE_GET_INFO,
 * DEVICE_GET_MEMORY and BUFT_GET_INFO. Asked of the host at load (or read from the device
 * cache, vgpu_device_cache.h), and asked again after a lazy connection to check that the
 * host still has the devices this process listed. */
#ifndef VGPU_LISTING_H
#define VGPU_LISTING_H

#include "vgpu_rpc.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VGPU_LISTING_MAX_DEVICES 64 /* a confused host: far more than any machine has */

struct vgpu_listed_device {
    struct vgpu_host_device_info host;
    uint64_t mem_free, mem_total; /* at the time of the listing */
    struct vgpu_host_buft_info buft;
};

struct vgpu_listing {
    size_t n;
    struct vgpu_listed_device *dev; /* n entries (NULL when n == 0) */
};

/* Asks the host. Returns false with a reason when the host cannot be used at all (GET_INFO
 * failed, another FORWARD protocol, out of memory); a device whose questions fail ends the
 * list there (indices stay dense), with a log line. The host exposing no device is true
 * with n == 0. */
bool vgpu_listing_fetch(struct apir_client *c, struct vgpu_listing *l, char *why, size_t why_len);
void vgpu_listing_free(struct vgpu_listing *l);
/* Do the host's answers now (live) still describe the devices this process listed (was)?
 * Memory is not compared (it changes); false with the first difference in why[]. */
bool vgpu_listing_same(const struct vgpu_listing *was, const struct vgpu_listing *live, char *why, size_t why_len);

#endif
