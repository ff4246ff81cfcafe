#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: the router and nginx, on the same
# small non-streaming /api/chat through the same mock.
#
# Usage: bash loadtest/instructions.sh [--stream] [--top N] [--router PATH] [--router-yaml LINES]
#   --stream   streamed /api/chat instead: the mock sends 100 tokens 1 ms apart, so every token is its
#              own chunk on the wire, and the count is also given per chunk relayed
#   --router-yaml LINES  extra lines for the router's config (\n between lines), e.g. "metrics: false"
#
# Why: on a shared VM, wall-clock CPU per request moves by ±20 % between rounds; an instruction count
# does not (repeat runs agree to within about 1 %). It measures user-space work only: the kernel's share
# (TCP over loopback, io_uring, scheduling) is not in it and still needs the load test. The router runs
# with --io-driver epoll: valgrind cannot follow io_uring's shared rings (the router would never see a
# request). The codec, handler and proxy code are the same on both drivers; only the driver differs.
#
# How: each server runs under valgrind twice, serving N1 and then N2 requests (oha -c 8) after the same
# warm-up; (instructions(N2) - instructions(N1)) / (N2 - N1) cancels start-up and shutdown. The mock runs
# natively. Needs valgrind (installed with apt-get when missing), nginx and oha (as for loadtest/run.sh)
# and release binaries in $CARGO_TARGET_DIR/release (default ./target/release; build them first).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
ROUTER="$BIN/nomyo-router"
TOP=0
STREAM=0
EXTRA_YAML=''
while [ $# -gt 0 ]; do
    case "$1" in
        --stream) STREAM=1; shift ;;
        --top) TOP="$2"; shift 2 ;;
        --router) ROUTER="$2"; shift 2 ;;
        --router-yaml) EXTRA_YAML="$2"; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

BASE=${LOADTEST_BASE_PORT:-18500}
MOCK_PORT=$BASE; PROXY_PORT=$((BASE + 10))
RUN="$(mktemp -d /tmp/nomyo-instructions.XXXXXX)"
if [ "$STREAM" = 1 ]; then
    # 100 tokens and the final line: 101 NDJSON chunks per answer.
    N1=${N1:-20} N2=${N2:-100} CONC=2 CHUNKS=101 MOCK_ARGS=(--tokens 100 --token-delay-ms 2) STREAMED=true
else
    N1=${N1:-500} N2=${N2:-2500} CONC=8 CHUNKS=0 MOCK_ARGS=() STREAMED=false
fi
BODY='{"model":"llama3:latest","messages":[{"role":"user","content":"Why is the sky blue?"}],"stream":'$STREAMED'}'
PIDS=()

log() { printf '[instructions %s] %s\n' "$(date +%T)" "$*" >&2; }
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$RUN"
}
trap cleanup EXIT

command -v valgrind >/dev/null || { log "installing valgrind"; apt-get install -y valgrind >/dev/null; }
command -v oha >/dev/null || { echo "oha is missing: cargo install oha --locked" >&2; exit 1; }
[ -x /usr/sbin/nginx ] || { echo "nginx is missing: apt-get install -y nginx-light" >&2; exit 1; }
[ -x "$ROUTER" ] && [ -x "$BIN/mock-backend" ] || { echo "build first: cargo build --release --bins" >&2; exit 1; }

wait_port() {
    for _ in $(seq 150); do
        curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
        sleep 0.2
    done
    echo "nothing listens on $1" >&2
    return 1
}

"$BIN/mock-backend" --port "$MOCK_PORT" --models llama3:latest --loaded llama3:latest "${MOCK_ARGS[@]}" \
    >"$RUN/mock.log" 2>&1 &
PIDS+=($!)
wait_port "$MOCK_PORT"

