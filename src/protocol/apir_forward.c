/* The per-command facts of apir_forward_table.h, for the guest, the host backend library
 * and the component's logs alike. */
#include "apir_forward.h"

#include <stddef.h>

static const struct apir_forward_cmd_info commands[] = {
#define APIR_FORWARD_CMD(NAME, stem, index, request, reply, waits) [index] = {#NAME, request, reply, waits},
#include "apir_forward_table.h"
};
/* indices run 0..COUNT-1 without a hole or a repeat: as many entries as COUNT, each at its
 * own index (a repeated index is also -Woverride-init) */
enum {
    N_ENTRIES = 0
#define APIR_FORWARD_CMD(NAME, stem, index, request, reply, waits) +1
#include "apir_forward_table.h"
};
_Static_assert((int)N_ENTRIES == (int)APIR_FWD_COUNT, "FORWARD indices run 0..APIR_FWD_COUNT-1 without a hole");

const struct apir_forward_cmd_info *apir_forward_cmd(uint32_t cmd)
{
    return cmd < APIR_FWD_COUNT ? &commands[cmd] : NULL;
}

const char *apir_forward_cmd_name(uint32_t cmd)
{
    return cmd < APIR_FWD_COUNT ? commands[cmd].name : "?";
}
