/* For harnesses that stand in for a worker (test_mutations, fuzz_dispatch): most ggml
 * assertions a hostile graph reaches are ggml's constructors refusing a node the host
 * rebuilds. preflight_asserts() finds those first by decoding the command as the backend
 * library will (any buffer handle resolves to a large dummy buffer: rebuilding looks at
 * shapes only) and leaving through ggml's abort callback, so that only an assertion a *kernel*
 * raises ends the harness's process, as it ends a worker. */
#ifndef APIR_TEST_PREFLIGHT_H
#define APIR_TEST_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* once, before the first preflight */
void preflight_init(void);
/* first thing in the harness's ggml abort callback: leaves a running preflight (no return) */
void preflight_on_abort(void);
/* true when decoding the arguments of FORWARD command cmd (GRAPH_COMPUTE or
 * DEVICE_SUPPORTS_OP, their backend or device handle first) stops in a ggml assertion */
bool preflight_asserts(uint32_t cmd, const void *args, size_t len);

#endif
