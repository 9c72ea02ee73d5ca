/* venus-smoke: runs in the test guest. A Venus context that is not an APIR guest must stay
 * with virglrenderer's real Venus while APIR guests use the same QEMU (the interposer's
 * per-context routing). It creates Venus's kind of shared-memory blob (blob id 0), which only
 * the real Venus can serve: the kernel's mmap of a host-visible blob succeeds only once the
 * host has created and mapped it. Then it submits a command that is not APIR's, which makes
 * the interposer leave the context to Venus (the host log says so). Exit 0 on success. */
#include "virtgpu_uapi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define VENUS_CAPSET 4
#define BLOB_SIZE 65536

static int fail(const char *what)
{
    printf("venus-smoke: %s failed: %s (errno %d)\n", what, strerror(errno), errno);
    return 1;
}

int main(int argc, char **argv)
{
    const char *node = argc > 1 ? argv[1] : "/dev/dri/renderD128";
    int fd = open(node, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return fail("open");
    struct drm_virtgpu_context_set_param params[] = {
        {VIRTGPU_CONTEXT_PARAM_CAPSET_ID, VENUS_CAPSET},
        {VIRTGPU_CONTEXT_PARAM_NUM_RINGS, 1},
    };
    struct drm_virtgpu_context_init init = {.num_params = 2, .ctx_set_params = (uintptr_t)params};
    if (ioctl(fd, DRM_IOCTL_VIRTGPU_CONTEXT_INIT, &init))
        return fail("CONTEXT_INIT (Venus)");
    struct drm_virtgpu_resource_create_blob blob = {
        .blob_mem = VIRTGPU_BLOB_MEM_HOST3D, .blob_flags = VIRTGPU_BLOB_FLAG_USE_MAPPABLE,
        .size = BLOB_SIZE, .blob_id = 0};
    if (ioctl(fd, DRM_IOCTL_VIRTGPU_RESOURCE_CREATE_BLOB, &blob))
        return fail("RESOURCE_CREATE_BLOB (Venus shared memory)");
    struct drm_virtgpu_map map = {.handle = blob.bo_handle};
    if (ioctl(fd, DRM_IOCTL_VIRTGPU_MAP, &map))
        return fail("VIRTGPU_MAP");
    volatile uint32_t *p = mmap(NULL, BLOB_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)map.offset);
    if (p == MAP_FAILED)
        return fail("mmap of the Venus blob (the host did not create it)");
    p[0] = 0x12345678;
    if (p[0] != 0x12345678) {
        printf("venus-smoke: the mapped blob does not keep what was written\n");
        return 1;
    }
    /* a Venus command type (below 331): not APIR's, so the context stays with Venus */
    uint32_t cmd[4] = {188, 0, 0, 0};
    struct drm_virtgpu_execbuffer exec = {
        .flags = VIRTGPU_EXECBUF_RING_IDX, .size = sizeof cmd, .command = (uintptr_t)cmd, .fence_fd = -1};
    if (ioctl(fd, DRM_IOCTL_VIRTGPU_EXECBUFFER, &exec))
        return fail("EXECBUFFER");
    printf("venus-smoke: ok: a Venus shared-memory blob was created and mapped by virglrenderer's Venus\n");
    munmap((void *)p, BLOB_SIZE);
    close(fd);
    return 0;
}
