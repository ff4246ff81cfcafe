//! Context-window handling for OpenAI-compatible and llama-server endpoints (the reference's
//! behaviour, done in the open): a chat that does not fit the model's context is cut down to the
//! newest turns that fit, instead of failing.
//!
//! - Reactive: an error answer saying the request exceeds the context ("exceeds the available
//!   context size", "maximum context length is N tokens", `context_length_exceeded`), before any
//!   byte reached the client, makes the router learn the endpoint × model's `n_ctx` (from the
//!   message, else llama-server's `/props`), cut the history and send it again; once more, if it
//!   still does not fit, with the tools left out too. Then the error goes to the client.
//! - Proactive: once `n_ctx` is known, a chat whose estimate does not fit is cut before it is sent.
//! - The client is told: `X-Router-Context-Trimmed: <messages dropped>`, and the log says so.
//!
//! The cut keeps every system message and the newest turns, drops the oldest others, never the
//! last message, and starts what is kept at a user message. Room is left for the answer
//! (`max_tokens` / `num_predict`, else a quarter of the context). Tokens are estimated from the
//! JSON's bytes at `routing::context::BYTES_PER_TOKEN` (a model's own tokenizer is not at hand); when a cut request
//! still does not fit, the endpoint × model's estimate is halved for the next cut. The work is one
//! parse and one serialisation of the body, on the request's worker.

use bytes::Bytes;
use memchr::memmem;
use serde_json::{Map, Value};

use crate::api::routes::Inference;
use crate::config::EndpointKind;
use crate::routing::context::ContextFacts;

/// The smallest context taken from an error message.
const MIN_N_CTX: u32 = 256;

/// The answer header that says how many messages were dropped.
pub static HEADER: http::HeaderName = http::HeaderName::from_static("x-router-context-trimmed");

/// Whether this request to this kind of endpoint is one the router may cut.
pub fn applies(route: Inference, kind: EndpointKind) -> bool {
    matches!(route, Inference::Chat | Inference::OaiChat) && kind != EndpointKind::Ollama
}

/// Whether an error message says the request does not fit the context.
pub fn exceeded(error: &[u8]) -> bool {
    let lower = error.to_ascii_lowercase();
    [
        &b"exceeds the available context size"[..],
        b"exceed_context_size_error",
        b"context_length_exceeded",
        b"maximum context length",
        b"exceeds the context",
    ]
    .iter()
    .any(|p| memmem::find(&lower, p).is_some())
}

/// The prompt's tokens an error message gives (llama-server's `n_prompt_tokens`).
pub fn prompt_tokens_in(error: &[u8]) -> Option<u64> {
    number_after(error, b"\"n_prompt_tokens\"").map(u64::from)
}

/// The number after `needle` (and any spaces, colons and quotes).
fn number_after(text: &[u8], needle: &[u8]) -> Option<u32> {
    let at = memmem::find(text, needle)? + needle.len();
    let rest = &text[at..];
    let rest = &rest[rest.iter().take_while(|b| b" :\"".contains(b)).count()..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits])
        .ok()?
        .parse::<u32>()
        .ok()
}

/// The context size an error message gives: llama-server's `"n_ctx": N`, or OpenAI's and vLLM's
/// "maximum context length is N tokens".
pub fn n_ctx_in(error: &[u8]) -> Option<u32> {
    // A context this small is no model's: more likely the client's own words echoed in the error.
    number_after(error, b"\"n_ctx\"")
        .or_else(|| number_after(error, b"context length is"))
        .filter(|&n| n >= MIN_N_CTX)
}

/// The request cut to fit `n_ctx` (and without tools when `drop_tools`), and how many messages
/// were dropped; `None` when nothing can be taken out.
pub fn trim(
    body: &[u8],
    facts: &ContextFacts,
    n_ctx: u32,
    drop_tools: bool,
) -> Option<(Bytes, usize)> {
    let mut v: Map<String, Value> = serde_json::from_slice(body).ok()?;
    let mut changed = false;
    if drop_tools {
        for key in ["tools", "tool_choice", "parallel_tool_calls"] {
            changed |= v.remove(key).is_some();
        }
    }
    let reserve = answer_room(&v).unwrap_or(n_ctx / 4).min(n_ctx / 2);
    let budget = u64::from(n_ctx - reserve) * u64::from(facts.bytes_per_token()) / 1000;
    let Some(Value::Array(messages)) = v.remove("messages") else {
        return None;
    };
    let rest = serde_json::to_vec(&v).ok()?.len() as u64;
    let sizes: Vec<u64> = messages
        .iter()
        .map(|m| serde_json::to_vec(m).map_or(0, |b| b.len() as u64 + 1))
        .collect();
    let mut total = rest + sizes.iter().sum::<u64>();
    let is_system = |m: &Value| m.get("role").and_then(Value::as_str) == Some("system");
    let mut keep = vec![true; messages.len()];
    let others: Vec<usize> = (0..messages.len())
        .filter(|&i| !is_system(&messages[i]))
        .collect();
    let mut kept_others = others.len();
    let mut dropped = 0;
    for &i in &others {
        let leading_non_user = messages[i].get("role").and_then(Value::as_str) != Some("user");
        let over = total > budget;
        // The newest message stays; what is kept begins at a user message.
        if kept_others <= 1 || !(over || (dropped > 0 && leading_non_user)) {
            break;
        }
        keep[i] = false;
        total -= sizes[i];
        kept_others -= 1;
        dropped += 1;
    }
    if dropped == 0 && !changed {
        return None;
    }
    let kept: Vec<Value> = messages
        .into_iter()
        .zip(keep)
        .filter_map(|(m, k)| k.then_some(m))
        .collect();
    v.insert("messages".into(), Value::Array(kept));
    Some((Bytes::from(serde_json::to_vec(&v).ok()?), dropped))
}

