#!/usr/bin/env bash
# The whole test suite: unit and integration tests (Rust) under both I/O drivers, then the official
# Python clients (ollama, openai) against the router, with mock backends and a real llama.cpp
# llama-server, and the 60 s chaos soak. Needs: cargo, python3 (the pip packages of
# tests/python/requirements.txt are installed here), gcc/g++ (the first run builds
# llama-server from PyPI's llama-cpp-python sdist into ~/.cache, about 4-7 minutes; later runs reuse it),
# redis-server and promtool (installed here from Debian when missing).
# The semantic cache's embedding model (91 MB, from PyPI) is fetched into ~/.cache once.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: redis-server (the Redis cache tests start their own) and
# prometheus for its promtool (the /metrics tests check the exposition with it).
MISSING=""
command -v redis-server >/dev/null || MISSING="$MISSING redis-server"
command -v promtool >/dev/null || MISSING="$MISSING prometheus"
if [ -n "$MISSING" ]; then
    echo "== installing$MISSING =="
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING >/dev/null
fi

echo "== embedding model (fetched once from PyPI) =="
bash scripts/fetch-embedding-model.sh
cargo build --bins
echo "== cargo test (io_uring where available) =="
cargo test --all-targets
echo "== integration tests under the epoll driver =="
NOMYO_ROUTER_IO_DRIVER=epoll cargo test --tests
echo "== real llama-server (built once, cached) =="
bash scripts/setup-llama-server.sh
echo "== official Python clients =="
python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
NOMYO_BIN_DIR="$PWD/target/debug" python3 -m pytest -q tests/python
