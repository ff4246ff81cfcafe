#!/usr/bin/env bash
# nomyo-router load test: the router against direct-to-mock and nginx, side by side, in one run.
#
# Usage:
#   bash loadtest/run.sh [--quick] [--with-litellm] [--perf] [--no-build] [--no-unpinned] [--io-driver auto|epoll]
#                        [--compare-drivers] [--log-level LEVEL]
#
#   --quick          short run (~3 min): 3 c=1 rounds, two 3 s throughput rounds, 10 s soak
#                    (full: 5 c=1 rounds, seven interleaved 4 s throughput rounds, 60 s soak; ~11 min)
#   --with-litellm   also compare LiteLLM's proxy (pip install 'litellm[proxy]' into loadtest/.venv)
#   --no-build       use the binaries already in $CARGO_TARGET_DIR/release
#   --no-unpinned    skip the unpinned throughput runs
#   --io-driver D    the router's --io-driver (default auto: io_uring when the kernel allows it)
#   --compare-drivers  also start a second router on the other I/O driver (epoll, or io_uring when
#                    --io-driver epoll) and add it to the paired c=1 probes as a fourth target
#   --log-level L    the router's log level (default info, its own default: one line per request;
#                    `warn` is the tuned setting, as nginx's access_log off)
#   --perf           also profile the router (perf record, flat, 5 s) during an extra, unrecorded c=64
#                    round and write the top symbols, grouped by component, next to the results
#
# Environment: CARGO_TARGET_DIR (default ./target), LOADTEST_BASE_PORT (default 18000),
#   LOADTEST_SERVER_CPUS (default 1) and LOADTEST_LOAD_CPUS (default 0) for the pinned runs.
#
# What it does (see docs/benchmarks.md):
#   1. cargo build --release --bins; installs oha (cargo install oha --locked) and nginx (apt-get
#      install nginx-light) when missing;
#   2. starts three mock backends on 127.0.0.1 (each advertises llama3:latest, qwen2:7b, mistral:7b and
#      has a different one loaded; the first has llama3:latest), one OpenAI-compatible mock (for the
#      translated-stream probe), one HTTPS mock (tls-model:latest, certificate from the test CA in
#      tests/fixtures/tls), nginx as a plain keep-alive reverse proxy of the first mock (and, on a
#      second port, of the HTTPS mock), and the router in front of all mocks with
#      max_concurrent_connections 100000 (it never queues) and SSL_CERT_FILE set to the test CA;
#   3. pinned phase: the servers (mocks, nginx 1 worker, router --workers 1) on CPU $LOADTEST_SERVER_CPUS,
#      the load generators (oha --worker-threads 1, the Python stream client and paired probe) on
#      CPU $LOADTEST_LOAD_CPUS;
#      scenarios, each against direct (mock), nginx and router:
#        non-streaming /api/chat at concurrency 1, 64 and 512 (interleaved rounds, medians; at 64 and
#        512 router/nginx is judged per round, over the rounds the host left quiet: see docs);
#        paired c=1 probe: the three targets alternate request by request over one keep-alive
#        connection each (loadtest/lib/paired_latency.py), non-streaming and stream TTFT, so that
#        "target - direct" per percentile is measured over the same noise window;
#        1,000 concurrent /api/chat streams of 100 tokens at 10 ms per token, twice per target (the
#        second round with the upstream pools warm), then 100 streams as a reference below saturation;
#        non-streaming /api/chat at concurrency 64 over an HTTPS upstream (information only);
#        translated stream probe (Ollama client -> OpenAI-compatible mock), skipped while the router
#        answers 501;
#        [--with-litellm] OpenAI /v1/chat/completions at c=1, c=64 and 100 SSE streams incl. LiteLLM;
#        soak: 60 s (quick: 10 s) at concurrency 512 in 10 s (quick: 5 s) windows, with RSS per window;
#      unpinned phase: concurrency 64 and 512 again with no pinning, router --workers = nproc;
#   4. prints one markdown table and writes it with date, machine and versions to
#      loadtest/results/<date>-<short-sha>[-quick][-HHMM].md (raw records in the .jsonl next to it);
#   5. stops every process it started, by PID (trap on EXIT).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LT="$ROOT/loadtest"
# shellcheck source=lib/nginx_conf.sh
. "$LT/lib/nginx_conf.sh"
# shellcheck source=lib/procs.sh
. "$LT/lib/procs.sh" # stop_pid, port_open, wait_for_port
QUICK=0
WITH_LITELLM=0
BUILD=1
UNPINNED=1
IO_DRIVER=auto
COMPARE_DRIVERS=0
PERF=0
LOG_LEVEL=info
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --with-litellm) WITH_LITELLM=1 ;;
        --no-build) BUILD=0 ;;
        --no-unpinned) UNPINNED=0 ;;
        --io-driver) IO_DRIVER="$2"; shift ;;
        --compare-drivers) COMPARE_DRIVERS=1 ;;
        --perf) PERF=1 ;;
        --log-level) LOG_LEVEL="$2"; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

# The driver of the second router (--compare-drivers): the one the main router does not use.
OTHER_DRIVER=epoll
[ "$IO_DRIVER" = epoll ] && OTHER_DRIVER=io_uring
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
BIN="$TARGET_DIR/release"
BASE="${LOADTEST_BASE_PORT:-18000}"
MOCK_PORTS=($((BASE + 81)) $((BASE + 82)) $((BASE + 83)))
OAI_MOCK_PORT=$((BASE + 84))
TLS_MOCK_PORT=$((BASE + 85))
NGINX_PORT=$((BASE + 90))
NGINX_TLS_PORT=$((BASE + 91))
ROUTER_PORT=$((BASE + 100))
ROUTER2_PORT=$((BASE + 101))
ROUTER_CACHE_PORT=$((BASE + 102))
LITELLM_PORT=$((BASE + 110))
MODELS="llama3:latest,qwen2:7b,mistral:7b"
LOADED=(llama3:latest qwen2:7b mistral:7b)
MODEL="llama3:latest"
SLOTS=100000
NPROC="$(nproc)"
CLK_TCK="$(getconf CLK_TCK)"

