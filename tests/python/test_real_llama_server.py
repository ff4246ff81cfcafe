"""The official `ollama` and `openai` clients against a REAL llama.cpp llama-server behind the router.

The server is llama.cpp's own `llama-server` (built from PyPI's llama-cpp-python 0.3.16 sdist) serving
a tiny random-weight llama GGUF (tests/python/make_tiny_gguf.py): the text is gibberish, but the
server, the inference, the token counts and the wire format are real. Both are built and cached by
`bash scripts/setup-llama-server.sh`; this file fails (never skips) when they are missing.

The model never emits </s>, so every answer ends by length: done_reason/finish_reason "length" and
exactly the requested number of tokens.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import httpx
import ollama
import openai
import pytest
from conftest import _STARTED, _tail, free_port, running_stack, spawn, stop_process

CACHE = Path(
    os.environ.get("NOMYO_LLAMA_CACHE")
    or Path.home() / ".cache" / "nomyo-router" / "llama-server-0.3.16"
)
LLAMA_BIN = CACHE / "llama-server"
LLAMA_MODEL = CACHE / "tiny.gguf"
ALIAS = "tiny-random-llama"
LLAMA_READY_TIMEOUT = 30.0
MESSAGES = [{"role": "user", "content": "hello, how are you?"}]


def start_llama_server(workdir: Path, args: tuple[str, ...] = ("-c", "2048", "-np", "2")) -> tuple[str, subprocess.Popen]:
    """Starts llama-server on a free port and waits for GET /health = 200 (retries on a port race)."""
    last_error = ""
    for attempt in range(3):
        port = free_port()
        log = workdir / f"llama-server.{attempt}.log"
        proc = spawn(
            [LLAMA_BIN, "-m", LLAMA_MODEL, "--alias", ALIAS, "--host", "127.0.0.1", "--port", str(port),
             "--jinja", *args],
            log,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + LLAMA_READY_TIMEOUT
        last = "no answer"
        with httpx.Client(timeout=1.0, trust_env=False) as http:
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    r = http.get(f"{url}/health")
                    last = f"{r.status_code} {r.text[:200]}"
                    if r.status_code == 200:
                        return url, proc
                except httpx.HTTPError as e:
                    last = repr(e)
                time.sleep(0.05)
        stop_process(proc)
        _STARTED.remove(proc)
        last_error = f"llama-server on port {port} not ready (exit={proc.returncode}, last /health: {last}):\n{_tail(log)}"
    pytest.fail(last_error)


@contextlib.contextmanager
def llama_stack(workdir: Path, extra_yaml: str, args: tuple[str, ...] = ("-c", "2048", "-np", "2")):
    """A real llama-server started with `args`, and the router in front of it alone."""
    url, proc = start_llama_server(workdir, args)
    try:
        def config(_mocks):
            return f"endpoints: []\nllama_server_endpoints:\n  - {url}\n{extra_yaml}"

        with running_stack(workdir, [], config, extra_endpoints=1) as stack:
            yield stack
    finally:
        stop_process(proc)
        if proc in _STARTED:
            _STARTED.remove(proc)


@pytest.fixture(scope="session")
def real_llama_stack(tmp_path_factory):
    """A real llama-server, and the router in front of it alone (`llama_server_endpoints`)."""
    missing = [str(p) for p in (LLAMA_BIN, LLAMA_MODEL) if not p.is_file()]
    if missing:
        pytest.fail(
            f"real llama-server test assets missing: {', '.join(missing)}. "
            "Run `bash scripts/setup-llama-server.sh` first (builds llama-server and the tiny model, "
            "about 4 minutes once, then cached), or set NOMYO_LLAMA_CACHE to where they are."
        )
    with llama_stack(tmp_path_factory.mktemp("nomyo-real-llama"), "max_concurrent_connections: 2\n") as stack:
        yield stack


@pytest.fixture(scope="module")
def small_context_stack(tmp_path_factory):
    """A real llama-server with a 1024-token context that refuses longer requests (no context
    shift), and the router in front of it."""
    args = ("-c", "1024", "-np", "1", "--no-context-shift")
    with llama_stack(tmp_path_factory.mktemp("nomyo-small-ctx"), "", args) as stack:
        yield stack


@pytest.fixture
def client(real_llama_stack):
    return ollama.Client(host=real_llama_stack.base_url, timeout=30)


@pytest.fixture
def oai(real_llama_stack):
    return openai.OpenAI(base_url=f"{real_llama_stack.base_url}/v1", api_key="unused", timeout=30, max_retries=0)


def test_tags_and_ps_show_the_model(client):
    # Listed with a tag, as Ollama lists its own models (and as routing accepts them).
    listed = [m.model for m in client.list().models]
    assert f"{ALIAS}:latest" in listed, listed
    loaded = [m.model for m in client.ps().models]
    assert f"{ALIAS}:latest" in loaded, loaded


def test_show_tells_the_context_window_and_capabilities(client):
    shown = client.show(ALIAS)
    # The server runs -c 2048 over -np 2 slots: one request can use 1024 tokens.
    assert shown.modelinfo["general.architecture"] == "llama-server"
    assert shown.modelinfo["llama-server.context_length"] == 1024
    assert shown.modelinfo["general.context_length_trained"] > 0
    assert shown.parameters == "num_ctx 1024"
    assert "completion" in shown.capabilities
    assert shown.template


def test_ollama_chat_whole(client):
    r = client.chat(model=ALIAS, messages=MESSAGES, options={"num_predict": 8}, stream=False)
    assert r.done is True
    assert r.done_reason == "length"
    assert r.eval_count == 8
    assert isinstance(r.message.content, str) and r.message.content
    assert r.message.role == "assistant"
    assert r.prompt_eval_count and r.prompt_eval_count > 0


def test_ollama_chat_streamed(client):
    chunks = list(client.chat(model=ALIAS, messages=MESSAGES, options={"num_predict": 8}, stream=True))
    assert len(chunks) >= 3, chunks
    assert "".join(c.message.content or "" for c in chunks)
    assert all(not c.done for c in chunks[:-1])
    last = chunks[-1]
    assert last.done is True
    assert last.done_reason == "length"
    assert last.eval_count == 8


@pytest.mark.parametrize("stream", [False, True])
def test_ollama_generate(client, stream):
    answer = client.generate(model=ALIAS, prompt="Once upon a time", options={"num_predict": 6}, stream=stream)
    chunks = list(answer) if stream else [answer]
    assert "".join(c.response or "" for c in chunks)
    assert all(not c.done for c in chunks[:-1])
    last = chunks[-1]
    assert last.done is True
    assert last.done_reason == "length"
    assert last.eval_count == 6


def test_openai_chat_whole(oai):
    r = oai.chat.completions.create(model=ALIAS, messages=MESSAGES, max_tokens=5)
    assert len(r.choices) == 1
    assert r.choices[0].finish_reason == "length"
    assert r.choices[0].message.content
    assert r.usage is not None and r.usage.completion_tokens == 5
    assert r.usage.prompt_tokens > 0


def test_openai_chat_streamed_with_usage(oai):
    stream = oai.chat.completions.create(
        model=ALIAS, messages=MESSAGES, max_tokens=5, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert len(chunks) >= 3, chunks
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == ["length"], finishes
    assert "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert chunks[-1].usage is not None, chunks[-1]
    assert chunks[-1].usage.completion_tokens == 5


def test_alias_with_latest_answers(client):
    r = client.chat(model=f"{ALIAS}:latest", messages=MESSAGES, options={"num_predict": 4}, stream=False)
    assert r.done is True and r.done_reason == "length"
    assert r.eval_count == 4
    assert r.message.content


def token_total(stack) -> int:
    r = httpx.get(f"{stack.base_url}/api/token_counts", timeout=10, trust_env=False)
    assert r.status_code == 200, r.text
    rows = r.json()["breakdown"]
    return sum(row["total_tokens"] for row in rows)


def test_tokens_are_counted_from_the_server_numbers(real_llama_stack, client, oai):
    before = token_total(real_llama_stack)
    r = client.chat(model=ALIAS, messages=MESSAGES, options={"num_predict": 8}, stream=False)
    assert token_total(real_llama_stack) - before == r.prompt_eval_count + 8
    # An OpenAI stream without usage: llama-server is asked for it (it reports usage on its last
    # chunk either way), and no usage-only chunk reaches the client.
    before = token_total(real_llama_stack)
    chunks = list(oai.chat.completions.create(model=ALIAS, messages=MESSAGES, max_tokens=5, stream=True))
    assert chunks and all(c.choices for c in chunks), chunks[-1]
    counted = token_total(real_llama_stack) - before
    asked = list(oai.chat.completions.create(
        model=ALIAS, messages=MESSAGES, max_tokens=5, stream=True, stream_options={"include_usage": True}))
    usage = asked[-1].usage
    assert usage is not None and usage.completion_tokens == 5
    assert counted == usage.prompt_tokens + 5


def test_moe_through_the_real_server(client, oai):
    # Three candidates, three critiques and the final answer, all on the real server.
    r = client.chat(model=f"moe-{ALIAS}", messages=MESSAGES, options={"num_predict": 8}, stream=False)
    assert r.done is True
    assert r.message.content
    chunks = list(oai.chat.completions.create(
        model=f"moe-{ALIAS}", messages=MESSAGES, max_tokens=8, stream=True))
    assert chunks[-1].choices == [] or chunks[-1].choices[0].finish_reason is not None
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def long_conversation(turns: int) -> list[dict]:
    messages = [{"role": "system", "content": "be brief"}]
    for i in range(turns):
        role = "user" if i % 2 == 0 else "assistant"
        messages.append({"role": role, "content": f"turn {i} " + "hello world " * 20})
    return messages


def upstream_requests(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics", trust_env=False).text
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith("nomyo_router_upstream_requests_total{"))


def test_a_conversation_longer_than_the_context_is_cut_to_fit(small_context_stack):
    base = small_context_stack.base_url
    body = {"model": ALIAS, "messages": long_conversation(40), "stream": False, "options": {"num_predict": 4}}
    with httpx.Client(base_url=base, trust_env=False, timeout=60) as http:
        r = http.post("/api/chat", json=body)
        assert r.status_code == 200, r.text
        dropped = int(r.headers["x-router-context-trimmed"])
        assert 0 < dropped < 40
        assert r.json()["done"] is True
        # Learned: the same conversation is cut before it is sent, in one upstream request.
        before = upstream_requests(base)
        r = http.post("/api/chat", json=body)
        assert r.status_code == 200, r.text
        assert int(r.headers["x-router-context-trimmed"]) > 0
        assert upstream_requests(base) - before == 1
    # The official clients read the answers, streamed too.
    client = ollama.Client(host=base, timeout=60)
    chunks = list(client.chat(model=ALIAS, messages=long_conversation(40), options={"num_predict": 4}, stream=True))
    assert chunks[-1].done is True
    oai = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", timeout=60, max_retries=0)
    answer = oai.chat.completions.create(model=ALIAS, messages=long_conversation(40), max_tokens=4)
    assert answer.choices[0].finish_reason == "length"
