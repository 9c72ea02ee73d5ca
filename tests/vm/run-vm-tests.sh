#!/usr/bin/env bash
# run-vm-tests.sh [BUILD_DIR]
# The VM stage of scripts/test.sh: boots a Debian 13 QEMU guest (scripts/vm/run-vm.sh) whose
# virtio-gpu is served by Debian's unmodified QEMU + virglrenderer, with the APIR component
# inside QEMU through our libvirglrenderer.so.1, and checks, from the serial console and the
# host log:
#   - op-consistency on VirtGPU0 passes in the guest (real kernel driver, /dev/dri/renderD128);
#   - a greedy generation in the guest gives the same token ids as native on the host;
#   - GGML_REMOTING_USE_APIR_CAPSET=1 fails with the message that the VMM lacks capset 10;
#   - a Venus context that is no APIR guest stays with the real Venus in the same QEMU;
#   - a guest process killed mid-generation has its context destroyed on the host and the
#     worker process that served it ended; every context the guest created was destroyed by
#     the VMM, each worker ended, and none died.
# Prints boot time and tokens/s (guest through the VM vs native on the host).
# Exits 77 (skipped) only when this machine cannot run it at all (not root, no unshare).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=$(cd "${1:-$repo/build}" && pwd)
[ "$(id -u)" = 0 ] || { echo "skipped: the VM test needs root (debootstrap, chroot, mount namespaces)"; exit 77; }
command -v unshare >/dev/null || { echo "skipped: no unshare (util-linux)"; exit 77; }
. "$here/params.sh"
out=${GGML_VIRTGPU_VM_OUT:-$build/vm}
export GGML_VIRTGPU_VM_OUT=$out
mkdir -p "$out"

# native reference on the host, same generator and arguments as the guest's model
model="$out/model.gguf"
"$build/bin/make-tiny-llama" -o "$model" $VM_MODEL_ARGS >/dev/null
native=$("$build/bin/llama-run" -m "$model" -p "$VM_PROMPT" -n "$VM_TOKENS" --ignore-eos --native 2>"$out/native.stderr")

rc=0
bash "$repo/scripts/vm/run-vm.sh" "$build" >/dev/null || rc=$?
serial="$out/serial.log"; hostlog="$out/apir.log"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
[ $rc -eq 0 ] || fail "QEMU exited $rc (124: timed out); serial console in $serial, QEMU's stderr in $out/qemu.stderr"
grep -q "^GUEST-DONE rc=0" "$serial" || fail "the guest did not finish its tests (no GUEST-DONE rc=0)"

if grep -q "^VMTEST op-consistency rc=0" "$serial"; then ok "op-consistency on VirtGPU0 in the guest: $(grep -E '^[0-9]+ passed' "$serial")"
else fail "op-consistency in the guest: $(grep '^VMTEST op-consistency' "$serial" || echo 'did not run')"; fi

ids() { sed -n 's/^ids: *//p' <<<"$1" | head -1; }
a=$(ids "$native"); b=$(ids "$(cat "$serial")")
if ! grep -q "^VMTEST generate rc=0" "$serial"; then fail "generation in the guest: $(grep '^VMTEST generate' "$serial" || echo 'did not run')"
elif [ -z "$a" ] || [ "$(wc -w <<<"$a")" -ne "$VM_TOKENS" ]; then fail "native run gave $(wc -w <<<"$a") tokens, expected $VM_TOKENS"
elif [ "$a" != "$b" ]; then fail "token ids differ"$'\n'" native: $a"$'\n'" guest:  $b"
else ok "$VM_TOKENS identical token ids, guest through QEMU/virtio-gpu and native: $a"; fi

if grep -q "^VMTEST apir-capset rc=0" "$serial"; then fail "GGML_REMOTING_USE_APIR_CAPSET=1 succeeded though the VMM lists no capset 10"
elif grep -q "does not offer capset 10" "$serial"; then ok "APIR capset forced: $(grep -m1 -o 'virtgpu: .*does not offer capset 10[^:]*' "$serial")"
else fail "APIR capset forced: no 'does not offer capset 10' message"; fi

