# shellcheck shell=bash
# Sourced by the scripts that start apir-server in the background (tests/lib/with-server.sh,
# tests/lib/host-control.sh, scripts/run.sh, tests/host/test_server_cli.sh).
# wait_listening SOCK PID: 0 once a socket bound to SOCK listens; 1 when PID has exited first
# or after 10 s (sanitizer builds start slower than plain ones). The file alone is not enough:
# it appears at the server's bind, a moment before its listen, and a guest that connects then
# is refused. /proc/net/unix says which sockets listen (flags 00010000, state 01), without
# connecting; where it cannot be read, the file is all there is to go by.
socket_listening() {
    if [ -r /proc/net/unix ]; then
        awk -v p="$1" '$4 == "00010000" && $6 == "01" && $NF == p { found = 1 } END { exit !found }' /proc/net/unix
    else
        [ -S "$1" ]
    fi
}
wait_listening() {
    local _
    for _ in $(seq 1 200); do
        socket_listening "$1" && return 0
        kill -0 "$2" 2>/dev/null || break
        sleep 0.05
    done
    socket_listening "$1"
}
