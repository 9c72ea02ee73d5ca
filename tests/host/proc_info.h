/* What a test can see of another process from outside, through /proc: its children, its
 * status fields, its descriptors, its mappings. */
#ifndef TEST_PROC_INFO_H
#define TEST_PROC_INFO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* the live children of parent (up to cap), in no order; their count */
int proc_children(pid_t parent, pid_t *out, int cap);
/* a numeric field of /proc/PID/status ("Seccomp", "NoNewPrivs", "VmRSS" in kB); -1 if absent */
long proc_status_field(pid_t pid, const char *field);
/* a field of /proc/PID/status as text, without its name and leading blanks ("" if absent) */
void proc_status_text(pid_t pid, const char *field, char *out, size_t cap);
/* open descriptors; -1 if the process is gone */
int proc_fd_count(pid_t pid);
/* true if /proc/PID/maps mentions needle */
bool proc_maps_contain(pid_t pid, const char *needle);
/* the server's pid (APIR_SERVER_PID from tests/lib/with-server.sh); exits 1 if unset */
pid_t proc_server_pid(void);
/* waits up to ms for a child of parent that is not in known[0..n); 0 if none appeared */
pid_t proc_new_child(pid_t parent, const pid_t *known, int n, int ms);

#endif
