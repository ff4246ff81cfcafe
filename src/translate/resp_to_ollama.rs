//! Whole OpenAI chat responses → whole Ollama responses (/api/chat and /api/generate), for Ollama clients
//! routed to OpenAI-compatible backends with `"stream": false`.

use serde_json::{Map, Value};

use super::json::{content_text, upstream_object};
use super::time::{now, rfc3339};
use super::tools::args_to_object;
use super::upstream_error::message_of;
use super::wire_ollama::{self, End, OllamaFunction, OllamaToolCall, Parts};
use super::{usage, TranslateError};

pub(crate) fn chat_or_generate(
    chat: bool,
    body: &[u8],
    model: &str,
) -> Result<Vec<u8>, TranslateError> {
    let v = upstream_object(body)?;
    if v.get("error").is_some_and(|e| !e.is_null()) {
        let message =
            message_of(&Value::Object(v.clone())).unwrap_or_else(|| "upstream error".into());
        return Err(TranslateError::Upstream(message));
    }
    let choices = v
        .get("choices")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::bad_upstream("the response has no `choices`"))?;
    let choice = choices
        .iter()
        .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0)
        .or(choices.first())
        .ok_or_else(|| TranslateError::bad_upstream("the response has no choices"))?;
    let empty = Map::new();
    let message = choice
        .get("message")
        .and_then(Value::as_object)
        .unwrap_or(&empty);

    let mut content = content_text(message.get("content"));
    if content.is_empty() {
        // A legacy text completion, or a refusal in place of content.
        if let Some(text) = choice.get("text").and_then(Value::as_str) {
            content = text.into();
        } else if let Some(refusal) = message.get("refusal").and_then(Value::as_str) {
            content = refusal.into();
        }
    }
    let thinking = reasoning(message);
    let calls = tool_calls(message.get("tool_calls"));
    let finish = choice.get("finish_reason").and_then(Value::as_str);
    let metrics = usage::metrics(
        v.get("usage").and_then(usage::from_usage),
        v.get("timings").and_then(usage::from_timings),
    );
    let created_at = match v.get("created").and_then(Value::as_i64) {
        // Only years 1970-9999 make an RFC 3339 timestamp clients can parse.
        Some(secs) if (1..253_402_300_800).contains(&secs) => rfc3339(secs, 0),
        _ => {
            let (secs, nanos) = now();
            rfc3339(secs, nanos)
        }
    };
    let parts = Parts {
        content: &content,
        thinking,
        tool_calls: Some(&calls),
    };
    let end = End {
        done_reason: usage::done_reason(finish),
        metrics,
    };
    Ok(wire_ollama::line(
        chat,
        model,
        &created_at,
        parts,
        Some(end),
    ))
}

/// `reasoning` (Ollama, vLLM ≥ 0.10, OpenRouter) or `reasoning_content` (DeepSeek, older vLLM).
fn reasoning(message: &Map<String, Value>) -> Option<&str> {
    ["reasoning", "reasoning_content"]
        .iter()
        .filter_map(|k| message.get(*k).and_then(Value::as_str))
        .find(|s| !s.is_empty())
}

fn tool_calls(v: Option<&Value>) -> Vec<OllamaToolCall> {
    let Some(items) = v.and_then(Value::as_array) else {
        return Vec::new();
    };
    items
        .iter()
        .enumerate()
        .map(|(i, call)| {
            let function = call.get("function");
            let name = function
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let arguments = match function.and_then(|f| f.get("arguments")) {
                Some(Value::String(s)) => args_to_object(s),
                Some(obj @ Value::Object(_)) => obj.clone(),
                _ => Value::Object(Map::new()),
            };
            OllamaToolCall {
                id: call
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
                function: OllamaFunction {
                    index: i as u64,
                    name: name.to_string(),
                    arguments,
                },
            }
        })
        .collect()
}
