#!/usr/bin/env bash
# The whole test suite: unit and integration tests (Rust) under both I/O drivers, then the official
# Python clients (ollama, openai) against the router. Needs: cargo, python3 with tests/python/requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --bins
echo "== cargo test (io_uring where available) =="
cargo test --all-targets
echo "== integration tests under the epoll driver =="
NOMYO_ROUTER_IO_DRIVER=epoll cargo test --tests
echo "== official Python clients =="
NOMYO_BIN_DIR="$PWD/target/debug" python3 -m pytest -q tests/python
