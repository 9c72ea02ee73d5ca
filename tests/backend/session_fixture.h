/* The component's side of a backend session, shared by the tests (and fuzz_dispatch) that
 * drive libggml-virtgpu-backend.so through its three entry points on the real CPU backend. */
#ifndef TESTS_BACKEND_SESSION_FIXTURE_H
#define TESTS_BACKEND_SESSION_FIXTURE_H

#include "apir_codec.h"
#include "apir_protocol.h"

#include <stddef.h>
#include <stdint.h>

/* the library's entry points (not in a public header: the component dlsym()s them) */
uint32_t apir_backend_initialize(uint32_t virgl_ctx_id, struct virgl_apir_callbacks *cbs);
uint32_t apir_backend_dispatcher(uint32_t virgl_ctx_id, struct virgl_apir_callbacks *cbs, uint32_t cmd_index,
                                 char *dec_cur, const char *dec_end, char *enc_cur, const char *enc_end,
                                 char **enc_cur_after);
void apir_backend_deinit(uint32_t virgl_ctx_id);
void apir_backend_resource_detach(uint32_t virgl_ctx_id, uint32_t res_id);
bool apir_backend_computes_off_cpu(uint32_t virgl_ctx_id);

/* The best libggml-cpu-*.so in dir (the one ggml's loader would choose) into out, "" if none.
 * The libraries stay loaded: the backend library will load the same file. */
void sf_pick_cpu(const char *dir, char *out, size_t cap);

/* Callbacks of a session with APIR_KEY_GGML_LIBRARY_PATH = cpu_path (no other key) and one
 * shared resource res of size bytes at shm; the pointers must outlive the session. */
struct virgl_apir_callbacks *sf_single_resource(const char *cpu_path, uint32_t res, void *shm, uint64_t size);

/* get_config of sf_single_resource, for tests with their own resources */
const char *sf_get_config(uint32_t ctx, const char *key);

/* One FORWARD call: the arguments args[0, args_len), the reply into reply[0, reply_cap);
 * r is set to decode the reply (empty if none). Returns the dispatcher's status. */
uint32_t sf_call(uint32_t ctx, struct virgl_apir_callbacks *cbs, uint32_t cmd, uint8_t *args, size_t args_len,
                 uint8_t *reply, size_t reply_cap, struct apir_decoder *r);

#endif
