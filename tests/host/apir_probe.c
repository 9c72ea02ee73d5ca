/* A minimal guest: connects as the environment says (apir_client_open), prints "connected"
 * or the reason it could not, and exits 0 or 1. With --hold it then stays connected until the
 * host goes away (printing "host gone"), or 30 s pass (exit 2). Used by the configuration
 * and server tests. */
#include "apir_client.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char why[512];
    struct apir_client *c = apir_client_open(why, sizeof why);
    if (!c) {
        printf("%s\n", why);
        return 1;
    }
    printf("connected (host protocol %u.%u)\n", c->host_major, c->host_minor);
    fflush(stdout);
    int rc = 0;
    if (argc > 1 && strcmp(argv[1], "--hold") == 0) {
        rc = 2;
        for (int i = 0; i < 3000; i++) {
            if (!c->transport->ops->alive(c->transport)) {
                printf("host gone\n");
                rc = 0;
                break;
            }
            usleep(10000);
        }
    }
    apir_client_close(c);
    return rc;
}
