"""The official `ollama` package against models that live on OpenAI-compatible and llama-server
backends: every request and answer is translated (SPEC §3), streaming included."""

import ollama
import pytest
from conftest import WEATHER_TOOL

TEXT = "tok0 tok1 tok2 tok3 tok4 "
LLAMA = "unsloth/Qwen3-0.6B-GGUF:Q4_K_M"

@pytest.fixture
def client(openai_stack):
    return ollama.Client(host=openai_stack.base_url, timeout=10)


@pytest.mark.parametrize("model", ["gpt-4o-mini", LLAMA, "Qwen3-0.6B-GGUF"])
def test_chat_whole_and_streamed(client, model):
    r = client.chat(model=model, messages=[{"role": "user", "content": "hi"}], stream=False)
    assert r.message.content == TEXT
    assert r.done and r.done_reason == "stop"
    assert r.eval_count == 5
    chunks = list(client.chat(model=model, messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(c.message.content for c in chunks) == TEXT
    assert chunks[-1].done and chunks[-1].done_reason == "stop"
    assert chunks[-1].eval_count == 5
    assert all(not c.done for c in chunks[:-1])


def test_generate_whole_and_streamed(client):
    r = client.generate(model="gpt-4o-mini", prompt="hi", stream=False)
    assert r.response == TEXT and r.done
    chunks = list(client.generate(model="gpt-4o-mini", prompt="hi", stream=True))
    assert "".join(c.response for c in chunks) == TEXT
    assert chunks[-1].done


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_arrive_whole(client, stream):
    answer = client.chat(model="gpt-4o-mini", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL], stream=stream)
    chunks = list(answer) if stream else [answer]
    calls = [tc for c in chunks for tc in (c.message.tool_calls or [])]
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert dict(calls[0].function.arguments) == {"city": "Tokyo", "unit": "celsius"}
    assert chunks[-1].done


def test_thinking_from_reasoning_content(client):
    chunks = list(client.chat(model=LLAMA, messages=[{"role": "user", "content": "hi"}], think=True, stream=True))
    assert "".join(c.message.thinking or "" for c in chunks) == "think0 think1 "
    assert "".join(c.message.content for c in chunks) == TEXT
    r = client.chat(model=LLAMA, messages=[{"role": "user", "content": "hi"}], think=True, stream=False)
    assert r.message.thinking == "think0 think1 "


def test_embed_returns_every_vector(client):
    r = client.embed(model="text-embedding-3-small", input=["a", "b", "c"])
    assert len(r.embeddings) == 3 and all(len(v) == 8 for v in r.embeddings)
    legacy = client.embeddings(model="text-embedding-3-small", prompt="a")
    assert list(legacy.embedding) == pytest.approx(list(r.embeddings[0]))


def test_listing_shows_openai_models_in_ollama_form(client):
    names = {m.model for m in client.list().models}
    # An untagged OpenAI id is listed with `:latest`, as Ollama lists its own models.
    assert {"gpt-4o-mini:latest", LLAMA} <= names


def test_unknown_model_is_404_in_ollama_form(client):
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 404
