/* Guest logging goes through ggml's log callback (ggml_log_set), as ggml backends do. */
#ifndef APIR_GUEST_LOG_H
#define APIR_GUEST_LOG_H

#include <ggml.h>

/* exported by libggml-base; declared in ggml's internal ggml-impl.h */
void ggml_log_internal(enum ggml_log_level level, const char *format, ...);

#define GUEST_LOG_ERROR(...) ggml_log_internal(GGML_LOG_LEVEL_ERROR, "ggml-virtgpu: " __VA_ARGS__)
#define GUEST_LOG_WARN(...) ggml_log_internal(GGML_LOG_LEVEL_WARN, "ggml-virtgpu: " __VA_ARGS__)
#define GUEST_LOG_INFO(...) ggml_log_internal(GGML_LOG_LEVEL_INFO, "ggml-virtgpu: " __VA_ARGS__)
#define GUEST_LOG_DEBUG(...) ggml_log_internal(GGML_LOG_LEVEL_DEBUG, "ggml-virtgpu: " __VA_ARGS__)
/* A failed command: an error, unless it failed because the device is lost (rc says so:
 * apir_client_lost_error), which the client has already said in one line; then the
 * per-call line is debug-level so a dead device does not flood the application's log. */
#define GUEST_LOG_FAILURE(rc, ...)                                                                             \
    ggml_log_internal(apir_client_lost_error(rc) ? GGML_LOG_LEVEL_DEBUG : GGML_LOG_LEVEL_ERROR,               \
                      "ggml-virtgpu: " __VA_ARGS__)

#endif
