/* Choosing the best libggml-cpu-*.so variant, shared by ggml-pick-cpu and ggml_backends.c
 * (no ggml link needed: the libraries are only dlopen()ed to ask their score). */
#ifndef TOOLS_PICK_CPU_H
#define TOOLS_PICK_CPU_H

#include <stddef.h>

/* Path of the best CPU variant in dir (the one ggml's loader would pick), written to out;
 * 0 on success, -1 if dir cannot be opened, -2 if it holds no usable variant. */
int gb_pick_cpu_library(const char *dir, char *out, size_t out_len);

#endif
