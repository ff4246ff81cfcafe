//! Wire-format payloads of the mock, in the shapes real Ollama and OpenAI-compatible servers send.

use serde_json::{json, Value};

pub const CREATED_AT: &str = "2026-01-01T00:00:00.000000000Z";

pub fn token(i: usize) -> String {
    format!("tok{i} ")
}

/// One NDJSON line of an Ollama stream, `/api/chat` or `/api/generate`.
pub fn ollama_chunk(chat: bool, model: &str, text: &str) -> Value {
    if chat {
        json!({"model": model, "created_at": CREATED_AT, "message": {"role": "assistant", "content": text}, "done": false})
    } else {
        json!({"model": model, "created_at": CREATED_AT, "response": text, "done": false})
    }
}

/// The final Ollama object: whole text when not streamed, empty when streamed, with the metrics.
pub fn ollama_final(
    chat: bool,
    model: &str,
    text: &str,
    prompt_tokens: usize,
    tokens: usize,
) -> Value {
    let mut v = ollama_chunk(chat, model, text);
    let o = v.as_object_mut().expect("object");
    o.insert("done".into(), json!(true));
    o.insert("done_reason".into(), json!("stop"));
    o.insert("total_duration".into(), json!(1_000_000 * tokens as u64));
    o.insert("load_duration".into(), json!(0));
    o.insert("prompt_eval_count".into(), json!(prompt_tokens));
    o.insert("prompt_eval_duration".into(), json!(1000));
    o.insert("eval_count".into(), json!(tokens));
    o.insert("eval_duration".into(), json!(1_000_000 * tokens as u64));
    if !chat {
        o.insert("context".into(), json!([1, 2, 3]));
    }
    v
}

/// OpenAI chat chunk with a delta, or a finish-only chunk.
pub fn openai_chunk(id: &str, model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({"id": id, "object": "chat.completion.chunk", "created": 1_767_225_600, "model": model, "system_fingerprint": "fp_mock",
           "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]})
}

pub fn openai_completion_chunk(id: &str, model: &str, text: &str, finish: Option<&str>) -> Value {
    json!({"id": id, "object": "text_completion", "created": 1_767_225_600, "model": model,
           "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": finish}]})
}

pub fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

pub fn openai_usage_chunk(
    id: &str,
    model: &str,
    object: &str,
    prompt: usize,
    completion: usize,
) -> Value {
    json!({"id": id, "object": object, "created": 1_767_225_600, "model": model, "choices": [], "usage": usage(prompt, completion)})
}

pub fn openai_chat_whole(
    id: &str,
    model: &str,
    text: &str,
    prompt: usize,
    completion: usize,
) -> Value {
    json!({"id": id, "object": "chat.completion", "created": 1_767_225_600, "model": model, "system_fingerprint": "fp_mock",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": "stop"}],
           "usage": usage(prompt, completion)})
}

pub fn openai_completion_whole(
    id: &str,
    model: &str,
    text: &str,
    prompt: usize,
    completion: usize,
) -> Value {
    json!({"id": id, "object": "text_completion", "created": 1_767_225_600, "model": model,
           "choices": [{"index": 0, "text": text, "logprobs": null, "finish_reason": "stop"}], "usage": usage(prompt, completion)})
}

/// A deterministic unit-ish vector for a text.
pub fn embedding(text: &str) -> Vec<f32> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    (0..8)
        .map(|i| ((h >> (i * 8)) & 0xff) as f32 / 255.0 - 0.5)
        .collect()
}

/// The texts of an embed `input`: a string or an array of strings.
pub fn inputs(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect(),
        _ => vec![],
    }
}

/// A rough prompt-token count: words in the request.
pub fn prompt_tokens(body: &Value) -> usize {
    body.to_string().split_whitespace().count().max(1)
}

pub fn tag(name: &str) -> Value {
    json!({"name": name, "model": name, "modified_at": CREATED_AT, "size": 4_000_000_000u64, "digest": format!("{:064x}", name.len()),
           "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"], "parameter_size": "8B", "quantization_level": "Q4_K_M"}})
}

pub fn ps_entry(name: &str) -> Value {
    let mut v = tag(name);
    let o = v.as_object_mut().expect("object");
    o.insert("expires_at".into(), json!("2099-01-01T00:00:00Z"));
    o.insert("size_vram".into(), json!(4_000_000_000u64));
    o.insert("context_length".into(), json!(4096));
    v
}

pub fn openai_model(id: &str, loaded: Option<bool>) -> Value {
    let mut v = json!({"id": id, "object": "model", "created": 1_767_225_600, "owned_by": "mock"});
    if let Some(l) = loaded {
        v["status"] = json!({"value": if l { "loaded" } else { "unloaded" }});
    }
    v
}

/// Ollama's metrics, in the order Ollama writes them: after everything else.
const OLLAMA_METRICS: [&str; 6] = [
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
];

/// An Ollama object as Ollama writes it: its metrics last (a `Value` alone would sort them in).
pub fn ollama_json(v: &Value) -> String {
    let Some(o) = v.as_object() else {
        return v.to_string();
    };
    let rest = o
        .iter()
        .filter(|(k, _)| !OLLAMA_METRICS.contains(&k.as_str()));
    let metrics = OLLAMA_METRICS.iter().filter_map(|k| o.get_key_value(*k));
    let fields: Vec<String> = rest
        .chain(metrics)
        .map(|(k, val)| format!("{}:{val}", Value::String(k.clone())))
        .collect();
    format!("{{{}}}", fields.join(","))
}
