/* Shared memory for guest resources: sealed memfds. A guest that holds the descriptor could
 * otherwise ftruncate it and make the host's next access to the mapping fault (SIGBUS). */
#include "apir_component.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

int apir_shared_memory_create(const char *name, size_t size, void **ptr)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -1;
    /* size first: F_SEAL_GROW and F_SEAL_SHRINK then fix it for every holder */
    if (ftruncate(fd, (off_t)size) != 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
        goto fail;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        goto fail;
    *ptr = p;
    return fd;
fail:;
    int err = errno;
    close(fd);
    errno = err;
    return -1;
}
