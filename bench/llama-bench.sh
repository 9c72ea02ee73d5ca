#!/usr/bin/env bash
# llama.cpp's own llama-bench: the native device, VirtGPU0 (apir-server) and RPC0
# (ggml-rpc-server) in one llama-bench process, both servers on the same backend library.
#
#   bench/llama-bench.sh [BUILD_DIR]
#
# 1. builds llama-bench and ggml-rpc-server from the release bundle (scripts/build-llama-tools.sh:
#    with CUDA for this machine's GPU when nvcc and a GPU are present, else the CPU backend),
# 2. generates random-weight llama models with tools/make-tiny-llama (F16 and Q4_0, and an F16
#    mixture of experts with 8 experts, 2 used per token; 1B-class models on a GPU, ~50 M
#    parameters on the CPU),
# 3. starts apir-server and ggml-rpc-server, both running the backend library of step 1
#    (libggml-cuda.so or libggml-cpu.so),
# 4. runs llama-bench -dev NATIVE,VirtGPU0,RPC0 (NATIVE: CUDA0, or the CPU with "none") in
#    BENCH_ROUNDS interleaved rounds, the three devices in a rotated order each round
#    (N,V,R then V,R,N then R,N,V...): a machine whose speed drifts during the run (a shared VM,
#    a GPU's clocks) then weighs on every device alike instead of on whichever ran last,
# 5. prints a table of tokens/s (medians of all repetitions of all rounds) and the ratios: the
#    median of the rounds' own ratios, each a round's median against the same round's, with
#    their range, and the raw JSONL's path.
#
# Environment: BENCH_TYPES (default "f16 q4_0 moe"; moe: the F16 mixture of experts),
# BENCH_MODEL_ARGS / BENCH_MOE_ARGS (make-tiny-llama shape options instead of the defaults), BENCH_P / BENCH_N (prompt and generated tokens; default
# 512/128 on a GPU, 128/32 on the CPU), BENCH_REPS (llama-bench -r, default 5 on a GPU, 3 on
# the CPU), BENCH_THREADS (CPU threads of llama-bench and ggml-rpc-server; on the CPU host
# the default is one per core, as apir-server's CPU backend uses), BENCH_EXTRA (more
# llama-bench options),
# BENCH_ROUNDS (interleaved rounds, default 3),
# BENCH_OUT (folder for models, logs and the JSONL; default BUILD_DIR/bench-llama),
# BENCH_BACKEND=cpu (the CPU backend and CPU-sized models even where CUDA was built).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
for f in bin/apir-server bin/libggml-virtgpu.so bin/make-tiny-llama host/libggml-virtgpu-backend.so; do
    [ -e "$build/$f" ] || { echo "llama-bench.sh: $build/$f is not built; run cmake --build $build" >&2; exit 2; }
done
out=${BENCH_OUT:-$build/bench-llama}
mkdir -p "$out"

tools=$(bash "$root/scripts/build-llama-tools.sh" llama-bench ggml-rpc-server | tail -n1)
if [ -e "$tools/libggml-cuda.so" ] && [ "${BENCH_BACKEND:-}" != cpu ]; then
    kind=cuda; host_lib="$tools/libggml-cuda.so"; native=CUDA0; native_label=CUDA0
    model_args=(--embd 2048 --layers 16 --ff 5632 --heads 16 --heads-kv 16 --vocab 32000)
    moe_args=(--embd 2048 --layers 16 --ff 1408 --heads 16 --heads-kv 16 --vocab 32000 --experts 8 --experts-used 2)
    p=${BENCH_P:-512}; n=${BENCH_N:-128}; reps=${BENCH_REPS:-5}
else
    kind=cpu; host_lib="$tools/libggml-cpu.so"; native=none; native_label=CPU
    model_args=(--embd 512 --layers 4 --ff 1536 --heads 8 --heads-kv 8 --vocab 32000)
    moe_args=(--embd 512 --layers 4 --ff 768 --heads 8 --heads-kv 8 --vocab 32000 --experts 8 --experts-used 2)
    p=${BENCH_P:-128}; n=${BENCH_N:-32}; reps=${BENCH_REPS:-3}
