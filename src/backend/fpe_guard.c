#include "fpe_guard.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

_Thread_local sigjmp_buf *fpe_guard_target;

static struct sigaction previous;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void on_fpe(int sig, siginfo_t *info, void *uc)
{
    if (fpe_guard_target)
        siglongjmp(*fpe_guard_target, 1);
    /* not a guarded call: what the process would have done without us */
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction) {
            previous.sa_sigaction(sig, info, uc);
            return;
        }
    } else if (previous.sa_handler == SIG_IGN) {
        return;
    } else if (previous.sa_handler != SIG_DFL) {
        previous.sa_handler(sig);
        return;
    }
    signal(SIGFPE, SIG_DFL); /* the faulting instruction runs again and ends the process */
}

static void install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fpe;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER; /* NODEFER: nothing stays blocked after the jump */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGFPE, &sa, &previous);
}

void fpe_guard_install(void)
{
    pthread_once(&once, install);
}
