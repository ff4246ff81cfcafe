//! Inference answers of the mock: plans what a real server would say (reasoning, content, a tool
//! call when tools are offered), then sends it whole or as a stream in the route's format, with the
//! configured delays and faults.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::SinkExt;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use crate::body::MockBody;
use crate::replies::*;
use crate::serve::{header_str, json_resp, json_text_resp, known, model_of, MockState, Resp};
use crate::stats::InFlight;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Chat,
    Generate,
    Embed,
    Embeddings,
    OaiChat,
    OaiCompletions,
    OaiEmbeddings,
    Rerank,
}

impl Route {
    pub fn of(path: &str) -> Option<Route> {
        let p = path.strip_prefix("/v1").unwrap_or(path);
        Some(match (path, p) {
            ("/api/chat", _) => Route::Chat,
            ("/api/generate", _) => Route::Generate,
            ("/api/embed", _) => Route::Embed,
            ("/api/embeddings", _) => Route::Embeddings,
            (_, "/chat/completions") => Route::OaiChat,
            (_, "/completions") => Route::OaiCompletions,
            (_, "/embeddings") => Route::OaiEmbeddings,
            (_, "/rerank") => Route::Rerank,
            _ => return None,
        })
    }

    fn ollama(self) -> bool {
        matches!(
            self,
            Route::Chat | Route::Generate | Route::Embed | Route::Embeddings
        )
    }
}

/// What the answer contains.
struct Plan {
    reasoning: Vec<String>,
    content: Vec<String>,
    /// Name and arguments of a tool call, when the request offered tools.
    tool: Option<(String, Value)>,
    prompt_tokens: usize,
    /// llama-server reports `timings` instead of `usage`.
    llama: bool,
}

impl Plan {
    fn new(route: Route, body: &Value, tokens: usize, llama: bool) -> Plan {
        let wants_reasoning = if route.ollama() {
            body.get("think")
                .is_some_and(|t| t.as_bool().unwrap_or(t.is_string()))
        } else {
            body.get("reasoning_effort").is_some_and(|r| r.is_string())
        };
        let tool = body
            .get("tools")
            .and_then(Value::as_array)
            .and_then(|t| t.first())
            .map(|t| {
                let name = t
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or("tool")
                    .to_string();
                (name, json!({"city": "Tokyo", "unit": "celsius"}))
            });
        let content = if tool.is_some() {
            Vec::new()
        } else {
            (0..tokens).map(token).collect()
        };
        let reasoning = if wants_reasoning {
            (0..2).map(|i| format!("think{i} ")).collect()
        } else {
            Vec::new()
        };
        Plan {
            reasoning,
            content,
            tool,
            prompt_tokens: prompt_tokens(body),
            llama,
        }
    }

    fn completion_tokens(&self) -> usize {
        self.reasoning.len() + self.content.len() + usize::from(self.tool.is_some())
    }

