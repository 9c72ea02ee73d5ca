/* Component logging: one line per call, to VIRGL_APIR_LOG_TO_FILE (appended) or stderr.
 * Guest-caused lines are rate-limited (a token bucket per process: a guest that fails every
 * command must not fill the host's disk); the supervisor's own lines are not. */
#include "apir_component.h"
#include "apir_protocol.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_BURST 100.0     /* lines */
#define LOG_PER_SECOND 20.0 /* refill */

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file; /* NULL: stderr */
static double tokens = LOG_BURST;
static double tokens_at; /* monotonic seconds of the last refill */
static unsigned long long dropped;

/* a worker forked while another thread writes a line must not inherit a held lock */
static void lock_for_fork(void) { pthread_mutex_lock(&log_lock); }
static void unlock_after_fork(void) { pthread_mutex_unlock(&log_lock); }

static void log_open(void)
{
    pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
    const char *path = getenv(APIR_ENV_COMPONENT_LOG);
    if (path && *path) {
        log_file = fopen(path, "a");
        if (!log_file)
            fprintf(stderr, "apir: cannot open %s=%s for logging, using stderr\n", APIR_ENV_COMPONENT_LOG, path);
        else
            setvbuf(log_file, NULL, _IOLBF, 0);
    }
}

int apir_component_log_fd(void)
{
    pthread_once(&log_once, log_open);
    return log_file ? fileno(log_file) : 2;
}

static void emit(FILE *f, const char *text)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    fprintf(f, "[%lld.%06ld] apir: %s\n", (long long)ts.tv_sec, ts.tv_nsec / 1000, text);
}

/* under log_lock: true if a limited line may be written now */
static bool take_token(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    if (tokens_at == 0)
        tokens_at = now;
    tokens += (now - tokens_at) * LOG_PER_SECOND;
    tokens_at = now;
    if (tokens > LOG_BURST)
        tokens = LOG_BURST;
    if (tokens < 1.0)
        return false;
    tokens -= 1.0;
    return true;
}

static void vlog(bool limited, const char *fmt, va_list ap)
{
    pthread_once(&log_once, log_open);
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    /* guest-influenced text (paths, dlerror) stays on one line */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    FILE *f = log_file ? log_file : stderr;
    pthread_mutex_lock(&log_lock);
    if (limited && !take_token()) {
        dropped++;
    } else {
        if (dropped) {
            char note[128];
            snprintf(note, sizeof note, "%llu log lines dropped (rate limit: %.0f lines, then %.0f a second)",
                     dropped, LOG_BURST, LOG_PER_SECOND);
            emit(f, note);
            dropped = 0;
        }
        emit(f, line);
        fflush(f);
    }
    pthread_mutex_unlock(&log_lock);
}

void apir_component_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(true, fmt, ap);
    va_end(ap);
}

void apir_component_log_always(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(false, fmt, ap);
    va_end(ap);
}
