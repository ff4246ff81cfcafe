"""Fixtures for the Python integration tests of nomyo-router.

A session-scoped stack is started once: two mock backends (the project's own
`mock-backend` binary) and one router pointing at both, on free ports of
127.0.0.1. Every process started here is stopped at teardown (terminate, wait,
kill if needed), and also at interpreter exit as a safety net.

Binaries are found in $NOMYO_BIN_DIR, default <repo>/target/debug.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("NOMYO_BIN_DIR") or REPO / "target" / "debug")
ROUTER_BIN = BIN_DIR / "nomyo-router"
MOCK_BIN = BIN_DIR / "mock-backend"

READY_TIMEOUT = 10.0  # seconds, for each process
STOP_TIMEOUT = 5.0  # seconds between terminate and kill

# Models of the two backends (see the brief of the suite).
MOCK_A_ARGS = ["--models", "llama3:latest,nomic-embed-text:latest", "--version", "0.6.5"]
MOCK_B_ARGS = ["--models", "llama3:latest,qwen2:7b", "--version", "0.5.12", "--loaded", "qwen2:7b"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def child_env() -> dict[str, str]:
    """The environment for children, without settings that would change the router or the clients."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOMYO_ROUTER_")}
    for k in ("RUST_LOG", "OLLAMA_HOST", "OLLAMA_API_KEY"):
        env.pop(k, None)
    return env


_STARTED: list[subprocess.Popen] = []


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            proc.terminate()
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
        except ProcessLookupError:
            pass


def stop_all() -> None:
    while _STARTED:
        proc = _STARTED.pop()
        try:
            stop_process(proc)
        except Exception:  # keep stopping the others
            pass


atexit.register(stop_all)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "<no log>"


