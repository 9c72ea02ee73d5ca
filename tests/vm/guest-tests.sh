#!/bin/sh
# Runs inside the guest, through /dev/dri/renderD128 and the kernel's virtio-gpu driver. Each
# step prints a "VMTEST <name> rc=N" line; the host (tests/vm/run-vm-tests.sh) judges them.
. /opt/params.sh
export LD_LIBRARY_PATH=/opt/ggml
cd /opt/ggml || exit 1
up() { cut -d' ' -f1 /proc/uptime; }

echo "VMTEST-BEGIN op-consistency at $(up) s"
./op-consistency --device VirtGPU0 > /tmp/ops.log 2>&1
rc=$?
grep -v "^ *ok" /tmp/ops.log | tail -n 15
echo "VMTEST op-consistency rc=$rc at $(up) s"

echo "VMTEST-BEGIN generate at $(up) s"
gen_start=$(up)
./llama-run -m /opt/model.gguf -p "$VM_PROMPT" -n "$VM_TOKENS" --ignore-eos --device VirtGPU0 > /tmp/gen.out 2> /tmp/gen.err
rc=$?
gen_s=$(awk -v a="$gen_start" -v b="$(up)" 'BEGIN { printf "%.1f", b - a }')
cat /tmp/gen.out
[ $rc -eq 0 ] || tail -n 20 /tmp/gen.err
echo "VMTEST generate rc=$rc at $(up) s"

# a Venus context that is not an APIR guest stays with virglrenderer's real Venus
echo "VMTEST-BEGIN venus at $(up) s"
./venus-smoke
echo "VMTEST venus rc=$? at $(up) s"

# the APIR capset forced while the VMM lists only Venus: the guest must say why it has no device
echo "VMTEST-BEGIN apir-capset at $(up) s"
GGML_REMOTING_USE_APIR_CAPSET=1 ./llama-run -m /opt/model.gguf -p "$VM_PROMPT" -n 1 --device VirtGPU0 > /tmp/apir.out 2>&1
rc=$?
grep -i "capset" /tmp/apir.out | head -n 3 | sed 's/^/apir-capset: /'
echo "VMTEST apir-capset rc=$rc at $(up) s"

# killed mid-compute: the kernel closes the render node, the VMM destroys the context
echo "VMTEST-BEGIN kill at $(up) s"
./llama-run -m /opt/model.gguf -p "$VM_PROMPT" -n "$VM_KILL_TOKENS" -c "$VM_KILL_CTX" --ignore-eos --device VirtGPU0 > /tmp/kill.out 2>&1 &
pid=$!
# as long as the whole short generation took (loading included), at least VM_KILL_AFTER_S:
# by then this one is past loading and generating, however slow the machine is today
wait_s=$(awk -v g="$gen_s" -v m="$VM_KILL_AFTER_S" 'BEGIN { print (g > m ? g : m) }')
sleep "$wait_s"
if kill -0 "$pid" 2> /dev/null; then
    kill -9 "$pid"
    wait "$pid"
    echo "VMTEST kill rc=$? running-when-killed at $(up) s"
else
    wait "$pid"
    echo "VMTEST kill rc=$? finished-before-kill at $(up) s"
fi
sleep 1 # let the kernel's context destroy reach the host before power-off
exit 0
