//! Golden tests of request translation, both directions.

use serde_json::{json, Value};

use crate::translate::request::{ollama_to_openai, openai_to_ollama, stream_include_usage};
use crate::translate::{OllamaRoute, OpenAiRoute, TranslateError, Translated};

const JPEG: &str = "/9j/4AAQSkZJRgABAQAAAQABAAD";
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB";

fn body(t: &Translated) -> Value {
    serde_json::from_slice(&t.body).expect("translated body is JSON")
}

fn to_openai(route: OllamaRoute, req: Value) -> Result<Translated, TranslateError> {
    ollama_to_openai(route, req.to_string().as_bytes(), "upstream-model")
}

fn to_ollama(route: OpenAiRoute, req: Value) -> Result<Translated, TranslateError> {
    openai_to_ollama(route, req.to_string().as_bytes(), "upstream-model")
}

/// An Ollama /api/chat request exercising every translated field.
const OLLAMA_CHAT_REQUEST: &str = r#"{
  "model": "llama3:latest",
  "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is in these pictures, and the weather?", "images": ["/9j/4AAQSkZJRgABAQAAAQABAAD", "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"]},
    {"role": "assistant", "content": "", "thinking": "I should call tools.", "tool_calls": [
      {"function": {"index": 0, "name": "get_weather", "arguments": {"city": "Tokyo", "days": 2}}},
      {"id": "call_given", "function": {"index": 1, "name": "get_time", "arguments": {}}}
    ]},
    {"role": "tool", "tool_name": "get_weather", "content": "{\"temp\": 21}"},
    {"role": "tool", "tool_call_id": "call_given", "content": "12:00"},
    {"role": "assistant", "content": "It is 21°C.", "thinking": "dropped"}
  ],
  "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
  "format": "json",
  "think": true,
  "options": {"num_predict": 256, "temperature": 0.7, "top_p": 0.9, "seed": 7, "stop": ["</s>"], "presence_penalty": 0.5, "frequency_penalty": 0.25, "num_ctx": 8192, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1},
  "keep_alive": "10m",
  "nomyo": {"moe": false}
}"#;

