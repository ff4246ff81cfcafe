#!/usr/bin/env bash
# The semantic cache under load, on this machine (loopback only, bounded):
#   1. a semantic hit end to end at c=1 (oha, every request a paraphrase of a stored question:
#      an exact miss, an embedding, a search, the guard, the replay);
#   2. throughput when every request is a new question (wrk + loadtest/lib/unique_chat.lua): the
#      cache off, the exact cache alone (1 worker each) and
#      the semantic cache on (1 worker + the embedding core) against the cache off (1 worker), in
#      the same run, and how many lookups ran out of budget;
#   3. the router's RSS with the model loaded.
# Needs release binaries (cargo build --release), the model (scripts/fetch-embedding-model.sh),
# oha and wrk. Usage: bash loadtest/semantic.sh [seconds per throughput run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${1:-10}"
BIN=target/release
RUN="$(mktemp -d)"
PIDS=()
# Everything but the embedding core on CPU 0, the embedding core alone on the last CPU: the
# throughput runs compare what the workers' CPU delivers with and without it beside them.
LAST=$(( $(nproc) - 1 ))
P0="taskset -c 0"
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$RUN"; }
trap cleanup EXIT

wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened" >&2; exit 1; }
MOCK=19801 OFF=19802 SEM=19803 EXACT=19804
$P0 "$BIN/mock-backend" --port $MOCK --threads 1 --tokens 5 >/dev/null 2>&1 & PIDS+=($!)
wait_port $MOCK
cat > "$RUN/off.yaml" <<YAML
endpoints: [http://127.0.0.1:$MOCK]
workers: 1
max_concurrent_connections: 1024
db_path: $RUN/off-tokens.db
YAML
cat > "$RUN/exact.yaml" <<YAML
endpoints: [http://127.0.0.1:$MOCK]
workers: 1
max_concurrent_connections: 1024
cache_enabled: true
cache_backend: memory
db_path: $RUN/exact-tokens.db
YAML
cat > "$RUN/sem.yaml" <<YAML
endpoints: [http://127.0.0.1:$MOCK]
max_concurrent_connections: 1024
cache_enabled: true
cache_backend: memory
cache_similarity: 0.88
workers: 1
cache_embedding_core: $LAST
db_path: $RUN/sem-tokens.db
YAML
$P0 "$BIN/nomyo-router" --config "$RUN/off.yaml" --host 127.0.0.1 --port $OFF 2>"$RUN/off.log" & PIDS+=($!)
$P0 "$BIN/nomyo-router" --config "$RUN/exact.yaml" --host 127.0.0.1 --port $EXACT 2>"$RUN/exact.log" & PIDS+=($!)
"$BIN/nomyo-router" --config "$RUN/sem.yaml" --host 127.0.0.1 --port $SEM 2>"$RUN/sem.log" & SEM_PID=$!; PIDS+=($SEM_PID)
wait_port $OFF; wait_port $EXACT; wait_port $SEM
rss() { awk '/VmRSS/ {printf "%.1f MB", $2/1024}' "/proc/$1/status"; }
echo "semantic router RSS at start (model loaded): $(rss $SEM_PID)"

chat() { printf '{"model":"llama3","stream":false,"messages":[{"role":"user","content":"%s"}]}' "$1"; }
curl -s -o /dev/null "http://127.0.0.1:$SEM/api/chat" -d "$(chat 'What is Python?')"
sleep 0.5
hdr=$(curl -s -D - -o /dev/null "http://127.0.0.1:$SEM/api/chat" -d "$(chat "What's Python?")" | tr -d '\r' | grep -i '^x-cache')
echo "paraphrase: $(echo "$hdr" | tr '\n' ' ')"
echo "== 1. semantic hit at c=1 (2000 requests; a lookup that misses its budget goes upstream and"
echo "   its answer is then an exact hit, so the p50 is the semantic hit's) =="
$P0 oha --no-tui -n 2000 -c 1 -m POST -d "$(chat "What's Python?")" "http://127.0.0.1:$SEM/api/chat" \
    | grep -E "Requests/sec|Slowest|Fastest|Average|50.00%|99.00%" | sed 's/^ */  /'

echo "== 2. every request a new question, c=64, ${SECS}s each =="
for target in off exact sem; do
    port=$OFF; [ $target = sem ] && port=$SEM; [ $target = exact ] && port=$EXACT
    out=$($P0 wrk -t2 -c64 -d"${SECS}s" --latency -s loadtest/lib/unique_chat.lua "http://127.0.0.1:$port/")
    echo "  $target: $(echo "$out" | awk '/Requests\/sec/ {print $2" req/s"}'), p50 $(echo "$out" | awk '$1=="50%" {print $2}'), p99 $(echo "$out" | awk '$1=="99%" {print $2}'), max $(echo "$out" | awk '/Latency/ {print $4; exit}'), errors: $(echo "$out" | grep -c "Non-2xx\|Socket errors" || true)"
done
curl -s "http://127.0.0.1:$SEM/api/cache/stats" | python3 -c "
import json,sys; s=json.load(sys.stdin); l=s['semantic_layer']
print(f\"  semantic router: misses {s['misses']}, stores {s['stores']}, indexed {l['entries']}, over budget {l['over_budget']}, late {l['late']}\")"
echo "semantic router RSS after: $(rss $SEM_PID)"
