#include "vgpu_sig_cache.h"

#include <stdlib.h>
#include <string.h>

struct vgpu_sig_entry {
    uint64_t hash;
    uint64_t value;
    size_t key_len;
    uint8_t key[];
};

/* Word-at-a-time multiply/xor-shift hash: signatures are ~1 KB and hashed on every
 * supports_op call, so a byte-at-a-time hash would cost microseconds per op. */
static uint64_t mix(uint64_t h)
{
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h;
}

uint64_t vgpu_hash_bytes(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
    }
    uint64_t tail = 0;
    if (len > i)
        memcpy(&tail, p + i, len - i);
    return mix(h ^ tail);
}

bool vgpu_sig_cache_init(struct vgpu_sig_cache *sc, size_t max_entries)
{
    memset(sc, 0, sizeof *sc);
    if (max_entries == 0)
        return false;
    size_t n = 16;
    while (n < max_entries * 2) /* load factor <= 1/2 keeps probes short */
        n *= 2;
    sc->slots = calloc(n, sizeof *sc->slots);
    if (!sc->slots)
        return false;
    sc->n_slots = n;
    sc->max_entries = max_entries;
    pthread_mutex_init(&sc->lock, NULL);
    return true;
}

static void clear_locked(struct vgpu_sig_cache *sc)
{
    for (size_t i = 0; i < sc->n_slots; i++) {
        free(sc->slots[i]);
        sc->slots[i] = NULL;
    }
    sc->count = 0;
}

void vgpu_sig_cache_free(struct vgpu_sig_cache *sc)
{
    if (!sc->slots)
        return;
    clear_locked(sc);
    free(sc->slots);
    sc->slots = NULL;
    pthread_mutex_destroy(&sc->lock);
}

/* slot holding key, or the empty slot where it would go */
static size_t find_slot(const struct vgpu_sig_cache *sc, uint64_t h, const void *key, size_t key_len)
{
    size_t mask = sc->n_slots - 1;
    size_t i = (size_t)h & mask;
    for (;;) {
        const struct vgpu_sig_entry *e = sc->slots[i];
        if (!e || (e->hash == h && e->key_len == key_len && memcmp(e->key, key, key_len) == 0))
            return i;
        i = (i + 1) & mask;
    }
}

bool vgpu_sig_cache_get(struct vgpu_sig_cache *sc, const void *key, size_t key_len, uint64_t *value)
{
    if (!sc->slots)
        return false;
    uint64_t h = vgpu_hash_bytes(key, key_len);
    pthread_mutex_lock(&sc->lock);
    const struct vgpu_sig_entry *e = sc->slots[find_slot(sc, h, key, key_len)];
    if (e) {
        *value = e->value;
        sc->hits++;
    } else {
        sc->misses++;
    }
    pthread_mutex_unlock(&sc->lock);
    return e != NULL;
}

void vgpu_sig_cache_put(struct vgpu_sig_cache *sc, const void *key, size_t key_len, uint64_t value)
{
    if (!sc->slots || key_len > SIZE_MAX - sizeof(struct vgpu_sig_entry))
        return;
    uint64_t h = vgpu_hash_bytes(key, key_len);
    pthread_mutex_lock(&sc->lock);
    size_t i = find_slot(sc, h, key, key_len);
    if (sc->slots[i]) {
        sc->slots[i]->value = value;
    } else {
        if (sc->count >= sc->max_entries) {
            clear_locked(sc);
            i = find_slot(sc, h, key, key_len);
        }
        struct vgpu_sig_entry *e = malloc(sizeof *e + key_len);
        if (e) {
            e->hash = h;
            e->value = value;
            e->key_len = key_len;
            memcpy(e->key, key, key_len);
            sc->slots[i] = e;
            sc->count++;
        }
    }
    pthread_mutex_unlock(&sc->lock);
}

size_t vgpu_sig_cache_count(struct vgpu_sig_cache *sc)
{
    pthread_mutex_lock(&sc->lock);
    size_t n = sc->count;
    pthread_mutex_unlock(&sc->lock);
    return n;
}