if [ "$QUICK" = 1 ]; then
    C1_ROUNDS=3; C1_N=3000; TP_ROUNDS=2; TP_DUR=3; TLS_ROUNDS=2; SOAK_WINDOWS=2; SOAK_WIN=5; MODE="quick"
    PAIRED_N=5000; PAIRED_TTFT_N=1500
else
    C1_ROUNDS=5; C1_N=10000; TP_ROUNDS=7; TP_DUR=4; TLS_ROUNDS=3; SOAK_WINDOWS=6; SOAK_WIN=10; MODE="full"
    PAIRED_N=20000; PAIRED_TTFT_N=5000
fi
PAIRED_WARMUP=500
STREAMS=1000
STREAM_TOKENS=100
STREAM_DELAY_MS=10
STREAM_RAMP_MS=250

BODY='{"model":"llama3:latest","messages":[{"role":"user","content":"Why is the sky blue?"}],"stream":false}'
STREAM_BODY='{"model":"llama3:latest","messages":[{"role":"user","content":"Why is the sky blue?"}],"stream":true}'
OAI_BODY='{"model":"llama3:latest","messages":[{"role":"user","content":"Why is the sky blue?"}],"max_tokens":16}'
OAI_STREAM_BODY='{"model":"llama3:latest","messages":[{"role":"user","content":"Why is the sky blue?"}],"max_tokens":16,"stream":true}'
TLS_MODEL="tls-model:latest"   # served only by the HTTPS mock
TLS_BODY='{"model":"tls-model:latest","messages":[{"role":"user","content":"Why is the sky blue?"}],"stream":false}'
TLS_DIR="$ROOT/tests/fixtures/tls"

log() { printf '[loadtest %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- processes: everything started is recorded by PID and stopped on exit ----------------------------
RUN="$(mktemp -d /tmp/nomyo-loadtest.XXXXXX)"
JSONL="$RUN/results.jsonl"
: >"$JSONL"
ALL_PIDS=()
SERVER_PIDS=()
FG_PID=""
declare -A PID

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [ -n "$FG_PID" ] && stop_pid "$FG_PID"
    local i
    for ((i = ${#ALL_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${ALL_PIDS[$i]}"
    done
    end_run "$rc" "$RUN"
}
trap_cleanup

# start NAME CMD...: runs CMD in the background (output to $RUN/NAME.log) and records its PID.
start() {
    local name=$1
    shift
    "$@" >"$RUN/$name.log" 2>&1 &
    PID[$name]=$!
    ALL_PIDS+=($!)
    SERVER_PIDS+=($!)
}

# run_fg CMD...: runs a load generator in the foreground, stoppable by the EXIT trap.
run_fg() {
    local rc=0
    "$@" &
    FG_PID=$!
    wait "$FG_PID" || rc=$?
    FG_PID=""
    return $rc
}

stop_servers() {
    local i
    for ((i = ${#SERVER_PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${SERVER_PIDS[$i]}"
    done
    SERVER_PIDS=()
}

wait_port() {
    local port=$1 name=$2 secs=${3:-15} rc=0
    wait_for_port "$port" "$secs" "${PID[$name]}" || rc=$?
    case $rc in
        0) return 0 ;;
        2) cat "$RUN/$name.log" >&2; die "$name exited before listening on $port" ;;
        *) cat "$RUN/$name.log" >&2; die "$name did not listen on $port within ${secs}s" ;;
    esac
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# CPU seconds (user + system, all threads) of a process.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# nginx = master + workers.
nginx_pids() { echo "${PID[nginx]}" $(pgrep -P "${PID[nginx]}" 2>/dev/null || true); }
sum_rss() { local s=0 p; for p in "$@"; do s=$((s + $(rss_kb "$p"))); done; echo $s; }
# Steal and all ticks over every CPU (/proc/stat, user..steal): how much of a run the hypervisor took.
cpu_stat() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t }' /proc/stat; }
sum_ticks() { local s=0 p; for p in "$@"; do s=$((s + $(cpu_ticks "$p"))); done; echo $s; }
# The processes that do the proxying work for a target (the mock itself for direct).
target_pids() {
    case $1 in
        direct) echo "${PID[mock1]}" ;;
        nginx) nginx_pids ;;
        router) echo "${PID[router]}" ;;
        router_cache) echo "${PID[router_cache]}" ;;
        litellm) echo "${PID[litellm]}" $(pgrep -P "${PID[litellm]}" 2>/dev/null || true) ;;
    esac
}
target_port() {
    case $1 in
        direct) echo "${MOCK_PORTS[0]}" ;;
        nginx) echo "$NGINX_PORT" ;;
        router) echo "$ROUTER_PORT" ;;
        router_cache) echo "$ROUTER_CACHE_PORT" ;;
        litellm) echo "$LITELLM_PORT" ;;
    esac
}

# ---- tools ------------------------------------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
command -v taskset >/dev/null || die "taskset (util-linux) is required"
command -v python3 >/dev/null || die "python3 is required"
command -v curl >/dev/null || die "curl is required"
if ! command -v oha >/dev/null; then
    log "installing oha (cargo install oha --locked)"
    cargo install oha --locked >&2
