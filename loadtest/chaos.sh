#!/usr/bin/env bash
# nomyo-router chaos soak: sustained mixed traffic while backends are killed, restarted, stopped,
# slowed and made to fail, and clients misbehave; then checks that nothing leaked.
#
# Usage:
#   bash loadtest/chaos.sh [--seconds N] [--clients N] [--workers N] [--no-build] [--bin-dir DIR]
#                          [--results-dir DIR] [--base-port N|auto] [--seed N] [--settle N] [--log-level L]
#
#   --seconds N      load duration (default 600)
#   --clients N      concurrent client loops (default 500)
#   --workers N      router workers (default nproc)
#   --no-build       use the binaries already built (else cargo build --release --bins first)
#   --bin-dir DIR    where nomyo-router and mock-backend are (default $CARGO_TARGET_DIR/release,
#                    CARGO_TARGET_DIR defaulting to ./target); implies --no-build
#   --results-dir D  where <date>-<sha>-chaos.md/.jsonl go (default loadtest/results)
#   --base-port N    ports N+1..N+5 (backends) and N+10 (router) on 127.0.0.1 (default 19000, or
#                    $CHAOS_BASE_PORT); `auto` picks a free block in 20000-32000
#   --seed N         seed of the chaos schedule and of the client mix (default: random)
#   --settle N       after the checks, wait up to N s for the descriptor count to come back within
#                    start+20 including idle upstream connections (pooled by design for 60 s);
#                    default 80 when --seconds >= 300, else 0
#   --log-level L    the router's log level (default warn; its log is kept in the run directory)
#
# What it does (docs/reliability.md, "Chaos soak"):
#   1. starts five mock backends on 127.0.0.1: three Ollama-kind (llama3:latest on all three,
#      qwen2:7b and mistral:7b on two each) and two --kind openai (gpt-4o-mini), every one pacing its
#      tokens at 10 ms; and the router with max_concurrent_connections 4 per endpoint x model, so
#      that 500 clients queue (max_queue 200 per model, queue_timeout 10 s), short upstream timeouts
#      (connect 2 s, first byte 6 s, idle 6 s) and header_read_timeout 5 s;
#   2. runs loadtest/lib/chaos_client.py (N client loops: Ollama and OpenAI, streamed and whole,
#      translated both ways, per-request faults, hostile clients; every request classified complete,
#      clean_error, aborted_by_client or BAD);
#   3. meanwhile, every 1-3 s, disrupts one backend (at most two at a time): SIGKILL and restart on
#      the same port after 1-5 s, or at once (streams cut mid-way); SIGSTOP for 2-10 s, then SIGCONT;
#      restart it slowed (1.5 s to the first byte, 60 ms per token), answering 500, hanging, or
#      accepting and closing connections (--fault refuse) for a few seconds, then healthy again;
#   4. when the load stops: every backend healthy again (SIGCONT, restarts), the client's requests
#      in flight drained, a few seconds' wait, then the checks: /health all ok; /api/usage 0 in
#      flight and 0 queued everywhere (polled up to 15 s); workers x 8 fresh connections each
#      answered GET /api/version within 2 s; one request of every ordinary kind complete; the router
#      alive, same pid, no panic in its log; its VmRSS and descriptors at start, peak and end:
#      descriptors other than idle upstream connections within start+20, idle upstream connections
#      within the slot bound, RSS within max(3 x start, start + 64 MB); BAD = 0;
#   5. writes <results-dir>/<date>-<sha>-chaos.md and .jsonl; exits 1 when any check fails;
#   6. stops every process it started, by pid (trap on EXIT).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LT="$ROOT/loadtest"
# shellcheck source=lib/procs.sh
. "$LT/lib/procs.sh"

DURATION=600
CLIENTS=500
WORKERS="$(nproc)"
BUILD=1
BIN=""
RESULTS_DIR="$LT/results"
BASE="${CHAOS_BASE_PORT:-19000}"
SEED=""
SETTLE=""
LOG_LEVEL=warn
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) DURATION="$2"; shift ;;
        --clients) CLIENTS="$2"; shift ;;
        --workers) WORKERS="$2"; shift ;;
        --no-build) BUILD=0 ;;
        --bin-dir) BIN="$(cd "$2" && pwd)"; BUILD=0; shift ;;
        --results-dir) RESULTS_DIR="$2"; shift ;;
        --base-port) BASE="$2"; shift ;;
        --seed) SEED="$2"; shift ;;
        --settle) SETTLE="$2"; shift ;;
        --log-level) LOG_LEVEL="$2"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$SETTLE" ] || { [ "$DURATION" -ge 300 ] && SETTLE=80 || SETTLE=0; }