cat >"$RUN/router.yaml" <<YAML
endpoints: [http://127.0.0.1:$MOCK_PORT]
max_concurrent_connections: 100000
queue: {mode: queue, max_queue: 100000}
log_level: warn
db_path: $RUN/tokens.db
YAML
[ -n "$EXTRA_YAML" ] && printf '%b\n' "$EXTRA_YAML" >>"$RUN/router.yaml"
mkdir -p "$RUN/nginx"
# shellcheck source=lib/nginx_conf.sh
. "$ROOT/loadtest/lib/nginx_conf.sh"
# The HTTPS block is not used here: its upstream is an unused port.
render_nginx_conf "$ROOT/loadtest/nginx.conf.template" 1 "$PROXY_PORT" "127.0.0.1:$MOCK_PORT" "$((BASE + 11))" \
    "127.0.0.1:$((BASE + 12))" "$ROOT/tests/fixtures/tls/ca.pem" "$RUN/nginx" >"$RUN/nginx/nginx.conf"

# count NAME N CMD...: serves 200 warm-up requests then N measured ones under callgrind; prints the
# annotated per-function totals file.
count() {
    local name=$1 n=$2
    shift 2
    local out="$RUN/cg.$name.$n"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$@" >"$RUN/$name.$n.log" 2>&1 &
    local pid=$!
    wait_port "$PROXY_PORT"
    oha --no-tui -c "$CONC" -n 200 -m POST -H 'content-type: application/json' -d "$BODY" \
        "http://127.0.0.1:$PROXY_PORT/api/chat" >/dev/null
    local ok
    ok=$(oha --no-tui --output-format json -c "$CONC" -n "$n" -m POST -H 'content-type: application/json' -d "$BODY" \
        "http://127.0.0.1:$PROXY_PORT/api/chat" | python3 -c 'import json,sys; print(json.load(sys.stdin)["statusCodeDistribution"].get("200", 0))')
    if [ "$ok" != "$n" ]; then
        kill "$pid" 2>/dev/null || true
        echo "$name: only $ok of $n requests answered 200" >&2
        exit 1
    fi
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    # nginx exits on SIGQUIT/SIGTERM; give callgrind time to write its file.
    for _ in $(seq 50); do [ -s "$out" ] && break; sleep 0.1; done
    callgrind_annotate --auto=no --inclusive=no --threshold=100 "$out" 2>/dev/null \
        | grep -E '^ *[0-9,]+ ' | sed 's/,//g' >"$out.fns"
    echo "$out.fns"
}

measure() {
    local name=$1
    shift
    log "$name: $N1 then $N2 requests under callgrind"
    local a b
    a=$(count "$name" "$N1" "$@")
    b=$(count "$name" "$N2" "$@")
    python3 - "$a" "$b" "$((N2 - N1))" "$name" "$TOP" "$CHUNKS" <<'PY'
import re, sys
def load(path):
    d = {}
    for line in open(path):
        m = re.match(r"\s*(\d+)\s+\(\s*[\d.]+%\)\s+(.*)", line)
        if m:
            d[m.group(2)] = d.get(m.group(2), 0) + int(m.group(1))
    return d
a, b, n, name, top = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
chunks = int(sys.argv[6])
total = (b.pop("PROGRAM TOTALS", 0) - a.pop("PROGRAM TOTALS", 0)) / n
print(f"| {name} | {total:,.0f} |" + (f" {total / chunks:,.0f} |" if chunks else ""))
if top:
    rows = sorted((((b.get(k, 0) - a.get(k, 0)) / n), k) for k in set(a) | set(b))
    for v, k in reversed(rows[-top:]):
        fn = k.split(":", 1)[1] if ":" in k else k
        print(f"|   {fn[:100]} | {v:,.0f} ({100 * v / total:.1f} %) |" + (f" {v / chunks:,.0f} |" if chunks else ""))
PY
}

if [ "$STREAM" = 1 ]; then
    echo "| server | instructions per streamed request ($CHUNKS chunks) | per chunk |"
    echo "|---|---|---|"
else
    echo "| server | instructions per request |"
    echo "|---|---|"
fi
measure "router (epoll driver)" "$ROUTER" --config "$RUN/router.yaml" --port "$PROXY_PORT" --workers 1 --io-driver epoll
measure "nginx (1 worker)" /usr/sbin/nginx -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -e "$RUN/nginx/err.log" \
    -g "daemon off; master_process off;"