fi
# shellcheck disable=SC2206 # word splitting of the shape options is intended
[ -n "${BENCH_MODEL_ARGS:-}" ] && model_args=(${BENCH_MODEL_ARGS})
# shellcheck disable=SC2206
[ -n "${BENCH_MOE_ARGS:-}" ] && moe_args=(${BENCH_MOE_ARGS})
# the same CPU thread count everywhere: llama-bench's CPU runs, ggml-rpc-server (whose default is
# half the cores) and apir-server (whose backend library gives the CPU backend one per core)
threads=(); [ $kind = cpu ] && threads=(-t "${BENCH_THREADS:-$(nproc)}")
[ -n "${BENCH_THREADS:-}" ] && threads=(-t "$BENCH_THREADS")

# the programs and our libraries share the tools' ggml (see scripts/build-llama-tools.sh)
export LD_LIBRARY_PATH="$tools${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export APIR_LLAMA_CPP_GGML_LIBRARY_PATH="$host_lib"

models=()
types=${BENCH_TYPES:-f16 q4_0 moe}
for t in $types; do
    if [ "$t" = moe ]; then args=(--type f16 "${moe_args[@]}"); else args=(--type "$t" "${model_args[@]}"); fi
    m="$out/llama-$(printf '%s' "${args[*]}" | tr -c 'a-z0-9' _).gguf"
    [ -s "$m" ] || "$build/bin/make-tiny-llama" -o "$m" "${args[@]}" >&2
    models+=(-m "$m")
done

# ggml-rpc-server on a free local port, on the same device as apir-server
port=
for try in $(seq 1 20); do
    cand=$(( 20000 + (RANDOM % 20000) ))
    (echo >"/dev/tcp/127.0.0.1/$cand") 2>/dev/null || { port=$cand; break; }
    [ "$try" -lt 20 ] || { echo "llama-bench.sh: no free local port for ggml-rpc-server" >&2; exit 1; }
done
rpc_dev=$([ $kind = cuda ] && echo CUDA0 || echo CPU)
"$tools/ggml-rpc-server" -H 127.0.0.1 -p "$port" -d "$rpc_dev" "${threads[@]}" >"$out/rpc-server.log" 2>&1 &
rpc_pid=$!
trap 'kill "$rpc_pid" 2>/dev/null || true; wait "$rpc_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$rpc_pid" 2>/dev/null || { cat "$out/rpc-server.log" >&2; echo "llama-bench.sh: ggml-rpc-server did not start" >&2; exit 1; }
    sleep 0.1
done

echo "llama-bench: $native_label vs VirtGPU0 (apir-server) vs RPC0 (ggml-rpc-server), both servers on $host_lib"
rounds=${BENCH_ROUNDS:-3}
[[ "$rounds" =~ ^[1-9][0-9]?$ ]] || { echo "llama-bench.sh: BENCH_ROUNDS=$rounds is not a number of rounds (1-99)" >&2; exit 2; }
# one -dev value per device per round (llama-bench runs them in this order), rotated each round
order=("$native" VirtGPU0 RPC0); devs=
for ((r = 0; r < rounds; r++)); do
    for ((i = 0; i < 3; i++)); do devs+="${devs:+,}${order[(r + i) % 3]}"; done
done
echo "models: ${model_args[*]}; types: $types (moe: ${moe_args[*]}); -p $p -n $n -r $reps; $rounds rounds: -dev $devs"
res="$out/llama-bench.jsonl"
# shellcheck disable=SC2086 # BENCH_EXTRA is a list of options
GGML_BACKEND_PATH="$build/bin/libggml-virtgpu.so" bash "$root/tests/lib/with-server.sh" "$build" -- \
    "$tools/llama-bench" "${models[@]}" --rpc "127.0.0.1:$port" -dev "$devs" -ngl 99 \
    -p "$p" -n "$n" -r "$reps" "${threads[@]}" ${BENCH_EXTRA:-} -o jsonl >"$res" 2>"$out/llama-bench.log" \
    || { tail -n 40 "$out/llama-bench.log" >&2; echo "llama-bench.sh: llama-bench failed (log: $out/llama-bench.log)" >&2; exit 1; }