fi
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    log "installing nginx (apt-get install nginx-light)"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light >&2 || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx >&2
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 4096 ] || log "warning: open-files limit $(ulimit -n) is low for 1,000 streams"

PORTS=("${MOCK_PORTS[@]}" "$OAI_MOCK_PORT" "$TLS_MOCK_PORT" "$NGINX_PORT" "$NGINX_TLS_PORT" "$ROUTER_PORT" "$ROUTER_CACHE_PORT")
[ "$COMPARE_DRIVERS" = 1 ] && PORTS+=("$ROUTER2_PORT")
for p in "${PORTS[@]}"; do
    port_open "$p" && die "port $p is already in use (set LOADTEST_BASE_PORT)"
done

if [ "$BUILD" = 1 ]; then
    log "building release binaries into $TARGET_DIR"
    (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --bins) >&2
fi
[ -x "$BIN/nomyo-router" ] && [ -x "$BIN/mock-backend" ] || die "binaries missing in $BIN (build without --no-build)"

# ---- pinning ----------------------------------------------------------------------------------------
SERVER_CPUS="${LOADTEST_SERVER_CPUS:-1}"
LOAD_CPUS="${LOADTEST_LOAD_CPUS:-0}"
if [ "$NPROC" -lt 2 ]; then
    log "only $NPROC CPU: no pinning possible, everything shares it"
    PIN_OK=0
else
    PIN_OK=1
fi

# set_phase pinned|unpinned: sets SRV (prefix for servers), LOAD (prefix for load generators), worker counts.
set_phase() {
    PHASE=$1
    if [ "$PHASE" = pinned ] && [ "$PIN_OK" = 1 ]; then
        SRV=(taskset -c "$SERVER_CPUS")
        LOAD=(taskset -c "$LOAD_CPUS")
        ROUTER_WORKERS=1; MOCK_THREADS=1; NGINX_WORKERS=1; OHA_THREADS=1
    else
        SRV=()
        LOAD=()
        ROUTER_WORKERS=$NPROC; MOCK_THREADS=$NPROC; NGINX_WORKERS=$NPROC; OHA_THREADS=$NPROC
    fi
}

# wait_routed PORT: discovery must have seen llama3:latest loaded on the first mock, so that the router
# on PORT sends it there.
wait_routed() {
    local hdr ep="" i
    for i in $(seq 1 100); do
        hdr="$(curl -s -o /dev/null -D - -H 'content-type: application/json' -d "$BODY" "http://127.0.0.1:$1/api/chat" || true)"
        ep="$(printf '%s' "$hdr" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-router-endpoint" {print $2}')"
        if [[ "$hdr" == "HTTP/1.1 200"* ]] && [ "$ep" = "http://127.0.0.1:${MOCK_PORTS[0]}" ]; then
            return 0
        fi
        sleep 0.1
    done
    die "router on port $1 does not route $MODEL to the first mock (got '$ep')"
}