    fn finish_reason(&self) -> &'static str {
        if self.tool.is_some() {
            "tool_calls"
        } else {
            "stop"
        }
    }

    /// The whole answer in the route's format.
    fn whole(&self, route: Route, model: &str) -> Value {
        let text: String = self.content.concat();
        let thinking: String = self.reasoning.concat();
        let n = self.completion_tokens();
        match route {
            Route::Chat | Route::Generate => {
                let mut v = ollama_final(route == Route::Chat, model, &text, self.prompt_tokens, n);
                if !thinking.is_empty() {
                    let at = if route == Route::Chat { "/message" } else { "" };
                    if let Some(o) = v.pointer_mut(at).and_then(Value::as_object_mut) {
                        o.insert("thinking".into(), json!(thinking));
                    }
                }
                if let Some((name, args)) = &self.tool {
                    v["message"]["tool_calls"] =
                        json!([{"function": {"index": 0, "name": name, "arguments": args}}]);
                }
                v
            }
            Route::OaiChat => {
                let mut v = openai_chat_whole("chatcmpl-mock", model, &text, self.prompt_tokens, n);
                let msg = &mut v["choices"][0]["message"];
                if !thinking.is_empty() {
                    msg[if self.llama {
                        "reasoning_content"
                    } else {
                        "reasoning"
                    }] = json!(thinking);
                }
                if let Some((name, args)) = &self.tool {
                    msg["content"] = Value::Null;
                    msg["tool_calls"] = json!([{"id": "call_mock0", "type": "function", "function": {"name": name, "arguments": args.to_string()}}]);
                }
                v["choices"][0]["finish_reason"] = json!(self.finish_reason());
                if self.llama {
                    v["timings"] = json!({"prompt_n": self.prompt_tokens, "predicted_n": n});
                }
                v
            }
            _ => openai_completion_whole("chatcmpl-mock", model, &text, self.prompt_tokens, n),
        }
    }

    /// The stream, chunk by chunk; `true` marks chunks that carry a token (and so wait the token delay).
    fn stream(&self, route: Route, model: &str, include_usage: bool) -> Vec<(bool, Bytes)> {
        let id = "chatcmpl-mock";
        let sse = |v: Value| Bytes::from(format!("data: {v}\n\n"));
        let line = |v: Value| Bytes::from(format!("{}\n", ollama_json(&v)));
        let n = self.completion_tokens();
        let mut out = Vec::new();
        match route {
            Route::Chat | Route::Generate => {
                let chat = route == Route::Chat;
                for t in &self.reasoning {
                    let mut v = ollama_chunk(chat, model, "");
                    let at = if chat { "/message" } else { "" };
                    if let Some(o) = v.pointer_mut(at).and_then(Value::as_object_mut) {
                        o.insert("thinking".into(), json!(t));
                    }
                    out.push((true, line(v)));
                }
                for t in &self.content {
                    out.push((true, line(ollama_chunk(chat, model, t))));
                }
                if let Some((name, args)) = &self.tool {
                    let mut v = ollama_chunk(chat, model, "");
                    v["message"]["tool_calls"] =
                        json!([{"function": {"index": 0, "name": name, "arguments": args}}]);
                    out.push((true, line(v)));
                }
                out.push((
                    false,
                    line(ollama_final(chat, model, "", self.prompt_tokens, n)),
                ));
            }
            Route::OaiChat => {
                let mut first = json!({"role": "assistant", "content": ""});
                if self.llama {
                    first = json!({"role": "assistant", "content": null});
                }
                let mut c = openai_chunk(id, model, first, None);
                c["usage"] = json!({"prompt_tokens": self.prompt_tokens, "completion_tokens": 0, "total_tokens": self.prompt_tokens});
                out.push((false, sse(c)));
                let field = if self.llama {
                    "reasoning_content"
                } else {
                    "reasoning"
                };
                for t in &self.reasoning {
                    out.push((
                        true,
                        sse(openai_chunk(id, model, json!({ field: t }), None)),
                    ));
                }
                for t in &self.content {
                    out.push((
                        true,
                        sse(openai_chunk(id, model, json!({"content": t}), None)),
                    ));
                }
                if let Some((name, args)) = &self.tool {
                    let text = args.to_string();
                    let (a, b) = text.split_at(text.len() / 2);
                    let head = json!({"tool_calls": [{"index": 0, "id": "call_mock0", "type": "function", "function": {"name": name, "arguments": ""}}]});
                    out.push((true, sse(openai_chunk(id, model, head, None))));
                    for part in [a, b] {
                        let frag =
                            json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]});
                        out.push((true, sse(openai_chunk(id, model, frag, None))));
                    }
                }
                let mut finish = openai_chunk(id, model, json!({}), Some(self.finish_reason()));
                if self.llama {
                    finish["timings"] = json!({"prompt_n": self.prompt_tokens, "predicted_n": n});
                }
                out.push((false, sse(finish)));
                if include_usage && !self.llama {
                    out.push((
                        false,
                        sse(openai_usage_chunk(
                            id,
                            model,
                            "chat.completion.chunk",
                            self.prompt_tokens,
                            n,
                        )),
                    ));
                }
                out.push((false, Bytes::from_static(b"data: [DONE]\n\n")));
            }
            _ => {
                for t in &self.content {
                    out.push((true, sse(openai_completion_chunk(id, model, t, None))));
                }
                out.push((
                    false,
                    sse(openai_completion_chunk(id, model, "", Some("stop"))),
                ));
                if include_usage {
                    out.push((
                        false,
                        sse(openai_usage_chunk(
                            id,
                            model,
                            "text_completion",
                            self.prompt_tokens,
                            n,
                        )),
                    ));
                }
                out.push((false, Bytes::from_static(b"data: [DONE]\n\n")));
            }
        }
        out
    }
}

