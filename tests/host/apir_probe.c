/* A minimal guest: connects as the environment says (apir_client_open), prints "connected"
 * or the reason it could not, and exits 0 or 1. Used by the configuration tests. */
#include "apir_client.h"

#include <stdio.h>

int main(void)
{
    char why[512];
    struct apir_client *c = apir_client_open(why, sizeof why);
    if (!c) {
        printf("%s\n", why);
        return 1;
    }
    printf("connected (host protocol %u.%u)\n", c->host_major, c->host_minor);
    apir_client_close(c);
    return 0;
}
