/* Per-guest limits: parsed from the configuration table (filled from the environment or set
 * by the hypervisor). A bad value is an error that names the key and its variable. */
#include "component_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool apir_limit_parse(const char *value, uint64_t *out)
{
    if (!value || *value < '0' || *value > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

bool apir_seccomp_parse(const char *value, enum apir_seccomp_mode *out)
{
    static const struct {
        const char *name;
        enum apir_seccomp_mode mode;
    } names[] = {{"auto", APIR_SECCOMP_AUTO}, {"on", APIR_SECCOMP_ON}, {"1", APIR_SECCOMP_ON},
                 {"off", APIR_SECCOMP_OFF}, {"0", APIR_SECCOMP_OFF}};
    for (size_t i = 0; value && i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(value, names[i].name) == 0) {
            *out = names[i].mode;
            return true;
        }
    }
    return false;
}

static const struct {
    const char *key;
    const char *def;
    size_t offset;
} numeric[] = {
    {APIR_KEY_LIMIT_BUFFER_BYTES, "0", offsetof(struct apir_limits, buffer_bytes)},
    {APIR_KEY_LIMIT_HANDLES, APIR_DEFAULT_LIMIT_HANDLES, offsetof(struct apir_limits, handles)},
    {APIR_KEY_LIMIT_BLOBS, APIR_DEFAULT_LIMIT_BLOBS, offsetof(struct apir_limits, blobs)},
    {APIR_KEY_LIMIT_BLOB_BYTES, APIR_DEFAULT_LIMIT_BLOB_BYTES, offsetof(struct apir_limits, blob_bytes)},
    {APIR_KEY_LIMIT_CONNECTIONS_PER_UID, APIR_DEFAULT_LIMIT_CONNECTIONS_PER_UID,
     offsetof(struct apir_limits, connections_per_uid)},
    {APIR_KEY_LIMIT_IDLE_SECONDS, APIR_DEFAULT_LIMIT_IDLE_SECONDS, offsetof(struct apir_limits, idle_seconds)},
    {APIR_KEY_LIMIT_COMMAND_SECONDS, APIR_DEFAULT_LIMIT_COMMAND_SECONDS, offsetof(struct apir_limits, command_seconds)},
};

bool apir_config_limits(const struct apir_config *cfg, struct apir_limits *out)
{
    bool ok = true;
    for (size_t i = 0; i < sizeof numeric / sizeof numeric[0]; i++) {
        uint64_t *field = (uint64_t *)((char *)out + numeric[i].offset);
        const char *v = apir_config_get(cfg, numeric[i].key);
        if (!apir_limit_parse(v, field)) {
            apir_component_log("limit %s (%s) is '%s', not a number of %s: set it to a decimal integer (0: no "
                               "limit), see docs/configuration.md",
                               numeric[i].key, apir_config_env_name(numeric[i].key), v ? v : "",
                               strstr(numeric[i].key, "seconds") ? "seconds" : "bytes or objects");
            apir_limit_parse(numeric[i].def, field);
            ok = false;
        }
    }
    const char *v = apir_config_get(cfg, APIR_KEY_SANDBOX_SECCOMP);
    if (!apir_seccomp_parse(v, &out->seccomp)) {
        apir_component_log("%s (%s) is '%s': set it to auto, on or off", APIR_KEY_SANDBOX_SECCOMP,
                           APIR_ENV_SANDBOX_SECCOMP, v ? v : "");
        out->seccomp = APIR_SECCOMP_AUTO;
        ok = false;
    }
    return ok;
}

int apir_limits_from_env(struct apir_limits *out)
{
    struct apir_config cfg;
    apir_config_init_from_env(&cfg);
    bool ok = apir_config_limits(&cfg, out);
    apir_config_free(&cfg);
    return ok ? 0 : -1;
}

void apir_context_limits(const struct apir_context *ctx, struct apir_limits *out)
{
    apir_config_limits(&ctx->config, out);
}