start_servers() {
    local i
    for i in 0 1 2; do
        start "mock$((i + 1))" "${SRV[@]}" "$BIN/mock-backend" --host 127.0.0.1 --port "${MOCK_PORTS[$i]}" \
            --threads "$MOCK_THREADS" --models "$MODELS" --loaded "${LOADED[$i]}" --tokens 1
    done
    start mock_oai "${SRV[@]}" "$BIN/mock-backend" --host 127.0.0.1 --port "$OAI_MOCK_PORT" --threads 1 \
        --kind openai --models gpt-4o-mini --tokens 1
    start mock_tls "${SRV[@]}" "$BIN/mock-backend" --host 127.0.0.1 --port "$TLS_MOCK_PORT" --threads "$MOCK_THREADS" \
        --models "$TLS_MODEL" --tokens 1 --tls-cert "$TLS_DIR/server.pem" --tls-key "$TLS_DIR/server.key"

    mkdir -p "$RUN/nginx"
    render_nginx_conf "$LT/nginx.conf.template" "$NGINX_WORKERS" "$NGINX_PORT" "127.0.0.1:${MOCK_PORTS[0]}" \
        "$NGINX_TLS_PORT" "127.0.0.1:$TLS_MOCK_PORT" "$TLS_DIR/ca.pem" "$RUN/nginx" >"$RUN/nginx/nginx.conf"
    start nginx "${SRV[@]}" "$NGINX" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" -e "$RUN/nginx/nginx-error.log" -g "daemon off;"

    cat >"$RUN/router.yaml" <<EOF
endpoints:
  - http://127.0.0.1:${MOCK_PORTS[0]}
  - http://127.0.0.1:${MOCK_PORTS[1]}
  - http://127.0.0.1:${MOCK_PORTS[2]}
  - url: http://127.0.0.1:${OAI_MOCK_PORT}/v1
    kind: openai
  - https://localhost:${TLS_MOCK_PORT}
max_concurrent_connections: $SLOTS
queue: {mode: queue, max_queue: $SLOTS}
host: 127.0.0.1
port: $ROUTER_PORT
log_level: $LOG_LEVEL
db_path: $RUN/tokens-$PHASE.db
EOF
    ROUTER_CMD="SSL_CERT_FILE=tests/fixtures/tls/ca.pem nomyo-router --config router.yaml --workers $ROUTER_WORKERS --io-driver $IO_DRIVER --log-level $LOG_LEVEL"
    # SSL_CERT_FILE: the HTTPS mock's certificate comes from the test CA (tests/fixtures/tls).
    start router env SSL_CERT_FILE="$TLS_DIR/ca.pem" "${SRV[@]}" "$BIN/nomyo-router" --config "$RUN/router.yaml" --workers "$ROUTER_WORKERS" \
        --io-driver "$IO_DRIVER" --log-level "$LOG_LEVEL"
    # A second router with the response cache on (its defaults: mmap store), for the cache-hit
    # scenarios; the first has it off, so every other scenario measures proxying.
    sed -e "s/^port: .*/port: $ROUTER_CACHE_PORT/" -e "s|^db_path: .*|db_path: $RUN/tokens-cache-$PHASE.db|" \
        "$RUN/router.yaml" >"$RUN/router-cache.yaml"
    printf 'cache_enabled: true\ncache_mmap_path: %s\n' "$RUN/cache-$PHASE.mmap" >>"$RUN/router-cache.yaml"
    start router_cache env SSL_CERT_FILE="$TLS_DIR/ca.pem" "${SRV[@]}" "$BIN/nomyo-router" --config "$RUN/router-cache.yaml" \
        --workers "$ROUTER_WORKERS" --io-driver "$IO_DRIVER" --log-level "$LOG_LEVEL"
    if [ "$COMPARE_DRIVERS" = 1 ]; then
        start router2 env SSL_CERT_FILE="$TLS_DIR/ca.pem" "${SRV[@]}" "$BIN/nomyo-router" --config "$RUN/router.yaml" \
            --workers "$ROUTER_WORKERS" --port "$ROUTER2_PORT" --io-driver "$OTHER_DRIVER" --log-level "$LOG_LEVEL"
    fi

    for i in 0 1 2; do wait_port "${MOCK_PORTS[$i]}" "mock$((i + 1))"; done
    wait_port "$OAI_MOCK_PORT" mock_oai
    wait_port "$TLS_MOCK_PORT" mock_tls
    wait_port "$NGINX_PORT" nginx
    wait_port "$ROUTER_PORT" router
    wait_routed "$ROUTER_PORT"
    wait_port "$ROUTER_CACHE_PORT" router_cache
    wait_routed "$ROUTER_CACHE_PORT"
    warm_cache
    if [ "$COMPARE_DRIVERS" = 1 ]; then
        wait_port "$ROUTER2_PORT" router2
        wait_routed "$ROUTER2_PORT"
    fi
    local ep=""
    curl -sf -o /dev/null -H 'content-type: application/json' -d "$BODY" "http://127.0.0.1:$NGINX_PORT/api/chat" || die "nginx does not proxy /api/chat"
    # And $TLS_MODEL to the HTTPS mock, once discovery has reached it over TLS.
    for i in $(seq 1 100); do
        ep="$(curl -s -o /dev/null -D - -H 'content-type: application/json' -d "$TLS_BODY" "http://127.0.0.1:$ROUTER_PORT/api/chat" \
            | tr -d '\r' | awk -F': ' 'tolower($1)=="x-router-endpoint" {print $2}' || true)"
        [ "$ep" = "https://localhost:$TLS_MOCK_PORT" ] && break
        sleep 0.1
    done
    [ "$ep" = "https://localhost:$TLS_MOCK_PORT" ] || die "router does not route $TLS_MODEL to the HTTPS mock (got '$ep')"
    curl -sf -o /dev/null -H 'content-type: application/json' -d "$TLS_BODY" "http://127.0.0.1:$NGINX_TLS_PORT/api/chat" \
        || die "nginx does not proxy /api/chat to the HTTPS mock"
    log "servers up ($PHASE): mocks ${MOCK_PORTS[*]}, nginx $NGINX_PORT (pids $(nginx_pids)), router $ROUTER_PORT (pid ${PID[router]})"
}

record() { python3 "$LT/lib/results.py" "$@" >>"$JSONL"; }

# warm_cache: the cache-hit scenarios' requests answered once by the caching router (a miss that
# stores them); each must then come back as a hit.
warm_cache() {
    local path body hdr i
    for spec in "/api/chat|$BODY" "/api/chat|$STREAM_BODY" "/v1/chat/completions|$OAI_STREAM_BODY"; do
        path=${spec%%|*}; body=${spec#*|}
        for i in $(seq 1 50); do
            hdr="$(curl -s -o /dev/null -D - -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$ROUTER_CACHE_PORT$path" || true)"
            printf '%s' "$hdr" | tr -d '\r' | grep -qi '^x-cache: hit' && continue 2
            sleep 0.1
        done
        die "the caching router does not answer $path $body from its cache"
    done
}

# oha_run SCENARIO TARGET CONCURRENCY (-n N | -z Ds) [KEY=VALUE...]: one oha run, one record.
OHA_SEQ=0
# request_for SCENARIO TARGET: sets REQ_URL (with path), REQ_BODY, REQ_MOCK (the mock behind it) and
# REQ_TLS (extra oha flags) for one scenario's request to one target.
request_for() {
    local scenario=$1 target=$2 path=/api/chat
    REQ_URL="http://127.0.0.1:$(target_port "$target")"; REQ_BODY=$BODY; REQ_MOCK=mock1; REQ_TLS=()
    case "$scenario" in
        oai_*) path=/v1/chat/completions; REQ_BODY=$OAI_BODY ;;
        cache_ndjson*) REQ_BODY=$STREAM_BODY ;;
        cache_sse*) path=/v1/chat/completions; REQ_BODY=$OAI_STREAM_BODY ;;
        *_tls) # HTTPS upstream: the TLS mock, nginx's TLS server block, the router (model $TLS_MODEL)
            REQ_BODY=$TLS_BODY; REQ_MOCK=mock_tls
            case "$target" in
                direct) REQ_URL="https://localhost:$TLS_MOCK_PORT"; REQ_TLS=(--cacert "$TLS_DIR/ca.pem") ;;
                nginx) REQ_URL="http://127.0.0.1:$NGINX_TLS_PORT" ;;
            esac ;;
    esac
    REQ_URL+=$path
}

