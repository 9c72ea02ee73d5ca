/* The configuration table: the keys the backend library may ask for, each filled from its
 * environment variable when a context is created; the hypervisor may override any key. */
#include "component_internal.h"

#include <stdlib.h>
#include <string.h>

static const struct {
    const char *key;
    const char *env;
} config_keys[APIR_CONFIG_KEY_COUNT] = {
    {APIR_KEY_LOAD_LIBRARY_PATH, APIR_ENV_BACKEND_LIBRARY},
    {APIR_KEY_GGML_LIBRARY_PATH, APIR_ENV_GGML_LIBRARY_PATH},
    {APIR_KEY_GGML_LIBRARY_REG, APIR_ENV_GGML_LIBRARY_REG},
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

void apir_config_init_from_env(struct apir_config *cfg)
{
    for (int i = 0; i < APIR_CONFIG_KEY_COUNT; i++) {
        const char *v = getenv(config_keys[i].env);
        /* an empty variable counts as unset: "VAR=" is how shells clear a value */
        cfg->values[i] = v && *v ? strdup(v) : NULL;
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
    free(cfg->values[i]);
    cfg->values[i] = copy;
    return 0;
}

const char *apir_config_get(const struct apir_config *cfg, const char *key)
{
    int i = key_index(key);
    return i < 0 ? NULL : cfg->values[i];
}

void apir_config_free(struct apir_config *cfg)
{
    for (int i = 0; i < APIR_CONFIG_KEY_COUNT; i++) {
        free(cfg->values[i]);
        cfg->values[i] = NULL;
    }
}
