#include "vgpu_listing.h"

#include "apir_forward.h"
#include "guest_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool vgpu_listing_fetch(struct apir_client *c, struct vgpu_listing *l, char *why, size_t why_len)
{
    memset(l, 0, sizeof *l);
    uint32_t version = 0, count = 0;
    int rc = vgpu_rpc_get_info(c, &version, &count);
    if (rc) {
        snprintf(why, why_len, "GET_INFO failed: %s", vgpu_rpc_status_str(rc));
        return false;
    }
    if (version != APIR_FORWARD_PROTOCOL_VERSION) {
        snprintf(why, why_len, "the host speaks FORWARD protocol %u, this guest %u: install matching guest and "
                 "host builds", version, APIR_FORWARD_PROTOCOL_VERSION);
        return false;
    }
    if (count == 0)
        return true;
    if (count > VGPU_LISTING_MAX_DEVICES)
        count = VGPU_LISTING_MAX_DEVICES;
    l->dev = calloc(count, sizeof *l->dev);
    if (!l->dev) {
        snprintf(why, why_len, "out of memory");
        return false;
    }
    for (uint32_t i = 0; i < count; i++) {
        struct vgpu_listed_device *d = &l->dev[i];
        rc = vgpu_rpc_device_info(c, i, &d->host);
        if (rc) {
            GUEST_LOG_ERROR("VirtGPU%u: DEVICE_GET_INFO failed: %s\n", i, vgpu_rpc_status_str(rc));
            break; /* keep the devices before it: indices must stay dense */
        }
        rc = vgpu_rpc_buft_info(c, d->host.buft, &d->buft);
        if (rc) {
            GUEST_LOG_ERROR("VirtGPU%u: BUFT_GET_INFO failed: %s\n", i, vgpu_rpc_status_str(rc));
            break;
        }
        if (vgpu_rpc_device_memory(c, i, &d->mem_free, &d->mem_total) != APIR_BACKEND_OK)
            d->mem_free = d->mem_total = 0; /* not fatal: memory is asked again once connected */
        l->n++;
    }
    return true;
}

void vgpu_listing_free(struct vgpu_listing *l)
{
    free(l->dev);
    memset(l, 0, sizeof *l);
}

bool vgpu_listing_same(const struct vgpu_listing *was, const struct vgpu_listing *live, char *why, size_t why_len)
{
    if (live->n < was->n) {
        snprintf(why, why_len, "the host now has %zu devices, %zu were listed", live->n, was->n);
        return false;
    }
    for (size_t i = 0; i < was->n; i++) {
        const struct vgpu_listed_device *a = &was->dev[i], *b = &live->dev[i];
        const char *what = NULL;
        if (strcmp(a->host.name, b->host.name) || strcmp(a->host.description, b->host.description))
            what = "name or description";
        else if (a->host.type != b->host.type)
            what = "type";
        else if (a->host.buft != b->host.buft || a->host.host_buft != b->host.host_buft)
            what = "buffer type handle";
        else if (a->host.async != b->host.async || a->host.host_buffer != b->host.host_buffer ||
                 a->host.buffer_from_host_ptr != b->host.buffer_from_host_ptr || a->host.events != b->host.events)
            what = "capabilities";
        else if (strcmp(a->buft.name, b->buft.name) || a->buft.alignment != b->buft.alignment ||
                 a->buft.max_size != b->buft.max_size || a->buft.is_host != b->buft.is_host)
            what = "buffer type";
        if (what) {
            snprintf(why, why_len, "VirtGPU%zu: the host device is now %s (%s), %s (%s) was listed: its %s changed",
                     i, b->host.name, b->host.description, a->host.name, a->host.description, what);
            return false;
        }
    }
    return true;
}