oha_run() {
    local scenario=$1 target=$2 c=$3 flag=$4 amount=$5
    shift 5
    request_for "$scenario" "$target"
    local mock=$REQ_MOCK
    OHA_SEQ=$((OHA_SEQ + 1))
    local out="$RUN/oha-$OHA_SEQ-$PHASE-$scenario-$target.json"
    local extra=()
    [ "$flag" = -z ] && extra=(-w)
    [ "$target" = litellm ] && extra+=(-H "authorization: Bearer $LITELLM_KEY")
    local pids t0 m0 st0 all0 st1 all1
    pids=$(target_pids "$target")
    [ "$target" = direct ] && pids=${PID[$mock]}
    t0=$(sum_ticks $pids)
    m0=$(cpu_ticks "${PID[$mock]}")
    read -r st0 all0 < <(cpu_stat)
    run_fg "${LOAD[@]}" oha --no-tui --output-format json --worker-threads "$OHA_THREADS" -c "$c" "$flag" "$amount" "${extra[@]}" \
        "${REQ_TLS[@]}" -m POST -H 'content-type: application/json' -d "$REQ_BODY" -o "$out" "$REQ_URL" \
        || log "oha exited non-zero for $scenario/$target"
    # CPU time (user+system, all threads) the proxy and the mock spent on this run.
    set -- "$@" proxy_ticks=$(( $(sum_ticks $pids) - t0 )) mock_ticks=$(( $(cpu_ticks "${PID[$mock]}") - m0 )) clk_tck="$CLK_TCK"
    read -r st1 all1 < <(cpu_stat)
    set -- "$@" steal_ticks=$((st1 - st0)) all_ticks=$((all1 - all0))
    local after=()
    # RSS_AFTER_PIDS set: also record their summed RSS right after the run.
    [ -n "${RSS_AFTER_PIDS:-}" ] && after=(rss_end_kb="$(sum_rss $RSS_AFTER_PIDS)")
    record oha "$out" phase="$PHASE" scenario="$scenario" target="$target" c="$c" "$@" "${after[@]}"
}

warm_up() {
    local t
    for t in "$@"; do
        run_fg "${LOAD[@]}" oha --no-tui --output-format json --worker-threads "$OHA_THREADS" -c 512 -z 1s -w -m POST \
            -H 'content-type: application/json' -d "$BODY" -o /dev/null "http://127.0.0.1:$(target_port "$t")/api/chat" || true
    done
}

last_rps() { python3 "$LT/lib/results.py" last "$JSONL"; }

# Real-time scheduling (SCHED_FIFO) for the paired probe and the servers it measures, when run as root
# with chrt: on a shared VM, ordinary wake-up scheduling adds millisecond tails to every target, which
# hide the microseconds a proxy adds. The probe keeps one request in flight, so nothing is starved.
RT_OK=0
[ "$(id -u)" = 0 ] && command -v chrt >/dev/null 2>&1 && RT_OK=1
rt_servers() { # rt_servers on|off
    [ "$RT_OK" = 1 ] || return 0
    local p
    for p in "${PID[mock1]}" $(nginx_pids) "${PID[router]}" ${PID[router2]:-}; do
        if [ "$1" = on ]; then
            chrt -a -f -p 10 "$p" >/dev/null 2>&1 || true
        else
            chrt -a -o -p 0 "$p" >/dev/null 2>&1 || true
        fi
    done
}

# paired_run SCENARIO MODE N BODY: the paired, interleaved c=1 probe over direct (the baseline), nginx and
# router, one request each in turn; one record per target.
paired_run() {
    local scenario=$1 mode=$2 n=$3 body=$4
    local out="$RUN/paired-$PHASE-$scenario.json"
    local rt=()
    [ "$RT_OK" = 1 ] && rt=(chrt -f 10)
    rt_servers on
    local second=()
    [ "$COMPARE_DRIVERS" = 1 ] && second=(--target "router_$OTHER_DRIVER=$ROUTER2_PORT")
    run_fg "${LOAD[@]}" "${rt[@]}" python3 "$LT/lib/paired_latency.py" --target "direct=$(target_port direct)" \
        --target "nginx=$(target_port nginx)" --target "router=$(target_port router)" "${second[@]}" --requests "$n" \
        --warmup "$PAIRED_WARMUP" --mode "$mode" --path /api/chat --body "$body" >"$out" \
        || log "paired probe exited non-zero for $scenario"
    rt_servers off
    if [ -s "$out" ]; then
        record paired "$out" phase="$PHASE" scenario="$scenario"
        log "  $(last_rps)"
    else
        log "  paired probe wrote no result for $scenario"
    fi
}

