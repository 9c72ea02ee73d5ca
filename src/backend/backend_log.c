#include "backend_log.h"

#include "apir_protocol.h"
#include "ggml.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file; /* NULL: stderr */
static unsigned log_users;
static ggml_log_callback prev_cb;
static void *prev_cb_data;

static FILE *out(void) { return log_file ? log_file : stderr; }

static void ggml_to_log(enum ggml_log_level level, const char *text, void *user_data)
{
    (void)level;
    (void)user_data;
    pthread_mutex_lock(&log_lock);
    fputs(text, out());
    fflush(out());
    pthread_mutex_unlock(&log_lock);
}

void backend_log_acquire(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_users++ == 0) {
        const char *path = getenv(APIR_ENV_BACKEND_LOG);
        if (path && *path) {
            log_file = fopen(path, "a");
            if (!log_file)
                fprintf(stderr, "ggml-virtgpu-backend: cannot open log file %s, logging to stderr\n", path);
        }
        /* ggml's logger is process-global: remember the previous one and restore it when the
         * last context goes, so no pointer into this library outlives it */
        ggml_log_get(&prev_cb, &prev_cb_data);
        ggml_log_set(ggml_to_log, NULL);
    }
    pthread_mutex_unlock(&log_lock);
}

void backend_log_release(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_users && --log_users == 0) {
        ggml_log_set(prev_cb, prev_cb_data);
        if (log_file)
            fclose(log_file);
        log_file = NULL;
    }
    pthread_mutex_unlock(&log_lock);
}

/* Lines are mostly a guest's failed commands: a token bucket (100 lines, then 20 a second)
 * keeps a guest that fails every command from filling the host's disk. Under log_lock. */
static bool take_token(FILE *f)
{
    static double tokens = 100.0, at;
    static unsigned long long dropped;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    tokens += at ? (now - at) * 20.0 : 0.0;
    at = now;
    if (tokens > 100.0)
        tokens = 100.0;
    if (tokens < 1.0) {
        dropped++;
        return false;
    }
    tokens -= 1.0;
    if (dropped)
        fprintf(f, "ggml-virtgpu-backend: %llu log lines dropped (rate limit: 100 lines, then 20 a second)\n",
                dropped);
    dropped = 0;
    return true;
}

void backend_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&log_lock);
    FILE *f = out();
    if (!take_token(f)) {
        pthread_mutex_unlock(&log_lock);
        va_end(ap);
        return;
    }
    fputs("ggml-virtgpu-backend: ", f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
    pthread_mutex_unlock(&log_lock);
    va_end(ap);
}
