# shellcheck shell=bash
# Sourced by the tests that kill, stop or restart apir-server themselves (with-server.sh
# expects a clean stop, so they cannot use it). The caller sets:
#   build  the build folder (bin/apir-server is started from it)
#   sock   the socket path the server listens on
#   log    the file its output is appended to
# shellcheck disable=SC2154 # build, sock and log: the caller's
# host_pid is the listener's pid while it runs (its children are the guests' workers).
host_pid=
# shellcheck source-path=SCRIPTDIR source=wait-listening.sh
. "$(dirname "${BASH_SOURCE[0]}")/wait-listening.sh"

# host_signal SIG: the listener and its workers (a process per guest), so that STOP and CONT
# reach them all
host_signal() {
    kill -"$1" "$host_pid" 2>/dev/null
    case $1 in STOP|CONT) pkill -"$1" -P "$host_pid" 2>/dev/null || true ;; esac
}

# a fresh server on $sock; 1 (with the log printed) when it does not listen within 10 s
host_start() {
    rm -f "$sock"
    "$build/bin/apir-server" --socket-path "$sock" >>"$log" 2>&1 &
    host_pid=$!
    wait_listening "$sock" "$host_pid" && return 0
    echo "apir-server did not start"; cat "$log"; return 1
}

# SIGKILL (after CONT, should it be stopped): the socket file stays behind, as after a crash
host_stop() {
    [ -n "$host_pid" ] || return 0
    host_signal CONT; kill -KILL "$host_pid" 2>/dev/null; wait "$host_pid" 2>/dev/null
    host_pid=
}