# stream_run SCENARIO TARGET [client args...]: the Python stream client plus RSS/CPU of the target.
stream_run() {
    local scenario=$1 target=$2
    shift 2
    local pids watch rss0 ticks0 rss1 ticks1 out="$RUN/stream-$PHASE-$scenario-$target.json"
    pids=$(target_pids "$target")
    watch=$(echo "$pids" | awk '{print $NF}')   # nginx / litellm: a worker; else the process itself
    [ "$target" = litellm ] && set -- "$@" --header "authorization: Bearer $LITELLM_KEY"
    rss0=$(sum_rss $pids)
    ticks0=$(sum_ticks $pids)
    run_fg "${LOAD[@]}" python3 "$LT/lib/stream_client.py" --port "$(target_port "$target")" --tokens "$STREAM_TOKENS" \
        --delay-ms "$STREAM_DELAY_MS" --ramp-ms "$STREAM_RAMP_MS" --watch-pid "$watch" "$@" >"$out" \
        || log "stream client exited non-zero for $scenario/$target"
    rss1=$(sum_rss $pids)
    ticks1=$(sum_ticks $pids)
    local peak_extra=()
    # The peak is sampled on one process; for multi-process targets report the sum before/after only.
    [ "$(echo $pids | wc -w)" -gt 1 ] && peak_extra=(peak_rss_kb=) || true
    record stream "$out" phase="$PHASE" scenario="$scenario" target="$target" tokens="$STREAM_TOKENS" \
        delay_ms="$STREAM_DELAY_MS" ramp_ms="$STREAM_RAMP_MS" rss_before_kb="$rss0" rss_after_kb="$rss1" \
        cpu_s="$(python3 -c "print(round(($ticks1 - $ticks0) / $CLK_TCK, 2))")" "${peak_extra[@]}"
    log "  $(python3 "$LT/lib/results.py" last "$JSONL")"
}

# ---- perf (optional) ---------------------------------------------------------------------------------
PERF_DATA=""
start_perf_router() {
    if ! command -v perf >/dev/null; then
        log "perf not found (apt-get install linux-perf): no profile"
        return 0
    fi
    PERF_DATA="$RUN/perf-router.data"
    # Starts after 1 s of load and samples 5 s, in the background while oha runs.
    start perf_record bash -c "sleep 1; exec perf record -F 1999 -p ${PID[router]} -o '$PERF_DATA' -- sleep 5"
}

# ---- LiteLLM ------------------------------------------------------------------------------------------
LITELLM_VERSION=""
LITELLM_KEY="sk-loadtest-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
setup_litellm() {
    local venv="$LT/.venv"
    if [ ! -x "$venv/bin/litellm" ]; then
        log "installing litellm[proxy] into $venv"
        python3 -m venv "$venv" >&2 || return 1
        "$venv/bin/pip" install -q 'litellm[proxy]' >&2 || return 1
    fi
    LITELLM_VERSION="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))' 2>/dev/null || echo '?')"
    cat >"$RUN/litellm.yaml" <<EOF
model_list:
  - model_name: llama3:latest
    litellm_params:
      model: openai/llama3:latest
      api_base: http://127.0.0.1:${MOCK_PORTS[0]}/v1
      api_key: sk-mock
general_settings:
  master_key: $LITELLM_KEY
  forward_client_headers_to_llm_api: true   # the x-mock-* headers reach the mock as for the others
litellm_settings:
  drop_params: true
  telemetry: false
EOF
    LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_LOG=ERROR start litellm "${SRV[@]}" "$venv/bin/litellm" --config "$RUN/litellm.yaml" \
        --host 127.0.0.1 --port "$LITELLM_PORT" --num_workers 1
    local i
    for i in $(seq 1 1200); do
        port_open "$LITELLM_PORT" && break
        kill -0 "${PID[litellm]}" 2>/dev/null || { tail -20 "$RUN/litellm.log" >&2; return 1; }
        sleep 0.1
    done
    port_open "$LITELLM_PORT" || return 1
    curl -sf -o /dev/null -H 'content-type: application/json' -H "authorization: Bearer $LITELLM_KEY" -d "$OAI_BODY" \
        "http://127.0.0.1:$LITELLM_PORT/v1/chat/completions" || { tail -20 "$RUN/litellm.log" >&2; return 1; }
}

run_litellm() {
    if ! setup_litellm; then
        log "not implemented: litellm proxy comparison (LiteLLM could not be installed or started; see above)"
        record record scenario=litellm target=litellm status=skipped reason="LiteLLM could not be installed or started"
        return 0
    fi
    log "LiteLLM $LITELLM_VERSION up on $LITELLM_PORT: OpenAI /v1/chat/completions, c=1, c=64, 100 SSE streams (as above)"
    local t n
    for t in direct nginx router litellm; do
        n=$C1_N
        [ "$t" = litellm ] && n=$((C1_N / 10))
        oha_run oai_c1 "$t" 1 -n "$n"
        log "  oai c=1 $t: $(last_rps)"
    done
    for t in direct nginx router litellm; do
        oha_run oai_c64 "$t" 64 -z "${TP_DUR}s"
        log "  oai c=64 $t: $(last_rps)"
    done
    stream_run oai_stream litellm --streams 100 --path /v1/chat/completions --format sse --openai-body --timeout 120
    stop_pid "${PID[litellm]}"
}

# ---- the run ------------------------------------------------------------------------------------------
GIT_SHA="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo nogit)"
GIT_DIRTY=""
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null || true)" ] && GIT_DIRTY="+dirty"
DATE="$(date +%F)"
T_START=$(date +%s)

set_phase pinned
PINNED_ROUTER_CMD=""
log "phase pinned: servers on CPU $SERVER_CPUS, load on CPU $LOAD_CPUS (pinning available: $PIN_OK), $MODE run"
start_servers
PINNED_ROUTER_CMD="$ROUTER_CMD"
warm_up direct nginx router

log "non-streaming /api/chat, concurrency 1: $C1_ROUNDS interleaved rounds of $C1_N requests"
for r in $(seq 1 "$C1_ROUNDS"); do
    for t in direct nginx router; do
        oha_run c1 "$t" 1 -n "$C1_N" round="$r"
        log "  round $r $t: $(last_rps)"
    done
done

