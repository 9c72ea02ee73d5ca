/* Between the two halves of the client: apir_client.c (calls) and apir_client_connect.c
 * (connection). Not for other users. */
#ifndef APIR_CLIENT_INTERNAL_H
#define APIR_CLIENT_INTERNAL_H

#include "apir_client.h"

uint64_t apir_client_now_ns(void);
/* a raw APIR command (HANDSHAKE, LOADLIBRARY) waiting at most timeout_ns; takes c->lock.
 * Returns the command's return value (reply word - 1) or an apir_client_error. */
int apir_client_command_timed(struct apir_client *c, uint32_t cmd_type, const void *payload, size_t size,
                              struct apir_decoder *reply, uint64_t timeout_ns);
/* connects (lazily) if DISCONNECTED; 0 or APIR_CLIENT_ERR_LOST */
int apir_client_ensure_connected(struct apir_client *c);
/* the device is lost: log once (what, or the command running and rc), close the transport.
 * Caller holds c->lock. */
void apir_client_lose_locked(struct apir_client *c, int rc, const char *what);

#endif
