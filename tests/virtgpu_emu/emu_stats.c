#include "emu_stats.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAMES 32
#define MAX_SEQ 512

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    const char *name;
    unsigned long count;
} counts[MAX_NAMES];
static struct {
    const char *name;
    unsigned long repeat;
} seq[MAX_SEQ];
static size_t n_names, n_seq;
static unsigned long seq_dropped;

static void record(const char *name, bool in_sequence)
{
    pthread_mutex_lock(&lock);
    size_t i = 0;
    while (i < n_names && strcmp(counts[i].name, name) != 0)
        i++;
    if (i == n_names && n_names < MAX_NAMES)
        counts[n_names++].name = name;
    if (i < n_names)
        counts[i].count++;
    if (in_sequence) {
        if (n_seq && strcmp(seq[n_seq - 1].name, name) == 0) {
            seq[n_seq - 1].repeat++;
        } else if (n_seq < MAX_SEQ) {
            seq[n_seq].name = name;
            seq[n_seq++].repeat = 1;
        } else {
            seq_dropped++;
        }
    }
    pthread_mutex_unlock(&lock);
}

void emu_stats_event(const char *name) { record(name, true); }
void emu_stats_count(const char *name) { record(name, false); }

void emu_stats_dump(void)
{
    const char *path = getenv("VIRTGPU_EMU_STATS");
    if (!path)
        return;
    pthread_mutex_lock(&lock);
    FILE *f = fopen(path, "w");
    if (f) {
        for (size_t i = 0; i < n_names; i++)
            fprintf(f, "%s %lu\n", counts[i].name, counts[i].count);
        fputs("seq", f);
        for (size_t i = 0; i < n_seq; i++) {
            if (seq[i].repeat > 1)
                fprintf(f, " %s*%lu", seq[i].name, seq[i].repeat);
            else
                fprintf(f, " %s", seq[i].name);
        }
        if (seq_dropped)
            fprintf(f, " ...(%lu more)", seq_dropped);
        fputc('\n', f);
        fclose(f);
    }
    pthread_mutex_unlock(&lock);
}
