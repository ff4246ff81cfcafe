//! Golden tests of whole-response translation, both directions, and of upstream error bodies.

use serde_json::{json, Value};

use crate::translate::response::{
    error_message, ollama_to_openai_response, openai_to_ollama_response,
};
use crate::translate::{OllamaRoute, OpenAiRoute, TranslateError};

fn value(bytes: Vec<u8>) -> Value {
    serde_json::from_slice(&bytes).expect("translated body is JSON")
}

/// An OpenAI chat.completion with reasoning, content and two tool calls (one with unparseable arguments).
const OPENAI_CHAT_RESPONSE: &str = r#"{
  "id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o",
  "system_fingerprint": "fp_1",
  "choices": [{
    "index": 0,
    "message": {
      "role": "assistant", "content": "Checking.", "refusal": null, "reasoning": "User wants weather.",
      "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}},
        {"id": "call_2", "type": "function", "function": {"name": "broken", "arguments": "{\"a\":"}}
      ]
    },
    "logprobs": null, "finish_reason": "tool_calls"
  }],
  "usage": {"prompt_tokens": 30, "completion_tokens": 12, "total_tokens": 42}
}"#;

#[test]
fn openai_chat_response_to_ollama_golden() {
    let out =
        openai_to_ollama_response(OllamaRoute::Chat, OPENAI_CHAT_RESPONSE.as_bytes(), "llama3")
            .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        concat!(
            r#"{"model":"llama3","created_at":"2023-11-14T22:13:20Z","message":{"role":"assistant","content":"Checking.","thinking":"User wants weather.","#,
            r#""tool_calls":[{"id":"call_1","function":{"index":0,"name":"get_weather","arguments":{"city":"Tokyo"}}},"#,
            r#"{"id":"call_2","function":{"index":1,"name":"broken","arguments":{"_raw":"{\"a\":"}}}]},"#,
            r#""done":true,"done_reason":"stop","total_duration":0,"load_duration":0,"prompt_eval_count":30,"prompt_eval_duration":0,"eval_count":12,"eval_duration":0}"#
        )
    );
}

#[test]
fn openai_response_to_ollama_generate_with_reasoning_content_and_timings() {
    let body = json!({
        "id": "c", "object": "chat.completion", "created": 1700000000, "model": "qwen",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "42", "reasoning_content": "think"}, "finish_reason": "length"}],
        "timings": {"prompt_n": 8, "cache_n": 2, "prompt_ms": 4.0, "predicted_n": 6, "predicted_ms": 60.0}
    });
    let out = value(
        openai_to_ollama_response(
            OllamaRoute::Generate,
            body.to_string().as_bytes(),
            "qwen:latest",
        )
        .unwrap(),
    );
    assert_eq!(
        out,
        json!({"model": "qwen:latest", "created_at": "2023-11-14T22:13:20Z", "response": "42", "thinking": "think",
               "done": true, "done_reason": "length", "total_duration": 64_000_000u64, "load_duration": 0,
               "prompt_eval_count": 10, "prompt_eval_duration": 4_000_000u64, "eval_count": 6, "eval_duration": 60_000_000u64})
    );
}

#[test]
fn openai_response_errors() {
    let err = openai_to_ollama_response(
        OllamaRoute::Chat,
        br#"{"error":{"message":"bad key","type":"invalid_request_error"}}"#,
        "m",
    );
    assert_eq!(err, Err(TranslateError::Upstream("bad key".into())));
    let err = openai_to_ollama_response(OllamaRoute::Chat, br#"{"id":"x","choices":[]}"#, "m")
        .unwrap_err();
    assert_eq!(err.status(), 502);
    let err = openai_to_ollama_response(OllamaRoute::Chat, b"<html>", "m").unwrap_err();
    assert!(matches!(err, TranslateError::BadUpstream(_)));
    // Missing usage and created: zero counts and a current timestamp, still a complete answer.
    let out = value(
        openai_to_ollama_response(
            OllamaRoute::Chat,
            br#"{"choices":[{"message":{"content":null}}]}"#,
            "m",
        )
        .unwrap(),
    );
    assert_eq!(out["done"], true);
    assert_eq!(out["message"]["content"], "");
    assert_eq!(out["eval_count"], 0);
    assert!(out["created_at"].as_str().unwrap().ends_with('Z'));
}

/// Embeddings with bare NaN / Infinity / -Infinity tokens and a null, as Python servers write them.
const NAN_EMBEDDINGS: &str = r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,NaN,Infinity,-Infinity,null,-0.25]}],"model":"e5","usage":{"prompt_tokens":3,"total_tokens":3}}"#;

