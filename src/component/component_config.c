/* The configuration table: the keys the backend library may ask for, each filled from its
 * environment variable when a context is created; the hypervisor may override any key.
 * The limit keys always hold a value: their variable's, else their default. */
#include "component_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* default for apir.limit.buffer_bytes: three quarters of the host's RAM, so that one guest
 * cannot push the host into the OOM killer on its own */
static void default_buffer_bytes(char *out, size_t cap)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    unsigned long long ram = pages > 0 && page > 0 ? (unsigned long long)pages * (unsigned long long)page : 0;
    snprintf(out, cap, "%llu", ram / 4 * 3);
}

static const struct config_key {
    const char *key;
    const char *env;
    const char *def; /* NULL: unset unless the variable is set */
    void (*def_fn)(char *out, size_t cap);
} config_keys[APIR_CONFIG_KEY_COUNT] = {
    {APIR_KEY_LOAD_LIBRARY_PATH, APIR_ENV_BACKEND_LIBRARY, NULL, NULL},
    {APIR_KEY_GGML_LIBRARY_PATH, APIR_ENV_GGML_LIBRARY_PATH, NULL, NULL},
    {APIR_KEY_GGML_LIBRARY_REG, APIR_ENV_GGML_LIBRARY_REG, NULL, NULL},
    {APIR_KEY_LIMIT_BUFFER_BYTES, APIR_ENV_LIMIT_BUFFER_BYTES, NULL, default_buffer_bytes},
    {APIR_KEY_LIMIT_HANDLES, APIR_ENV_LIMIT_HANDLES, APIR_DEFAULT_LIMIT_HANDLES, NULL},
    {APIR_KEY_LIMIT_BLOBS, APIR_ENV_LIMIT_BLOBS, APIR_DEFAULT_LIMIT_BLOBS, NULL},
    {APIR_KEY_LIMIT_BLOB_BYTES, APIR_ENV_LIMIT_BLOB_BYTES, APIR_DEFAULT_LIMIT_BLOB_BYTES, NULL},
    {APIR_KEY_LIMIT_CONNECTIONS_PER_UID, APIR_ENV_LIMIT_CONNECTIONS_PER_UID, APIR_DEFAULT_LIMIT_CONNECTIONS_PER_UID,
     NULL},
    {APIR_KEY_LIMIT_IDLE_SECONDS, APIR_ENV_LIMIT_IDLE_SECONDS, APIR_DEFAULT_LIMIT_IDLE_SECONDS, NULL},
    {APIR_KEY_LIMIT_COMMAND_SECONDS, APIR_ENV_LIMIT_COMMAND_SECONDS, APIR_DEFAULT_LIMIT_COMMAND_SECONDS, NULL},
    {APIR_KEY_SANDBOX_SECCOMP, APIR_ENV_SANDBOX_SECCOMP, APIR_DEFAULT_SANDBOX_SECCOMP, NULL},
};

static int key_index(const char *key)
{
    if (!key)
        return -1;
    for (int i = 0; i < APIR_CONFIG_KEY_COUNT; i++)
        if (strcmp(config_keys[i].key, key) == 0)
            return i;
    return -1;
}

static char *default_value(const struct config_key *k)
{
    if (k->def_fn) {
        char buf[32];
        k->def_fn(buf, sizeof buf);
        return strdup(buf);
    }
    return k->def ? strdup(k->def) : NULL;
}

void apir_config_init_from_env(struct apir_config *cfg)
{
    for (int i = 0; i < APIR_CONFIG_KEY_COUNT; i++) {
        const char *v = getenv(config_keys[i].env);
        /* an empty variable counts as unset: "VAR=" is how shells clear a value */
        cfg->values[i] = v && *v ? strdup(v) : default_value(&config_keys[i]);
    }
}

int apir_config_set(struct apir_config *cfg, const char *key, const char *value)
{
    int i = key_index(key);
    if (i < 0)
        return -1;
    char *copy = NULL;
    if (value && !(copy = strdup(value)))
        return -1;
    if (!value && !(copy = default_value(&config_keys[i])) && (config_keys[i].def || config_keys[i].def_fn))
        return -1; /* unsetting a limit restores its default */
    free(cfg->values[i]);
    cfg->values[i] = copy;
    return 0;
}

const char *apir_config_get(const struct apir_config *cfg, const char *key)
{
    int i = key_index(key);
    return i < 0 ? NULL : cfg->values[i];
}

const char *apir_config_env_name(const char *key)
{
    int i = key_index(key);
    return i < 0 ? "?" : config_keys[i].env;
}

void apir_config_free(struct apir_config *cfg)
{
    for (int i = 0; i < APIR_CONFIG_KEY_COUNT; i++) {
        free(cfg->values[i]);
        cfg->values[i] = NULL;
    }
}