#[test]
fn ollama_chat_to_openai_golden() {
    let t = ollama_to_openai(
        OllamaRoute::Chat,
        OLLAMA_CHAT_REQUEST.as_bytes(),
        "meta-llama/Llama-3-8B",
    )
    .unwrap();
    assert_eq!(t.path, "/chat/completions");
    assert!(t.stream, "Ollama chat streams by default");
    assert_eq!(
        body(&t),
        json!({
            "model": "meta-llama/Llama-3-8B",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in these pictures, and the weather?"},
                    {"type": "image_url", "image_url": {"url": format!("data:image/jpeg;base64,{JPEG}")}},
                    {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Tokyo\",\"days\":2}"}},
                    {"id": "call_given", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_0", "name": "get_weather", "content": "{\"temp\": 21}"},
                {"role": "tool", "tool_call_id": "call_given", "content": "12:00"},
                {"role": "assistant", "content": "It is 21°C."}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
            "response_format": {"type": "json_object"},
            "reasoning_effort": "medium",
            "max_tokens": 256,
            "temperature": 0.7,
            "top_p": 0.9,
            "seed": 7,
            "stop": ["</s>"],
            "presence_penalty": 0.5,
            "frequency_penalty": 0.25,
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
}

#[test]
fn not_streaming_never_sends_stream_options() {
    let t = to_openai(
        OllamaRoute::Chat,
        json!({"model": "m", "messages": [], "stream": false}),
    )
    .unwrap();
    assert!(!t.stream);
    let b = body(&t);
    assert_eq!(b["stream"], false);
    assert!(b.get("stream_options").is_none());
    let t = to_openai(
        OllamaRoute::Generate,
        json!({"model": "m", "prompt": "x", "stream": false}),
    )
    .unwrap();
    assert!(body(&t).get("stream_options").is_none());
    let t = to_openai(
        OllamaRoute::Generate,
        json!({"model": "m", "prompt": "x", "stream": null}),
    )
    .unwrap();
    assert!(t.stream && body(&t)["stream_options"]["include_usage"] == true);
    assert!(matches!(
        to_openai(OllamaRoute::Chat, json!({"messages": [], "stream": "no"})),
        Err(TranslateError::BadRequest(_))
    ));
}

#[test]
fn format_schema_and_think_levels() {
    let schema =
        json!({"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]});
    let t = to_openai(
        OllamaRoute::Chat,
        json!({"messages": [], "format": schema, "think": "high"}),
    )
    .unwrap();
    let b = body(&t);
    assert_eq!(
        b["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema, "strict": true}})
    );
    assert_eq!(b["reasoning_effort"], "high");
    let b = body(&to_openai(OllamaRoute::Chat, json!({"messages": [], "think": false})).unwrap());
    assert!(b.get("reasoning_effort").is_none());
    let b = body(&to_openai(OllamaRoute::Chat, json!({"messages": [], "think": "low"})).unwrap());
    assert_eq!(b["reasoning_effort"], "low");
}

#[test]
fn ollama_generate_to_openai_chat() {
    let req = json!({
        "model": "llama3", "prompt": "Describe", "system": "Be brief", "images": [PNG], "suffix": "END",
        "raw": true, "template": "{{ .Prompt }}", "context": [1, 2, 3], "options": {"num_predict": -1},
        "format": "json", "stream": false
    });
    let t = to_openai(OllamaRoute::Generate, req).unwrap();
    assert_eq!(t.path, "/chat/completions");
    assert_eq!(
        body(&t),
        json!({
            "model": "upstream-model",
            "messages": [
                {"role": "system", "content": "Be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "Describe"},
                    {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{PNG}")}}
                ]}
            ],
            "response_format": {"type": "json_object"},
            "stream": false
        })
    );
}

#[test]
fn empty_generate_prompt_is_forwarded() {
    let t = to_openai(OllamaRoute::Generate, json!({"model": "llama3"})).unwrap();
    assert_eq!(
        body(&t)["messages"],
        json!([{"role": "user", "content": ""}])
    );
    let t = to_openai(
        OllamaRoute::Generate,
        json!({"model": "llama3", "prompt": "", "images": [JPEG]}),
    )
    .unwrap();
    assert_eq!(
        body(&t)["messages"][0]["content"],
        json!([{"type": "image_url", "image_url": {"url": format!("data:image/jpeg;base64,{JPEG}")}}])
    );
}

#[test]
fn ollama_embed_requests() {
    let t = to_openai(OllamaRoute::Embed, json!({"model": "nomic", "input": ["a", "b", "c"], "dimensions": 256, "truncate": false, "keep_alive": 0})).unwrap();
    assert_eq!((t.path, t.stream), ("/embeddings", false));
    assert_eq!(
        body(&t),
        json!({"model": "upstream-model", "input": ["a", "b", "c"], "encoding_format": "float", "dimensions": 256})
    );
    let t = to_openai(
        OllamaRoute::Embed,
        json!({"model": "nomic", "input": "one"}),
    )
    .unwrap();
    assert_eq!(body(&t)["input"], "one");
    let t = to_openai(
        OllamaRoute::Embeddings,
        json!({"model": "nomic", "prompt": "legacy"}),
    )
    .unwrap();
    assert_eq!((t.path, t.stream), ("/embeddings", false));
    assert_eq!(
        body(&t),
        json!({"model": "upstream-model", "input": "legacy", "encoding_format": "float"})
    );
    assert!(to_openai(OllamaRoute::Embed, json!({"model": "nomic"})).is_err());
    assert!(to_openai(OllamaRoute::Embed, json!({"input": [1, 2]})).is_err());
    assert!(to_openai(OllamaRoute::Embed, json!({"input": "x", "dimensions": -3})).is_err());
}

#[test]
fn bad_ollama_bodies_are_client_errors() {
    for b in [
        &b"not json"[..],
        b"[]",
        b"{\"messages\": {}}",
        b"{\"messages\": [{\"role\": 1}]}",
    ] {
        let e = ollama_to_openai(OllamaRoute::Chat, b, "m").unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
    }
    let e = to_openai(OllamaRoute::Chat, json!({"messages": [], "format": "xml"})).unwrap_err();
    assert!(e.to_string().contains("format"), "{e}");
}

#[test]
fn openai_chat_to_ollama_golden() {
    let req = json!({
        "model": "llama3",
        "messages": [
            {"role": "developer", "content": "Be exact."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": format!("data:image/jpeg;base64,{JPEG}"), "detail": "low"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}
        ],
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
        "tool_choice": "auto",
        "max_completion_tokens": 100,
        "temperature": 0.1,
        "stop": "\n",
        "seed": 3,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": true}},
        "reasoning_effort": "low",
        "stream_options": {"include_usage": true},
        "user": "u1"
    });
    let t = to_ollama(OpenAiRoute::Chat, req).unwrap();
    assert_eq!((t.path, t.stream), ("/api/chat", false));
    assert_eq!(
        body(&t),
        json!({
            "model": "upstream-model",
            "messages": [
                {"role": "system", "content": "Be exact."},
                {"role": "user", "content": "What is this?", "images": [JPEG]},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "function": {"index": 0, "name": "lookup", "arguments": {"q": "cat"}}}
                ]},
                {"role": "tool", "content": "a cat", "tool_call_id": "call_1", "tool_name": "lookup"}
            ],
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}],
            "format": {"type": "object"},
            "think": "low",
            "options": {"num_predict": 100, "temperature": 0.1, "stop": ["\n"], "seed": 3},
            "stream": false
        })
    );
}

#[test]
fn openai_chat_to_ollama_refusals() {
    let url_image = json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]});
    assert!(matches!(
        to_ollama(OpenAiRoute::Chat, url_image),
        Err(TranslateError::Unsupported(_))
    ));
    let bad_args = json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]});
    assert!(matches!(
        to_ollama(OpenAiRoute::Chat, bad_args),
        Err(TranslateError::BadRequest(_))
    ));
    let two = json!({"messages": [], "n": 2});
    assert!(matches!(
        to_ollama(OpenAiRoute::Chat, two),
        Err(TranslateError::Unsupported(_))
    ));
    let t = to_ollama(OpenAiRoute::Chat, json!({"messages": [{"role": "user", "content": "hi"}], "stream": true, "response_format": {"type": "json_object"}})).unwrap();
    assert!(t.stream);
    assert_eq!(body(&t)["format"], "json");
}