/// A batch of 3 answered out of order.
const BATCH_EMBEDDINGS: &str = r#"{"object":"list","data":[{"object":"embedding","index":2,"embedding":[3.0,3.5]},{"object":"embedding","index":0,"embedding":[1.0,1.5]},{"object":"embedding","index":1,"embedding":[2.0,2.5]}],"model":"e5","usage":{"prompt_tokens":9,"total_tokens":9}}"#;

#[test]
fn embeddings_non_finite_values_become_zero() {
    let out =
        openai_to_ollama_response(OllamaRoute::Embed, NAN_EMBEDDINGS.as_bytes(), "nomic").unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        r#"{"model":"nomic","embeddings":[[0.5,0.0,0.0,0.0,0.0,-0.25]],"total_duration":0,"load_duration":0,"prompt_eval_count":3}"#
    );
    let legacy =
        openai_to_ollama_response(OllamaRoute::Embeddings, NAN_EMBEDDINGS.as_bytes(), "nomic")
            .unwrap();
    assert_eq!(
        String::from_utf8(legacy).unwrap(),
        r#"{"embedding":[0.5,0.0,0.0,0.0,0.0,-0.25]}"#
    );
}

#[test]
fn batch_embeddings_all_vectors_in_index_order() {
    let out = value(
        openai_to_ollama_response(OllamaRoute::Embed, BATCH_EMBEDDINGS.as_bytes(), "nomic")
            .unwrap(),
    );
    assert_eq!(
        out["embeddings"],
        json!([[1.0, 1.5], [2.0, 2.5], [3.0, 3.5]])
    );
    assert_eq!(out["prompt_eval_count"], 9);
    let legacy = value(
        openai_to_ollama_response(
            OllamaRoute::Embeddings,
            BATCH_EMBEDDINGS.as_bytes(),
            "nomic",
        )
        .unwrap(),
    );
    assert_eq!(legacy, json!({"embedding": [1.0, 1.5]}));
    let empty =
        value(openai_to_ollama_response(OllamaRoute::Embeddings, br#"{"data":[]}"#, "n").unwrap());
    assert_eq!(empty, json!({"embedding": []}));
    let b64 = br#"{"data":[{"index":0,"embedding":"AAAAAA=="}]}"#;
    assert!(matches!(
        openai_to_ollama_response(OllamaRoute::Embed, b64, "n"),
        Err(TranslateError::BadUpstream(_))
    ));
}

/// An Ollama /api/chat non-streamed answer with thinking and a tool call without id.
const OLLAMA_CHAT_RESPONSE: &str = r#"{"model":"qwen3","created_at":"2023-11-14T22:13:20.123456Z","message":{"role":"assistant","content":"","thinking":"Need weather.","tool_calls":[{"function":{"index":0,"name":"get_weather","arguments":{"city":"Tokyo"}}}]},"done":true,"done_reason":"stop","total_duration":500,"load_duration":1,"prompt_eval_count":20,"prompt_eval_duration":2,"eval_count":10,"eval_duration":3}"#;

#[test]
fn ollama_chat_response_to_openai() {
    let out = value(
        ollama_to_openai_response(OpenAiRoute::Chat, OLLAMA_CHAT_RESPONSE.as_bytes(), "gpt-4o")
            .unwrap(),
    );
    let id = out["id"].as_str().unwrap();
    assert!(id.starts_with("chatcmpl-") && id.len() > 9);
    let call_id = out["choices"][0]["message"]["tool_calls"][0]["id"]
        .as_str()
        .unwrap();
    assert!(call_id.starts_with("call_") && call_id.len() > 5);
    assert_eq!(
        out,
        json!({
            "id": id, "object": "chat.completion", "created": 1_700_000_000, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "reasoning": "Need weather.",
                "tool_calls": [{"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\"}"}}]},
                "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
        })
    );
}

