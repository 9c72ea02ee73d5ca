/* Component logging: one line per call, to VIRGL_APIR_LOG_TO_FILE (appended) or stderr. */
#include "apir_component.h"
#include "apir_protocol.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file; /* NULL: stderr */

static void log_open(void)
{
    const char *path = getenv(APIR_ENV_COMPONENT_LOG);
    if (path && *path) {
        log_file = fopen(path, "a");
        if (!log_file)
            fprintf(stderr, "apir: cannot open %s=%s for logging, using stderr\n", APIR_ENV_COMPONENT_LOG, path);
        else
            setvbuf(log_file, NULL, _IOLBF, 0);
    }
}

void apir_component_log(const char *fmt, ...)
{
    pthread_once(&log_once, log_open);
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int n = snprintf(line, sizeof line, "[%lld.%06ld] apir: ", (long long)ts.tv_sec, ts.tv_nsec / 1000);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* guest-influenced text (paths, dlerror) stays on one line */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    FILE *f = log_file ? log_file : stderr;
    pthread_mutex_lock(&log_lock);
    fprintf(f, "%s\n", line);
    fflush(f);
    pthread_mutex_unlock(&log_lock);
}