[ -n "$SEED" ] || SEED=$((RANDOM * 32768 + RANDOM))
RANDOM=$SEED
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
[ -n "$BIN" ] || BIN="$TARGET_DIR/release"

log() { printf '[chaos %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# ---- ports ---------------------------------------------------------------------------------------
MOCKS=(ol1 ol2 ol3 oai1 oai2)
declare -A MPORT MARGS MPID MSTATE MUNTIL
if [ "$BASE" = auto ]; then
    # A free block below the kernel's ephemeral range (32768+), so that no outgoing connection can
    # take a killed backend's port before it is restarted.
    BASE="$(python3 -c '
import random, socket
for _ in range(200):
    base = random.randrange(20000, 32000, 20)
    try:
        for p in [base + i for i in (1, 2, 3, 4, 5, 10)]:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(base)
    break')"
    [ -n "$BASE" ] || { echo "no free ports found" >&2; exit 1; }
fi
for i in 0 1 2 3 4; do MPORT[${MOCKS[$i]}]=$((BASE + i + 1)); done
ROUTER_PORT=$((BASE + 10))
BACKEND_PORTS="$(for m in "${MOCKS[@]}"; do printf '%s,' "${MPORT[$m]}"; done)"
BACKEND_PORTS="${BACKEND_PORTS%,}"
MARGS[ol1]="--models llama3:latest,qwen2:7b"
MARGS[ol2]="--models llama3:latest,qwen2:7b,mistral:7b"
MARGS[ol3]="--models llama3:latest,mistral:7b"
MARGS[oai1]="--kind openai --models gpt-4o-mini"
MARGS[oai2]="--kind openai --models gpt-4o-mini"
TOKEN_DELAY_MS=10
SLOTS=4
# Slots over all endpoint x model pairs: llama3 x3, qwen2 x2, mistral x2, gpt-4o-mini x2.
TOTAL_SLOTS=$((SLOTS * 9))
HEADER_TIMEOUT=5
MAX_DISRUPTED=2

# ---- processes -----------------------------------------------------------------------------------
RUN="$(mktemp -d /tmp/nomyo-chaos.XXXXXX)"
ROUTER_PID=""
CLIENT_PID=""
OTHER_PIDS=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$CLIENT_PID" ] && stop_pid "$CLIENT_PID"
    [ -n "$ROUTER_PID" ] && stop_pid "$ROUTER_PID"
    local m p
    for m in "${MOCKS[@]}"; do
        [ -n "${MPID[$m]:-}" ] && stop_pid "${MPID[$m]}"
    done
    for p in "${OTHER_PIDS[@]}"; do stop_pid "$p"; done
    end_run "$rc" "$RUN"
}
trap_cleanup

T0=$(now_ms)
event() { # event NAME BACKEND [KEY=NUMBER...]: one line of the chaos schedule
    local name=$1 backend=$2 t
    shift 2
    t=$(( $(now_ms) - T0 ))
    local extra=""
    local kv
    for kv in "$@"; do extra+=", \"${kv%%=*}\": ${kv#*=}"; done
    printf '{"type": "event", "t_ms": %d, "event": "%s", "backend": "%s"%s}\n' "$t" "$name" "$backend" "$extra" >>"$RUN/events.jsonl"
}

# start_mock NAME [MODE]: (re)starts a backend on its port and waits until it listens. MODE: normal
# (default), slow (1.5 s to the first byte, 60 ms per token), 500, hang or refuse (the mock's --fault).
start_mock() {
    local m=$1 mode=${2:-normal} rc=0 try args
    args=(--token-delay-ms "$TOKEN_DELAY_MS")
    case $mode in
        normal) ;;
        slow) args=(--token-delay-ms 60 --first-byte-delay-ms 1500) ;;
        *) args+=(--fault "$mode") ;;
    esac
    for try in 1 2 3; do
        # shellcheck disable=SC2086
        "$BIN/mock-backend" --host 127.0.0.1 --port "${MPORT[$m]}" --threads 1 ${MARGS[$m]} "${args[@]}" \
            >>"$RUN/$m.log" 2>&1 &
        MPID[$m]=$!
        rc=0
        wait_for_port "${MPORT[$m]}" 10 "${MPID[$m]}" || rc=$?
        [ $rc = 0 ] && return 0
        stop_pid "${MPID[$m]}"
        log "backend $m did not listen on ${MPORT[$m]} (try $try, rc $rc): $(tail -2 "$RUN/$m.log" | tr '\n' ' ')"
        sleep 0.5
    done
    die "backend $m could not be started on ${MPORT[$m]}"
}