fn error_body(route: Route, msg: &str, kind: &str) -> Value {
    if route.ollama() {
        json!({"error": msg})
    } else {
        json!({"error": {"message": msg, "type": kind, "param": null, "code": null}})
    }
}

pub async fn inference(
    route: Route,
    headers: &HeaderMap,
    body: Value,
    state: Arc<MockState>,
) -> Result<Resp, std::io::Error> {
    let o = &state.opts;
    state.stats.inference.fetch_add(1, Ordering::SeqCst);
    if let Some(id) = header_str(headers, "x-test-id") {
        let mut order = state.stats.order.lock().unwrap_or_else(|p| p.into_inner());
        if order.len() < 100_000 {
            order.push(id.to_string());
        }
    }
    if let Some(text) = last_user(&body) {
        let mut kept = text;
        while kept.len() > 16 * 1024 {
            kept.pop();
        }
        *state
            .stats
            .last_user
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = kept;
    }
    state.stats.start();
    let mut flight = InFlight {
        state: state.clone(),
        done: false,
    };
    let fault = header_str(headers, "x-mock-fault")
        .unwrap_or(&o.fault)
        .to_string();
    let tokens = header_str(headers, "x-mock-tokens")
        .and_then(|t| t.parse().ok())
        .unwrap_or(o.tokens);
    let delay = header_str(headers, "x-mock-delay-ms")
        .and_then(|t| t.parse().ok())
        .unwrap_or(o.token_delay_ms);
    let first = header_str(headers, "x-mock-first-byte-ms")
        .and_then(|t| t.parse().ok())
        .unwrap_or(o.first_byte_delay_ms);
    if first > 0.0 {
        monoio::time::sleep(Duration::from_secs_f64(first / 1000.0)).await;
    }
    match fault.as_str() {
        "500" => {
            flight.done = true;
            return Ok(json_resp(
                StatusCode::INTERNAL_SERVER_ERROR,
                &error_body(route, "mock failure", "api_error"),
            ));
        }
        "hang" => {
            // Until the client goes away; the drop of `flight` counts it as cancelled.
            monoio::time::sleep(Duration::from_secs(86_400)).await;
        }
        "refuse" => return Err(std::io::Error::other("refused")),
        _ => {}
    }
    if let Some(refusal) = refused(o, &body).or_else(|| too_long(o, &body)) {
        flight.done = true;
        return Ok(refusal);
    }
    let Some(model) = model_of(&body) else {
        flight.done = true;
        return Ok(json_resp(
            StatusCode::BAD_REQUEST,
            &error_body(route, "model is required", "invalid_request_error"),
        ));
    };
    if !known(o, &model) {
        flight.done = true;
        let msg = format!("model '{model}' not found");
        return Ok(json_resp(
            StatusCode::NOT_FOUND,
            &error_body(route, &msg, "not_found_error"),
        ));
    }
    if let Some(v) = non_generative(route, &body, &model) {
        flight.done = true;
        return Ok(json_resp(StatusCode::OK, &v));
    }
    let plan = Plan::new(route, &body, tokens, o.kind == "llama-server");
    let stream = body
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(route.ollama());
    let die = fault == "die";
    if !stream && !die {
        if delay > 0.0 {
            monoio::time::sleep(Duration::from_secs_f64(
                delay * plan.completion_tokens() as f64 / 1000.0,
            ))
            .await;
        }
        flight.done = true;
        let whole = plan.whole(route, &model);
        return Ok(match route {
            Route::Chat | Route::Generate => json_text_resp(StatusCode::OK, ollama_json(&whole)),
            _ => json_resp(StatusCode::OK, &whole),
        });
    }
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let chunks = plan.stream(route, &model, include_usage);
    let (tx, rx) = mpsc::channel(16);
    monoio::spawn(send_chunks(chunks, delay, die, tx, flight));
    let mut r = Response::new(MockBody::Stream(rx));
    let ct = if route.ollama() {
        "application/x-ndjson"
    } else {
        "text/event-stream"
    };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    // An end-to-end header a proxy must pass on, and hop-by-hop ones it must drop (one of them
    // hop-by-hop only because `Connection` names it): tests/http_conformance.rs checks both.
    h.insert("x-mock-stream", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=30"));
    h.insert(
        header::CONNECTION,
        HeaderValue::from_static("x-mock-private"),
    );
    h.insert("x-mock-private", HeaderValue::from_static("1"));
    Ok(r)
}

/// Embeddings and rerank answers.
fn non_generative(route: Route, body: &Value, model: &str) -> Option<Value> {
    let texts = inputs(
        body.get("input")
            .or_else(|| body.get("prompt"))
            .unwrap_or(&Value::Null),
    );
    Some(match route {
        Route::Embed => {
            json!({"model": model, "embeddings": texts.iter().map(|t| embedding(t)).collect::<Vec<_>>(),
                               "total_duration": 1000, "load_duration": 0, "prompt_eval_count": texts.len()})
        }
        Route::Embeddings => {
            json!({"embedding": embedding(texts.first().map(String::as_str).unwrap_or(""))})
        }
        Route::OaiEmbeddings => json!({"object": "list", "model": model,
            "data": texts.iter().enumerate().map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embedding(t)})).collect::<Vec<_>>(),
            "usage": {"prompt_tokens": texts.len(), "total_tokens": texts.len()}}),
        Route::Rerank => {
            let n = body
                .get("documents")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let results: Vec<Value> = (0..n)
                .map(|i| json!({"index": i, "relevance_score": 1.0 / (i as f64 + 1.0)}))
                .collect();
            json!({"model": model, "results": results})
        }
        _ => return None,
    })
}