def spawn(args: list[str], log: Path) -> subprocess.Popen:
    out = open(log, "wb")
    try:
        proc = subprocess.Popen(
            [str(a) for a in args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=log.parent,
        )
    finally:
        out.close()  # the child keeps its own descriptor
    _STARTED.append(proc)
    return proc


@dataclass
class Mock:
    url: str
    port: int
    proc: subprocess.Popen
    log: Path


@dataclass
class Stack:
    base_url: str
    router: subprocess.Popen
    router_log: Path
    mocks: list[Mock] = field(default_factory=list)

    @property
    def mock_urls(self) -> list[str]:
        return [m.url for m in self.mocks]


def start_mock(workdir: Path, name: str, args: list[str]) -> Mock:
    """Starts a mock backend and waits for its 'listening' line (retries on a port race)."""
    last_error = ""
    for attempt in range(3):
        port = free_port()
        log = workdir / f"{name}.{attempt}.log"
        proc = spawn([MOCK_BIN, "--host", "127.0.0.1", "--port", str(port), *args], log)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if "mock-backend listening" in log.read_text(errors="replace"):
                return Mock(f"http://127.0.0.1:{port}", port, proc, log)
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        stop_process(proc)
        last_error = f"mock-backend {name} on port {port} not ready (exit={proc.returncode}):\n{_tail(log)}"
    raise RuntimeError(last_error)


def wait_router_ready(proc: subprocess.Popen, base_url: str, log: Path, n_endpoints: int) -> None:
    """Polls GET /health until 200 and every endpoint reports ok (so merged listings are complete)."""
    deadline = time.monotonic() + READY_TIMEOUT
    last = "no answer"
    with httpx.Client(timeout=1.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"router exited early (exit={proc.returncode}):\n{_tail(log)}")
            try:
                r = http.get(f"{base_url}/health")
                last = f"{r.status_code} {r.text[:500]}"
                if r.status_code == 200:
                    eps = (r.json() or {}).get("endpoints") or {}
                    if len(eps) == n_endpoints and all(e.get("status") == "ok" for e in eps.values()):
                        return
            except (httpx.HTTPError, ValueError) as e:
                last = repr(e)
            time.sleep(0.05)
    raise RuntimeError(f"router not ready after {READY_TIMEOUT}s (last /health: {last}):\n{_tail(log)}")


@contextlib.contextmanager
def running_stack(workdir: Path, mock_specs: list[tuple[str, list[str]]], config_for, extra_endpoints: int = 0):
    """Starts the mocks, then the router with `config_for(mocks)` as its YAML; stops all it started.
    `extra_endpoints`: endpoints of that YAML that are not mocks (backends the caller already runs),
    so that readiness also waits for them."""
    for b in (ROUTER_BIN, MOCK_BIN) if mock_specs else (ROUTER_BIN,):
        if not b.is_file():
            pytest.fail(f"binary {b} not found: build it, or set NOMYO_BIN_DIR")
    started: list[subprocess.Popen] = []
    try:
        mocks = []
        for name, args in mock_specs:
            mock = start_mock(workdir, name, args)
            started.append(mock.proc)
            mocks.append(mock)
        config = workdir / "router.yaml"
        config.write_text(config_for(mocks))
        router_log = workdir / "router.log"
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        router = spawn(
            [ROUTER_BIN, "--config", config, "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2", "--log-level", "warn"],
            router_log,
        )
        started.append(router)
        wait_router_ready(router, base_url, router_log, len(mocks) + extra_endpoints)
        yield Stack(base_url, router, router_log, mocks)
        if router.poll() is not None:
            pytest.fail(f"router died during the tests (exit={router.returncode}):\n{_tail(router_log)}")
    finally:
        for proc in reversed(started):
            try:
                stop_process(proc)
            finally:
                if proc in _STARTED:
                    _STARTED.remove(proc)


@pytest.fixture(scope="session")
def router_stack(tmp_path_factory) -> Stack:
    """The router in front of two Ollama mocks."""
    def config(mocks):
        return "endpoints:\n" + "".join(f"  - {m.url}\n" for m in mocks) + "max_concurrent_connections: 2\n"

    with running_stack(tmp_path_factory.mktemp("nomyo-stack"), [("mock-a", MOCK_A_ARGS), ("mock-b", MOCK_B_ARGS)], config) as s:
        yield s


@pytest.fixture(scope="session")
def router_url(router_stack: Stack) -> str:
    return router_stack.base_url


OPENAI_MOCK_ARGS = ["--kind", "openai", "--models", "gpt-4o-mini,text-embedding-3-small"]
LLAMA_MOCK_ARGS = ["--kind", "llama-server", "--models", "unsloth/Qwen3-0.6B-GGUF:Q4_K_M"]


@pytest.fixture(scope="session")
def openai_stack(tmp_path_factory) -> Stack:
    """The router in front of an OpenAI-compatible mock and a llama-server mock only: every Ollama
    request to it is translated."""
    def config(mocks):
        oai, llama = mocks
        return (
            f"endpoints:\n  - {oai.url}/v1\n"
            f"llama_server_endpoints:\n  - {llama.url}\n"
            "max_concurrent_connections: 2\n"
            f"api_keys:\n  \"{oai.url}/v1\": sk-upstream\n"
        )

    specs = [("mock-openai", OPENAI_MOCK_ARGS), ("mock-llama", LLAMA_MOCK_ARGS)]
    with running_stack(tmp_path_factory.mktemp("nomyo-openai-stack"), specs, config) as s:
        yield s


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def openai_client(base_url: str) -> openai.OpenAI:
    """The official OpenAI SDK pointed at the router's /v1."""
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=10)


@pytest.fixture(params=["ollama", "openai"])
def stack_and_model(request, router_stack, openai_stack):
    """The router in front of Ollama mocks or of OpenAI-compatible ones, with a model of each."""
    if request.param == "ollama":
        return router_stack.base_url, "llama3"
    return openai_stack.base_url, "gpt-4o-mini"
