//! Token usage and end reasons between the APIs: OpenAI `usage` or llama-server `timings` → Ollama
//! counts and durations, and `finish_reason` ⇄ `done_reason`.

use serde_json::Value;

use super::json::count;
use super::wire_ollama::Metrics;

/// (prompt_tokens, completion_tokens) from an OpenAI `usage` object; `None` when it has neither count
/// (null, or a server's empty placeholder).
pub(crate) fn from_usage(usage: &Value) -> Option<(u64, u64)> {
    let prompt = count(usage.get("prompt_tokens"));
    let completion = count(usage.get("completion_tokens"));
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    Some((prompt.unwrap_or(0), completion.unwrap_or(0)))
}

/// Counts and durations from llama-server's `timings`. The prompt count adds the cached tokens
/// (`cache_n`) so it means the whole prompt, like OpenAI's `prompt_tokens`.
pub(crate) fn from_timings(timings: &Value) -> Option<Metrics> {
    let prompt_n = count(timings.get("prompt_n"));
    let predicted_n = count(timings.get("predicted_n"));
    if prompt_n.is_none() && predicted_n.is_none() {
        return None;
    }
    let cached = count(timings.get("cache_n")).unwrap_or(0);
    Some(Metrics {
        prompt_tokens: prompt_n.unwrap_or(0).saturating_add(cached),
        completion_tokens: predicted_n.unwrap_or(0),
        prompt_ns: ms_to_ns(timings.get("prompt_ms")),
        eval_ns: ms_to_ns(timings.get("predicted_ms")),
    })
}

fn ms_to_ns(ms: Option<&Value>) -> u64 {
    match ms.and_then(Value::as_f64) {
        Some(ms) if ms.is_finite() && ms > 0.0 && ms < 1.0e13 => (ms * 1.0e6).round() as u64,
        _ => 0,
    }
}

/// The metrics of an answer: counts from `usage` when the server sent real ones, else from `timings`; durations
/// from `timings` (OpenAI servers report none; we do not invent any).
pub(crate) fn metrics(usage: Option<(u64, u64)>, timings: Option<Metrics>) -> Metrics {
    let mut m = timings.unwrap_or_default();
    if let Some((prompt, completion)) = usage {
        // A running `usage` still at zero (llama-server's first chunks) loses to real `timings` counts.
        if completion > 0 || m.completion_tokens == 0 {
            m.prompt_tokens = prompt;
            m.completion_tokens = completion;
        }
    }
    m
}

/// OpenAI `finish_reason` → Ollama `done_reason`. Ollama knows only stop and length (plus load/unload);
/// a tool call, a content filter or an unknown reason all end the answer normally.
/// A `finish_reason` that Ollama's `done_reason` names as it is (others are mapped onto `stop`).
pub fn is_plain_finish(finish_reason: &str) -> bool {
    matches!(
        finish_reason,
        "stop" | "length" | "tool_calls" | "function_call"
    )
}

pub(crate) fn done_reason(finish_reason: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "length",
        _ => "stop",
    }
}

/// Ollama `done_reason` → OpenAI `finish_reason`: `tool_calls` whenever the answer called a tool (as
/// Ollama's own compatibility layer does), `length` for a cut answer, else `stop`.
pub(crate) fn finish_reason(done_reason: Option<&str>, called_tools: bool) -> &'static str {
    if called_tools {
        "tool_calls"
    } else if done_reason == Some("length") {
        "length"
    } else {
        "stop"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_and_timings() {
        assert_eq!(
            from_usage(&json!({"prompt_tokens": 5, "completion_tokens": 0})),
            Some((5, 0))
        );
        assert_eq!(from_usage(&json!({"total_tokens": 5})), None);
        assert_eq!(from_usage(&Value::Null), None);
        let t = from_timings(&json!({"prompt_n": 3, "cache_n": 7, "predicted_n": 9,
                                     "prompt_ms": 1.5, "predicted_ms": 20.25}));
        assert_eq!(
            t,
            Some(Metrics {
                prompt_tokens: 10,
                completion_tokens: 9,
                prompt_ns: 1_500_000,
                eval_ns: 20_250_000
            })
        );
        assert_eq!(from_timings(&json!({"prompt_ms": 1})), None);
        let m = metrics(Some((1, 2)), t);
        assert_eq!(
            (m.prompt_tokens, m.completion_tokens, m.eval_ns),
            (1, 2, 20_250_000)
        );
        assert_eq!(metrics(None, None), Metrics::default());
    }

    #[test]
    fn reasons() {
        assert_eq!(done_reason(Some("stop")), "stop");
        assert_eq!(done_reason(Some("length")), "length");
        assert_eq!(done_reason(Some("tool_calls")), "stop");
        assert_eq!(done_reason(Some("content_filter")), "stop");
        assert_eq!(done_reason(None), "stop");
        assert_eq!(finish_reason(Some("stop"), true), "tool_calls");
        assert_eq!(finish_reason(Some("length"), false), "length");
        assert_eq!(finish_reason(Some("load"), false), "stop");
        assert_eq!(finish_reason(None, false), "stop");
    }
}
