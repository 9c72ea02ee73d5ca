/* The worker's sandbox, entered once its libraries are loaded: no_new_privs, then a seccomp
 * filter that allows what serving a guest with the CPU backend needs and fails every other
 * system call with EPERM. The worker then cannot open files, create sockets, run programs,
 * fork, ptrace or issue ioctls; what it already holds (its connection, its memfds, the log
 * files) keeps working.
 *
 * Why each group is allowed:
 * - socket I/O on the connection, blobs as sealed memfds (memfd_create, ftruncate, fcntl
 *   seals), sending their descriptors (sendmsg);
 * - memory: the mmap family (no new executable mappings: PROT_EXEC is refused), brk;
 * - threads: the CPU backend's thread pool (clone with CLONE_THREAD only; clone3 answers
 *   ENOSYS so that glibc falls back to clone, whose flags a filter can read), futex, rseq,
 *   robust lists, scheduling and affinity, sleeping, clocks;
 * - sysinfo: the CPU device's memory answer (sysconf(_SC_PHYS_PAGES) calls it and ignores its
 *   failure, so a refused sysinfo made DEVICE_GET_MEMORY report uninitialized stack bytes);
 * - signals to itself: abort() on a ggml assertion must still end the worker with SIGABRT;
 * - arch_prctl for AMX permission only: ggml-cpu asks for the AMX tile state when it lists its
 *   extra buffer types; refused, a worker on a 16-core Xeon (AMX) host computed the F16 test
 *   model's tokens 4x slower than with the filter off (298-451 t/s against 1300-1478; 1421 once
 *   allowed), besides losing the AMX buffer type.
 * The filter keeps the process's speculation settings (SECCOMP_FILTER_FLAG_SPEC_ALLOW): a
 * kernel whose mitigations run in "seccomp" mode would otherwise force Speculative Store Bypass
 * Disable and STIBP on the worker. They protect a process from code that runs inside it (a
 * JIT's scripts); a worker runs no guest code and holds only its own guest's data, and native
 * llama.cpp runs without them.
 * GPU backends are not filtered by default (apir.sandbox.seccomp=auto): their drivers open
 * device nodes, map them and issue ioctls lazily (CUDA's libcuda, Vulkan's ICDs), which is
 * not a small allowlist. */
#include "component_internal.h"

#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifndef ARCH_GET_XCOMP_PERM /* asm/prctl.h of Linux 5.16+ */
#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#endif

static const int allowed[] = {
    SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64), SCMP_SYS(pwrite64),
    SCMP_SYS(close), SCMP_SYS(lseek), SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(fcntl),
    SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(recvmsg), SCMP_SYS(sendmsg), SCMP_SYS(shutdown),
    SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(memfd_create), SCMP_SYS(ftruncate),
    SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(brk), SCMP_SYS(mincore),
    SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(get_robust_list), SCMP_SYS(rseq), SCMP_SYS(membarrier),
    SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity), SCMP_SYS(sched_setaffinity), SCMP_SYS(getcpu),
    SCMP_SYS(sched_getparam), SCMP_SYS(sched_getscheduler),
    SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep), SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
    SCMP_SYS(gettimeofday), SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getppid), SCMP_SYS(getuid),
    SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid), SCMP_SYS(getrandom), SCMP_SYS(getrusage),
    SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn), SCMP_SYS(sigaltstack),
    SCMP_SYS(restart_syscall), SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(sysinfo),
};

/* argument n equal to v (libseccomp's SCMP_An with both data given: warning-free) */
#define ARG_EQ(n, v) ((struct scmp_arg_cmp){(n), SCMP_CMP_EQ, (scmp_datum_t)(v), 0})

static int add_rules(scmp_filter_ctx f)
{
    int rc = 0;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0] && rc == 0; i++)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, allowed[i], 0);
    /* memory, but nothing new becomes executable */
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    /* threads only: fork() is clone without CLONE_THREAD */
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
    /* AMX tile state for ggml-cpu's AMX kernels (ggml_amx_init asks the kernel for it; refused,
     * the AMX buffer type is missing and "AMX is not ready to be used!" is logged) */
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(arch_prctl), 1, ARG_EQ(0, ARCH_REQ_XCOMP_PERM));
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(arch_prctl), 1, ARG_EQ(0, ARCH_GET_XCOMP_PERM));
    /* signals to its own threads (abort, raise) */
    pid_t self = getpid();
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, ARG_EQ(0, self));
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, ARG_EQ(0, self));
    /* reading resource limits (thread stacks), never setting them */
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 1, ARG_EQ(2, 0));
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(getrlimit), 0);
    /* thread names and the sanitizers' queries; nothing that changes privileges */
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, ARG_EQ(0, PR_SET_NAME));
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, ARG_EQ(0, PR_GET_NAME));
    if (rc == 0)
        rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1, ARG_EQ(0, PR_GET_DUMPABLE));
    return rc;
}

int apir_sandbox_install_seccomp(void)
{
    scmp_filter_ctx f = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!f) {
        apir_component_log_always("sandbox: seccomp_init failed");
        return -1;
    }
    /* every thread the worker already has (a GGML library may start some at load) */
    int rc = seccomp_attr_set(f, SCMP_FLTATR_CTL_TSYNC, 1);
    /* keep the process's own speculation settings (see above); a kernel or libseccomp too old
     * for the flag gets the filter without it */
    if (rc == 0 && seccomp_attr_set(f, SCMP_FLTATR_CTL_SSB, 1) != 0)
        apir_component_log_always("sandbox: seccomp cannot leave speculation mitigations as they are here: "
                                  "the worker may compute slower than native");
    if (rc == 0)
        rc = add_rules(f);
    if (rc == 0)
        rc = seccomp_load(f);
    seccomp_release(f);
    if (rc != 0) {
        apir_component_log_always("sandbox: cannot install the seccomp filter: %s; set %s=off (key %s) to run "
                                  "workers without it",
                                  strerror(-rc), APIR_ENV_SANDBOX_SECCOMP, APIR_KEY_SANDBOX_SECCOMP);
        return -1;
    }
    return 0;
}

/* ggml's CPU backend library: libggml-cpu.so or one of its variants (libggml-cpu-haswell.so) */
static bool is_cpu_backend(const char *path)
{
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path;
    return base && strncmp(base, "libggml-cpu", 11) == 0;
}

int apir_sandbox_enter(enum apir_seccomp_mode mode, const char *ggml_library_path)
{
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        apir_component_log_always("sandbox: PR_SET_NO_NEW_PRIVS failed: %s", strerror(errno));
        return -1;
    }
    bool filter = mode == APIR_SECCOMP_ON || (mode == APIR_SECCOMP_AUTO && is_cpu_backend(ggml_library_path));
    if (!filter) {
        apir_component_log("sandbox: no_new_privs set; no seccomp filter (%s=%s, GGML library %s)",
                           APIR_ENV_SANDBOX_SECCOMP, mode == APIR_SECCOMP_OFF ? "off" : "auto",
                           ggml_library_path ? ggml_library_path : "?");
        return 0;
    }
    /* ggml's abort path prints a backtrace by reading /proc/self/status and forking gdb; under
     * the filter fopen fails and ggml dereferences the NULL FILE (SIGSEGV instead of the
     * SIGABRT the listener should report). The filter refuses gdb anyway. */
    setenv("GGML_NO_BACKTRACE", "1", 1);
    if (apir_sandbox_install_seccomp() != 0)
        return -1;
    apir_component_log("sandbox: no_new_privs set, seccomp filter installed");
    return 0;
}
