//! OpenAI request bodies → Ollama-native request bodies. The router normally sends OpenAI requests to an
//! Ollama backend's own `/v1` API unchanged (SPEC §3.1); this direction exists so both are tested.
//!
//! Dropped because Ollama has no equivalent: `tool_choice`, `parallel_tool_calls`, `logit_bias`,
//! `logprobs`/`top_logprobs`, `user`, `stream_options` (the stream translator is told `include_usage`),
//! `best_of`, and embeddings' `encoding_format` (vectors come back as float lists, which the OpenAI SDKs
//! accept even when they asked for base64). Refused because the answer would be wrong: `n` > 1, `echo`,
//! several prompts, token-array prompts and inputs.

use serde_json::{json, Map, Value};

use super::json::{copy_dimensions, copy_tools};
use super::json::{opt_bool, opt_str, to_vec};
use super::{msgs_to_ollama, options, TranslateError, Translated};

pub(crate) fn chat(req: &Map<String, Value>, model: &str) -> Result<Translated, TranslateError> {
    single_choice(req)?;
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert(
        "messages".into(),
        Value::Array(msgs_to_ollama::convert(req.get("messages"))?),
    );
    copy_tools(req.get("tools"), &mut out)?;
    if let Some(format) = options::response_format_to_format(req.get("response_format"))? {
        out.insert("format".into(), format);
    }
    if let Some(think) = options::effort_to_think(req)? {
        out.insert("think".into(), think);
    }
    finish(req, out, "/api/chat")
}

pub(crate) fn completions(
    req: &Map<String, Value>,
    model: &str,
) -> Result<Translated, TranslateError> {
    single_choice(req)?;
    if opt_bool(req, "echo", "echo")? == Some(true) {
        return Err(TranslateError::unsupported(
            "`echo` is not supported by this backend",
        ));
    }
    let prompt = match req.get("prompt") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => match items.as_slice() {
            [] => String::new(),
            [Value::String(s)] => s.clone(),
            [Value::String(_), ..] if items.iter().all(Value::is_string) => {
                return Err(TranslateError::unsupported(
                    "several prompts in one request are not supported by this backend",
                ))
            }
            _ => {
                return Err(TranslateError::unsupported(
                    "token prompts are not supported by this backend; send text",
                ))
            }
        },
        Some(_) => return Err(TranslateError::bad("`prompt` must be a string")),
    };
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("prompt".into(), json!(prompt));
    if let Some(suffix) = opt_str(req, "suffix", "suffix")?.filter(|s| !s.is_empty()) {
        out.insert("suffix".into(), json!(suffix));
    }
    finish(req, out, "/api/generate")
}

pub(crate) fn embeddings(
    req: &Map<String, Value>,
    model: &str,
) -> Result<Translated, TranslateError> {
    let input = match req.get("input") {
        Some(s @ Value::String(_)) => s.clone(),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Value::Array(items.clone())
        }
        Some(Value::Array(_)) => {
            return Err(TranslateError::unsupported(
                "token inputs are not supported by this backend; send text",
            ))
        }
        None | Some(Value::Null) => return Err(TranslateError::bad("`input` is required")),
        Some(_) => {
            return Err(TranslateError::bad(
                "`input` must be a string or a list of strings",
            ))
        }
    };
    let mut out = Map::new();
    out.insert("model".into(), json!(model));
    out.insert("input".into(), input);
    copy_dimensions(req.get("dimensions"), &mut out)?;
    Ok(Translated {
        path: "/api/embed",
        body: to_vec(&Value::Object(out))?,
        stream: false,
    })
}

/// Only one choice can come back from Ollama; asking for more would silently get fewer.
fn single_choice(req: &Map<String, Value>) -> Result<(), TranslateError> {
    match req.get("n") {
        None | Some(Value::Null) => Ok(()),
        Some(n) if n.as_u64() == Some(1) => Ok(()),
        Some(n) if n.as_u64().is_some() => Err(TranslateError::unsupported(
            "`n` greater than 1 is not supported by this backend",
        )),
        Some(_) => Err(TranslateError::bad("`n` must be a positive integer")),
    }
}

/// Options and stream, shared by chat and completions. OpenAI streams only when asked (SPEC §2.6); Ollama
/// must be told `false` explicitly because it streams by default.
fn finish(
    req: &Map<String, Value>,
    mut out: Map<String, Value>,
    path: &'static str,
) -> Result<Translated, TranslateError> {
    let opts = options::openai_sampling_to_ollama(req)?;
    if !opts.is_empty() {
        out.insert("options".into(), Value::Object(opts));
    }
    let stream = opt_bool(req, "stream", "stream")?.unwrap_or(false);
    out.insert("stream".into(), json!(stream));
    Ok(Translated {
        path,
        body: to_vec(&Value::Object(out))?,
        stream,
    })
}
