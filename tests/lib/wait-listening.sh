# shellcheck shell=bash
# Sourced by the scripts that start apir-server in the background (tests/lib/with-server.sh,
# tests/lib/host-control.sh, scripts/run.sh).
# wait_listening SOCK PID: 0 once SOCK exists; 1 when PID has exited first or after 10 s
# (sanitizer builds start slower than plain ones).
wait_listening() {
    local _
    for _ in $(seq 1 200); do
        [ -S "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    [ -S "$1" ]
}
