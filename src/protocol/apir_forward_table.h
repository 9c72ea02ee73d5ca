/* The FORWARD command table: one entry per command, read by both sides (no include guard:
 * include it after defining APIR_FORWARD_CMD, it undefines it again). apir_forward.h builds
 * the enum from it, apir_forward.c the per-command facts (name, sizes, waits), the backend's
 * dispatcher its handler array. Adding a command: an entry here (at the end: indices are
 * wire values), its handler cmd_<stem>() in src/backend/cmd_*.c, and its guest wrapper in
 * src/frontend/vgpu_rpc.c/.h. A missing handler fails the build (undefined cmd_<stem>).
 *
 * APIR_FORWARD_CMD(NAME, stem, index, request, reply, waits)
 *   NAME     the enum is APIR_FWD_<NAME>, the log name "<NAME>"
 *   stem     the host handler is cmd_<stem>
 *   request  argument bytes after the u32 command index:
 *            APIR_FWD_FIXED(n): exactly n; APIR_FWD_VARIABLE(n): n, then a variable part
 *   reply    reply bytes, the same way; a fixed reply is checked against the reply page
 *            before the command acts (an object the guest never hears of would leak)
 *   waits    APIR_FWD_WAITS: the guest waits on it, so it reports a deferred error of earlier
 *            fire-and-forget commands instead of running (apir_forward.h); else APIR_FWD_NO_WAIT
 *
 * Argument and reply types are those of apir_forward.h ("u32 device index -> u64 free"). */

/* -> u32 version (APIR_FORWARD_PROTOCOL_VERSION), u32 device count */
APIR_FORWARD_CMD(GET_INFO, get_info, 0, APIR_FWD_FIXED(0), APIR_FWD_FIXED(8), APIR_FWD_NO_WAIT)
/* u32 device index -> str name, str description, u32 type (enum ggml_backend_dev_type),
 * u8 async, u8 host_buffer, u8 buffer_from_host_ptr, u8 events,
 * handle buffer type, handle host buffer type (0 if none) */
APIR_FORWARD_CMD(DEVICE_GET_INFO, device_get_info, 1, APIR_FWD_FIXED(4), APIR_FWD_VARIABLE(0), APIR_FWD_NO_WAIT)
/* u32 device index -> u64 free, u64 total */
APIR_FORWARD_CMD(DEVICE_GET_MEMORY, device_get_memory, 2, APIR_FWD_FIXED(4), APIR_FWD_FIXED(16), APIR_FWD_NO_WAIT)
/* u32 device index, u32 n (1..APIR_MAX_OP_TENSORS), n tensors (the op's sources first,
 * the op last; src fields index into this list) -> u8 supported */
APIR_FORWARD_CMD(DEVICE_SUPPORTS_OP, device_supports_op, 3, APIR_FWD_VARIABLE(4), APIR_FWD_FIXED(1), APIR_FWD_NO_WAIT)
/* handle buft -> str name, u64 alignment, u64 max size, u8 is_host */
APIR_FORWARD_CMD(BUFT_GET_INFO, buft_get_info, 4, APIR_FWD_FIXED(4), APIR_FWD_VARIABLE(0), APIR_FWD_NO_WAIT)
/* handle buft, u32 n, n tensors (as in SUPPORTS_OP) -> u64 bytes needed for the last one */
APIR_FORWARD_CMD(BUFT_GET_ALLOC_SIZE, buft_get_alloc_size, 5, APIR_FWD_VARIABLE(4), APIR_FWD_FIXED(8), APIR_FWD_NO_WAIT)
/* handle buft, u64 size -> handle buffer, u64 size */
APIR_FORWARD_CMD(BUFT_ALLOC_BUFFER, buft_alloc_buffer, 6, APIR_FWD_FIXED(12), APIR_FWD_FIXED(12), APIR_FWD_NO_WAIT)
/* handle buffer -> nothing */
APIR_FORWARD_CMD(BUFFER_FREE, buffer_free, 7, APIR_FWD_FIXED(4), APIR_FWD_FIXED(0), APIR_FWD_NO_WAIT)
/* handle buffer, u8 value -> nothing */
APIR_FORWARD_CMD(BUFFER_CLEAR, buffer_clear, 8, APIR_FWD_FIXED(5), APIR_FWD_FIXED(0), APIR_FWD_NO_WAIT)
/* handle buffer, u64 offset, u64 size, u8 value -> nothing */
APIR_FORWARD_CMD(BUFFER_MEMSET, buffer_memset, 9, APIR_FWD_FIXED(21), APIR_FWD_FIXED(0), APIR_FWD_NO_WAIT)
/* handle buffer, u64 offset, u64 size, u32 shmem res_id, u64 shmem offset -> nothing
 * copies size bytes from the shared resource into the buffer at offset */
