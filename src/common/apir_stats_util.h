/* What the guest's statistics (src/frontend/vgpu_stats.c) and the host's
 * (src/backend/backend_stats.c) both need: the period from their environment variable, a
 * monotonic clock, and a bounded append for the one-call report table. Header-only: the two
 * sides are different libraries and share no object file. */
#ifndef APIR_STATS_UTIL_H
#define APIR_STATS_UTIL_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* the variable's value: 0 (off) when unset, empty, not a number or not positive */
static inline long apir_stats_every_from_env(const char *name)
{
    const char *e = getenv(name);
    long v = e && *e ? strtol(e, NULL, 10) : 0;
    return v > 0 ? v : 0;
}

static inline uint64_t apir_stats_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* appends to buf[0..cap) at *len; a line that does not fit is cut, never overflows */
__attribute__((format(printf, 4, 5))) static inline void apir_stats_appendf(char *buf, size_t cap, size_t *len,
                                                                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n > 0)
        *len = *len + (size_t)n < cap ? *len + (size_t)n : cap - 1;
}

#endif
