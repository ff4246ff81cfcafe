"""Token accounting seen through the official clients: every answer a client gets is counted with
the numbers the backend reported, an OpenAI stream included when its client did not ask for usage
(the router asks the backend and hides the usage chunk: the client sees the stream it asked for)."""

import httpx
import ollama
from conftest import openai_client as oai

MESSAGES = [{"role": "user", "content": "one two three"}]


def total(base_url: str) -> int:
    r = httpx.get(f"{base_url}/api/token_counts", timeout=10, trust_env=False)
    assert r.status_code == 200, r.text
    return r.json()["total_tokens"]


def test_ollama_client_streamed_and_whole(stack_and_model):
    base, model = stack_and_model
    client = ollama.Client(host=base, timeout=10)
    before = total(base)
    last = list(client.chat(model=model, messages=MESSAGES, stream=True))[-1]
    whole = client.generate(model=model, prompt="one two three", stream=False)
    reported = last.prompt_eval_count + last.eval_count + whole.prompt_eval_count + whole.eval_count
    assert reported > 0
    assert total(base) - before == reported


def test_openai_stream_without_usage_is_counted_and_the_client_sees_no_usage(stack_and_model):
    base, model = stack_and_model
    client = oai(base)
    before = total(base)
    chunks = list(client.chat.completions.create(model=model, messages=MESSAGES, stream=True))
    assert chunks and all(c.choices for c in chunks), "no usage-only chunk reaches the client"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "tok0 tok1 tok2 tok3 tok4 "
    counted = total(base) - before
    # The same request with usage asked for: the numbers the backend reports for it.
    asked = list(client.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    usage = asked[-1].usage
    assert usage is not None and usage.completion_tokens == 5
    assert counted == usage.prompt_tokens + usage.completion_tokens


def test_openai_embeddings_are_counted(router_stack):
    base = router_stack.base_url
    before = total(base)
    r = oai(base).embeddings.create(model="nomic-embed-text", input=["a", "b", "c"])
    assert r.usage.prompt_tokens == 3
    assert total(base) - before == 3