APIR_FORWARD_CMD(BUFFER_SET, buffer_set, 10, APIR_FWD_FIXED(32), APIR_FWD_FIXED(0), APIR_FWD_NO_WAIT)
/* same arguments as SET, copies from the buffer into the shared resource */
APIR_FORWARD_CMD(BUFFER_GET, buffer_get, 11, APIR_FWD_FIXED(32), APIR_FWD_FIXED(0), APIR_FWD_WAITS)
/* handle src buffer, u64 src offset, handle dst buffer, u64 dst offset, u64 size -> u8 done */
APIR_FORWARD_CMD(BUFFER_COPY, buffer_copy, 12, APIR_FWD_FIXED(32), APIR_FWD_FIXED(1), APIR_FWD_NO_WAIT)
/* u32 device index -> handle backend */
APIR_FORWARD_CMD(BACKEND_INIT, backend_init, 13, APIR_FWD_FIXED(4), APIR_FWD_FIXED(4), APIR_FWD_NO_WAIT)
/* handle backend -> nothing */
APIR_FORWARD_CMD(BACKEND_FREE, backend_free, 14, APIR_FWD_FIXED(4), APIR_FWD_FIXED(0), APIR_FWD_NO_WAIT)
/* handle backend, graph (apir_forward.h) -> u32 enum ggml_status, u32 slot; the decoded graph
 * is kept in slot (0..APIR_GRAPH_SLOTS-1: an empty one or the least recently computed) */
APIR_FORWARD_CMD(GRAPH_COMPUTE, graph_compute, 15, APIR_FWD_VARIABLE(4), APIR_FWD_FIXED(8), APIR_FWD_WAITS)
/* handle backend, u32 slot, u32 n (0..APIR_MAX_RECOMPUTE_OUTPUTS), when n > 0: u32 shmem
 * res_id, then n times (handle buffer, u64 offset, u64 size) -> u32 enum ggml_status;
 * recomputes the graph kept in slot (ERR_NO_GRAPH: none), then, when it succeeded, copies the
 * n ranges one after the other into the shared resource from its start (the graph's outputs,
 * read without a round trip) */
APIR_FORWARD_CMD(GRAPH_RECOMPUTE, graph_recompute, 16, APIR_FWD_VARIABLE(12), APIR_FWD_FIXED(4), APIR_FWD_WAITS)
/* handle backend -> u32 enum ggml_status of the work since the last synchronize */
APIR_FORWARD_CMD(BACKEND_SYNCHRONIZE, backend_synchronize, 17, APIR_FWD_FIXED(4), APIR_FWD_FIXED(4), APIR_FWD_WAITS)
/* handle buffer, u64 offset, u32 size (<= APIR_MAX_INLINE_SET), size bytes of data -> nothing
 * copies the inline bytes into the buffer at offset (no shared resource). Meant to be sent
 * without a reply (reply_res_id 0, "fire-and-forget"), see apir_forward.h. */
APIR_FORWARD_CMD(BUFFER_SET_INLINE, buffer_set_inline, 18, APIR_FWD_VARIABLE(16), APIR_FWD_FIXED(0), APIR_FWD_NO_WAIT)

#undef APIR_FORWARD_CMD