if grep -q "^VMTEST venus rc=0" "$serial" && grep -q "not APIR: the context stays with virglrenderer's Venus" "$hostlog"; then
    ok "a non-APIR Venus context in the same QEMU stayed with virglrenderer's Venus (its shared-memory blob mapped)"
else fail "Venus next to APIR: $(grep '^venus-smoke\|^VMTEST venus' "$serial" | tr '\n' ' ')"; fi

# the killed process's context: the last one created; it must have run commands and been
# destroyed by the VMM (not by a reset at exit), like every other context
venus=$(grep -c "stays with virglrenderer's Venus" "$hostlog" || true)
created=$(( $(grep -c 'ctx [0-9]*: created' "$hostlog" || true) - venus ))
by_vmm=$(grep -c 'the VMM destroys it after' "$hostlog" || true)
last=$(grep 'the VMM destroys it after' "$hostlog" | tail -1 | sed -n 's/.*after \([0-9]*\) submissions.*/\1/p' || true)
last_ctx=$(grep 'the VMM destroys it after' "$hostlog" | tail -1 | sed -n 's/.*interposer: ctx \([0-9]*\):.*/\1/p' || true)
# each context, Venus's included until its first command, had a worker process; each ended
workers=$(grep -c 'interposer: ctx [0-9]*: served by worker' "$hostlog" || true)
ended=$(grep -c 'interposer: ctx [0-9]*: worker [0-9]* ended, its context freed' "$hostlog" || true)
killed_worker=$(grep -o "interposer: ctx ${last_ctx:-x}: worker [0-9]* ended" "$hostlog" | head -1 | sed 's/.*worker \([0-9]*\) ended/\1/' || true)
if ! grep -q "^VMTEST kill rc=137 running-when-killed" "$serial"; then fail "kill test: $(grep '^VMTEST kill' "$serial" || echo 'did not run')"
elif [ "$created" -eq 0 ] || [ "$created" -ne "$by_vmm" ]; then fail "host: $created contexts created, $by_vmm destroyed by the VMM (log: $hostlog)"
elif [ "${last:-0}" -eq 0 ]; then fail "host: the killed guest's context ran no commands"
elif [ -z "$killed_worker" ]; then fail "host: the worker of the killed guest's context (ctx ${last_ctx:-?}) did not end (log: $hostlog)"
elif [ "$workers" -eq 0 ] || [ "$workers" -ne "$ended" ]; then fail "host: $workers workers started, $ended ended (log: $hostlog)"
elif grep -q "device is lost\|killed by signal\|exited with status" "$hostlog"; then fail "host: a worker died: $(grep -m1 "device is lost\|killed by signal\|exited with status" "$hostlog")"
else ok "guest killed mid-generation: its context was destroyed on the host after $last submissions and its worker $killed_worker ended; $created/$created contexts freed, $ended/$workers workers ended"; fi

# figures
up() { sed -n "s/^$1 at \([0-9.]*\) s.*/\1/p" "$serial" | head -1; }
tok() { sed -n "s/^$1: *//p" <<<"$2" | head -1; }
echo "figures: guest /init at $(up 'GUEST: \/init') s, render node at $(up 'GUEST: render node.*') s (guest uptime)"
echo "figures: generation tokens/s: guest via VM $(tok tg_tok_s "$(cat "$serial")"), native host $(tok tg_tok_s "$native"); prompt tokens/s: guest $(tok pp_tok_s "$(cat "$serial")"), native $(tok pp_tok_s "$native")"
[ $fails -eq 0 ] || { echo "VM test: $fails check(s) failed; serial console: $serial, host log: $hostlog"; exit 1; }
echo "VM test: all checks passed"