kill_mock() { # SIGKILL, and reap it
    local m=$1
    kill -CONT "${MPID[$m]}" 2>/dev/null || true
    kill -KILL "${MPID[$m]}" 2>/dev/null || true
    wait "${MPID[$m]}" 2>/dev/null || true
}

# restore NAME: the backend healthy again, whatever it was doing.
restore() {
    local m=$1
    case "${MSTATE[$m]}" in
        normal) ;;
        stopped) kill -CONT "${MPID[$m]}" 2>/dev/null || true ;;
        down) start_mock "$m" ;;
        *) kill_mock "$m"; start_mock "$m" ;;
    esac
    [ "${MSTATE[$m]}" = normal ] || event restore "$m"
    MSTATE[$m]=normal
    MUNTIL[$m]=0
}

rand_ms() { echo $(($1 + RANDOM % ($2 - $1 + 1))); } # rand_ms MIN MAX

# disrupt: one random action on one random healthy backend.
COUNT_DISRUPTED=0
disrupt() {
    local healthy=() m n=0 until action d
    for m in "${MOCKS[@]}"; do
        if [ "${MSTATE[$m]}" = normal ]; then healthy+=("$m"); else n=$((n + 1)); fi
    done
    [ "$n" -lt "$MAX_DISRUPTED" ] && [ ${#healthy[@]} -gt 0 ] || return 0
    m=${healthy[$((RANDOM % ${#healthy[@]}))]}
    action=$(( RANDOM % 8 ))
    case $action in
        0 | 1) # killed, down for a while, restarted on the same port
            d=$(rand_ms 1000 5000)
            kill_mock "$m"; MSTATE[$m]=down; event kill "$m" down_ms=$d ;;
        2) # killed and restarted at once: streams cut mid-way
            kill_mock "$m"; start_mock "$m"; event kill_restart "$m"
            COUNT_DISRUPTED=$((COUNT_DISRUPTED + 1)); return 0 ;;
        3) # hung: SIGSTOP, later SIGCONT
            d=$(rand_ms 2000 10000)
            kill -STOP "${MPID[$m]}"; MSTATE[$m]=stopped; event stop "$m" for_ms=$d ;;
        4) # slowed
            d=$(rand_ms 5000 15000)
            kill_mock "$m"; start_mock "$m" slow
            MSTATE[$m]=slow; event slow "$m" for_ms=$d ;;
        5) # 500 for every inference request (answered at once: a short spell, it drains the queues)
            d=$(rand_ms 2000 5000)
            kill_mock "$m"; start_mock "$m" 500; MSTATE[$m]=fault_500; event fault_500 "$m" for_ms=$d ;;
        6) # every inference request hangs (the router's first-byte timeout answers)
            d=$(rand_ms 3000 8000)
            kill_mock "$m"; start_mock "$m" hang; MSTATE[$m]=fault_hang; event fault_hang "$m" for_ms=$d ;;
        7) # accepts and closes every connection
            d=$(rand_ms 3000 8000)
            kill_mock "$m"; start_mock "$m" refuse; MSTATE[$m]=fault_refuse; event fault_refuse "$m" for_ms=$d ;;
    esac
    MUNTIL[$m]=$(( $(now_ms) + d ))
    COUNT_DISRUPTED=$((COUNT_DISRUPTED + 1))
}

procstat() { python3 "$LT/lib/chaos_client.py" procstat --pid "$ROUTER_PID" --port "$ROUTER_PORT" --backend-ports "$BACKEND_PORTS"; }

