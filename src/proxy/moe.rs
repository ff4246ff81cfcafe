//! MOE, "multiple opinions ensemble" (the reference's `moe-<model>` on chat): `moe_candidates`
//! answers to the conversation, spread over the endpoints that have `<model>`; a critique of each;
//! then the final answer, chosen or written from the candidates' text and their critiques, goes
//! through the ordinary phases — streamed in the client's format if it asked for a stream, on any
//! kind of endpoint (through the translators).
//!
//! Every inner request takes and releases its own slot, waits in the queue like any request, obeys
//! the timeouts, and is counted in accounting; dropping the client's request drops them all (which
//! closes their upstream connections). The cache is bypassed. A candidate that fails is left out
//! while at least half of them answered; a critique that fails leaves its candidate uncritiqued.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::join_all;
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};

use super::peer;
use super::response_filter;
use super::session::{InferenceRequest, Session};
use super::upstream::{self, Deadlines};
use crate::accounting::{Record, Tokens};
use crate::api::errors::ApiError;
use crate::api::routes::Inference;
use crate::api::sniff::Sniffed;
use crate::http::lazy_timer::LazyTimer;
use crate::http::request_head::RequestHead;

const PREFIX: &str = "moe-";
/// The answer header with the candidates used and the inner requests' tokens.
pub static HEADER: http::HeaderName = http::HeaderName::from_static("x-router-moe");
/// The most of an inner answer read.
const MAX_ANSWER_BYTES: usize = 16 << 20;

/// The model behind `moe-<model>` on a chat route.
pub fn requested(route: Inference, model: &str) -> Option<&str> {
    matches!(route, Inference::Chat | Inference::OaiChat)
        .then(|| model.strip_prefix(PREFIX))
        .flatten()
        .filter(|m| !m.is_empty())
}

/// The final request: the client's, for `model`, whose one user message asks for the best answer
/// from the candidates and critiques. Also the tokens the inner requests used.
pub struct Prepared {
    pub body: Bytes,
    pub inner: Tokens,
    pub candidates: usize,
}

/// Runs the candidates and their critiques.
pub async fn prepare(
    s: &Session,
    route: Inference,
    head: &RequestHead,
    body: &[u8],
    model: &str,
) -> Result<Prepared, ApiError> {
    let client: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let messages = client
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let query = last_user_text(&messages)
        .ok_or_else(|| ApiError::bad_request("MOE needs a user message to answer"))?;
    let n = s.shared.config.moe_candidates.max(1);
    let inner = Inner {
        s,
        route,
        head,
        client: &client,
        model,
    };

    let candidates = join_all((0..n).map(|_| inner.ask(messages.clone(), Some(1.0)))).await;
    let mut used = Tokens::default();
    let mut answers = Vec::new();
    let mut last_error = None;
    for c in candidates {
        match c {
            Ok((text, tokens)) => {
                add(&mut used, tokens);
                answers.push(text);
            }
            Err(e) => last_error = Some(e),
        }
    }
    if answers.len() * 2 < n {
        return Err(last_error.unwrap_or_else(|| {
            ApiError::new(StatusCode::BAD_GATEWAY, "MOE: too few candidate answers")
        }));
    }
    let critiques = join_all(answers.iter().map(|a| {
        let prompt = critique_prompt(&query, a);
        inner.ask(vec![json!({"role": "user", "content": prompt})], None)
    }))
    .await;
    let mut blocks = Vec::with_capacity(answers.len());
    for (answer, critique) in answers.iter().zip(critiques) {
        let critique = match critique {
            Ok((text, tokens)) => {
                add(&mut used, tokens);
                Some(text)
            }
            Err(_) => None,
        };
        blocks.push((answer.as_str(), critique));
    }
    let mut out = client.clone();
    out.insert("model".into(), json!(model));
    out.insert(
        "messages".into(),
        json!([{"role": "user", "content": final_prompt(&query, &blocks)}]),
    );
    Ok(Prepared {
        body: Bytes::from(serde_json::to_vec(&out).unwrap_or_default()),
        inner: used,
        candidates: answers.len(),
    })
}

fn add(sum: &mut Tokens, t: Tokens) {
    sum.prompt += t.prompt;
    sum.completion += t.completion;
}

/// One inner request's setting: the client's request, for `model`.
struct Inner<'a> {
    s: &'a Session,
    route: Inference,
    head: &'a RequestHead,
    client: &'a Map<String, Value>,
    model: &'a str,
}

