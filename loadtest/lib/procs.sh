# Process helpers shared by the load-test scripts (sourced by loadtest/run.sh and loadtest/chaos.sh).
#
#   stop_pid PID        TERM (and CONT, in case it is stopped), up to 5 s, then KILL; reaps it when it
#                       is a child of this shell. Never fails.
#   port_open PORT      true when something accepts connections on 127.0.0.1:PORT.
#   wait_for_port PORT SECS [PID]
#                       waits until 127.0.0.1:PORT accepts; returns 0 when it does, 1 after SECS,
#                       2 as soon as PID (when given) is gone.
#   wait_port_closed PORT SECS
#                       waits until nothing accepts on PORT any more; 0, or 1 after SECS.
#   end_run RC DIR      the last step of a script's `cleanup`: removes the run directory DIR unless
#                       the run failed (RC != 0) or KEEP_RUN_DIR=1, then exits with RC.
#   trap_cleanup        runs the caller's `cleanup` on exit, Ctrl-C and SIGTERM.
#
# Messages go through the caller's `log` function when it has one, else to stderr.

_procs_log() {
    if declare -F log >/dev/null; then log "$@"; else printf '%s\n' "$*" >&2; fi
}

stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    kill -CONT "$pid" 2>/dev/null || true # a SIGSTOPped process only sees TERM once continued
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        _procs_log "pid $pid did not stop on TERM: KILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
    local port=$1 secs=$2 pid=${3:-} i
    for i in $(seq 1 $((secs * 10))); do
        port_open "$port" && return 0
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            return 2
        fi
        sleep 0.1
    done
    port_open "$port"
}

wait_port_closed() {
    local port=$1 secs=$2 i
    for i in $(seq 1 $((secs * 10))); do
        port_open "$port" || return 0
        sleep 0.1
    done
    return 1
}

end_run() {
    local rc=$1 dir=$2
    if [ "${KEEP_RUN_DIR:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        _procs_log "run directory kept: $dir"
    else
        rm -rf "$dir"
    fi
    exit "$rc"
}

trap_cleanup() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