#[test]
fn ollama_generate_response_to_text_completion() {
    let body = br#"{"model":"llama3","created_at":"2024-02-29T00:00:00Z","response":"The end","done":true,"done_reason":"length","context":[1,2],"prompt_eval_count":3,"eval_count":2}"#;
    let out = value(ollama_to_openai_response(OpenAiRoute::Completions, body, "llama3").unwrap());
    assert!(out["id"].as_str().unwrap().starts_with("cmpl-"));
    assert_eq!(out["object"], "text_completion");
    assert_eq!(out["created"], 1_709_164_800);
    assert_eq!(
        out["choices"],
        json!([{"text": "The end", "index": 0, "logprobs": null, "finish_reason": "length"}])
    );
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5})
    );
    let plain = value(
        ollama_to_openai_response(
            OpenAiRoute::Chat,
            br#"{"message":{"role":"assistant","content":"hi"},"done":true}"#,
            "m",
        )
        .unwrap(),
    );
    assert_eq!(
        plain["choices"][0]["message"],
        json!({"role": "assistant", "content": "hi"})
    );
    assert_eq!(plain["choices"][0]["finish_reason"], "stop");
}

#[test]
fn ollama_embed_response_to_openai() {
    let body = br#"{"model":"nomic","embeddings":[[0.1,NaN],[0.2,0.3]],"total_duration":1,"load_duration":0,"prompt_eval_count":4}"#;
    let out =
        value(ollama_to_openai_response(OpenAiRoute::Embeddings, body, "nomic-embed").unwrap());
    assert_eq!(
        out,
        json!({"object": "list", "data": [
            {"object": "embedding", "index": 0, "embedding": [0.1, 0.0]},
            {"object": "embedding", "index": 1, "embedding": [0.2, 0.3]}
        ], "model": "nomic-embed", "usage": {"prompt_tokens": 4, "total_tokens": 4}})
    );
    let legacy = value(
        ollama_to_openai_response(OpenAiRoute::Embeddings, br#"{"embedding":[1.0]}"#, "n").unwrap(),
    );
    assert_eq!(legacy["data"][0]["embedding"], json!([1.0]));
}

#[test]
fn ollama_error_bodies() {
    assert_eq!(
        ollama_to_openai_response(
            OpenAiRoute::Chat,
            br#"{"error":"model \"x\" not found, try pulling it first"}"#,
            "x"
        ),
        Err(TranslateError::Upstream(
            "model \"x\" not found, try pulling it first".into()
        ))
    );
    assert_eq!(
        ollama_to_openai_response(
            OpenAiRoute::Embeddings,
            br#"{"error":"input too long"}"#,
            "x"
        ),
        Err(TranslateError::Upstream("input too long".into()))
    );
    assert!(matches!(
        ollama_to_openai_response(OpenAiRoute::Chat, b"[1]", "x"),
        Err(TranslateError::BadUpstream(_))
    ));
}

#[test]
fn error_messages_in_either_format() {
    assert_eq!(
        error_message(br#"{"error":"model 'llama9' not found"}"#),
        "model 'llama9' not found"
    );
    assert_eq!(
        error_message(br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#),
        "Rate limit reached"
    );
    assert_eq!(
        error_message(b"upstream connect error or disconnect/reset before headers"),
        "upstream connect error or disconnect/reset before headers"
    );
}

#[test]
fn out_of_range_created_falls_back_to_now() {
    let body = br#"{"created":99999999999999,"choices":[{"message":{"content":"x"},"finish_reason":"stop"}]}"#;
    let out = value(openai_to_ollama_response(OllamaRoute::Chat, body, "m").unwrap());
    let at = out["created_at"].as_str().unwrap();
    assert!(at.len() >= 20 && at.starts_with("20"), "{at}");
}
