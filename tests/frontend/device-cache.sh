#!/usr/bin/env bash
# device-cache.sh BUILD_DIR [N]: the per-user device cache (docs/frontend.md, "Listing without
# the host"), against a real apir-server whose log has one "client K: connected" line per
# connection (the listener forks a worker for each):
# 1. a cold cache: the first listing connects once and writes the cache (folder 0700, file 0600);
#    a CPU host device reports this machine's memory;
# 2. a warm cache: N processes that only list devices connect zero times, and list what the
#    first one did; a process that uses VirtGPU0 connects once and computes right;
# 3. the host's answers changed under a valid key (the cached description altered in place):
#    the process that uses the device finds it out, fails with a compute error (no abort) and
#    refreshes the cache; the next one lists and computes with the live answers; a truncated
#    cache file or a folder others may write is not used;
# 4. apir-server restarted on the same path (a new socket inode): the cache is not used;
# 5. apir-server killed, its socket file left behind: nothing is listed from the cache;
# 6. GGML_VIRTGPU_DEVICE_CACHE=0: every listing connects.
set -u
build=$(cd "$1" && pwd) || exit 2
n=${2:-20}
prog="$build/bin/test-vgpu-device-cache"
lib="$build/bin/libggml-virtgpu.so"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/apir-devcache.XXXXXX") || exit 2
export VIRGL_APIR_BACKEND_LIBRARY="$build/host/libggml-virtgpu-backend.so"
APIR_LLAMA_CPP_GGML_LIBRARY_PATH=$("$build/bin/ggml-pick-cpu") || exit 2
export APIR_LLAMA_CPP_GGML_LIBRARY_PATH VIRGL_ROUTE_VENUS_TO_APIR=1 VIRGL_APIR_LOG_TO_FILE="$tmp/apir.log"
export GGML_VIRTGPU_SOCKET="$tmp/sock" GGML_VIRTGPU_DEVICE_CACHE="$tmp/cache"
cache="$tmp/cache/devices"
sock="$tmp/sock" log="$tmp/apir.log"
# shellcheck source-path=SCRIPTDIR source=../lib/host-control.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/host-control.sh"
cleanup() { host_stop; rm -rf "$tmp"; }
trap cleanup EXIT
connections() { grep -c 'connected (uid' "$tmp/apir.log"; }
fail() { echo "FAIL: $*"; echo "--- last guest log ---"; cat "$tmp/err"; echo "--- apir-server log ---"; cat "$tmp/apir.log"; exit 1; }
run() { "$prog" "$@" "$lib" >"$tmp/out" 2>"$tmp/err"; }

# 1. cold
host_start || exit 1
# the cache is used only while /proc/net/unix shows the socket listening
grep -q " $tmp/sock\$" /proc/net/unix 2>/dev/null || { echo "/proc/net/unix does not list $tmp/sock: skipped"; exit 77; }
run list || fail "list"
grep -q '^VirtGPU0|' "$tmp/out" || fail "no VirtGPU0 listed"
[ "$(connections)" = 1 ] || fail "the first listing connected $(connections) times"
[ -f "$cache" ] || fail "no cache written"
[ "$(stat -c %a "$tmp/cache")" = 700 ] || fail "cache folder mode $(stat -c %a "$tmp/cache")"
[ "$(stat -c %a "$cache")" = 600 ] || fail "cache file mode $(stat -c %a "$cache")"
# a CPU host device's memory is this machine's (the host's sandbox lets sysinfo through)
if grep -q '^VirtGPU0|.*|VirtGPU0_CPU|' "$tmp/out"; then
    total=$(sed -n 2p "$tmp/out" | cut -d'|' -f4)
    [ "$total" = $(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) * 1024)) ] || fail "VirtGPU0 total memory $total"
fi
cp "$tmp/out" "$tmp/first.out"
echo "cold: 1 connection; $(head -1 "$tmp/out")"

