#!/usr/bin/env bash
# campaign.sh BUILD_FUZZ_DIR TARGET SECONDS JOBS OUT_DIR
# A long fuzzing campaign by hand (CI runs each target for 10 s only): libFuzzer's fork mode
# with JOBS parallel jobs for SECONDS, starting from the generated seeds, the corpus kept in
# the repository (tests/fuzz/corpus/TARGET) and whatever OUT_DIR/corpus already holds (so a
# campaign can be continued). Then every artifact is replayed and classified: a ggml assertion
# raised by a *kernel* while computing ends only that guest's worker in the server (not a
# finding; fuzz_dispatch reports those as exits with APIR_FUZZ_KERNEL_ASSERT=report so the
# campaign goes on past them); anything else is a finding.
# Prints the total executions and the classification; leaves OUT_DIR/{corpus,artifacts,log}.
# Keep the result: minimize into the repository with
#   BUILD/bin/TARGET -merge=1 tests/fuzz/corpus/TARGET OUT_DIR/corpus
set -euo pipefail
build=$(cd "$1" && pwd); target=$2; seconds=$3; jobs=$4; out=$5
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out/corpus" "$out/artifacts"
out=$(cd "$out" && pwd)
bin="$build/bin/$target"
[ -x "$bin" ] || { echo "campaign: $bin not built (CC=clang cmake -DAPIR_FUZZ=ON)" >&2; exit 2; }

export VIRGL_APIR_LOG_TO_FILE=/dev/null APIR_LLAMA_CPP_LOG_TO_FILE=/dev/null
export ASAN_OPTIONS=allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
dirs=("$out/corpus")
case $target in
fuzz_dispatch | fuzz_graph_decode)
    seeds=$(mktemp -d); "$build/bin/fuzz_seeds" "$seeds" >/dev/null; dirs+=("$seeds") ;;
fuzz_component)
    export APIR_FUZZ_BACKEND_LIB="$build/host/libggml-virtgpu-backend.so"
    APIR_FUZZ_CPU_LIB=$("$build/bin/ggml-pick-cpu"); export APIR_FUZZ_CPU_LIB
    # one context lives for a whole job: let the guest quota, not libFuzzer's RSS limit, stop
    # buffers from piling up (the default quota is 3/4 of RAM)
    export VIRGL_APIR_MAX_BUFFER_BYTES=$((1 << 30)) ;;
esac
[ -d "$here/corpus/$target" ] && dirs+=("$here/corpus/$target")
flags=(-rss_limit_mb=4096 -malloc_limit_mb=65536 -max_len=65536)

echo "campaign: $target, $jobs jobs, ${seconds}s, from ${dirs[*]}"
APIR_FUZZ_KERNEL_ASSERT=report "$bin" -fork="$jobs" -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
    -max_total_time="$seconds" -artifact_prefix="$out/artifacts/" "${flags[@]}" "${dirs[@]}" \
    >"$out/log" 2>&1 || true
execs=$(grep -Eo '^#[0-9]+' "$out/log" | tail -n1 | tr -d '#')
echo "campaign: $target executions: ${execs:-0} (libFuzzer fork mode; log: $out/log)"

# An artifact that replays cleanly alone depended on state an earlier input of its job left
# (one context serves a whole job, as one worker serves a guest): listed, not a finding.
kernel=0; other=0; alone=0
for a in "$out"/artifacts/*; do
    [ -e "$a" ] || continue
    rc=0; r=$(timeout 60 "$bin" "${flags[@]}" "$a" 2>&1) || rc=$?
    if grep -q "ggml assertion while computing" <<<"$r"; then
        kernel=$((kernel + 1))
        grep -o "ggml assertion while computing.*" <<<"$r" | head -n1 >>"$out/kernel-asserts"
    elif [ $rc -eq 0 ] && ! grep -q "ERROR" <<<"$r"; then
        alone=$((alone + 1)); echo "$(basename "$a")" >>"$out/not-reproducible"
    else
        other=$((other + 1))
        { echo "== $a"; tail -n 30 <<<"$r"; } >>"$out/findings"
    fi
done
echo "campaign: $target artifacts: $kernel kernel assertions (end a worker only), $alone not reproducible alone, $other findings"
if [ -s "$out/kernel-asserts" ]; then sort "$out/kernel-asserts" | uniq -c | sort -rn | head -n 20; fi
[ -s "$out/findings" ] && { echo "campaign: findings in $out/findings"; exit 1; }
exit 0
