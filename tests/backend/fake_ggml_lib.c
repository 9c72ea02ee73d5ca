/* A stand-in "GGML backend library" for the initialization error paths: registration
 * functions that fail, report another backend API version, or expose no device. It has no
 * ggml_backend_init on purpose. */
#include "ggml-backend-impl.h"

#include <stddef.h>

#define EXPORT __attribute__((visibility("default")))

static const char *fake_name(ggml_backend_reg_t reg) { return "fake"; }
static size_t no_devices(ggml_backend_reg_t reg) { return 0; }
static ggml_backend_dev_t no_device(ggml_backend_reg_t reg, size_t i) { return NULL; }

static struct ggml_backend_reg old_api = {1, {fake_name, no_devices, no_device, NULL}, NULL};
static struct ggml_backend_reg empty = {GGML_BACKEND_API_VERSION, {fake_name, no_devices, no_device, NULL}, NULL};

EXPORT ggml_backend_reg_t fake_reg_null(void) { return NULL; }
EXPORT ggml_backend_reg_t fake_reg_old_api(void) { return &old_api; }
EXPORT ggml_backend_reg_t fake_reg_no_device(void) { return &empty; }
