//! Ollama-native request bodies → OpenAI request bodies (for Ollama clients routed to OpenAI-compatible or
//! llama-server backends).
//!
//! Dropped because OpenAI has no equivalent: `keep_alive`, `truncate`, `shift`, `logprobs`/`top_logprobs`
//! (their output would have no Ollama form here), and for generate `suffix`, `raw`, `template` and
//! `context` (the backend applies its own chat template; `context` token arrays are deprecated in Ollama).
//! See `options.rs` for the `options` keys that are kept and dropped.

use serde_json::{json, Map, Value};

use super::json::{copy_dimensions, copy_tools};
use super::json::{opt_bool, opt_str, to_vec};
use super::{msgs_to_openai, options, Dialect, TranslateError, Translated};

pub(crate) fn chat(
    req: &Map<String, Value>,
    model: &str,
    dialect: Dialect,
) -> Result<Translated, TranslateError> {
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert(
        "messages".into(),
        Value::Array(msgs_to_openai::convert(req.get("messages"))?),
    );
    copy_tools(req.get("tools"), &mut out)?;
    let stream = common(req, &mut out, dialect)?;
    finish(out, stream)
}

pub(crate) fn generate(
    req: &Map<String, Value>,
    model: &str,
    dialect: Dialect,
) -> Result<Translated, TranslateError> {
    let mut messages = Vec::with_capacity(2);
    if let Some(system) = opt_str(req, "system", "system")?.filter(|s| !s.is_empty()) {
        messages.push(json!({ "role": "system", "content": system }));
    }
    // An empty prompt is Ollama's load-model idiom; it is forwarded, not rejected.
    let prompt = opt_str(req, "prompt", "prompt")?.unwrap_or("");
    let content = msgs_to_openai::user_content(prompt, req.get("images"), "images")?;
    messages.push(json!({ "role": "user", "content": content }));
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("messages".into(), Value::Array(messages));
    let stream = common(req, &mut out, dialect)?;
    finish(out, stream)
}

pub(crate) fn embed(req: &Map<String, Value>, model: &str) -> Result<Translated, TranslateError> {
    let input = match req.get("input") {
        Some(s @ Value::String(_)) => s.clone(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Value::Array(items.clone())
        }
        None | Some(Value::Null) => return Err(TranslateError::bad("`input` is required")),
        Some(_) => {
            return Err(TranslateError::bad(
                "`input` must be a string or a list of strings",
            ))
        }
    };
    embeddings_body(model, input, req.get("dimensions"))
}

pub(crate) fn embeddings_legacy(
    req: &Map<String, Value>,
    model: &str,
) -> Result<Translated, TranslateError> {
    let prompt = opt_str(req, "prompt", "prompt")?.unwrap_or("");
    embeddings_body(model, json!(prompt), None)
}

fn embeddings_body(
    model: &str,
    input: Value,
    dimensions: Option<&Value>,
) -> Result<Translated, TranslateError> {
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("input".into(), input);
    // Explicit, so no server picks base64 for us: the Ollama response needs numbers.
    out.insert("encoding_format".into(), json!("float"));
    copy_dimensions(dimensions, &mut out)?;
    Ok(Translated {
        path: "/embeddings",
        body: to_vec(&Value::Object(out))?,
        stream: false,
    })
}

/// The fields chat and generate share: options, format, think and stream. Returns whether to stream.
fn common(
    req: &Map<String, Value>,
    out: &mut Map<String, Value>,
    dialect: Dialect,
) -> Result<bool, TranslateError> {
    options::ollama_options_to_openai(req.get("options"), out)?;
    if dialect == Dialect::LlamaServer {
        options::llama_server_sampling(req.get("options"), out)?;
    }
    if let Some(rf) = options::format_to_response_format(req.get("format"))? {
        out.insert("response_format".into(), rf);
    }
    if let Some(effort) = options::think_to_effort(req.get("think"))? {
        out.insert("reasoning_effort".into(), json!(effort));
    }
    // Ollama streams unless told otherwise (SPEC §2.6).
    Ok(opt_bool(req, "stream", "stream")?.unwrap_or(true))
}

fn finish(mut out: Map<String, Value>, stream: bool) -> Result<Translated, TranslateError> {
    out.insert("stream".into(), json!(stream));
    if stream {
        // Usage arrives only if asked for; OpenAI rejects stream_options on non-streaming requests.
        out.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    Ok(Translated {
        path: "/chat/completions",
        body: to_vec(&Value::Object(out))?,
        stream,
    })
}
