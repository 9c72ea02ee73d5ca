#!/usr/bin/env bash
# llama-server-host-fails.sh BUILD_DIR LLAMA_BIN_DIR [REQUESTS]
# llama.cpp's own llama-server (v0.5.0, built by scripts/build-llama-tools.sh llama-server) on
# VirtGPU0 while apir-server is sent SIGTERM, SIGKILL or SIGSTOP with requests in flight
# (docs/frontend.md, "Device lost"). One slot, REQUESTS (default 4) streamed /completion
# requests sent at once (one decoding, the others queued), seeded sampling; then:
# - llama-server never aborts: it still answers, and exits 0 on SIGTERM at the end;
# - every request that completed gave the reference's tokens, every one that failed had
#   streamed a prefix of them before its error event;
# - requests sent after the loss get an error (HTTP 500, or an error event when streamed) at
#   once; the loss is logged once;
# - a stopped host costs one GGML_VIRTGPU_TIMEOUT (3 s here), not one per request.
# The reference is an uninterrupted run on VirtGPU0; whether native (-dev none) generation
# gives the same tokens is reported, not required (another CPU backend build may differ in the
# last bits, which sampling turns into other tokens). HTTP goes through bash's /dev/tcp (no
# curl needed). Exit 77 when LLAMA_BIN_DIR has no llama-server.
set -u
build=$(cd "$1" && pwd) || exit 2
bin=$(cd "${2:-/nonexistent}" 2>/dev/null && pwd) || { echo "no llama.cpp programs folder: skipped"; exit 77; }
nreq=${3:-4}
server="$bin/llama-server"
[ -x "$server" ] || { echo "no $server (scripts/build-llama-tools.sh llama-server): skipped"; exit 77; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/apir-llama-server.XXXXXX") || exit 2
model="$tmp/tiny.gguf"
"$build/bin/make-tiny-llama" -o "$model" --type f16 --embd 256 --layers 2 --ff 512 >/dev/null || exit 2
sock="$tmp/sock"
export LD_LIBRARY_PATH="$bin${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export VIRGL_APIR_BACKEND_LIBRARY="$build/host/libggml-virtgpu-backend.so"
export APIR_LLAMA_CPP_GGML_LIBRARY_PATH="$bin/libggml-cpu.so" VIRGL_ROUTE_VENUS_TO_APIR=1
export VIRGL_APIR_LOG_TO_FILE="$tmp/apir.log"
export GGML_BACKEND_PATH="$build/bin/libggml-virtgpu.so" GGML_VIRTGPU_SOCKET="$sock"
export GGML_VIRTGPU_TIMEOUT=3 GGML_VIRTGPU_DEVICE_CACHE="$tmp/device-cache"
npred=${LLAMA_SERVER_TOKENS:-160}

log="$tmp/apir.log"
# shellcheck source-path=SCRIPTDIR source=../lib/host-control.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/host-control.sh"
lpid=
port=
# HTTP/1.1 request on a fresh connection; the raw response (headers and body) on stdout
http() { # METHOD PATH [BODY]
    local body=${3:-}
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$1" "$2" "${#body}" "$body" >&"$fd"
    timeout 100 cat <&"$fd"
    exec {fd}<&-
}
status_of() { head -n1 "$1" | awk '{print $2}'; }
tokens_of() { grep -o '"tokens":\[[0-9,]*\]' "$1" | sed 's/.*\[//; s/\]//' | tr ',\n' '  ' | xargs; }
start_llama() { # DEVICE
    for _ in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 20000))
        "$server" -m "$model" -dev "$1" -ngl 99 --host 127.0.0.1 --port "$port" -np 1 -c 1024 -t 1 --no-warmup \
            >"$tmp/llama.log" 2>&1 &
        lpid=$!
        for _ in $(seq 1 300); do
            kill -0 "$lpid" 2>/dev/null || break
            [ "$(http GET /health 2>/dev/null | status_of /dev/stdin)" = 200 ] && return 0
            sleep 0.1
        done
        kill -KILL "$lpid" 2>/dev/null; wait "$lpid" 2>/dev/null # the port was taken: another one
    done
    echo "llama-server did not start"; tail -20 "$tmp/llama.log"; exit 1
}
stop_llama() { # SIGTERM; llama-server's exit status in lrc
    kill -TERM "$lpid" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$lpid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$lpid" 2>/dev/null && kill -KILL "$lpid" 2>/dev/null
    wait "$lpid" 2>/dev/null; lrc=$?
    lpid=
}
cleanup() { [ -z "$lpid" ] || kill -KILL "$lpid" 2>/dev/null; host_stop; [ -n "${KEEP_TMP:-}" ] || rm -rf "$tmp"; }
trap cleanup EXIT
body() { # REQUEST-INDEX [stream]
    printf '{"prompt":"Once upon a time %s","n_predict":%d,"seed":42,"temperature":0.8,"cache_prompt":false,"stream":%s}' \
        "$1" "$npred" "${2:-true}"
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }
fail=0