# ---- build, start -----------------------------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
command -v python3 >/dev/null || die "python3 is required"
command -v curl >/dev/null || die "curl is required"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((CLIENTS * 4)) ] || log "warning: open-files limit $(ulimit -n) is low for $CLIENTS clients"
if [ "$BUILD" = 1 ]; then
    log "building release binaries into $TARGET_DIR"
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --bins) >&2
fi
[ -x "$BIN/nomyo-router" ] && [ -x "$BIN/mock-backend" ] || die "binaries missing in $BIN (build without --no-build)"
for p in ${BACKEND_PORTS//,/ } "$ROUTER_PORT"; do
    port_open "$p" && die "port $p is already in use (--base-port)"
done

for m in "${MOCKS[@]}"; do
    start_mock "$m"
    MSTATE[$m]=normal
    MUNTIL[$m]=0
done
cat >"$RUN/router.yaml" <<EOF
endpoints:
  - http://127.0.0.1:${MPORT[ol1]}
  - http://127.0.0.1:${MPORT[ol2]}
  - http://127.0.0.1:${MPORT[ol3]}
  - url: http://127.0.0.1:${MPORT[oai1]}/v1
    kind: openai
  - url: http://127.0.0.1:${MPORT[oai2]}/v1
    kind: openai
max_concurrent_connections: $SLOTS
host: 127.0.0.1
port: $ROUTER_PORT
log_level: $LOG_LEVEL
db_path: $RUN/tokens.db
timeouts: {connect: 2s, first_byte: 6s, first_byte_cold: 6s, idle: 6s, total: 0}
queue: {mode: queue, max_queue: 200, queue_timeout: 10s}
discovery: {loaded_interval: 1s, models_interval: 5s, poll_timeout: 1s}
limits: {header_read_timeout: ${HEADER_TIMEOUT}s, max_retries: 2, failures_before_down: 3}
EOF
"$BIN/nomyo-router" --config "$RUN/router.yaml" --workers "$WORKERS" >"$RUN/router.log" 2>&1 &
ROUTER_PID=$!
rc=0
wait_for_port "$ROUTER_PORT" 15 "$ROUTER_PID" || rc=$?
[ $rc = 0 ] || { cat "$RUN/router.log" >&2; die "router did not listen on $ROUTER_PORT"; }
for i in $(seq 1 150); do
    h="$(curl -s "http://127.0.0.1:$ROUTER_PORT/health" || true)"
    [ "$(printf '%s' "$h" | grep -o '"status":"ok"' | wc -l)" -ge 6 ] && break
    sleep 0.1
done
[ "$(printf '%s' "$h" | grep -o '"status":"ok"' | wc -l)" -ge 6 ] || die "router not healthy: $h"
python3 "$LT/lib/chaos_client.py" sanity --port "$ROUTER_PORT" --header-timeout "$HEADER_TIMEOUT" >"$RUN/sanity-start.json" \
    || die "requests fail before any chaos: $(cat "$RUN/sanity-start.json")"
procstat >"$RUN/proc-start.json"
log "router $ROUTER_PORT (pid $ROUTER_PID, $WORKERS workers), backends ${BACKEND_PORTS}; $CLIENTS clients for ${DURATION}s, seed $SEED"
log "start: $(cat "$RUN/proc-start.json")"

# ---- the load and the chaos ---------------------------------------------------------------------------
GIT_SHA="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo nogit)"
GIT_DIRTY=""
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null || true)" ] && GIT_DIRTY="+dirty"
T_START=$(date +%s)
: >"$RUN/events.jsonl"
python3 "$LT/lib/chaos_client.py" run --port "$ROUTER_PORT" --clients "$CLIENTS" --seconds "$DURATION" \
    --header-timeout "$HEADER_TIMEOUT" --router-pid "$ROUTER_PID" --backend-ports "$BACKEND_PORTS" \
    --samples "$RUN/samples.jsonl" --seed "$SEED" >"$RUN/client.json" 2>"$RUN/client.log" &
CLIENT_PID=$!
T0=$(now_ms)
END=$((T0 + DURATION * 1000))
NEXT=$((T0 + $(rand_ms 1000 3000)))
LAST_LOG=$T0
while :; do
    now=$(now_ms)
    [ "$now" -lt "$END" ] || break
    kill -0 "$CLIENT_PID" 2>/dev/null || { log "the client ended early"; break; }
    kill -0 "$ROUTER_PID" 2>/dev/null || { log "the router died"; break; }
    for m in "${MOCKS[@]}"; do
        if [ "${MSTATE[$m]}" != normal ] && [ "$now" -ge "${MUNTIL[$m]}" ]; then restore "$m"; fi
    done
    if [ "$now" -ge "$NEXT" ]; then
        disrupt
        NEXT=$(( $(now_ms) + $(rand_ms 1000 3000) ))
    fi
    if [ $((now - LAST_LOG)) -ge 30000 ]; then
        LAST_LOG=$now
        log "t=$(( (now - T0) / 1000 ))s disruptions so far: $COUNT_DISRUPTED; $(tail -1 "$RUN/client.log" 2>/dev/null | cut -c1-160)"
    fi
    sleep 0.2
done
log "load over after $(( ($(now_ms) - T0) / 1000 ))s, $COUNT_DISRUPTED disruptions: every backend healthy again"
for m in "${MOCKS[@]}"; do restore "$m"; done
CLIENT_RC=0
wait "$CLIENT_PID" || CLIENT_RC=$?
CLIENT_PID=""
log "client done (exit $CLIENT_RC): $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["requests"], "requests", d["classes"])' "$RUN/client.json" 2>/dev/null || echo '?')"

