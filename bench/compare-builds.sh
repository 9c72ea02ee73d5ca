#!/usr/bin/env bash
# compare-builds.sh BEFORE_BUILD AFTER_BUILD [ROUNDS]
# What a change to the host costs, on one quiet machine: for two builds of this project (for
# instance the threaded single-process server before the worker-per-guest model, and now),
# alternately, ROUNDS times (default 3): the per-call round trip (bench-ops, tiny cases) and
# llama-run native vs VirtGPU0 (bench-llm.sh; the model is made once by the BEFORE build's
# make-tiny-llama and shared, so both builds run the same weights). Prints every run, then the
# median of each figure over the rounds.
# Environment: as bench-llm.sh (BENCH_N, BENCH_THREADS, ...); BENCH_REPEAT defaults to 1 here.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
before=$(cd "$1" && pwd); after=$(cd "$2" && pwd); rounds=${3:-3}
export BENCH_REPEAT=${BENCH_REPEAT:-1}
model=$(mktemp -d)/bench.gguf
# BENCH_MODEL: make-tiny-llama's arguments (default: bench-llm.sh's dense model; the MoE one of
# scripts/run.sh is "--type f16 --embd 512 --layers 2 --ff 1024 --heads 8 --heads-kv 4
# --experts 8 --experts-used 2")
read -r -a margs <<<"${BENCH_MODEL:---type f16 --embd 768 --layers 4 --ff 2048 --heads 12 --heads-kv 4}"
"$before/bin/make-tiny-llama" -o "$model" "${margs[@]}" >&2
res=$(mktemp)
for r in $(seq 1 "$rounds"); do
    for b in before after; do
        dir=$before; [ $b = after ] && dir=$after
        ops=$(bash "$root/tests/lib/with-server.sh" "$dir" -- "$dir/bin/bench-ops" --filter tiny --min-time 1 2>&1)
        llm=$(bash "$root/bench/bench-llm.sh" "$dir" "$model" 2>&1)
        echo "== round $r, $b ($dir)"; grep -E '^tiny|tok/s|token ids' <<<"$ops$(printf '\n')$llm"
        rt=$(awk '/^tiny graph round trip/ { print $(NF-2) }' <<<"$ops")
        pp=$(awk '/^prompt tok\/s/ { print $3, $4, $5 }' <<<"$llm")
        tg=$(awk '/^generation tok\/s/ { print $3, $4, $5 }' <<<"$llm")
        echo "$b $rt $pp $tg" >>"$res"
    done
done
# columns: build, round trip us, prompt native, remote, ratio, generation native, remote, ratio
echo
printf '%-7s %14s %12s %12s %10s %12s %12s %10s\n' build "round trip" "pp native" "pp remote" "pp ratio" \
    "tg native" "tg remote" "tg ratio"
med() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for b in before after; do
    row=$b
    for col in 2 3 4 5 6 7 8; do row="$row $(awk -v b="$b" -v c="$col" '$1 == b { print $c + 0 }' "$res" | med)"; done
    # shellcheck disable=SC2086
    printf '%-7s %11s us %12s %12s %9sx %12s %12s %9sx\n' $row
done
echo "(median of $rounds rounds each; ratio = remote / native within a round)"