# table: one row per model and test. Tokens/s per device: the median of every repetition of
# every round (one repetition's prompt figure varies by ±20% on a GPU: medians, not means).
# Ratios: a round's median against the same round's, and the median of those over the rounds.
awk -v native="$native_label" '
    function field(k,   m) {   # a string or number value of "k" on this JSON line
        if (!match($0, "\"" k "\": (\"[^\"]*\"|[-0-9.e+]+)")) return ""
        m = substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 4); gsub(/"/, "", m); return m
    }
    function median(list,   a, n, i, j, t) {
        n = split(list, a, /, */)
        for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function lowest(list,   a, n, i, m) { n = split(list, a, /, */); m = a[1] + 0; for (i = 2; i <= n; i++) if (a[i] + 0 < m) m = a[i] + 0; return m }
    function highest(list,   a, n, i, m) { n = split(list, a, /, */); m = a[1] + 0; for (i = 2; i <= n; i++) if (a[i] + 0 > m) m = a[i] + 0; return m }
    /^\{/ {
        d = field("devices"); if (d == "auto" || d == "none" || d == "") d = native
        test = (field("n_prompt") > 0 ? "pp" field("n_prompt") : "tg" field("n_gen"))
        # the type says "llama ?B F16" for dense and MoE alike: the size tells them apart
        row = sprintf("%s, %.0f M params", field("model_type"), field("model_n_params") / 1e6) SUBSEP test
        if (!(row in seen)) { seen[row] = 1; order[nr++] = row }
        match($0, /"samples_ts": \[[^]]*\]/); s = substr($0, RSTART + 15, RLENGTH - 16)
        n_run = ++rounds[row, d]                  # the n-th time this device ran this row
        round_ts[row, d, n_run] = median(s)
        prev = ((row, d) in all) ? all[row, d] ", " : ""   # (not in the assignment: awk may create the key first)
        all[row, d] = prev s
    }
    function cell(r, d) {
        return (r, d) in all ? sprintf("%.1f (%.0f-%.0f)", median(all[r, d]), lowest(all[r, d]), highest(all[r, d])) : "-"
    }
    function ratio(r, a, b,   k, n, list) {
        n = rounds[r, a] < rounds[r, b] ? rounds[r, a] : rounds[r, b]; list = ""
        for (k = 1; k <= n; k++) if (round_ts[r, b, k] > 0) list = list (list == "" ? "" : ", ") round_ts[r, a, k] / round_ts[r, b, k]
        if (list == "") return "-"
        return n > 1 ? sprintf("%.2fx (%.2f-%.2f)", median(list), lowest(list), highest(list)) : sprintf("%.2fx", median(list))
    }
    END {
        printf "| model | test | %s t/s | VirtGPU0 t/s | RPC0 t/s | VirtGPU0 / %s | RPC0 / %s | VirtGPU0 / RPC0 |\n", native, native, native
        print "|---|---|---|---|---|---|---|---|"
        for (i = 0; i < nr; i++) {
            split(order[i], k, SUBSEP)
            printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", k[1], k[2], cell(order[i], native),
                cell(order[i], "VirtGPU0"), cell(order[i], "RPC0"), ratio(order[i], "VirtGPU0", native),
                ratio(order[i], "RPC0", native), ratio(order[i], "VirtGPU0", "RPC0")
        }
        print "t/s: the median of all repetitions of all rounds (lowest-highest); ratios: the median"
        print "over the rounds of one round median against the same round median (lowest-highest)"
    }' "$res"
echo "raw results: $res"
