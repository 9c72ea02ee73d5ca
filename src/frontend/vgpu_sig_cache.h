/* A bounded, thread-safe cache from an opaque byte key (an op signature) to a u64 answer.
 * Used for supports_op and get_alloc_size answers, which never change for a given signature.
 * When full it is simply emptied: signatures repeat heavily, so it refills with what is hot. */
#ifndef VGPU_SIG_CACHE_H
#define VGPU_SIG_CACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vgpu_sig_entry;

struct vgpu_sig_cache {
    pthread_mutex_t lock;
    struct vgpu_sig_entry **slots; /* open addressing, power-of-two size */
    size_t n_slots;
    size_t count;
    size_t max_entries;
    uint64_t hits, misses; /* for tests and debug logs */
};

/* max_entries > 0; returns false on out of memory */
bool vgpu_sig_cache_init(struct vgpu_sig_cache *sc, size_t max_entries);
void vgpu_sig_cache_free(struct vgpu_sig_cache *sc);
bool vgpu_sig_cache_get(struct vgpu_sig_cache *sc, const void *key, size_t key_len, uint64_t *value);
/* best effort: silently does nothing when out of memory */
void vgpu_sig_cache_put(struct vgpu_sig_cache *sc, const void *key, size_t key_len, uint64_t value);
size_t vgpu_sig_cache_count(struct vgpu_sig_cache *sc);

uint64_t vgpu_hash_bytes(const void *data, size_t len);

#endif
