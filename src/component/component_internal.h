/* Private pieces of the APIR component, one file each: config table, resource table,
 * backend library loader, context registry, command dispatch. */
#ifndef APIR_COMPONENT_INTERNAL_H
#define APIR_COMPONENT_INTERNAL_H

#include "apir_component.h"
#include "apir_protocol.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- configuration table (component_config.c) --- */
#define APIR_CONFIG_KEY_COUNT 11
struct apir_config {
    char *values[APIR_CONFIG_KEY_COUNT]; /* NULL: unset */
};
void apir_config_init_from_env(struct apir_config *cfg);
/* 0, or -1 for an unknown key or out of memory */
int apir_config_set(struct apir_config *cfg, const char *key, const char *value);
const char *apir_config_get(const struct apir_config *cfg, const char *key);
/* the environment variable that fills key ("?" if none) */
const char *apir_config_env_name(const char *key);
void apir_config_free(struct apir_config *cfg);

/* --- resource table (component_resources.c) --- */
struct apir_resource {
    uint32_t res_id;
    void *ptr;
    size_t size;
};
struct apir_resource_table {
    struct apir_resource *items;
    size_t count, cap;
    uint64_t bytes; /* sum of the sizes attached */
};
int apir_resources_attach(struct apir_resource_table *t, uint32_t res_id, void *ptr, size_t size);
void apir_resources_detach(struct apir_resource_table *t, uint32_t res_id);
const struct apir_resource *apir_resources_find(const struct apir_resource_table *t, uint32_t res_id);
void apir_resources_free(struct apir_resource_table *t);

/* --- backend library loader (component_library.c) --- */
struct apir_library {
    char *path;
    void *handle;
    unsigned refcount;
    apir_backend_initialize_fn initialize;
    apir_backend_dispatcher_fn dispatcher;
    apir_backend_deinit_fn deinit;
    apir_backend_resource_detach_fn resource_detach; /* optional (NULL) */
    apir_backend_computes_off_cpu_fn computes_off_cpu; /* optional (NULL: false) */
};
/* Loads (or shares) the library at path; returns an apir_load_library_code (0 on success,
 * CANNOT_OPEN, SYMBOL_MISSING) and logs the reason. */
int apir_library_acquire(const char *path, struct apir_library **out);
void apir_library_release(struct apir_library *lib);

/* --- context --- */
struct apir_context {
    uint32_t ctx_id;
    uint32_t capset_id;
    uint32_t cmd_offset; /* APIR_VENUS_CMD_OFFSET in a routed Venus context */
    struct apir_config config;
    struct apir_resource_table resources;
    struct apir_library *lib; /* NULL until LOADLIBRARY succeeded */
    int off_cpu;              /* apir_context_computes_off_cpu's answer: -1 not asked yet */
    bool worker;              /* apir_context_enter_worker_mode was called */
    struct apir_activity *activity; /* worker mode: the supervisor's page, or NULL */
};

/* --- logging (component_log.c) --- */
/* opens the log if needed and returns its descriptor (2 for stderr), for a worker to keep */
int apir_component_log_fd(void);

/* --- limits (component_limits.c) --- */
/* parses one limit value; false if it is not a decimal integer */
bool apir_limit_parse(const char *value, uint64_t *out);
bool apir_seccomp_parse(const char *value, enum apir_seccomp_mode *out);
/* the limits of a configuration table; false (logged, naming the key and its variable) if a
 * value is bad, with that limit at its default */
bool apir_config_limits(const struct apir_config *cfg, struct apir_limits *out);

/* --- registry of live contexts (component_registry.c) --- */
int apir_registry_add(struct apir_context *ctx); /* -1 if ctx_id is taken */
void apir_registry_remove(struct apir_context *ctx);
extern struct virgl_apir_callbacks apir_component_callbacks;

/* --- commands (component_commands.c) --- */
/* One command's view: its header, payload and where its reply goes. */
struct apir_command {
    uint32_t type;      /* after removing the Venus offset */
    uint32_t reply_res_id;
    const uint8_t *payload;
    size_t payload_len; /* the fixed length of this type, or the rest for FORWARD */
};
/* Payload length of a command type (SIZE_MAX: the rest of the buffer); false if unknown. */
bool apir_command_payload_size(uint32_t type, size_t *size);
/* Runs one command and writes its reply. */
void apir_command_run(struct apir_context *ctx, const struct apir_command *cmd);
/* Writes a reply: payload already in place after the header, then len, then ret + 1 and
 * a FUTEX_WAKE. */
void apir_reply_finish(void *page, uint32_t payload_len, uint32_t ret);
/* the reply page of cmd or NULL (0 = no reply wanted; unknown or too small is logged) */
void *apir_reply_page(struct apir_context *ctx, uint32_t res_id, size_t *size);

#endif
