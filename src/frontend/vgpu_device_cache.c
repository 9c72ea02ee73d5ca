#include "vgpu_device_cache.h"

#include "apir_codec.h"
#include "apir_forward.h"
#include "apir_protocol.h"
#include "guest_log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CACHE_MAGIC 0x43445647u /* "GVDC" */
#define CACHE_FILE "devices"
#define CACHE_FILE_MAX (1u << 20)
/* the bytes one device takes at most in the file */
#define DEVICE_BYTES_MAX (3 * VGPU_HOST_NAME_MAX + VGPU_HOST_DESC_MAX + 128)

/* The folder, made if missing; false when the cache is off or the folder is not safe to use
 * (someone else's, or writable by others: its entries would be theirs to forge). */
static bool cache_dir(char *dir, size_t len)
{
    const char *env = getenv("GGML_VIRTGPU_DEVICE_CACHE");
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    bool chosen = env != NULL;
    int n;
    if (env) {
        if (!env[0] || !strcmp(env, "0") || !strcasecmp(env, "off") || !strcasecmp(env, "no"))
            return false;
        n = snprintf(dir, len, "%s", env);
    } else if (xdg && xdg[0] == '/') {
        n = snprintf(dir, len, "%s/ggml-virtgpu", xdg);
    } else {
        n = snprintf(dir, len, "/tmp/ggml-virtgpu-%u", (unsigned)geteuid());
    }
    if (n < 0 || (size_t)n >= len)
        return false;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        GUEST_LOG_DEBUG("device cache: cannot make %s: %s; not cached\n", dir, strerror(errno));
        return false;
    }
    struct stat st;
    if (lstat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 022) ||
        (!chosen && (st.st_mode & 077))) {
        GUEST_LOG_DEBUG("device cache: %s is not a folder of this user's that only it can write; not cached "
                        "(set GGML_VIRTGPU_DEVICE_CACHE=DIR to use another)\n", dir);
        return false;
    }
    return true;
}

static bool cache_file(char *path, size_t len)
{
    char dir[PATH_MAX];
    if (!cache_dir(dir, sizeof dir))
        return false;
    int n = snprintf(path, len, "%s/%s", dir, CACHE_FILE);
    return n > 0 && (size_t)n < len;
}

/* The kernel's id of this boot: a virtio-gpu device's host (the VMM) lives exactly as long */
static bool boot_id(char *id, size_t len)
{
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f)
        return false;
    bool ok = fgets(id, (int)len, f) != NULL;
    fclose(f);
    id[strcspn(id, "\n")] = '\0';
    return ok && id[0];
}

bool vgpu_device_cache_key(const struct apir_client_endpoint *ep, char *key, size_t key_len)
{
    const char *env = getenv("GGML_VIRTGPU_DEVICE_CACHE");
    if (env && (!env[0] || !strcmp(env, "0") || !strcasecmp(env, "off") || !strcasecmp(env, "no")))
        return false;
    if (ep->kind == APIR_ENDPOINT_VIRTGPU) {
        char id[64];
        if (!boot_id(id, sizeof id))
            return false;
        int n = snprintf(key, key_len, "virtgpu boot %s capset %u protocol %u.%u forward %u", id, ep->capset,
                         APIR_PROTOCOL_MAJOR, APIR_PROTOCOL_MINOR, APIR_FORWARD_PROTOCOL_VERSION);
        return n > 0 && (size_t)n < key_len;
    }
    if (ep->kind != APIR_ENDPOINT_VTEST)
        return false;
    struct stat st;
    if (stat(ep->path, &st) != 0 || !S_ISSOCK(st.st_mode))
        return false;
    int n = snprintf(key, key_len, "vtest %s dev %llx ino %llu ctime %lld.%09ld capset %u protocol %u.%u forward %u",
                     ep->path, (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
                     (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec, ep->capset, APIR_PROTOCOL_MAJOR,
                     APIR_PROTOCOL_MINOR, APIR_FORWARD_PROTOCOL_VERSION);
    return n > 0 && (size_t)n < key_len;
}

/* Is a socket bound to this path listening in this network namespace? /proc/net/unix lists
 * them (flag __SO_ACCEPTCON, state SS_UNCONNECTED) without connecting. A listener in another
 * namespace, or one bound under another spelling of the path, reads as "no": the host is then
 * asked as without a cache. */
static bool socket_listening(const char *path)
{
    char real[PATH_MAX];
    const char *alt = realpath(path, real) ? real : path;
    FILE *f = fopen("/proc/net/unix", "re");
    if (!f)
        return false;
    char line[PATH_MAX + 128];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        unsigned flags = 0, st = 0;
        int at = -1;
        if (sscanf(line, "%*s %*s %*s %x %*x %x %*u %n", &flags, &st, &at) != 2 || at < 0)
            continue;
        char *p = line + at;
        p[strcspn(p, "\n")] = '\0';
        if ((flags & 0x10000u) && st == 1 && (!strcmp(p, path) || !strcmp(p, alt)))
            found = true;
    }
    fclose(f);
    return found;
}

static void put_device(struct apir_encoder *e, const struct vgpu_listed_device *d)
{
    apir_put_str(e, d->host.name);
    apir_put_str(e, d->host.description);
    apir_put_u32(e, d->host.type);
    apir_put_u8(e, d->host.async);
    apir_put_u8(e, d->host.host_buffer);
    apir_put_u8(e, d->host.buffer_from_host_ptr);
    apir_put_u8(e, d->host.events);
    apir_put_u32(e, d->host.buft);
    apir_put_u32(e, d->host.host_buft);
    apir_put_u64(e, d->mem_free);
    apir_put_u64(e, d->mem_total);
    apir_put_str(e, d->buft.name);
    apir_put_u64(e, d->buft.alignment);
    apir_put_u64(e, d->buft.max_size);
    apir_put_u8(e, d->buft.is_host);
}

static void get_device(struct apir_decoder *dec, struct vgpu_listed_device *d)
{
    apir_get_str(dec, d->host.name, sizeof d->host.name);
    apir_get_str(dec, d->host.description, sizeof d->host.description);
    d->host.type = apir_get_u32(dec);
    d->host.async = apir_get_u8(dec) != 0;
    d->host.host_buffer = apir_get_u8(dec) != 0;
    d->host.buffer_from_host_ptr = apir_get_u8(dec) != 0;
    d->host.events = apir_get_u8(dec) != 0;
    d->host.buft = apir_get_u32(dec);
    d->host.host_buft = apir_get_u32(dec);
    d->mem_free = apir_get_u64(dec);
    d->mem_total = apir_get_u64(dec);
    apir_get_str(dec, d->buft.name, sizeof d->buft.name);
    d->buft.alignment = apir_get_u64(dec);
    d->buft.max_size = apir_get_u64(dec);
    d->buft.is_host = apir_get_u8(dec) != 0;
}

/* the whole file, if it is a regular file of this user's that others cannot write */
static uint8_t *read_private(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    uint8_t *buf = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && !(st.st_mode & 022) &&
        st.st_size > 0 && st.st_size <= CACHE_FILE_MAX && (buf = malloc((size_t)st.st_size))) {
        size_t got = 0;
        while (got < (size_t)st.st_size) {
            ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got != (size_t)st.st_size) {
            free(buf);
            buf = NULL;
        }
        *len = got;
    }
    close(fd);
    return buf;
}

