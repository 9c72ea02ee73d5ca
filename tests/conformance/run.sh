#!/usr/bin/env bash
# Conformance stage: llama.cpp's own test programs (release v0.5.0, built from the release
# bundle by scripts/build-llama-tools.sh) run through VirtGPU0 against apir-server.
#
#   tests/conformance/run.sh [--full] [--ops REGEX] [--params REGEX] [--archs REGEX] [--skip STEP...]
#                            [--async-host] [BUILD_DIR]
#
# Steps (each one's output is kept in OUT_DIR, default BUILD_DIR/conformance):
#   support  `test-backend-ops support` on the host backend's own device (CPU) and on VirtGPU0:
#            fails when VirtGPU0 supports fewer cases than the host backend (each missing case
#            is listed in support-missing.txt) or claims one the host backend refuses.
#   ops      `test-backend-ops test -b VirtGPU0` (VirtGPU0 against the CPU reference): fails on
#            any FAIL or a crash. Runs the representative op list in ops-representative.txt
#            unless --full (every case: several hours on 2 cores) or --ops REGEX is given.
#   archs    `test-llama-archs` for every architecture, one process per architecture (so that a
#            crash costs one architecture, not the rest): fails when an architecture and
#            configuration (dense/MoE) that passes on the host backend's device fails or
#            crashes through VirtGPU0. --archs REGEX limits the architectures.
# --params REGEX: only the cases whose parameters match (test-backend-ops -p).
# --async-host: apir-server runs the CPU backend behind a GPU-like device whose writes wait for
#            the next synchronize or compute (tests/backend/async_cpu_lib.c), so the host queues
#            guest writes as it does on CUDA, with ggml's CPU kernels computing for real.
# The last line is the summary: "conformance: PASS|FAIL (...)". Exit status 0 only on PASS.
#
# Environment:
#   CONFORMANCE_TOOLS     folder with llama.cpp's programs (default: built or found in the cache
#                         by scripts/build-llama-tools.sh, which needs a GGML_BACKEND_DL build)
#   CONFORMANCE_HOST_LIB  backend library apir-server runs (default: CONFORMANCE_TOOLS/libggml-cpu.so;
#                         on a CUDA host: CONFORMANCE_TOOLS/libggml-cuda.so)
#   CONFORMANCE_NATIVE    the host backend's device as the programs name it (default CPU; CUDA0)
#   CONFORMANCE_OUT       where the logs go (default BUILD_DIR/conformance)
#   CONFORMANCE_ARCH_TIMEOUT  seconds one architecture may take (default 900)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

full=0; ops_filter=; params_filter=; archs_filter=; skip=" "; build=; async_host=0
while [ $# -gt 0 ]; do
    case "$1" in
    --full) full=1 ;;
    --ops) ops_filter=$2; shift ;;
    --params) params_filter=$2; shift ;;
    --async-host) async_host=1 ;;
    --archs) archs_filter=$2; shift ;;
    --skip) skip="$skip$2 "; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "conformance: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) build=$1 ;;
    esac
    shift
done
build=$(cd "${build:-$root/build}" && pwd) || { echo "conformance: no build folder; build the project first (cmake -S . -B build && cmake --build build)" >&2; exit 2; }
guest_lib="$build/bin/libggml-virtgpu.so"
for f in "$guest_lib" "$build/bin/apir-server" "$build/host/libggml-virtgpu-backend.so"; do
    [ -e "$f" ] || { echo "conformance: $f is not built; run cmake --build $build" >&2; exit 2; }
done

tools=${CONFORMANCE_TOOLS:-}
if [ -z "$tools" ]; then
    tools=$(bash "$root/scripts/build-llama-tools.sh" test-backend-ops test-llama-archs | tail -n1) \
        || { echo "conformance: building llama.cpp's test programs failed (see above)" >&2; exit 1; }
fi
tools=$(cd "$tools" && pwd) || exit 2
native=${CONFORMANCE_NATIVE:-CPU}
host_lib=${CONFORMANCE_HOST_LIB:-$tools/libggml-cpu.so}
if [ $async_host = 1 ]; then
    export APIR_ASYNC_CPU_LIBRARY="$tools/libggml-cpu.so" APIR_LLAMA_CPP_GGML_LIBRARY_REG=apir_async_cpu_reg
    host_lib="$build/tests/backend/libapir_async_cpu.so"
fi
out=${CONFORMANCE_OUT:-$build/conformance}
arch_timeout=${CONFORMANCE_ARCH_TIMEOUT:-900}
mkdir -p "$out"
[ -e "$host_lib" ] || { echo "conformance: host backend library $host_lib not found (set CONFORMANCE_HOST_LIB)" >&2; exit 2; }

