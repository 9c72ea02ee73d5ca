/* Prints the path of the best libggml-cpu-*.so variant for this CPU (the one ggml's own loader
 * would pick): the value to give APIR_LLAMA_CPP_GGML_LIBRARY_PATH for the CPU backend.
 * Usage: ggml-pick-cpu [DIR]   (default: the ggml library folder of this build) */
#include "pick_cpu.h"

#include <limits.h>
#include <stdio.h>

#ifndef GGML_LIB_DIR
#define GGML_LIB_DIR "."
#endif

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : GGML_LIB_DIR;
    char best[PATH_MAX] = "";
    int rc = gb_pick_cpu_library(dir, best, sizeof best);
    if (rc == -1) {
        fprintf(stderr, "ggml-pick-cpu: cannot open %s\n", dir);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "ggml-pick-cpu: no usable libggml-cpu-*.so in %s\n", dir);
        return 1;
    }
    printf("%s\n", best);
    return 0;
}
