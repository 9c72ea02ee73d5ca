/* A raw vtest client for tests: lets a test send any bytes, well-formed or hostile, to
 * apir-server, and check what comes back. */
#ifndef TEST_VTEST_RAW_H
#define TEST_VTEST_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* the server's socket from GGML_VIRTGPU_SOCKET; exits 2 when unset (run under with-server.sh) */
const char *raw_socket_from_env(void);
int raw_connect(const char *path);                 /* aborts the test on failure */
void raw_send(int fd, const void *buf, size_t size); /* ignores errors: the peer may be gone */
void raw_cmd(int fd, uint32_t id, uint32_t len, const uint32_t *data, uint32_t words);
/* true if the server closed the connection (EOF within 5 s) */
bool raw_closed(int fd);
/* PING round trip: true if the server answered */
bool raw_ping(int fd);
/* CREATE_RENDERER + PROTOCOL_VERSION 3 + CONTEXT_INIT(capset) */
void raw_init(int fd, uint32_t capset);
/* RESOURCE_CREATE_BLOB; returns res_id (0: refused) and the mapped memory in *ptr */
uint32_t raw_blob(int fd, uint64_t size, void **ptr);
/* the same, and keeps the blob's descriptor in *mfd (the caller closes it) */
uint32_t raw_blob_fd(int fd, uint64_t size, void **ptr, int *mfd);
/* submits one APIR command buffer in a SUBMIT_CMD2 batch */
void raw_submit(int fd, const void *cmd, size_t size);
/* HANDSHAKE through the reply resource; returns the reply value or -1 on timeout */
int raw_handshake(int fd, uint32_t cmd_offset, uint32_t reply_res, void *reply_page);
/* the bytes of that HANDSHAKE command (RAW_HANDSHAKE_BYTES) into buf; returns their count */
#define RAW_HANDSHAKE_BYTES 20
size_t raw_handshake_cmd(void *buf, uint32_t cmd_offset, uint32_t reply_res);
/* waits up to 5 s for the reply word of reply_page; the command's value, or -1 */
int raw_wait_reply(void *reply_page);
/* APIR_RING_ATTACH of a resource: the host's answer (1 attached, 0 refused), -1 if none */
int raw_ring_attach(int fd, uint32_t res_id);
/* an empty SUBMIT_CMD2: wakes the worker to run its command ring */
void raw_kick(int fd);
/* a complete good guest on a new connection: init, blob, HANDSHAKE; true if it worked */
bool raw_good_client(const char *path, uint32_t capset);

#endif
