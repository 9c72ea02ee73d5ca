#!/usr/bin/env bash
# Every host variable of docs/configuration.md, set / unset / wrong, against real apir-server
# processes: what the guest gets (the LOADLIBRARY code) and what lands in the log files,
# including the seed's two error messages word for word.
#   test_env.sh BUILD_DIR PROBE
set -u
build=$(cd "$1" && pwd)
probe=$2
here=$(cd "$(dirname "$0")" && pwd)
ws="$here/../lib/with-server.sh"
backend="$build/host/libggml-virtgpu-backend.so"
base_lib="$build/ggml-v0.5.0/lib/libggml-base.so"
cpu_lib=$("$build/bin/ggml-pick-cpu")
[ -e "$backend" ] || { echo "skipped: $backend not built"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# check NAME EXPECT PATTERN -- env assignments...: EXPECT is "ok" or a LOADLIBRARY code;
# PATTERN (fixed string, may be empty) must appear in the server log
check() {
    local name=$1 expect=$2 pattern=$3
    shift 4
    local out="$tmp/$name.out"
    env "$@" bash "$ws" "$build" -- bash -c '
        "$1" > "$2.probe"; echo "probe=$?" >> "$2.probe"; cp "$APIR_SERVER_LOG" "$2.log"; exit 0' _ "$probe" "$out" \
        > "$out.harness" 2>&1
    local hrc=$?
    local ok=1
    if [ $hrc -ne 0 ]; then ok=0; echo "[$name] harness failed ($hrc):"; cat "$out.harness"; fi
    if [ "$expect" = ok ]; then
        grep -q '^probe=0$' "$out.probe" || ok=0
    else
        grep -q "LOADLIBRARY failed with code $expect:" "$out.probe" || ok=0
    fi
    if [ -n "$pattern" ] && ! grep -qF -- "$pattern" "$out.log"; then
        echo "[$name] log lacks: $pattern"
        ok=0
    fi
    if [ $ok -eq 1 ]; then
        echo "PASS $name: $(head -1 "$out.probe")"
    else
        echo "FAIL $name (expected $expect)"; echo "--- guest:"; cat "$out.probe"; echo "--- log:"; cat "$out.log"
        failures=$((failures + 1))
    fi
}

check defaults ok "LOADLIBRARY: loaded backend library $backend" --
check apir_capset ok "" -- GGML_REMOTING_USE_APIR_CAPSET=1
# VIRGL_APIR_BACKEND_LIBRARY
check backend_unset 3 "set VIRGL_APIR_BACKEND_LIBRARY (key apir.load_library.path) on the host" \
    -- WITH_SERVER_UNSET=VIRGL_APIR_BACKEND_LIBRARY
check backend_missing 4 "cannot open shared object file" -- VIRGL_APIR_BACKEND_LIBRARY=/nonexistent/libggml-virtgpu-backend.so
check backend_wrong_lib 5 "has no symbol apir_backend_initialize" -- VIRGL_APIR_BACKEND_LIBRARY="$base_lib"
# APIR_LLAMA_CPP_GGML_LIBRARY_PATH (seed message 1, word for word)
check ggml_path_unset 7 "cannot open the GGML library: env var 'APIR_LLAMA_CPP_GGML_LIBRARY_PATH' not defined" \
    -- WITH_SERVER_UNSET=APIR_LLAMA_CPP_GGML_LIBRARY_PATH APIR_LLAMA_CPP_GGML_LIBRARY_PATH=unused
check ggml_path_missing 8 "/nonexistent/libggml-cpu.so" -- APIR_LLAMA_CPP_GGML_LIBRARY_PATH=/nonexistent/libggml-cpu.so
# APIR_LLAMA_CPP_GGML_LIBRARY_REG: default works; a library without the default (libggml-base)
# with the variable unset gives seed message 2; a named missing symbol its own message
check reg_default ok "" -- WITH_SERVER_UNSET=APIR_LLAMA_CPP_GGML_LIBRARY_REG
check reg_explicit ok "" -- APIR_LLAMA_CPP_GGML_LIBRARY_REG=ggml_backend_init
check reg_default_missing 9 "cannot register the GGML library: env var 'APIR_LLAMA_CPP_GGML_LIBRARY_REG' not defined" \
    -- WITH_SERVER_UNSET=APIR_LLAMA_CPP_GGML_LIBRARY_REG APIR_LLAMA_CPP_GGML_LIBRARY_PATH="$base_lib"
check reg_named_missing 10 "no_such_reg_function" -- APIR_LLAMA_CPP_GGML_LIBRARY_REG=no_such_reg_function
# VIRGL_ROUTE_VENUS_TO_APIR: a Venus guest is refused without it (and told what to set);
# the same server still serves an APIR-capset guest
out=$(env WITH_SERVER_UNSET=VIRGL_ROUTE_VENUS_TO_APIR bash "$ws" "$build" -- bash -c '
    "$1"; echo "venus=$?"; GGML_REMOTING_USE_APIR_CAPSET=1 "$1"; echo "apir=$?"; cat "$APIR_SERVER_LOG"' _ "$probe" 2>&1)
if grep -q "^venus=1$" <<<"$out" && grep -q "^apir=0$" <<<"$out" &&
   grep -q "refused the Venus (capset 4) context: set VIRGL_ROUTE_VENUS_TO_APIR=1 on the host or GGML_REMOTING_USE_APIR_CAPSET=1 in the guest" <<<"$out" &&
   grep -q "refusing a Venus (capset 4) context: set VIRGL_ROUTE_VENUS_TO_APIR=1 on the host" <<<"$out"; then
    echo "PASS venus_refused_then_apir_served"
else
    echo "FAIL venus_refused_then_apir_served:"; echo "$out"; failures=$((failures + 1))
fi
# APIR_LLAMA_CPP_LOG_TO_FILE: the backend library's log lands in that file
check backend_log ok "" -- APIR_LLAMA_CPP_LOG_TO_FILE="$tmp/ggml.log"
if grep -q "ggml-virtgpu-backend" "$tmp/ggml.log" 2>/dev/null; then
    echo "PASS backend_log_file"
else
    echo "FAIL backend_log_file: $tmp/ggml.log"; cat "$tmp/ggml.log" 2>&1; failures=$((failures + 1))
fi
check backend_log_seed 7 "" -- WITH_SERVER_UNSET=APIR_LLAMA_CPP_GGML_LIBRARY_PATH APIR_LLAMA_CPP_LOG_TO_FILE="$tmp/ggml2.log"
if grep -qF "cannot open the GGML library: env var 'APIR_LLAMA_CPP_GGML_LIBRARY_PATH' not defined" "$tmp/ggml2.log" 2>/dev/null; then
    echo "PASS backend_log_seed_message"
else
    echo "FAIL backend_log_seed_message"; cat "$tmp/ggml2.log" 2>&1; failures=$((failures + 1))
fi
# VIRGL_APIR_LOG_TO_FILE: unset -> stderr; set -> that file (and nothing of ours on stderr)
# (stopped once it listens: the file alone can exist before the "listening" line is written)
# shellcheck source-path=SCRIPTDIR source=../lib/wait-listening.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/wait-listening.sh"
sock="$tmp/s.sock"
env -u VIRGL_APIR_LOG_TO_FILE "$build/bin/apir-server" --socket-path "$sock" 2>"$tmp/stderr.log" &
pid=$!
wait_listening "$sock" "$pid"
kill -TERM $pid; wait $pid
if grep -q "apir: server: listening on $sock" "$tmp/stderr.log" && [ ! -e "$sock" ]; then
    echo "PASS component_log_stderr"
else
    echo "FAIL component_log_stderr"; cat "$tmp/stderr.log"; failures=$((failures + 1))
fi
VIRGL_APIR_LOG_TO_FILE="$tmp/file.log" "$build/bin/apir-server" --socket-path "$sock" 2>"$tmp/stderr2.log" &
pid=$!
wait_listening "$sock" "$pid"
kill -TERM $pid; wait $pid
if grep -q "apir: server: listening on $sock" "$tmp/file.log" && ! grep -q "apir:" "$tmp/stderr2.log"; then
    echo "PASS component_log_file"
else
    echo "FAIL component_log_file"; cat "$tmp/file.log" "$tmp/stderr2.log"; failures=$((failures + 1))
fi

echo "$failures failure(s)"
[ $failures -eq 0 ]