#[test]
fn openai_completions_to_ollama_generate() {
    let t = to_ollama(
        OpenAiRoute::Completions,
        json!({"model": "m", "prompt": "Once", "suffix": "end", "max_tokens": 5, "stream": true}),
    )
    .unwrap();
    assert_eq!((t.path, t.stream), ("/api/generate", true));
    assert_eq!(
        body(&t),
        json!({"model": "upstream-model", "prompt": "Once", "suffix": "end", "options": {"num_predict": 5}, "stream": true})
    );
    let t = to_ollama(OpenAiRoute::Completions, json!({"prompt": ["only one"]})).unwrap();
    assert_eq!(body(&t)["prompt"], "only one");
    assert_eq!(body(&t)["stream"], false);
    for prompt in [json!([1, 2, 3]), json!([[1, 2]]), json!(["a", "b"])] {
        assert!(matches!(
            to_ollama(OpenAiRoute::Completions, json!({"prompt": prompt})),
            Err(TranslateError::Unsupported(_))
        ));
    }
    assert!(to_ollama(
        OpenAiRoute::Completions,
        json!({"prompt": "x", "echo": true})
    )
    .is_err());
}

#[test]
fn openai_embeddings_to_ollama_embed() {
    let t = to_ollama(
        OpenAiRoute::Embeddings,
        json!({"model": "m", "input": ["a", "b"], "dimensions": 64, "encoding_format": "base64"}),
    )
    .unwrap();
    assert_eq!((t.path, t.stream), ("/api/embed", false));
    assert_eq!(
        body(&t),
        json!({"model": "upstream-model", "input": ["a", "b"], "dimensions": 64})
    );
    assert!(matches!(
        to_ollama(OpenAiRoute::Embeddings, json!({"input": [1, 2]})),
        Err(TranslateError::Unsupported(_))
    ));
    assert!(matches!(
        to_ollama(OpenAiRoute::Embeddings, json!({})),
        Err(TranslateError::BadRequest(_))
    ));
}

#[test]
fn include_usage_probe() {
    assert!(stream_include_usage(
        br#"{"stream":true,"stream_options":{"include_usage":true}}"#
    ));
    assert!(!stream_include_usage(br#"{"stream":true}"#));
    assert!(!stream_include_usage(b"garbage"));
}

#[test]
fn chat_request_round_trip_keeps_the_conversation() {
    let there = ollama_to_openai(OllamaRoute::Chat, OLLAMA_CHAT_REQUEST.as_bytes(), "m").unwrap();
    let back = openai_to_ollama(OpenAiRoute::Chat, &there.body, "m").unwrap();
    let msgs = body(&back)["messages"].clone();
    assert_eq!(
        msgs[1]["content"],
        "What is in these pictures, and the weather?"
    );
    assert_eq!(msgs[1]["images"], json!([JPEG, PNG]));
    assert_eq!(
        msgs[2]["tool_calls"][0]["function"]["arguments"],
        json!({"city": "Tokyo", "days": 2})
    );
    assert_eq!(msgs[3]["tool_name"], "get_weather");
    assert_eq!(msgs[4]["tool_name"], "get_time");
    assert_eq!(body(&back)["options"]["num_predict"], 256);
    assert_eq!(body(&back)["format"], "json");
    assert_eq!(body(&back)["think"], "medium");
}

#[test]
fn llama_server_gets_the_samplers_openai_has_no_field_for() {
    use crate::translate::request::ollama_to_llama_server;
    let req = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                     "options": {"top_k": 40, "repeat_penalty": 1.1, "min_p": 0.05, "num_keep": 4,
                                 "mirostat": 2, "num_ctx": 8192, "temperature": 0.2}});
    let bytes = req.to_string();
    let llama = body(&ollama_to_llama_server(OllamaRoute::Chat, bytes.as_bytes(), "m").unwrap());
    assert_eq!(
        (&llama["top_k"], &llama["repeat_penalty"], &llama["min_p"]),
        (&json!(40), &json!(1.1), &json!(0.05))
    );
    assert_eq!(
        (&llama["n_keep"], &llama["mirostat"]),
        (&json!(4), &json!(2))
    );
    assert_eq!(llama["temperature"], json!(0.2));
    assert!(llama.get("num_ctx").is_none() && llama.get("num_keep").is_none());
    // OpenAI itself refuses fields it does not know: none of them go there.
    let openai = body(&to_openai(OllamaRoute::Chat, req.clone()).unwrap());
    assert!(openai.get("top_k").is_none() && openai.get("repeat_penalty").is_none());
    let bad = json!({"model": "m", "prompt": "x", "options": {"top_k": "many"}}).to_string();
    let e = ollama_to_llama_server(OllamaRoute::Generate, bad.as_bytes(), "m").unwrap_err();
    assert!(e.to_string().contains("options.top_k"), "{e}");
}