# --- the reference: every request uninterrupted on VirtGPU0, one after the other
host_start || exit 1
start_llama VirtGPU0
t0=$(now)
for i in $(seq 1 "$nreq"); do
    http POST /completion "$(body "$i")" >"$tmp/ref$i.out"
    tokens_of "$tmp/ref$i.out" >"$tmp/ref$i.tok"
    # (the stream names fewer tokens than were generated: a token that ends inside a UTF-8
    # character is sent with the next one's text; the run's streams do the same)
    grep -q "\"stop\":true.*\"tokens_predicted\":$npred," "$tmp/ref$i.out" || { echo "reference request $i did not give $npred tokens"; tail -c 600 "$tmp/ref$i.out"; exit 1; }
done
ref_s=$(since "$t0")
# the token events of all but the last request: the signal comes before that many are streamed
ref_events=$(cat $(seq -f "$tmp/ref%g.out" 1 $((nreq - 1))) | grep -c '"tokens":\[[0-9]')
stop_llama
host_stop
[ "$lrc" = 0 ] || { echo "FAIL: the reference llama-server exited $lrc"; fail=1; }
start_llama none
http POST /completion "$(body 1)" >"$tmp/native.out"
stop_llama
[ "$(tokens_of "$tmp/native.out")" = "$(cat "$tmp/ref1.tok")" ] && same=yes || same="no (other CPU backend build)"
echo "reference: $nreq requests x $npred tokens on VirtGPU0 in ${ref_s}s; native gives the same tokens: $same"

for sig in TERM KILL STOP; do
    host_start || exit 1
    start_llama VirtGPU0
    rm -f "$tmp"/run*.out # (the count below must not see the last round's tokens while these start)
    for i in $(seq 1 "$nreq"); do
        http POST /completion "$(body "$i")" >"$tmp/run$i.out" &
        eval "rpid$i=$!"
    done
    # once a random number of token events has been streamed, fewer than nine tenths of those of
    # all but one request: some requests may have finished, one is decoding, the others wait
    # their turn
    want=$((1 + (RANDOM * 32768 + RANDOM) % (ref_events * 9 / 10)))
    t0=$(now)
    for _ in $(seq 1 3000); do
        [ "$(cat "$tmp"/run*.out 2>/dev/null | grep -c '"tokens":\[[0-9]')" -ge "$want" ] && break
        sleep 0.01
    done
    host_signal "$sig"; ts=$(now)
    delay="$(since "$t0")s ($want token events streamed)"
    for i in $(seq 1 "$nreq"); do eval "wait \$rpid$i"; done
    settle=$(since "$ts")
    ok=0; failed=0; bad=; streamed=
    for i in $(seq 1 "$nreq"); do
        got=$(tokens_of "$tmp/run$i.out"); want=$(cat "$tmp/ref$i.tok")
        if grep -q '"error":' "$tmp/run$i.out"; then
            failed=$((failed + 1))
            streamed="$streamed$(echo "$got" | wc -w),"
            if [ -n "$got" ]; then
                case "$want " in "$got "*) ;; *) bad="$bad not-a-prefix:$i" ;; esac
            fi
        elif [ "$(status_of "$tmp/run$i.out")" = 200 ] && [ "$got" = "$want" ]; then
            ok=$((ok + 1))
        else
            bad="$bad wrong-or-garbled:$i(status $(status_of "$tmp/run$i.out"), $(echo "$got" | wc -w) tokens)"
        fi
    done
    # the requests after the loss: an error at once, streamed or not
    later=
    for mode in false true false; do
        t1=$(now)
        http POST /completion "$(body 1 "$mode")" >"$tmp/later.out"
        dt=$(since "$t1"); st=$(status_of "$tmp/later.out")
        grep -q '"error":' "$tmp/later.out" || bad="$bad later-request-not-an-error"
        awk -v d="$dt" 'BEGIN {exit !(d < 1.0)}' || bad="$bad later-request-slow:${dt}s"
        later="$later ${st}$([ "$mode" = true ] && echo '+error-event') in ${dt}s,"
    done
    alive=yes; kill -0 "$lpid" 2>/dev/null || { alive=no; bad="$bad llama-server-died"; }
    lost=$(grep -c 'VirtGPU device lost' "$tmp/llama.log")
    [ "$lost" = 1 ] || bad="$bad loss-logged-$lost-times"
    [ "$failed" -ge 1 ] || bad="$bad nothing-was-in-flight"
    if [ "$sig" = STOP ]; then
        awk -v d="$settle" -v t="$GGML_VIRTGPU_TIMEOUT" 'BEGIN {exit !(d < t + 2)}' || bad="$bad stopped-host-cost-${settle}s"
    fi
    cp "$tmp/llama.log" "$tmp/llama-$sig.log"
    stop_llama
    [ "$lrc" = 0 ] || bad="$bad exit-status-$lrc$([ "$lrc" -gt 128 ] && echo "(signal $((lrc - 128)))")"
    echo "SIG$sig at ${delay}: $ok requests complete (reference tokens), $failed failed with an error after" \
         "a prefix (${streamed%,} tokens streamed), all settled ${settle}s after the signal; later requests:${later%,}; alive: $alive;" \
         "exit status on SIGTERM: $lrc; check: ${bad:-ok}"
    if [ -n "$bad" ]; then
        fail=1
        grep -E ' E |lost|abort' "$tmp/llama-$sig.log" | tail -8
    fi
    host_stop
done
exit $fail
