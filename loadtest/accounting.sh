#!/usr/bin/env bash
# What token accounting, /metrics and the live usage feed cost: the same build with them on and off,
# at c=64 non-streaming /api/chat, interleaved round by round in one run.
#
# Usage: bash loadtest/accounting.sh [--rounds N] [--secs S]
#
# Targets (one mock behind each, all on CPU $LOADTEST_SERVER_CPUS, oha on $LOADTEST_LOAD_CPUS,
# router --workers 1):
#   on        defaults: token accounting, metrics and request logging on (log_level info)
#   off       token_accounting: false, metrics: false, log_level info
#   on+200    as `on`, with 200 idle /api/usage-stream watchers connected
#   on-warn   as `on`, log_level warn (the tuned setting)
#   off-warn  as `off`, log_level warn
# Prints req/s per round and target, and each round's on/off, on+200/on and on-warn/off-warn ratios
# with their medians. Needs oha and release binaries (cargo build --release --bins).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
ROUNDS=5
SECS=4
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS="$2"; shift 2 ;;
        --secs) SECS="$2"; shift 2 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
command -v oha >/dev/null || { echo "oha is missing: cargo install oha --locked" >&2; exit 1; }
[ -x "$BIN/nomyo-router" ] && [ -x "$BIN/mock-backend" ] || { echo "build first: cargo build --release --bins" >&2; exit 1; }

SRV_CPUS=${LOADTEST_SERVER_CPUS:-1}
LOAD_CPUS=${LOADTEST_LOAD_CPUS:-0}
BASE=${LOADTEST_BASE_PORT:-18600}
RUN="$(mktemp -d /tmp/nomyo-accounting.XXXXXX)"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT
wait_port() {
    for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done
    echo "port $1 never opened" >&2
    exit 1
}

MOCK=$BASE
taskset -c "$SRV_CPUS" "$BIN/mock-backend" --port $MOCK --threads 1 --tokens 5 >/dev/null 2>&1 &
PIDS+=($!)
wait_port $MOCK

declare -A PORT
router() { # NAME PORT EXTRA-YAML
    local name=$1 port=$2
    printf 'endpoints: [http://127.0.0.1:%s]\nmax_concurrent_connections: 100000\nqueue: {mode: queue, max_queue: 100000}\nworkers: 1\ndb_path: %s\n%b' \
        "$MOCK" "$RUN/$name.db" "$3" >"$RUN/$name.yaml"
    taskset -c "$SRV_CPUS" "$BIN/nomyo-router" --config "$RUN/$name.yaml" --host 127.0.0.1 --port "$port" \
        2>"$RUN/$name.log" &
    PIDS+=($!)
    PORT[$name]=$port
    wait_port "$port"
}
router on $((BASE + 1)) ''
router off $((BASE + 2)) 'token_accounting: false\nmetrics: false\n'
router on+200 $((BASE + 3)) ''
router on-warn $((BASE + 4)) 'log_level: warn\n'
router off-warn $((BASE + 5)) 'token_accounting: false\nmetrics: false\nlog_level: warn\n'

# 200 idle watchers on `on+200`, held by one Python process on the load CPU.
taskset -c "$LOAD_CPUS" python3 - "${PORT[on+200]}" <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
socks = []
for _ in range(200):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /api/usage-stream HTTP/1.1\r\nhost: x\r\n\r\n")
    s.setblocking(False)
    socks.append(s)
while True:  # read what comes so that no buffer fills; stopped by the script's trap
    for s in socks:
        try:
            s.recv(65536)
        except BlockingIOError:
            pass
    time.sleep(0.2)
PY
PIDS+=($!)
sleep 1

BODY='{"model":"llama3:latest","messages":[{"role":"user","content":"Why is the sky blue?"}],"stream":false}'
TARGETS=(on off on+200 on-warn off-warn)
rps() {
    taskset -c "$LOAD_CPUS" oha --no-tui --output-format json -c 64 -z "${SECS}s" --worker-threads 1 \
        -m POST -H 'content-type: application/json' -d "$BODY" "http://127.0.0.1:$1/api/chat" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); s=d["statusCodeDistribution"]; assert set(s) == {"200"}, s; print(round(d["summary"]["requestsPerSec"]))'
}
for t in "${TARGETS[@]}"; do rps "${PORT[$t]}" >/dev/null; done # warm-up
: >"$RUN/results"
for r in $(seq "$ROUNDS"); do
    line="$r"
    for t in "${TARGETS[@]}"; do line="$line $(rps "${PORT[$t]}")"; done
    echo "$line" >>"$RUN/results"
    echo "round $line" >&2
done
watchers=$(curl -s "http://127.0.0.1:${PORT[on+200]}/metrics" | awk '/^nomyo_router_usage_stream_watchers/ {print $2}')
python3 - "$RUN/results" "$watchers" <<'PY'
import statistics, sys
rows = [list(map(int, l.split()))[1:] for l in open(sys.argv[1])]
names = ["on", "off", "on+200", "on-warn", "off-warn"]
print(f"watchers connected to on+200 at the end: {sys.argv[2]}")
print("| round | " + " | ".join(names) + " | on/off | on+200/on | on-warn/off-warn |")
print("|---" * (len(names) + 4) + "|")
ratios = []
for i, r in enumerate(rows, 1):
    q = (r[0] / r[1], r[2] / r[0], r[3] / r[4])
    ratios.append(q)
    print(f"| {i} | " + " | ".join(f"{v:,}" for v in r) + " | " + " | ".join(f"{x:.3f}" for x in q) + " |")
med = [statistics.median(c) for c in zip(*rows)]
mq = [statistics.median(c) for c in zip(*ratios)]
print("| median | " + " | ".join(f"{v:,.0f}" for v in med) + " | " + " | ".join(f"{x:.3f}" for x in mq) + " |")
PY
