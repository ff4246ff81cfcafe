"""API edges that third-party clients hit, each with the official client that hit it: model ids with
a slash or a colon through `models.retrieve`, llama-server short names, the router key refused as
OpenAI clients expect (401 → AuthenticationError), and Ollama listings whose names routing serves."""

import httpx
import ollama
import openai
import pytest

from conftest import OPENAI_MOCK_ARGS, openai_client, running_stack

LLAMA_MODEL = "unsloth/Qwen3-0.6B-GGUF:Q4_K_M"


def test_models_retrieve_finds_ids_with_a_slash_a_colon_and_short_names(openai_stack):
    client = openai_client(openai_stack.base_url)
    assert client.models.retrieve(LLAMA_MODEL).id == LLAMA_MODEL
    # llama-server's short name, which /v1/chat/completions accepts too.
    assert client.models.retrieve("Qwen3-0.6B-GGUF").id == LLAMA_MODEL
    assert client.models.retrieve("gpt-4o-mini:latest").id == "gpt-4o-mini"
    # Percent-encoded, as newer SDKs send them.
    with httpx.Client(base_url=openai_stack.base_url, trust_env=False, timeout=5) as http:
        for path in ["unsloth%2FQwen3-0.6B-GGUF%3AQ4_K_M", "gpt-4o-mini%3Alatest"]:
            r = http.get(f"/v1/models/{path}")
            assert r.status_code == 200, (path, r.text)
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("no-such/model:x")
    assert "no-such/model:x" in e.value.message


def test_ollama_listing_names_are_names_routing_serves(openai_stack):
    client = ollama.Client(host=openai_stack.base_url)
    names = [m.model for m in client.list().models]
    # An OpenAI model id has no tag: listed as Ollama lists its own, with `:latest`.
    assert "gpt-4o-mini:latest" in names and "gpt-4o-mini" not in names
    assert LLAMA_MODEL in names
    for name in ["gpt-4o-mini:latest", LLAMA_MODEL]:
        answer = client.chat(model=name, messages=[{"role": "user", "content": "hi"}])
        assert answer.message.content


def test_a_wrong_router_key_is_an_authentication_error_for_openai_clients(tmp_path):
    def config(mocks):
        return f"endpoints:\n  - {mocks[0].url}/v1\nnomyo-router-api-key: right\n"

    with running_stack(tmp_path, [("mock-openai", OPENAI_MOCK_ARGS)], config) as stack:
        wrong = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as e:
            wrong.models.list()
        assert e.value.status_code == 401
        right = openai.OpenAI(base_url=f"{stack.base_url}/v1", api_key="right", max_retries=0)
        assert [m.id for m in right.models.list().data]
        # Ollama's routes keep the reference router's 403 for a wrong key.
        with pytest.raises(ollama.ResponseError) as e:
            ollama.Client(host=stack.base_url, headers={"Authorization": "Bearer wrong"}).list()
        assert e.value.status_code == 403
