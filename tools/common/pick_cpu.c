#include "pick_cpu.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int gb_pick_cpu_library(const char *dir, char *out, size_t out_len)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int best = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "libggml-cpu-", 12) != 0 || n < 4 || strcmp(e->d_name + n - 3, ".so"))
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!h)
            continue;
        int (*score)(void) = (int (*)(void))dlsym(h, "ggml_backend_score");
        int s = score ? score() : 0;
        if (s > best) {
            best = s;
            snprintf(out, out_len, "%s", path);
        }
        dlclose(h);
    }
    closedir(d);
    return best > 0 ? 0 : -2;
}
