/* Loading the host GGML backend library (ggml.library.path) and finding its registration
 * function (ggml.library.reg). Libraries are shared by every context of the process. */
#ifndef APIR_GGML_LIB_H
#define APIR_GGML_LIB_H

#include "ggml-backend.h"

#include <stdint.h>

/* Loads `path` (once per process) and returns its backend registration after checking the
 * API version and that it has devices. reg_symbol NULL or "" means the default
 * ggml_backend_init. Logs the reason and returns an apir_backend_init_code on failure. */
uint32_t apir_ggml_lib_load(const char *path, const char *reg_symbol, ggml_backend_reg_t *reg_out);

#endif
