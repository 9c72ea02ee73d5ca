/* The APIR component: the host half that virglrenderer hosts (src/apir/ there). One context
 * per guest context; it owns the configuration table and the attached resources, loads the
 * backend library, and runs command buffers. Hosted by apir-server (vtest) and by the
 * virtio-gpu DRM emulation used in tests. Thread-safe across contexts; a context is used by
 * one thread at a time. */
#ifndef APIR_COMPONENT_H
#define APIR_COMPONENT_H

#include <stddef.h>
#include <stdint.h>

struct apir_context;

/* Creates a context for (ctx_id, capset_id). Fills the configuration table from the
 * environment (VIRGL_APIR_BACKEND_LIBRARY, APIR_LLAMA_CPP_GGML_LIBRARY_PATH,
 * APIR_LLAMA_CPP_GGML_LIBRARY_REG). A Venus capset is accepted only when
 * VIRGL_ROUTE_VENUS_TO_APIR is set. Returns NULL (and logs why) otherwise. ctx_id must be
 * unique among live contexts of the process. */
struct apir_context *apir_context_create(uint32_t ctx_id, uint32_t capset_id);
/* The hypervisor's way to set a key (overrides the environment); value NULL unsets it.
 * 0, or -1 for an unknown key. */
int apir_context_configure(struct apir_context *ctx, const char *key, const char *value);
/* Makes [ptr, ptr+size) visible to the backend as resource res_id. 0, or -1 if res_id is
 * already attached. */
int apir_context_attach_resource(struct apir_context *ctx, uint32_t res_id, void *ptr, size_t size);
void apir_context_detach_resource(struct apir_context *ctx, uint32_t res_id);
/* Runs every command in the buffer (a private copy). The reply of each goes to its reply
 * resource. Returns 0, or -1 if the buffer was malformed (logged; the context stays usable). */
int apir_context_submit(struct apir_context *ctx, const void *cmd, size_t size);
/* Frees everything the context created on the host, including the guest's buffers. */
void apir_context_destroy(struct apir_context *ctx);

/* Where the component logs: VIRGL_APIR_LOG_TO_FILE, else stderr. */
void apir_component_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