# One ggml in every process: our libraries ask for libggml-base.so, which the tools folder
# provides as the programs' own libggml-base.so.0 (see scripts/build-llama-tools.sh).
export LD_LIBRARY_PATH="$tools${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export APIR_LLAMA_CPP_GGML_LIBRARY_PATH="$host_lib"
# GGML_BACKEND_DL modules export ggml_backend_init, the default of APIR_LLAMA_CPP_GGML_LIBRARY_REG
# run a command against a fresh apir-server, with libggml-virtgpu.so loaded by the program
remote() { GGML_BACKEND_PATH="$guest_lib" bash "$root/tests/lib/with-server.sh" "$build" -- "$@"; }
strip_colors() { sed 's/\x1b\[[0-9;]*m//g'; }
now() { date +%s; }
step() { printf '\n== conformance: %s ==\n' "$*"; }

echo "conformance: llama.cpp programs from $tools"
echo "conformance: apir-server runs $host_lib; reference device $native; logs in $out"
status=0
summary=()

# --- support: VirtGPU0 must support every case the host backend supports ---------------------
if [[ "$skip" != *" support "* ]]; then
    step "test-backend-ops support ($native and VirtGPU0)"
    t0=$(now)
    "$tools/test-backend-ops" support -b "$native" --output csv >"$out/support-native.csv" 2>"$out/support-native.log"
    rc_n=$?
    remote "$tools/test-backend-ops" support -b VirtGPU0 --output csv >"$out/support-virtgpu.csv" 2>"$out/support-virtgpu.log"
    rc_v=$?
    if ! grep -q '^"VirtGPU0"' "$out/support-virtgpu.csv"; then
        echo "VirtGPU0 did not appear in test-backend-ops (is apir-server working? its log and the program's are in $out/support-virtgpu.log)"
        tail -n 20 "$out/support-virtgpu.log"
        summary+=("support: no VirtGPU0 device")
        status=1
    elif [ $rc_n -ne 0 ] || [ $rc_v -ne 0 ]; then
        echo "test-backend-ops support exited with $rc_n ($native) and $rc_v (VirtGPU0); logs: $out/support-*.log"
        tail -n 20 "$out/support-virtgpu.log"
        summary+=("support: CRASH")
        status=1
    else
        # the two runs list the same cases in the same order; a case is a row number, op and params
        res=$(paste -d '\n' "$out/support-native.csv" "$out/support-virtgpu.csv" | awk -F'","' -v missing="$out/support-missing.txt" -v extra="$out/support-extra.txt" '
            NR % 2 == 1 { key = $2 "(" $3 ")"; nat = $5; next }
            FNR <= 2 { next }   # the two headers
            {
                k2 = $2 "(" $3 ")"
                if (k2 != key) { print "MISMATCH " key " vs " k2; bad = 1; exit }
                n++; if (nat == "1") sn++; if ($5 == "1") sv++
                if (nat == "1" && $5 != "1") { print key > missing; m++ }
                if (nat != "1" && $5 == "1") { print key > extra; x++ }
            }
            END { if (!bad) printf "%d %d %d %d %d\n", n, sn, sv, m, x }')
        : >>"$out/support-missing.txt"; : >>"$out/support-extra.txt"
        if [[ "$res" == MISMATCH* ]]; then
            echo "the two support runs list different cases: $res"
            summary+=("support: case lists differ")
            status=1
        else
            read -r n sn sv m x <<<"$res"
            echo "cases: $n; supported by $native: $sn; by VirtGPU0: $sv; missing on VirtGPU0: $m; claimed by VirtGPU0 but not by $native: $x ($(( $(now) - t0 )) s)"
            if [ "$m" -gt 0 ]; then
                echo "missing on VirtGPU0, by op (all of them in $out/support-missing.txt):"
                sed 's/(.*//' "$out/support-missing.txt" | sort | uniq -c | sort -rn | head -n 25
            fi
            if [ "$x" -gt 0 ]; then
                echo "claimed by VirtGPU0 only (in $out/support-extra.txt):"; head -n 10 "$out/support-extra.txt"
            fi
            summary+=("support: VirtGPU0 $sv of $native $sn, $m missing, $x extra")
            [ "$m" -eq 0 ] && [ "$x" -eq 0 ] || status=1
        fi
    fi
fi

# --- ops: test-backend-ops test through VirtGPU0 -----------------------------------------------
if [[ "$skip" != *" ops "* ]]; then
    ops_args=(); label="all cases"
    if [ -n "$ops_filter" ]; then
        ops_args=(-o "$ops_filter"); label="-o $ops_filter"
    elif [ $full = 0 ]; then
        ops_filter=$(grep -v '^#' "$here/ops-representative.txt" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')
        ops_args=(-o "$ops_filter"); label="representative ops (tests/conformance/ops-representative.txt)"
    fi
    [ -n "$params_filter" ] && { ops_args+=(-p "$params_filter"); label="$label, -p $params_filter"; }
    step "test-backend-ops test -b VirtGPU0, $label"
    t0=$(now)
    remote "$tools/test-backend-ops" test -b VirtGPU0 "${ops_args[@]}" >"$out/ops.out" 2>"$out/ops.log"
    rc=$?
    strip_colors <"$out/ops.out" >"$out/ops.txt"
    # the list after "Failing tests:" holds one "  OP(params)" line per failing case
    fails=$(awk '/^Failing tests:/ { f = 1; next } f && /^  [A-Z0-9_]+\(/ { n++ } f && !/^  [A-Z0-9_]+\(/ { f = 0 } END { print n + 0 }' "$out/ops.txt")
    passed=$(grep -E '^  [0-9]+/[0-9]+ tests passed' "$out/ops.txt" | tail -n1 | awk '{ print $1 }')
    nsup=$(grep -c ': not supported' "$out/ops.txt")
    secs=$(( $(now) - t0 ))
    if [ -z "$passed" ]; then
        echo "test-backend-ops did not finish (exit status $rc); last lines:"
        tail -n 5 "$out/ops.txt"; tail -n 20 "$out/ops.log"
        summary+=("ops: CRASH after $(grep -c '): ' "$out/ops.txt") cases")
        status=1
    else
        echo "tests passed: $passed; FAIL: $fails; not supported (skipped): $nsup ($secs s; output in $out/ops.txt)"
        if [ "$fails" -gt 0 ]; then
            echo "failing cases, by op:"
            awk '/^Failing tests:/ { f = 1; next } f && /^  [A-Z0-9_]+\(/ { print $1 } f && !/^  [A-Z0-9_]+\(/ { f = 0 }' "$out/ops.txt" | sed 's/(.*//' | sort | uniq -c | sort -rn | head -n 25
        fi
        summary+=("ops ($([ -n "${ops_args[*]:-}" ] && echo filtered || echo full)): $fails FAIL, $passed passed, $nsup not supported")
        [ "$fails" -eq 0 ] && [ $rc -eq 0 ] || status=1
    fi
fi

# --- archs: test-llama-archs, one process per architecture -------------------------------------
if [[ "$skip" != *" archs "* ]]; then
    step "test-llama-archs through VirtGPU0${archs_filter:+ (archs matching $archs_filter)}"
    t0=$(now)
    src=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$tools/../CMakeCache.txt" 2>/dev/null)
    [ -f "$src/src/llama-arch.cpp" ] || { echo "conformance: cannot find llama.cpp's source of $tools (CMakeCache.txt)" >&2; exit 2; }
    # every architecture name, in the order test-llama-archs goes through them (test-llama-archs
    # itself skips those it cannot test: they print no row)
    sed -n '/LLM_ARCH_NAMES = {/,/^};/ s/^ *{ *LLM_ARCH_[A-Z0-9_]*, *"\([^"]*\)".*/\1/p' "$src/src/llama-arch.cpp" >"$out/archs.list"
    [ -n "$archs_filter" ] && { grep -E "$archs_filter" "$out/archs.list" >"$out/archs.sel" || true; mv "$out/archs.sel" "$out/archs.list"; }
    # the devices in the order the programs list them (and test-llama-archs prints its rows);
    # test-llama-archs adds a "Meta" device (tensor split over the non-CPU devices) last
    remote "$tools/test-backend-ops" support -b __list_devices__ 2>/dev/null | sed -n 's/^Backend [0-9]*\/[0-9]*: //p' >"$out/devices.list"
    echo Meta >>"$out/devices.list"
    echo "devices: $(tr '\n' ' ' <"$out/devices.list")"
    # test-llama-archs lists its devices before anything loads the backend modules: the shim
    # loads them first (load_backends.c says why); only the program gets it, not apir-server
    shim="$out/load-backends.so"
    cc -O2 -Wall -Wextra -shared -fPIC -o "$shim" "$here/load_backends.c" -ldl \
        || { echo "conformance: cannot build $shim" >&2; exit 2; }
    : >"$out/archs.rows"
    : >"$out/archs.txt"
    while read -r arch; do
        # shellcheck disable=SC2016 # a sed expression, not a shell one
        re="^$(printf '%s' "$arch" | sed 's/[][\.*^$()+?{}|]/\\&/g')\$"
        # timeout stops the whole process group (with-server.sh, apir-server, the program)
        GGML_BACKEND_PATH="$guest_lib" timeout -k 10 "$arch_timeout" \
            bash "$root/tests/lib/with-server.sh" "$build" -- env LD_PRELOAD="$shim" "$tools/test-llama-archs" -a "$re" -s 42 \
            >"$out/arch.out" 2>"$out/arch.log"
        rc=$?
        { echo "### $arch (exit status $rc)"; strip_colors <"$out/arch.out"; tail -n 30 "$out/arch.log"; } >>"$out/archs.txt"
        # rows: "|arch|device label|Dense or MoE|OK (nmse) or FAIL or SKIP|roundtrip|"; a
        # device's row is known by its position. A row cut short has no result: the program
        # died there (by its exit status: 255 an error it caught, 124 the time limit, else a
        # signal), or, with exit status 0 (every test passed), its logger lost the last lines.
        case $rc in
        0) cut=OK ;; 1|255) cut=ERROR ;; 124|137) cut=TIMEOUT ;; *) cut=CRASH ;;
        esac
        strip_colors <"$out/arch.out" | awk -F'|' -v cut="$cut" -v arch="$arch" -v devs="$out/devices.list" '
            BEGIN { while ((getline d < devs) > 0) dev[nd++] = d }
            function trim(s) { gsub(/^ +| +$/, "", s); return s }
            /^\|/ && NF >= 4 && trim($2) != "Model arch." && $2 !~ /^-+$/ {
                a = trim($2); c = trim($4)
                if (a "/" c != last) { i = 0; last = a "/" c } else i++
                r = cut
                if (NF >= 7) {
                    n = trim($5); t = trim($6)
                    if (n ~ /^FAIL/ || t ~ /^FAIL/) r = "FAIL"
                    else if (n ~ /^OK/ || t ~ /^OK/) r = "OK"
                    else r = "SKIP"
                }
                print a, c, (i < nd ? dev[i] : "?"), r
                rows++
            }
            # died before its first row, or after a complete row: the rest did not run. Exit
            # status 0 says every test it ran passed (test-llama-archs returns 1 on any FAIL): a
            # row its logger lost then hides no failure (the "exit 0" mark)
            END { if (cut != "OK" && (rows == 0 || r != cut)) print arch, "-", "VirtGPU0", cut
                  if (cut == "OK") print arch, "-", "exit", "0" }' >>"$out/archs.rows"
    done <"$out/archs.list"
    # per architecture and configuration: the reference device's result against VirtGPU0's
    awk -v native="$native" '
        $2 == "-" && $3 == "exit" { passed_all[$1] = 1; next }
        { key = $1 " " $2 }
        $3 == native { nat[key] = $4; keys[key] = 1 }
        $3 == "VirtGPU0" { vg[key] = $4; keys[key] = 1 }
        $3 == "Meta" { meta[$4]++ }
        $2 == "-" { died[$1] = $4 }
        END {
            for (k in keys) {
                split(k, p, " "); a = p[1]
                if (nat[k] == "OK") { nat_ok[a] = 1 } else if (nat[k] != "" && nat[k] != "SKIP" && !(a in nat_bad)) { nat_bad[a] = 1; nb++ }
                v = vg[k]; if (v == "" && (a in died)) v = died[a]
                if (v == "" && (a in passed_all)) v = "OK" # its row was lost, not failed
                if (nat[k] == "OK" && v != "OK") { bad[a] = 1; printf "regression: %s %s: %s on %s, %s on VirtGPU0\n", a, p[2], nat[k], native, (v == "" ? "not run" : v) }
                if (v == "CRASH" || v == "TIMEOUT") crash[a] = 1
            }
            for (a in died) if (died[a] == "CRASH" || died[a] == "TIMEOUT") crash[a] = 1
            for (a in nat_ok) { n++; if (!(a in bad)) ok++ }
            for (a in crash) c++
            printf "SUMMARY %d %d %d %d %d %d\n", n, ok, c, meta["OK"], meta["FAIL"] + meta["CRASH"], nb
        }' "$out/archs.rows" | sort >"$out/archs.result"
    grep '^regression:' "$out/archs.result" | head -n 60
    read -r _ n_nat n_ok n_crash meta_ok meta_bad n_natbad < <(grep '^SUMMARY' "$out/archs.result")
    echo "architectures passing on $native: $n_nat; of those passing through VirtGPU0: $n_ok; killed by a signal or the time limit through VirtGPU0: $n_crash; failing on $native itself: $n_natbad"
    echo "Meta (tensor split) rows: $meta_ok OK, $meta_bad failed (reported, not gated); $(( $(now) - t0 )) s; rows in $out/archs.rows, output in $out/archs.txt"
    summary+=("archs: $n_ok of $n_nat passing on $native pass through VirtGPU0, $n_crash crashed")
    [ "$n_ok" -eq "$n_nat" ] && [ "$n_crash" -eq 0 ] || status=1
fi

result=PASS; [ $status -eq 0 ] || result=FAIL
joined=$(printf '%s; ' "${summary[@]}"); joined=${joined%; }
echo
echo "conformance: $result ($joined)"
exit $status
