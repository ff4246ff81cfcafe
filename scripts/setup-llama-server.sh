#!/usr/bin/env bash
# Builds llama.cpp's llama-server (from the source inside PyPI's llama-cpp-python sdist) and writes a
# tiny random-weight llama GGUF, for the tests against a real llama-server
# (tests/python/test_real_llama_server.py). Both are cached; a second run does nothing.
#
#   bash scripts/setup-llama-server.sh
#
# Cache: ${NOMYO_LLAMA_CACHE:-$HOME/.cache/nomyo-router/llama-server-0.3.16}/{llama-server,tiny.gguf}
# Needs: python3 with pip, gcc/g++, network access to PyPI. Installs cmake, ninja, scikit-build-core,
# gguf and numpy with pip (into the current python3). Cold: about 4 minutes on 2 cores. Knobs:
# NOMYO_LLAMA_JOBS (parallel build jobs, default 2).
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.16
CACHE="${NOMYO_LLAMA_CACHE:-$HOME/.cache/nomyo-router/llama-server-${LLAMA_CPP_PYTHON_VERSION}}"
BIN="$CACHE/llama-server"
MODEL="$CACHE/tiny.gguf"

done_paths() {
    echo "llama-server: $BIN"
    echo "model:        $MODEL"
}

# Warm path: nothing to do.
if [[ -x "$BIN" && -s "$MODEL" ]]; then
    done_paths
    exit 0
fi

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAKE_MODEL="$REPO/tests/python/make_tiny_gguf.py"
JOBS="${NOMYO_LLAMA_JOBS:-2}"
PY="${PYTHON:-python3}"

STEP="start"
step() { STEP="$1"; echo "== setup-llama-server: $1" >&2; }
die() { echo "setup-llama-server.sh: FAILED: $*" >&2; exit 1; }
trap 'rc=$?; echo "setup-llama-server.sh: FAILED during step \"$STEP\" (exit $rc; command: $BASH_COMMAND)" >&2' ERR

command -v "$PY" >/dev/null || die "$PY not found (need python3 with pip)"
"$PY" -m pip --version >/dev/null 2>&1 || die "pip is not available for $PY (install python3-pip)"
[[ -f "$MAKE_MODEL" ]] || die "$MAKE_MODEL not found"

step "pip install cmake ninja scikit-build-core gguf numpy"
# Debian's system python refuses pip installs (PEP 668) unless told otherwise; installing these
# build tools into it is intended here (CI runs this as root on a throwaway machine).
export PIP_BREAK_SYSTEM_PACKAGES="${PIP_BREAK_SYSTEM_PACKAGES:-1}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
"$PY" -m pip install --quiet cmake ninja scikit-build-core gguf numpy \
    || die "pip install of the build tools failed"
# pip puts cmake and ninja in the interpreter's scripts directory (or the user one): use those.
PY_SCRIPTS="$("$PY" -c 'import sysconfig, os; print(sysconfig.get_path("scripts")); print(sysconfig.get_path("scripts", os.name + "_user"))' | paste -sd:)"
export PATH="$PY_SCRIPTS:$PATH"
command -v cmake >/dev/null || die "cmake not on PATH after pip install (looked in $PY_SCRIPTS)"
command -v ninja >/dev/null || die "ninja not on PATH after pip install (looked in $PY_SCRIPTS)"

mkdir -p "$CACHE"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/nomyo-llama-build.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

if [[ ! -s "$MODEL" ]]; then
    step "generate the tiny model"
    "$PY" "$MAKE_MODEL" "$TMP/tiny.gguf" || die "make_tiny_gguf.py failed"
    mv -f "$TMP/tiny.gguf" "$MODEL"
fi

if [[ ! -x "$BIN" ]]; then
    step "download the llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION sdist"
    # --no-build-isolation: reading the sdist's metadata with the scikit-build-core installed above,
    # otherwise pip builds cmake from source in an isolated environment first (>10 minutes).
    "$PY" -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
        "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$TMP/dl" \
        || die "pip download of the llama-cpp-python sdist failed"
    SDIST="$TMP/dl/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
    [[ -f "$SDIST" ]] || die "sdist not found at $SDIST (got: $(ls "$TMP/dl"))"
    tar -xzf "$SDIST" -C "$TMP"
    SRC="$TMP/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
    [[ -f "$SRC/CMakeLists.txt" ]] || die "no llama.cpp source in the sdist ($SRC)"

    step "configure llama.cpp"
    cmake -S "$SRC" -B "$TMP/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
        || die "cmake configure failed"

    step "build llama-server (-j$JOBS)"
    cmake --build "$TMP/build" --target llama-server -j "$JOBS" || die "build of llama-server failed"
    [[ -x "$TMP/build/bin/llama-server" ]] || die "build finished but $TMP/build/bin/llama-server is missing"
    "$TMP/build/bin/llama-server" --version >/dev/null 2>&1 || die "the built llama-server does not run"

    # Copy then rename, so an interrupted run never leaves a half-written binary in the cache.
    cp "$TMP/build/bin/llama-server" "$BIN.tmp.$$"
    mv -f "$BIN.tmp.$$" "$BIN"
fi

step "done"
done_paths
