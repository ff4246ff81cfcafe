//! Ollama-native shapes: what the translators write to Ollama clients (stream lines and whole responses
//! share one shape) and what they read from Ollama backends. Output field order follows Ollama's own.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A whole tool call as Ollama sends it (`arguments` is an object).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct OllamaToolCall {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub function: OllamaFunction,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct OllamaFunction {
    pub index: u64,
    pub name: String,
    pub arguments: Value,
}

/// Token counts and durations (ns) of a finished answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Metrics {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub prompt_ns: u64,
    pub eval_ns: u64,
}

/// The text parts of one Ollama line or response.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Parts<'a> {
    pub content: &'a str,
    pub thinking: Option<&'a str>,
    pub tool_calls: Option<&'a [OllamaToolCall]>,
}

/// How an answer ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct End<'a> {
    pub done_reason: &'a str,
    pub metrics: Metrics,
}

/// One Ollama object: a stream line (`end` is `None`), the final line, or a whole response (both).
/// `chat` selects `message` (/api/chat) or top-level `response` (/api/generate).
pub(crate) fn line(
    chat: bool,
    model: &str,
    created_at: &str,
    parts: Parts<'_>,
    end: Option<End<'_>>,
) -> Vec<u8> {
    let mut out = Vec::new();
    write_line(&mut out, chat, model, created_at, parts, end);
    out
}

/// [`line`], appended to `out` (no buffer of its own, for stream lines).
pub(crate) fn write_line(
    out: &mut Vec<u8>,
    chat: bool,
    model: &str,
    created_at: &str,
    parts: Parts<'_>,
    end: Option<End<'_>>,
) {
    let start = out.len();
    // Writing to a Vec cannot fail; the fallback keeps the stream well-formed regardless.
    if write_fields(out, chat, model, created_at, parts, end).is_err() {
        out.truncate(start);
        out.extend_from_slice(br#"{"error":"internal serialisation error"}"#);
    }
}

/// The object of [`line`] in Ollama's field order. Keys are written as literals and only the values go
/// through the JSON serialiser: this runs once per streamed token.
fn write_fields(
    out: &mut Vec<u8>,
    chat: bool,
    model: &str,
    created_at: &str,
    parts: Parts<'_>,
    end: Option<End<'_>>,
) -> serde_json::Result<()> {
    field(out, b"{\"model\":", model)?;
    field(out, b",\"created_at\":", created_at)?;
    let text_key: &[u8] = if chat {
        b",\"message\":{\"role\":\"assistant\",\"content\":"
    } else {
        b",\"response\":"
    };
    field(out, text_key, parts.content)?;
    if let Some(thinking) = parts.thinking.filter(|t| !t.is_empty()) {
        field(out, b",\"thinking\":", thinking)?;
    }
    if let Some(calls) = parts.tool_calls.filter(|t| !t.is_empty()) {
        field(out, b",\"tool_calls\":", calls)?;
    }
    if chat {
        out.push(b'}');
    }
    match end {
        None => out.extend_from_slice(b",\"done\":false}"),
        Some(end) => write_end(out, end)?,
    }
    Ok(())
}

/// `done: true` and the final line's metrics, closing the object.
fn write_end(out: &mut Vec<u8>, end: End<'_>) -> serde_json::Result<()> {
    let m = end.metrics;
    field(out, b",\"done\":true,\"done_reason\":", end.done_reason)?;
    let counts: [(&[u8], u64); 6] = [
        (
            b",\"total_duration\":",
            m.prompt_ns.saturating_add(m.eval_ns),
        ),
        (b",\"load_duration\":", 0),
        (b",\"prompt_eval_count\":", m.prompt_tokens),
        (b",\"prompt_eval_duration\":", m.prompt_ns),
        (b",\"eval_count\":", m.completion_tokens),
        (b",\"eval_duration\":", m.eval_ns),
    ];
    for (key, n) in counts {
        field(out, key, &n)?;
    }
    out.push(b'}');
    Ok(())
}

/// Appends `key` (the literal JSON before the value) and the value.
fn field<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    key: &[u8],
    value: &T,
) -> serde_json::Result<()> {
    out.extend_from_slice(key);
    serde_json::to_writer(&mut *out, value)
}

/// An Ollama `{"error": "..."}` object.
pub(crate) fn error_line(message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": message }))
        .unwrap_or_else(|_| br#"{"error":"upstream error"}"#.to_vec())
}

/// An Ollama response object or stream line as read from an Ollama backend (chat and generate).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct OllamaIn {
    pub created_at: Option<String>,
    pub message: Option<OllamaMessageIn>,
    pub response: Option<String>,
    pub thinking: Option<String>,
    pub tool_calls: Option<Vec<OllamaToolCallIn>>,
    pub done: Option<bool>,
    pub done_reason: Option<String>,
    pub prompt_eval_count: Option<Value>,
    pub eval_count: Option<Value>,
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OllamaMessageIn {
    pub content: Option<String>,
    pub thinking: Option<String>,
    pub tool_calls: Option<Vec<OllamaToolCallIn>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OllamaToolCallIn {
    pub id: Option<String>,
    #[serde(default)]
    pub function: OllamaFunctionIn,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct OllamaFunctionIn {
    pub name: Option<String>,
    pub arguments: Option<Value>,
}

impl OllamaIn {
    /// (content, thinking, tool calls) wherever the route puts them.
    pub(crate) fn parts(&self) -> (&str, &str, &[OllamaToolCallIn]) {
        let msg = self.message.as_ref();
        let content = msg
            .and_then(|m| m.content.as_deref())
            .or(self.response.as_deref());
        let thinking = msg
            .and_then(|m| m.thinking.as_deref())
            .or(self.thinking.as_deref());
        let calls = msg
            .and_then(|m| m.tool_calls.as_deref())
            .or(self.tool_calls.as_deref());
        (
            content.unwrap_or(""),
            thinking.unwrap_or(""),
            calls.unwrap_or(&[]),
        )
    }

    /// (prompt_eval_count, eval_count), 0 when absent.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            super::json::count(self.prompt_eval_count.as_ref()).unwrap_or(0),
            super::json::count(self.eval_count.as_ref()).unwrap_or(0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(b: Vec<u8>) -> Value {
        serde_json::from_slice(&b).unwrap()
    }

    #[test]
    fn chat_and_generate_shapes() {
        let parts = Parts {
            content: "Hi",
            thinking: Some("hmm"),
            tool_calls: None,
        };
        assert_eq!(
            parse(line(true, "m", "t", parts, None)),
            json!({"model":"m","created_at":"t","message":{"role":"assistant","content":"Hi","thinking":"hmm"},"done":false})
        );
        assert_eq!(
            parse(line(false, "m", "t", parts, None)),
            json!({"model":"m","created_at":"t","response":"Hi","thinking":"hmm","done":false})
        );
        let end = End {
            done_reason: "stop",
            metrics: Metrics {
                prompt_tokens: 3,
                completion_tokens: 4,
                prompt_ns: 5,
                eval_ns: 6,
            },
        };
        assert_eq!(
            parse(line(true, "m", "t", Parts::default(), Some(end))),
            json!({"model":"m","created_at":"t","message":{"role":"assistant","content":""},"done":true,
                   "done_reason":"stop","total_duration":11,"load_duration":0,"prompt_eval_count":3,
                   "prompt_eval_duration":5,"eval_count":4,"eval_duration":6})
        );
        assert_eq!(
            parse(error_line("boom \"x\"")),
            json!({"error": "boom \"x\""})
        );
    }
}
