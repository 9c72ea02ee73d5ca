/* Prints the path of the best libggml-cpu-*.so variant for this CPU (the one ggml's own loader
 * would pick): the value to give APIR_LLAMA_CPP_GGML_LIBRARY_PATH for the CPU backend.
 * Usage: ggml-pick-cpu [DIR]   (default: the ggml library folder of this build) */
#include <dirent.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#ifndef GGML_LIB_DIR
#define GGML_LIB_DIR "."
#endif

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : GGML_LIB_DIR;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "ggml-pick-cpu: cannot open %s\n", dir);
        return 1;
    }
    char best[PATH_MAX] = "";
    int best_score = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "libggml-cpu-", 12) != 0 || n < 4 || strcmp(e->d_name + n - 3, ".so") != 0)
            continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            continue;
        int (*score)(void) = (int (*)(void))dlsym(h, "ggml_backend_score");
        int s = score ? score() : 0;
        if (s > best_score) {
            best_score = s;
            snprintf(best, sizeof best, "%s", path);
        }
        dlclose(h);
    }
    closedir(d);
    if (!best_score) {
        fprintf(stderr, "ggml-pick-cpu: no usable libggml-cpu-*.so in %s\n", dir);
        return 1;
    }
    printf("%s\n", best);
    return 0;
}