log "paired c=1: direct, nginx and router in turn, one request each, $PAIRED_N non-streaming /api/chat per target"
paired_run paired_c1 plain "$PAIRED_N" "$BODY"
# TTFT on /api/chat itself (the route of the c=1 rounds above, the router's native Ollama path): the
# mocks run without --token-delay-ms / --first-byte-delay-ms (both 0), and the 10 ms per token of the
# stream scenarios below comes per request from the stream client's x-mock-delay-ms header, which this
# probe does not send. So the first token line is sent at once, with no timer in the way, and there is
# no need for the OpenAI SSE stream (its undelayed first event is a role-only chunk, not a token).
# Timed: request write -> first byte of the first chunk with data; the rest is read before the next.
log "paired c=1 TTFT: streaming /api/chat (first token undelayed), $PAIRED_TTFT_N per target"
paired_run paired_ttft ttft "$PAIRED_TTFT_N" "$STREAM_BODY"

for c in 64 512; do
    log "non-streaming /api/chat, concurrency $c: $TP_ROUNDS interleaved rounds of ${TP_DUR}s"
    for r in $(seq 1 "$TP_ROUNDS"); do
        # nginx and router swap places every round, so that neither always runs right after direct.
        order="direct nginx router"
        [ $((r % 2)) = 0 ] && order="direct router nginx"
        for t in $order; do
            oha_run "c$c" "$t" "$c" -z "${TP_DUR}s" round="$r"
            log "  round $r $t: $(last_rps)"
        done
    done
    if [ "$PERF" = 1 ] && [ "$c" = 64 ]; then
        # An extra, unrecorded router round under perf, so that sampling never slows a measured round.
        log "  perf: profiling the router during an extra c=64 round (not recorded)"
        start_perf_router
        run_fg "${LOAD[@]}" oha --no-tui --output-format json --worker-threads "$OHA_THREADS" -c 64 -z 8s -w -m POST \
            -H 'content-type: application/json' -d "$BODY" -o /dev/null "http://127.0.0.1:$ROUTER_PORT/api/chat" || true
    fi
done

log "non-streaming /api/chat over an HTTPS upstream (model $TLS_MODEL), concurrency 64: $TLS_ROUNDS interleaved rounds of ${TP_DUR}s"
for t in direct nginx router; do # TLS sessions and pooled upstream connections set up before round 1
    request_for c64_tls "$t"
    run_fg "${LOAD[@]}" oha --no-tui --output-format json --worker-threads "$OHA_THREADS" -c 64 -z 1s -w "${REQ_TLS[@]}" \
        -m POST -H 'content-type: application/json' -d "$REQ_BODY" -o /dev/null "$REQ_URL" || true
done
for r in $(seq 1 "$TLS_ROUNDS"); do
    order="direct nginx router"
    [ $((r % 2)) = 0 ] && order="direct router nginx"
    for t in $order; do
        oha_run c64_tls "$t" 64 -z "${TP_DUR}s" round="$r"
        log "  round $r $t: $(last_rps)"
    done
done

log "cache hits: the caching router's hits against nginx proxying the same request to the mock ($TLS_ROUNDS interleaved rounds)"
for r in $(seq 1 "$TLS_ROUNDS"); do
    for t in nginx router_cache; do
        oha_run cache_c1 "$t" 1 -n "$C1_N" round="$r"
        log "  round $r $t c=1: $(last_rps)"
        for sc in cache_c64 cache_ndjson_c64 cache_sse_c64; do
            oha_run "$sc" "$t" 64 -z "${TP_DUR}s" round="$r"
            log "  round $r $t $sc: $(last_rps)"
        done
    done
done

log "streaming /api/chat: $STREAMS concurrent streams x $STREAM_TOKENS tokens at ${STREAM_DELAY_MS} ms (starts spread over ${STREAM_RAMP_MS} ms)"
# Each target twice in a row. The first round finds the proxies' upstream pools as the throughput
# rounds left them (up to 512 idle connections), so it includes opening the rest at once (a burst
# after a quieter period); the second finds 1,000 warm connections (steady state under that load).
for t in direct nginx router; do
    stream_run stream1000 "$t" --streams "$STREAMS" --timeout 60
    sleep 1
    stream_run stream1000_warm "$t" --streams "$STREAMS" --timeout 60
    sleep 1
done
log "streaming /api/chat, 100 streams (a reference below saturation for TTFT and gaps)"
for t in direct nginx router; do
    stream_run stream100 "$t" --streams 100 --timeout 60
    sleep 1
done

log "translated stream probe: Ollama /api/chat for a model only the OpenAI-compatible mock serves"
code="$(curl -s -o "$RUN/translate-probe.txt" -w '%{http_code}' -H 'content-type: application/json' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":false}' "http://127.0.0.1:$ROUTER_PORT/api/chat" || true)"
if [ "$code" = 200 ]; then
    # direct: the OpenAI mock's own SSE stream; router: the same stream translated to Ollama NDJSON.
    out_d="$RUN/stream-translated-direct.json"
    run_fg "${LOAD[@]}" python3 "$LT/lib/stream_client.py" --port "$OAI_MOCK_PORT" --path /v1/chat/completions --format sse \
        --openai-body --model gpt-4o-mini --streams 100 --tokens "$STREAM_TOKENS" --delay-ms "$STREAM_DELAY_MS" >"$out_d" || true
    record stream "$out_d" phase="$PHASE" scenario=translated_stream target=direct
    out_r="$RUN/stream-translated-router.json"
    run_fg "${LOAD[@]}" python3 "$LT/lib/stream_client.py" --port "$ROUTER_PORT" --model gpt-4o-mini --streams 100 \
        --tokens "$STREAM_TOKENS" --delay-ms "$STREAM_DELAY_MS" --watch-pid "${PID[router]}" >"$out_r" || true
    record stream "$out_r" phase="$PHASE" scenario=translated_stream target=router
