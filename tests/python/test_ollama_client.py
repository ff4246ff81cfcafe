"""The router seen through the official `ollama` Python client (and plain httpx).

Backends (see conftest.py):
  A: llama3:latest, nomic-embed-text:latest, version 0.6.5, all loaded
  B: llama3:latest, qwen2:7b, version 0.5.12, only qwen2:7b loaded
Each answer of the mock is 5 tokens "tok0 " .. "tok4 "; embeddings have 8 dimensions.
"""

from __future__ import annotations

import httpx
import ollama
import pytest

EXPECTED_TEXT = "tok0 tok1 tok2 tok3 tok4 "
MESSAGES = [{"role": "user", "content": "Say something."}]
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def client(router_url: str) -> ollama.Client:
    c = ollama.Client(host=router_url, timeout=TIMEOUT, trust_env=False)
    yield c
    c._client.close()


@pytest.fixture(scope="module")
def http(router_url: str) -> httpx.Client:
    with httpx.Client(base_url=router_url, timeout=TIMEOUT, trust_env=False) as c:
        yield c


# --- inference --------------------------------------------------------------------------------


def test_chat_non_stream(client):
    r = client.chat(model="llama3", messages=MESSAGES, stream=False)
    assert r.message.role == "assistant"
    assert r.message.content == EXPECTED_TEXT
    assert r.done is True
    assert r.eval_count == 5


def test_chat_stream(client):
    chunks = list(client.chat(model="llama3", messages=MESSAGES, stream=True))
    assert len(chunks) >= 2
    assert "".join(c.message.content or "" for c in chunks) == EXPECTED_TEXT
    assert all(c.done is False for c in chunks[:-1])
    last = chunks[-1]
    assert last.done is True
    assert last.done_reason == "stop"
    assert last.eval_count == 5


def test_generate_non_stream(client):
    r = client.generate(model="llama3", prompt="Say something.", stream=False)
    assert r.response == EXPECTED_TEXT
    assert r.done is True
    assert r.eval_count == 5


def test_generate_stream(client):
    chunks = list(client.generate(model="llama3", prompt="Say something.", stream=True))
    assert len(chunks) >= 2
    assert "".join(c.response or "" for c in chunks) == EXPECTED_TEXT
    assert all(c.done is False for c in chunks[:-1])
    assert chunks[-1].done is True
    assert chunks[-1].done_reason == "stop"


def test_embed_two_inputs(client):
    r = client.embed(model="nomic-embed-text", input=["first text", "second text"])
    assert len(r.embeddings) == 2
    assert all(len(v) == 8 for v in r.embeddings)
    assert all(isinstance(x, float) for v in r.embeddings for x in v)
    # Deterministic: the same inputs give the same vectors.
    again = client.embed(model="nomic-embed-text", input=["first text", "second text"])
    assert [list(v) for v in again.embeddings] == [list(v) for v in r.embeddings]


def test_embeddings_legacy(client):
    r = client.embeddings(model="nomic-embed-text", prompt="first text")
    assert len(r.embedding) == 8
    # The legacy route embeds the same way as /api/embed.
    new = client.embed(model="nomic-embed-text", input="first text")
    assert list(r.embedding) == pytest.approx(list(new.embeddings[0]))


def test_chat_unknown_model_is_404(client):
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="no-such-model:1b", messages=MESSAGES, stream=False)
    assert err.value.status_code == 404


def test_chat_unknown_model_stream_is_404(client):
    with pytest.raises(ollama.ResponseError) as err:
        for _ in client.chat(model="no-such-model:1b", messages=MESSAGES, stream=True):
            pass
    assert err.value.status_code == 404


# --- listings and metadata --------------------------------------------------------------------


def test_list_merged(client):
    names = [m.model for m in client.list().models]
    for name in ("llama3:latest", "nomic-embed-text:latest", "qwen2:7b"):
        assert names.count(name) == 1, f"{name} should be listed once: {names}"


def test_ps(client):
    names = [m.model for m in client.ps().models]
    assert "qwen2:7b" in names, names
    assert "llama3:latest" in names, names


def test_show(client):
    r = client.show("llama3")
    assert r.modelfile
    assert "llama3" in r.modelfile


def test_version_is_lowest(http):
    # ollama 0.6.1 has no Client.version(): ask the route directly.
    r = http.get("/api/version")
    assert r.status_code == 200
    assert r.json()["version"] == "0.5.12"


# --- model management -------------------------------------------------------------------------


def test_pull_stream(client):
    parts = list(client.pull("llama3", stream=True))
    assert parts, "no progress line"
    assert parts[-1].status == "success"
    assert any(p.total and p.completed is not None for p in parts), [p.status for p in parts]


def test_pull_no_stream(client):
    r = client.pull("llama3", stream=False)
    assert r.status == "success"


def test_copy(client):
    r = client.copy("llama3", "llama3-backup")
    assert r.status == "success"


def test_delete(client):
    # The mock accepts the deletion of any model it advertises and keeps it listed.
    r = client.delete("llama3")
    assert r.status == "success"


def test_delete_unknown_model_is_404(client):
    with pytest.raises(ollama.ResponseError) as err:
        client.delete("no-such-model:1b")
    assert err.value.status_code == 404


# --- plain HTTP -------------------------------------------------------------------------------


def test_root_get(http):
    r = http.get("/")
    assert r.status_code == 200
    assert r.text == "Ollama is running"


def test_root_head(http):
    r = http.head("/")
    assert r.status_code == 200
    assert r.content == b""


def test_chat_has_router_endpoint_header(http, router_stack):
    r = http.post("/api/chat", json={"model": "llama3", "messages": MESSAGES, "stream": False})
    assert r.status_code == 200
    assert r.json()["message"]["content"] == EXPECTED_TEXT
    assert "x-router-endpoint" in r.headers
    assert r.headers["x-router-endpoint"] in router_stack.mock_urls
