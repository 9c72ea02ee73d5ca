/* Shared by the frontend tests that load libggml-virtgpu.so as an application does: ggml's
 * log captured into a buffer, a monotonic clock, and a CHECK that fails the test (returning 1
 * from main) with the captured log. */
#ifndef TESTS_FRONTEND_LOG_CHECK_H
#define TESTS_FRONTEND_LOG_CHECK_H

#include <ggml.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

static char logbuf[65536];

static inline void log_capture(enum ggml_log_level level, const char *text, void *user)
{
    (void)level;
    (void)user;
    size_t n = strlen(logbuf);
    snprintf(logbuf + n, sizeof logbuf - n, "%s", text);
}

static inline double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

#define CHECK(cond, ...)                                                                                   \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                \
            fprintf(stderr, __VA_ARGS__);                                                                  \
            fprintf(stderr, "\n--- log ---\n%s", logbuf);                                                  \
            return 1;                                                                                      \
        }                                                                                                  \
    } while (0)

#endif