/// The room the client asked for the answer.
fn answer_room(v: &Map<String, Value>) -> Option<u32> {
    ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| v.get(*k))
        .or_else(|| v.get("options").and_then(|o| o.get("num_predict")))
        .and_then(Value::as_u64)
        .filter(|&n| n > 0)
        .map(|n| n.min(u64::from(u32::MAX)) as u32)
}

/// Whether a chat's estimate does not fit what is known of the context (the proactive cut).
pub fn too_long(body: &[u8], facts: &ContextFacts) -> Option<u32> {
    let n_ctx = facts.n_ctx()?;
    let estimate = body.len() as u64 * 1000 / u64::from(facts.bytes_per_token());
    (estimate > u64::from(n_ctx - n_ctx / 4)).then_some(n_ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conversation(turns: usize) -> Vec<u8> {
        let mut messages = vec![json!({"role": "system", "content": "be brief"})];
        for i in 0..turns {
            let role = if i % 2 == 0 { "user" } else { "assistant" };
            messages
                .push(json!({"role": role, "content": format!("turn {i} {}", "word ".repeat(40))}));
        }
        serde_json::to_vec(
            &json!({"model": "m", "messages": messages, "max_tokens": 16,
            "tools": [{"type": "function"}]}),
        )
        .unwrap()
    }

    #[test]
    fn errors_that_say_the_context_is_exceeded() {
        let old = br#"{"error":{"code":400,"message":"the request exceeds the available context size. try increasing the context size or enable context shift","type":"invalid_request_error"}}"#;
        assert!(exceeded(old) && n_ctx_in(old).is_none());
        let new = br#"{"error":{"code":400,"message":"...","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}"#;
        assert_eq!((exceeded(new), n_ctx_in(new)), (true, Some(4096)));
        assert_eq!(prompt_tokens_in(new), Some(5000));
        let vllm = br#"{"message":"This model's maximum context length is 8192 tokens. However, you requested 9000 tokens"}"#;
        assert_eq!((exceeded(vllm), n_ctx_in(vllm)), (true, Some(8192)));
        assert!(!exceeded(br#"{"error":"model not found"}"#));
    }

    #[test]
    fn the_newest_turns_that_fit_are_kept_from_a_user_message() {
        let facts = ContextFacts::default();
        let body = conversation(41);
        let (cut, dropped) = trim(&body, &facts, 1024, false).unwrap();
        let v: Value = serde_json::from_slice(&cut).unwrap();
        let kept = v["messages"].as_array().unwrap();
        assert_eq!(kept.len(), 42 - dropped);
        assert_eq!(kept[0]["role"], "system");
        assert_eq!(kept[1]["role"], "user");
        assert!(kept.last().unwrap()["content"]
            .as_str()
            .unwrap()
            .starts_with("turn 40 "));
        // Within the budget: 1024 tokens less the 16 asked for, at 4 bytes a token.
        assert!(cut.len() <= (1024 - 16) * 4, "{}", cut.len());
        assert!(v.get("tools").is_some());
        // The second cut leaves the tools out too; denser tokens cut more.
        facts.denser();
        let (cut2, dropped2) = trim(&body, &facts, 1024, true).unwrap();
        assert!(dropped2 > dropped);
        assert!(serde_json::from_slice::<Value>(&cut2)
            .unwrap()
            .get("tools")
            .is_none());
        // What fits is left alone; a lone message is never dropped.
        assert!(trim(&conversation(1), &ContextFacts::default(), 1024, false).is_none());
        let (one, _) = trim(&conversation(41), &facts, 64, false).unwrap();
        let v: Value = serde_json::from_slice(&one).unwrap();
        assert_eq!(v["messages"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn the_proactive_cut_needs_a_known_context() {
        let facts = ContextFacts::default();
        let body = conversation(41);
        assert_eq!(too_long(&body, &facts), None);
        facts.learn_n_ctx(1024);
        assert_eq!(too_long(&body, &facts), Some(1024));
        assert_eq!(too_long(&conversation(1), &facts), None);
    }
}