# 2. warm: N listings, no connection
t0=$(date +%s%N)
for _ in $(seq 1 "$n"); do
    run list || fail "list"
    cmp -s <(tail -n +2 "$tmp/out") <(tail -n +2 "$tmp/first.out") || fail "a cached listing differs from the live one"
done
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q 'from the device cache' "$tmp/err" || fail "the log does not say the list came from the cache"
[ "$(connections)" = 1 ] || fail "$n warm listings made $(($(connections) - 1)) connections"
echo "warm: $n listings in $ms ms, 0 connections (0 workers forked)"
run use || fail "use after a warm listing: rc $?"
[ "$(connections)" = 2 ] || fail "using the device made $(($(connections) - 1)) connections"
grep -q '\[[EW]\]' "$tmp/err" && fail "an error or warning was logged"
echo "warm: first use connected once and computed right"

# 3. the host's answers differ from the cached ones (same key): found out at first use
desc=$(sed -n '2p' "$tmp/first.out" | cut -d'|' -f2)
[ ${#desc} -ge 2 ] || fail "description too short to alter: '$desc'"
new="X${desc:1}"
[ "$new" != "$desc" ] || new="Y${desc:1}"
DESC="$desc" NEW="$new" perl -0777 -pi -e 's/\Q$ENV{DESC}\E/$ENV{NEW}/' "$cache"
run list
grep -q "|$new|" "$tmp/out" || fail "the altered cache was not used"
run use; rc=$?
[ $rc = 3 ] || fail "use with stale cached answers: rc $rc (want 3: a compute error)"
grep -q 'VirtGPU device lost: .*changed since the device cache was written' "$tmp/err" || fail "no message about the stale cache"
echo "stale: $(grep -o 'VirtGPU device lost: [^;]*' "$tmp/err" | head -1)"
run use || fail "use after the cache was refreshed: rc $?"
grep -q "|$desc|" "$tmp/out" || fail "the cache was not refreshed with the live answers"
echo "stale: the cache was refreshed; the next process lists and computes right"

# a truncated file, or a folder others may write, is not used: the host is asked
before=$(connections)
head -c 100 "$cache" >"$tmp/half" && cat "$tmp/half" >"$cache"
run list || fail "list with a truncated cache"
[ $(($(connections) - before)) = 1 ] || fail "a truncated cache file was used"
chmod 0770 "$tmp/cache"
run list || fail "list with a group-writable cache folder"
[ $(($(connections) - before)) = 2 ] || fail "a cache folder others may write was used"
chmod 0700 "$tmp/cache"
echo "a truncated cache file and a group-writable folder are not used"

# 4. restart: new socket inode, the cache is not used
host_stop
host_start || exit 1
before=$(connections)
run list || fail "list after a restart"
[ $(($(connections) - before)) = 1 ] || fail "listing after a restart connected $(($(connections) - before)) times (want 1)"
grep -q 'from the device cache' "$tmp/err" && fail "the cache was used after a restart"
run list || fail "list"
[ $(($(connections) - before)) = 1 ] || fail "the cache was not rewritten after a restart"
echo "restart: the first listing connected, the next did not"

# 5. a killed host leaves its socket file: nothing listed from the cache
host_stop
[ -S "$tmp/sock" ] || fail "the killed server's socket file is gone (test premise)"
run list || fail "list with a dead host"
grep -q '^devices 0' "$tmp/out" || fail "a dead host's devices were listed: $(head -1 "$tmp/out")"
echo "dead host (stale socket file): $(head -1 "$tmp/out")"

# 6. off
host_start || exit 1
before=$(connections)
for _ in 1 2 3; do GGML_VIRTGPU_DEVICE_CACHE=0 run list || fail "list"; done
[ $(($(connections) - before)) = 3 ] || fail "GGML_VIRTGPU_DEVICE_CACHE=0: $(($(connections) - before)) connections for 3 listings"
echo "GGML_VIRTGPU_DEVICE_CACHE=0: 3 listings, 3 connections"
exit 0
