#include "proc_info.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* /proc/<pid>/<what> for reading, or NULL */
static FILE *proc_open(pid_t pid, const char *what)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, what);
    return fopen(path, "r");
}

static pid_t parent_of(const char *pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* pid (comm) state ppid: comm may hold spaces and parentheses, so parse after the last ')' */
    char *p = strrchr(buf, ')');
    char state;
    int ppid;
    if (!p || sscanf(p + 1, " %c %d", &state, &ppid) != 2 || state == 'Z')
        return -1;
    return ppid;
}

int proc_children(pid_t parent, pid_t *out, int cap)
{
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        if (parent_of(e->d_name) == parent && n < cap)
            out[n++] = (pid_t)atoi(e->d_name);
    }
    if (d)
        closedir(d);
    return n;
}

void proc_status_text(pid_t pid, const char *field, char *out, size_t cap)
{
    char line[256];
    FILE *f = proc_open(pid, "status");
    size_t len = strlen(field);
    out[0] = '\0';
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            const char *v = line + len + 1 + strspn(line + len + 1, " \t");
            snprintf(out, cap, "%.*s", (int)strcspn(v, "\n"), v);
            break;
        }
    if (f)
        fclose(f);
}

long proc_status_field(pid_t pid, const char *field)
{
    char text[256];
    proc_status_text(pid, field, text, sizeof text);
    return text[0] ? strtol(text, NULL, 10) : -1;
}

int proc_fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

bool proc_maps_contain(pid_t pid, const char *needle)
{
    char line[512];
    FILE *f = proc_open(pid, "maps");
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

pid_t proc_server_pid(void)
{
    const char *s = getenv("APIR_SERVER_PID");
    if (!s || !*s) {
        fprintf(stderr, "APIR_SERVER_PID is not set: run under tests/lib/with-server.sh\n");
        exit(1);
    }
    return (pid_t)atoi(s);
}

pid_t proc_new_child(pid_t parent, const pid_t *known, int n, int ms)
{
    for (int t = 0; t <= ms; t += 10) {
        pid_t kids[512];
        int k = proc_children(parent, kids, 512);
        for (int i = 0; i < k; i++) {
            bool old = false;
            for (int j = 0; j < n && !old; j++)
                old = kids[i] == known[j];
            if (!old)
                return kids[i];
        }
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}