async fn send_chunks(
    chunks: Vec<(bool, Bytes)>,
    delay: f64,
    die: bool,
    mut tx: mpsc::Sender<Result<Bytes, &'static str>>,
    mut flight: InFlight,
) {
    let die_at = chunks.len() / 2;
    for (i, (is_token, chunk)) in chunks.into_iter().enumerate() {
        if is_token && delay > 0.0 {
            monoio::time::sleep(Duration::from_secs_f64(delay / 1000.0)).await;
        }
        if die && i == die_at {
            let _ = tx.send(Err("mock died mid-stream")).await;
            return;
        }
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
    }
    flight.done = true;
}

/// The error a backend without tools or vision answers (`--refuse tools,images`): Ollama's words
/// from an `ollama` mock, llama-server's from the others.
fn refused(o: &crate::options::Options, body: &Value) -> Option<Resp> {
    let refuses = |what: &str| o.refuse.iter().any(|r| r == what);
    let has_tools = body
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let has_images = body.get("images").is_some()
        || body
            .get("messages")
            .and_then(Value::as_array)
            .is_some_and(|ms| {
                ms.iter().any(|m| {
                    m.get("images").is_some()
                        || m.get("content")
                            .and_then(Value::as_array)
                            .is_some_and(|parts| {
                                parts.iter().any(|p| {
                                    p.get("type").and_then(Value::as_str) == Some("image_url")
                                })
                            })
                })
            });
    let ollama = o.kind == "ollama";
    let (status, message) = if refuses("tools") && has_tools {
        match ollama {
            true => (
                StatusCode::BAD_REQUEST,
                "registry.ollama.ai/library/m does not support tools",
            ),
            false => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "tools param requires --jinja flag",
            ),
        }
    } else if refuses("images") && has_images {
        (StatusCode::INTERNAL_SERVER_ERROR, "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj")
    } else {
        return None;
    };
    let body = match ollama {
        true => json!({"error": message}),
        false => {
            json!({"error": {"code": status.as_u16(), "message": message, "type": "server_error"}})
        }
    };
    Some(json_resp(status, &body))
}

/// The text of a chat request's last user message.
fn last_user(body: &Value) -> Option<String> {
    let m = body
        .get("messages")?
        .as_array()?
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    match m.get("content")? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The refusal of a request longer than `--n-ctx` (tokens: the JSON's bytes / 4), in llama-server's
/// words.
fn too_long(o: &crate::options::Options, body: &Value) -> Option<Resp> {
    let tokens = body.to_string().len() / 4;
    if o.n_ctx == 0 || tokens <= o.n_ctx {
        return None;
    }
    let error = match o.ctx_error.as_str() {
        "old" => json!({"error": {"code": 400, "type": "invalid_request_error",
            "message": "the request exceeds the available context size. try increasing the context size or enable context shift"}}),
        _ => json!({"error": {"code": 400, "type": "exceed_context_size_error",
            "message": "request exceeds the available context size, try increasing it",
            "n_prompt_tokens": tokens, "n_ctx": o.n_ctx}}),
    };
    Some(json_resp(StatusCode::BAD_REQUEST, &error))
}
