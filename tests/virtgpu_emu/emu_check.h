/* The guest programs' CHECK: reports a failed condition and counts it; main returns
 * failures != 0. */
#ifndef TESTS_VIRTGPU_EMU_CHECK_H
#define TESTS_VIRTGPU_EMU_CHECK_H

#include <stdio.h>

static int failures;
#define CHECK(cond, ...)                                                                     \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

#endif
