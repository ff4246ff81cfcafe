"""The official `openai` SDK against the router: Ollama backends behind it (their own /v1 API, bytes
unchanged) and OpenAI-compatible backends (byte-transparent)."""

import openai
import pytest
from conftest import WEATHER_TOOL, openai_client as client


def test_chat(stack_and_model):
    base, model = stack_and_model
    r = client(base).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "tok0 tok1 tok2 tok3 tok4 "
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.completion_tokens == 5


def test_streaming_chat_with_usage(stack_and_model):
    base, model = stack_and_model
    stream = client(base).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "tok0 tok1 tok2 tok3 tok4 "
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_tool_calls_stream_and_whole(stack_and_model):
    base, model = stack_and_model
    c = client(base)
    r = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL])
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert '"city"' in call.function.arguments
    assert r.choices[0].finish_reason == "tool_calls"
    stream = c.chat.completions.create(model=model, messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER_TOOL], stream=True)
    args, names = "", []
    for chunk in stream:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if tc.function and tc.function.name:
                names.append(tc.function.name)
            args += (tc.function.arguments or "") if tc.function else ""
    assert names == ["get_weather"]
    assert args == '{"city":"Tokyo","unit":"celsius"}'


def test_embeddings(router_stack, openai_stack):
    for base, model in ((router_stack.base_url, "nomic-embed-text"), (openai_stack.base_url, "text-embedding-3-small")):
        r = client(base).embeddings.create(model=model, input=["a", "b", "c"])
        assert [d.index for d in r.data] == [0, 1, 2]
        assert all(len(d.embedding) == 8 for d in r.data)


def test_models_list_and_retrieve(router_stack, openai_stack):
    ids = {m.id for m in client(router_stack.base_url).models.list()}
    assert {"llama3:latest", "qwen2:7b", "nomic-embed-text:latest"} <= ids
    ids = {m.id for m in client(openai_stack.base_url).models.list()}
    assert {"gpt-4o-mini", "unsloth/Qwen3-0.6B-GGUF:Q4_K_M"} <= ids
    assert client(router_stack.base_url).models.retrieve("qwen2:7b").id == "qwen2:7b"
    with pytest.raises(openai.NotFoundError):
        client(router_stack.base_url).models.retrieve("missing-model")


def test_unknown_model_is_not_found(stack_and_model):
    base, _ = stack_and_model
    with pytest.raises(openai.NotFoundError) as e:
        client(base).chat.completions.create(model="missing-model", messages=[{"role": "user", "content": "hi"}])
    assert "missing-model" in str(e.value)


def test_legacy_completions(stack_and_model):
    base, model = stack_and_model
    r = client(base).completions.create(model=model, prompt="say", max_tokens=5)
    assert r.choices[0].text == "tok0 tok1 tok2 tok3 tok4 "
