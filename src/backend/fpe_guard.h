/* Integer division faults inside ggml's tensor constructors become a refused node.
 *
 * ggml's constructors check broadcast and output sizes with integer division and modulo by
 * guest-controlled extents and op_params (strides, kernel sizes); a zero there is SIGFPE, not
 * a GGML_ASSERT. Validation rebuilds every guest node with those constructors
 * (node_rebuild.c), so it runs them under this guard: the fault jumps back to the caller,
 * which refuses the node. Faults anywhere else keep the disposition the process had. */
#ifndef APIR_FPE_GUARD_H
#define APIR_FPE_GUARD_H

#include <setjmp.h>

/* Installs the SIGFPE handler once per process (call before the worker's sandbox is set:
 * it needs rt_sigaction). */
void fpe_guard_install(void);

/* Where a fault of this thread jumps to while a guarded call runs; NULL otherwise. */
extern _Thread_local sigjmp_buf *fpe_guard_target;

#endif