impl Inner<'_> {
    /// A whole (non-streamed) chat answer to `messages`: its text and tokens.
    async fn ask(
        &self,
        messages: Vec<Value>,
        temperature: Option<f64>,
    ) -> Result<(String, Tokens), ApiError> {
        let mut req = self.client.clone();
        req.insert("model".into(), json!(self.model));
        req.insert("messages".into(), Value::Array(messages));
        req.insert("stream".into(), json!(false));
        req.remove("stream_options");
        if let Some(t) = temperature {
            match self.route {
                Inference::Chat => {
                    let options = req.entry("options").or_insert_with(|| json!({}));
                    if let Some(o) = options.as_object_mut() {
                        o.insert("temperature".into(), json!(t));
                    }
                }
                _ => {
                    req.insert("temperature".into(), json!(t));
                }
            }
        }
        let body = Bytes::from(serde_json::to_vec(&req).unwrap_or_default());
        let shared = &self.s.shared;
        let cfg = &shared.config;
        let cands = peer::candidates(shared, self.route, self.model)?;
        let inf = InferenceRequest {
            route: self.route,
            head: self.head,
            body: &body,
            sniffed: Sniffed {
                model: self.model.to_string(),
                stream: false,
                has_nomyo: false,
                usage_asked: false,
            },
        };
        let attempts = (1 + cfg.limits.max_retries as usize).min(cands.len().max(1));
        let mut skip = Vec::new();
        let mut last_error = None;
        for _ in 0..attempts {
            let Some(p) =
                peer::upstream_peer(&cands, &skip, &cfg.queue, self.model, last_error.is_some())
                    .await?
            else {
                break;
            };
            let ep = p.guard.endpoint().clone();
            if let Some(m) = &shared.metrics {
                m.upstream_attempt(ep.id);
            }
            let mut up = upstream::request(&ep, &inf, &p.guard.slot().model, false)?;
            up.plain = true;
            let started = Instant::now();
            let deadlines = Deadlines::new(cfg, started, p.loaded);
            let mut timer = LazyTimer::new(started);
            let sent = upstream::forward(
                &ep,
                &mut up,
                self.head,
                cfg.timeouts.connect,
                &deadlines,
                &mut timer,
            )
            .await;
            let judged = response_filter::filter_or_skip(
                shared,
                &p.guard,
                sent,
                &mut skip,
                &mut last_error,
            )?;
            let Some(resp) = judged else { continue };
            let status = resp.status();
            let read = http_body_util::Limited::new(resp.into_body(), MAX_ANSWER_BYTES).collect();
            let bytes = match monoio::time::timeout(idle(cfg.timeouts.idle), read).await {
                Ok(Ok(b)) => b.to_bytes(),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        format!("MOE: the answer of {} could not be read", ep.cfg.url),
                    ))
                }
            };
            let served_as = p.guard.slot().model.clone();
            drop(p);
            if !status.is_success() {
                return Err(ApiError::new(
                    status,
                    crate::translate::response::error_message(&bytes),
                ));
            }
            let tokens = crate::accounting::tap::find_tokens(&bytes).unwrap_or_default();
            if let Some(acc) = &shared.accounting {
                acc.record(Record {
                    endpoint: ep.label.clone(),
                    // Under the endpoint's name for it, as every other answer is counted.
                    model: served_as,
                    tokens,
                    cached: false,
                });
            }
            let text = answer_text(&bytes).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!("MOE: {} answered without a message", ep.cfg.url),
                )
            })?;
            return Ok((text, tokens));
        }
        Err(last_error.unwrap_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no healthy endpoint serves this model",
            )
        }))
    }
}

fn idle(d: Duration) -> Duration {
    if d.is_zero() {
        Duration::from_secs(600)
    } else {
        d
    }
}

/// The text of a whole chat answer in either API's form (an Ollama client's request to an OpenAI
/// endpoint comes back in OpenAI's).
fn answer_text(bytes: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(bytes).ok()?;
    v.pointer("/message/content")
        .or_else(|| v.pointer("/choices/0/message/content"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The text of the last user message (OpenAI's content parts: their text joined).
fn last_user_text(messages: &[Value]) -> Option<String> {
    let m = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    match m.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => None,
    }
}

fn critique_prompt(query: &str, answer: &str) -> String {
    format!(
        "A user asked:\n<query>\n{query}\n</query>\n\nThis answer was given:\n<answer>\n{answer}\n</answer>\n\n\
         Analyse the answer critically: is it correct, complete and clear, and does it answer what was \
         asked? Name its errors and omissions. Reply with the analysis only."
    )
}

fn final_prompt(query: &str, blocks: &[(&str, Option<String>)]) -> String {
    let mut p = format!(
        "A user asked:\n<query>\n{query}\n</query>\n\nCandidate answers follow, each with a critique.\n"
    );
    for (i, (answer, critique)) in blocks.iter().enumerate() {
        let n = i + 1;
        p.push_str(&format!("\n<candidate_{n}>\n{answer}\n</candidate_{n}>\n"));
        if let Some(c) = critique {
            p.push_str(&format!("<critique_{n}>\n{c}\n</critique_{n}>\n"));
        }
    }
    p.push_str(
        "\nUsing the candidates and the critiques, write the best answer to the query: take the best \
         candidate, or combine and correct them. Answer in the language of the query, and reply with \
         the final answer only.",
    );
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_chat_routes_with_the_prefix() {
        assert_eq!(requested(Inference::Chat, "moe-llama3"), Some("llama3"));
        assert_eq!(
            requested(Inference::OaiChat, "moe-org/m:q4"),
            Some("org/m:q4")
        );
        assert_eq!(requested(Inference::Generate, "moe-llama3"), None);
        assert_eq!(requested(Inference::Chat, "moe-"), None);
        assert_eq!(requested(Inference::Chat, "llama3"), None);
    }

    #[test]
    fn prompts_carry_the_candidates_text() {
        let p = final_prompt(
            "why?",
            &[
                ("because A", Some("A is vague".into())),
                ("because B", None),
            ],
        );
        assert!(p.contains("<candidate_1>\nbecause A\n</candidate_1>"));
        assert!(p.contains("<critique_1>\nA is vague\n</critique_1>"));
        assert!(p.contains("<candidate_2>\nbecause B\n</candidate_2>"));
        assert!(!p.contains("critique_2"));
        let msgs = vec![
            json!({"role": "user", "content": "first"}),
            json!({"role": "assistant", "content": "x"}),
            json!({"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}]}),
        ];
        assert_eq!(last_user_text(&msgs).as_deref(), Some("second"));
        assert_eq!(
            answer_text(br#"{"message":{"content":"hi"}}"#).as_deref(),
            Some("hi")
        );
        assert_eq!(
            answer_text(br#"{"choices":[{"message":{"content":"yo"}}]}"#).as_deref(),
            Some("yo")
        );
    }
}