else
    log "  router answers HTTP $code ($(head -c 200 "$RUN/translate-probe.txt")): skipped"
    record record phase="$PHASE" scenario=translated_stream target=router status=skipped reason="router answers HTTP $code (translation not in this release)"
fi

# The mock's OpenAI stream sends its first event (the role) at once, with no token delay: the cleanest
# view of what a proxy adds to the first byte of a stream, free of the mock's 10 ms timer jitter.
log "streaming OpenAI /v1/chat/completions (SSE), 100 streams: first event without token delay"
for t in direct nginx router; do
    stream_run oai_stream "$t" --streams 100 --path /v1/chat/completions --format sse --openai-body --timeout 60
    sleep 1
done

if [ "$WITH_LITELLM" = 1 ]; then
    run_litellm
fi

log "soak: concurrency 512, $SOAK_WINDOWS windows of ${SOAK_WIN}s per target"
for t in direct nginx router; do
    pids=$(target_pids "$t")
    rss_start=$(sum_rss $pids)
    for w in $(seq 1 "$SOAK_WINDOWS"); do
        RSS_AFTER_PIDS="$pids" oha_run soak "$t" 512 -z "${SOAK_WIN}s" window="$w" rss_start_kb="$rss_start"
        log "  $t window $w: $(last_rps), RSS $(( $(sum_rss $pids) / 1024 )) MB"
    done
done

stop_servers

if [ "$UNPINNED" = 1 ]; then
    set_phase unpinned
    log "phase unpinned: no taskset, router --workers $ROUTER_WORKERS, mock --threads $MOCK_THREADS, nginx $NGINX_WORKERS workers"
    start_servers
    warm_up direct nginx router
    for c in 64 512; do
        for t in direct nginx router; do
            oha_run "c$c" "$t" "$c" -z "${TP_DUR}s"
            log "  unpinned c=$c $t: $(last_rps)"
        done
    done
    stop_servers
fi

# ---- report -----------------------------------------------------------------------------------------
if [ "$PIN_OK" = 1 ]; then
    PINNING="servers (3 mocks, nginx 1 worker, router --workers 1) on CPU $SERVER_CPUS; oha --worker-threads 1, the stream client and the paired probe on CPU $LOAD_CPUS (taskset)"
else
    PINNING="none (1 CPU)"
fi
python3 - "$RUN/meta.json" <<PY
import json, sys
meta = {
    "date": "$DATE $(date +%T%z)",
    "git": "$GIT_SHA$GIT_DIRTY",
    "mode": "$MODE ($(( $(date +%s) - T_START )) s)",
    "pinning": "$PINNING",
    "nproc": "$NPROC",
    "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')",
    "mem": "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)",
    "kernel": "$(uname -r)",
    "rustc": "$(rustc --version 2>/dev/null)",
    "oha": "$(oha --version 2>/dev/null | head -1)",
    "nginx": "$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')",
    "python": "Python $(python3 -c 'import platform; print(platform.python_version())')",
    "litellm": "$LITELLM_VERSION",
    "router_cmd": "$PINNED_ROUTER_CMD",
    "slots": $SLOTS,
    "load_desc": "non-stream: POST /api/chat {stream:false}, mock answers 1 token; c=1: $C1_ROUNDS rounds x $C1_N requests (median of rounds); paired c=1: $PAIRED_N requests per target (TTFT: $PAIRED_TTFT_N, stream:true), targets in turn on one keep-alive connection each, rotating order, $PAIRED_WARMUP warm-up, real-time scheduling for probe and servers: $RT_OK; c=64/512: ${TP_DUR} s each (oha -z -w); streams: $STREAMS x $STREAM_TOKENS tokens at $STREAM_DELAY_MS ms (twice per target, the second with warm upstream pools), starts spread over $STREAM_RAMP_MS ms, connections opened first; soak: $SOAK_WINDOWS x ${SOAK_WIN} s at c=512",
}
json.dump(meta, open(sys.argv[1], "w"))
PY
mkdir -p "$LT/results"
SUFFIX=""
[ "$QUICK" = 1 ] && SUFFIX="-quick"
OUT="$LT/results/$DATE-$GIT_SHA$SUFFIX.md"
# Another run of the same commit on the same day: keep both (suffix with the time).
[ -e "$OUT" ] && OUT="$LT/results/$DATE-$GIT_SHA$SUFFIX-$(date +%H%M).md"
if [ -n "$PERF_DATA" ] && [ -f "$PERF_DATA" ]; then
    perf report -i "$PERF_DATA" --no-children --sort dso,symbol --stdio 2>/dev/null >"$RUN/perf-report.txt" || true
    {
        echo "# perf: router, pinned, c=64 (perf record -F 1999, 5 s; self time)"
        echo
        echo "## by component"
        python3 "$LT/lib/results.py" perfgroups "$RUN/perf-report.txt"
        echo
        echo "## top 40 symbols"
        awk '/%/ && n++ < 40' "$RUN/perf-report.txt"
    } >"${OUT%.md}-perf-router.txt"
    log "router profile: ${OUT%.md}-perf-router.txt"
fi
python3 "$LT/lib/results.py" report "$JSONL" "$RUN/meta.json" >"$OUT"
cp "$JSONL" "${OUT%.md}.jsonl"
echo
cat "$OUT"
echo
log "written: $OUT (raw records: ${OUT%.md}.jsonl)"
