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

/* each message is kept with its level in front: "[E] ", "[W] ", "[I] ", "[D] " */
static inline void log_capture(enum ggml_log_level level, const char *text, void *user)
{
    (void)user;
    static const char *const tag[] = {
        [GGML_LOG_LEVEL_DEBUG] = "[D] ", [GGML_LOG_LEVEL_INFO] = "[I] ",
        [GGML_LOG_LEVEL_WARN] = "[W] ", [GGML_LOG_LEVEL_ERROR] = "[E] ",
    };
    const char *t = (unsigned)level < sizeof tag / sizeof tag[0] && tag[level] ? tag[level] : "";
    size_t n = strlen(logbuf);
    snprintf(logbuf + n, sizeof logbuf - n, "%s%s", t, text);
}

/* how many times needle occurs in the log */
static inline int log_count(const char *needle)
{
    int n = 0;
    for (const char *p = logbuf; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
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
