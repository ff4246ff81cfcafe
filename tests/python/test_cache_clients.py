"""The official `ollama` and `openai` clients read cached answers (SPEC §6.5): one stored entry is
replayed as JSON, as an NDJSON stream and as an SSE stream, with reasoning, tool calls (ids and
arguments), finish reason and token counts as the upstream sent them, and without an upstream
request."""

import httpx
import ollama
import openai
import pytest
from conftest import WEATHER_TOOL, running_stack


@pytest.fixture(scope="module")
def cached_stack(tmp_path_factory):
    def config(mocks):
        ollama_mock, openai_mock = mocks
        return (
            f"endpoints:\n  - {ollama_mock.url}\n  - {openai_mock.url}/v1\n"
            "cache_enabled: true\ncache_backend: memory\n"
        )

    specs = [
        ("mock-ollama", ["--models", "llama3:latest"]),
        ("mock-openai", ["--kind", "openai", "--models", "gpt-4o-mini"]),
    ]
    with running_stack(tmp_path_factory.mktemp("nomyo-cache"), specs, config) as s:
        yield s


def upstream_requests(stack) -> int:
    return sum(httpx.get(f"{url}/mock/stats").json()["inference"] for url in stack.mock_urls)


def test_ollama_client_reads_one_entry_whole_and_streamed(cached_stack):
    client = ollama.Client(host=cached_stack.base_url, timeout=10)
    messages = [{"role": "user", "content": "why is the sky blue? (ollama)"}]
    first = client.chat(model="llama3", messages=messages, think=True, stream=False)
    assert first.message.content and first.message.thinking
    before = upstream_requests(cached_stack)
    chunks = list(client.chat(model="llama3", messages=messages, think=True, stream=True))
    assert len(chunks) > 2, "a replayed stream comes in deltas"
    assert "".join(c.message.content or "" for c in chunks) == first.message.content
    assert "".join(c.message.thinking or "" for c in chunks) == first.message.thinking
    assert chunks[-1].done and chunks[-1].done_reason == first.done_reason
    assert all(not c.done for c in chunks[:-1])
    assert chunks[-1].eval_count == first.eval_count
    assert chunks[-1].prompt_eval_count == first.prompt_eval_count
    again = client.chat(model="llama3", messages=messages, think=True, stream=False)
    assert again.message.content == first.message.content
    assert upstream_requests(cached_stack) == before, "hits do not go upstream"


@pytest.mark.parametrize("stream_first", [False, True])
def test_ollama_client_tool_calls_replay(cached_stack, stream_first):
    client = ollama.Client(host=cached_stack.base_url, timeout=10)
    messages = [{"role": "user", "content": f"weather in Tokyo? {stream_first}"}]
    def calls(stream):
        answer = client.chat(model="llama3", messages=messages, tools=[WEATHER_TOOL], stream=stream)
        chunks = list(answer) if stream else [answer]
        return [tc for c in chunks for tc in (c.message.tool_calls or [])], chunks[-1]
    original, last = calls(stream_first)
    before = upstream_requests(cached_stack)
    replayed, replayed_last = calls(not stream_first)
    assert upstream_requests(cached_stack) == before
    assert [(c.function.name, dict(c.function.arguments)) for c in replayed] == \
        [(c.function.name, dict(c.function.arguments)) for c in original]
    assert original and original[0].function.arguments["city"] == "Tokyo"
    assert replayed_last.done_reason == last.done_reason


def test_openai_client_reads_one_entry_whole_and_streamed(cached_stack):
    client = openai.OpenAI(base_url=f"{cached_stack.base_url}/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "why is the sky blue? (openai)"}]
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    assert raw.headers["x-cache"] == "miss"
    first = raw.parse()
    before = upstream_requests(cached_stack)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True})
    assert raw.headers["x-cache"] == "hit"
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == first.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [first.choices[0].finish_reason]
    usage = [c.usage for c in chunks if c.usage]
    assert usage and usage[-1].completion_tokens == first.usage.completion_tokens
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert whole.choices[0].message.content == first.choices[0].message.content
    assert upstream_requests(cached_stack) == before


@pytest.mark.parametrize("stream_first", [False, True])
def test_openai_client_tool_call_ids_replay(cached_stack, stream_first):
    client = openai.OpenAI(base_url=f"{cached_stack.base_url}/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": f"weather? {stream_first}"}]
    def calls(stream):
        if not stream:
            r = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL])
            return [(c.id, c.function.name, c.function.arguments) for c in r.choices[0].message.tool_calls]
        parts = {}
        for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=[WEATHER_TOOL], stream=True):
            for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                p = parts.setdefault(tc.index, {"id": None, "name": "", "args": ""})
                p["id"] = tc.id or p["id"]
                p["name"] += tc.function.name or ""
                p["args"] += tc.function.arguments or ""
        return [(p["id"], p["name"], p["args"]) for _, p in sorted(parts.items())]
    import json
    original = calls(stream_first)
    before = upstream_requests(cached_stack)
    replayed = calls(not stream_first)
    assert upstream_requests(cached_stack) == before
    assert [(i, n, json.loads(a)) for i, n, a in replayed] == [(i, n, json.loads(a)) for i, n, a in original]
    assert original[0][0], "the upstream's tool-call id is kept"


def test_openai_reasoning_replays(cached_stack):
    client = openai.OpenAI(base_url=f"{cached_stack.base_url}/v1", api_key="unused", max_retries=0)
    messages = [{"role": "user", "content": "think about it"}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=messages, reasoning_effort="low")
    reasoning = (first.choices[0].message.model_extra or {}).get("reasoning")
    assert reasoning, first
    streamed = "".join(
        (c.choices[0].delta.model_extra or {}).get("reasoning") or ""
        for c in client.chat.completions.create(model="gpt-4o-mini", messages=messages,
                                                reasoning_effort="low", stream=True)
        if c.choices)
    assert streamed == reasoning