# ---- the checks ----------------------------------------------------------------------------------------
sleep 3
ROUTER_ALIVE=0
kill -0 "$ROUTER_PID" 2>/dev/null && ROUTER_ALIVE=1
for i in $(seq 1 150); do
    curl -s -m 2 "http://127.0.0.1:$ROUTER_PORT/health" >"$RUN/health-end.json" || true
    [ "$(grep -o '"status":"ok"' "$RUN/health-end.json" | wc -l)" -ge 6 ] && break
    sleep 0.1
done
for i in $(seq 1 150); do
    curl -s -m 2 "http://127.0.0.1:$ROUTER_PORT/api/usage" >"$RUN/usage-end.json" || true
    grep -q '"total_in_flight":0,' "$RUN/usage-end.json" && grep -q '"total_queued":0' "$RUN/usage-end.json" && break
    sleep 0.1
done
python3 "$LT/lib/chaos_client.py" check-workers --port "$ROUTER_PORT" --connections $((WORKERS * 8)) --timeout 2 \
    >"$RUN/workers.json" || true
python3 "$LT/lib/chaos_client.py" sanity --port "$ROUTER_PORT" --header-timeout "$HEADER_TIMEOUT" >"$RUN/sanity-end.json" || true
procstat >"$RUN/proc-end.json"
for m in "${MOCKS[@]}"; do
    printf '{"backend": "%s", "stats": %s}\n' "$m" "$(curl -s -m 2 "http://127.0.0.1:${MPORT[$m]}/mock/stats" || echo null)"
done >"$RUN/mock-stats.jsonl"
if [ "$SETTLE" -gt 0 ]; then
    log "waiting up to ${SETTLE}s for idle upstream connections to expire (pooled for 60 s by design)"
    start_fds=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fds"])' "$RUN/proc-start.json")
    for i in $(seq 1 "$SETTLE"); do
        procstat >"$RUN/proc-settled.json"
        [ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fds"])' "$RUN/proc-settled.json")" -le $((start_fds + 20)) ] && break
        sleep 1
    done
    log "after ${i}s: $(cat "$RUN/proc-settled.json")"
fi
PANICS="$(grep -c -i 'panic' "$RUN/router.log" || true)"
ROUTER_STILL=0
kill -0 "$ROUTER_PID" 2>/dev/null && ROUTER_STILL=1

# ---- report ---------------------------------------------------------------------------------------------
DATE="$(date +%F)"
mkdir -p "$RESULTS_DIR"
OUT="$RESULTS_DIR/$DATE-$GIT_SHA-chaos.md"
[ -e "$OUT" ] && OUT="$RESULTS_DIR/$DATE-$GIT_SHA-chaos-$(date +%H%M).md"
python3 - "$RUN/meta.json" <<PY
import json, sys
json.dump({
    "date": "$DATE $(date +%T%z)",
    "git": "$GIT_SHA$GIT_DIRTY",
    "seconds": $DURATION,
    "clients": $CLIENTS,
    "workers": $WORKERS,
    "seed": $SEED,
    "settle_s": $SETTLE,
    "wall_s": $(( $(date +%s) - T_START )),
    "nproc": "$(nproc)",
    "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')",
    "kernel": "$(uname -r)",
    "bin": "$BIN",
    "router_pid": $ROUTER_PID,
    "router_alive_after_load": $ROUTER_ALIVE,
    "router_alive_at_end": $ROUTER_STILL,
    "router_panics": ${PANICS:-0},
    "client_exit": $CLIENT_RC,
    "disruptions": $COUNT_DISRUPTED,
    "total_slots": $TOTAL_SLOTS,
    "header_timeout_s": $HEADER_TIMEOUT,
    "backends": {$(for m in "${MOCKS[@]}"; do printf '"%s": {"port": %s, "args": "%s"}, ' "$m" "${MPORT[$m]}" "${MARGS[$m]}"; done | sed 's/, $//')},
    "router_port": $ROUTER_PORT,
}, open(sys.argv[1], "w"))
PY
RC=0
python3 "$LT/lib/chaos_report.py" "$RUN" "$OUT" || RC=$?
echo
cat "$OUT"
echo
log "written: $OUT (raw records: ${OUT%.md}.jsonl)"
[ $RC = 0 ] || { log "CHAOS SOAK FAILED (see the checks above; router log: $RUN/router.log)"; KEEP_RUN_DIR=1; }
exit $RC