bool vgpu_device_cache_load(const struct apir_client_endpoint *ep, const char *key, struct vgpu_listing *l)
{
    memset(l, 0, sizeof *l);
    char path[PATH_MAX];
    if (!cache_file(path, sizeof path))
        return false;
    size_t len = 0;
    uint8_t *buf = read_private(path, &len);
    if (!buf)
        return false;
    struct apir_decoder dec;
    apir_decoder_init(&dec, buf, len);
    char file_key[VGPU_DEVICE_CACHE_KEY_MAX];
    bool ok = false;
    if (apir_get_u32(&dec) == CACHE_MAGIC) {
        apir_get_str(&dec, file_key, sizeof file_key);
        uint32_t n = apir_get_u32(&dec);
        if (!dec.error && !strcmp(file_key, key) && n <= VGPU_LISTING_MAX_DEVICES &&
            (n == 0 || (l->dev = calloc(n, sizeof *l->dev)))) {
            for (uint32_t i = 0; i < n; i++)
                get_device(&dec, &l->dev[i]);
            l->n = n;
            ok = apir_get_u32(&dec) == CACHE_MAGIC && apir_decoder_done(&dec);
        }
    }
    free(buf);
    /* the socket file outlives a killed apir-server: use the answers only while it listens */
    if (ok && ep->kind == APIR_ENDPOINT_VTEST && !socket_listening(ep->path)) {
        GUEST_LOG_DEBUG("device cache: nothing listens on %s; asking the host\n", ep->path);
        ok = false;
    }
    if (!ok)
        vgpu_listing_free(l);
    else
        GUEST_LOG_DEBUG("device cache: %zu device(s) of %s from %s; the host was not asked\n", l->n,
                        ep->kind == APIR_ENDPOINT_VTEST ? ep->path : "virtio-gpu", path);
    return ok;
}

void vgpu_device_cache_store(const char *key, const struct vgpu_listing *l)
{
    char path[PATH_MAX], tmp[PATH_MAX + 16];
    if (!cache_file(path, sizeof path))
        return;
    size_t cap = 64 + strlen(key) + l->n * DEVICE_BYTES_MAX;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return;
    struct apir_encoder enc;
    apir_encoder_init(&enc, buf, cap);
    apir_put_u32(&enc, CACHE_MAGIC);
    apir_put_str(&enc, key);
    apir_put_u32(&enc, (uint32_t)l->n);
    for (size_t i = 0; i < l->n; i++)
        put_device(&enc, &l->dev[i]);
    apir_put_u32(&enc, CACHE_MAGIC);
    snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    int fd = enc.error ? -1 : mkstemp(tmp); /* mode 0600 */
    bool ok = false;
    if (fd >= 0) {
        size_t done = 0;
        while (done < enc.pos) {
            ssize_t w = write(fd, buf + done, enc.pos - done);
            if (w <= 0)
                break;
            done += (size_t)w;
        }
        ok = done == enc.pos && fchmod(fd, 0600) == 0;
        ok = close(fd) == 0 && ok;
        /* readers see the old file or the new one, never a part */
        ok = ok && rename(tmp, path) == 0;
        if (!ok)
            unlink(tmp);
    }
    if (!ok)
        GUEST_LOG_DEBUG("device cache: cannot write %s: %s\n", path, enc.error ? "too large" : strerror(errno));
    free(buf);
}
