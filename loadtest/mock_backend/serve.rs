//! The mock's HTTP server and route handlers.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::SinkExt;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use monoio::io::IntoPollIo;
use monoio_compat::hyper::{MonoioIo, MonoioTimer};
use serde_json::{json, Value};

use crate::body::MockBody;
use crate::options::Options;
use crate::replies::*;
use crate::stats::{InFlight, Stats};

pub struct MockState {
    pub opts: Options,
    pub stats: Stats,
}

impl MockState {
    pub fn new(opts: Options) -> Self {
        MockState {
            opts,
            stats: Stats::default(),
        }
    }
}

pub fn run(listener: std::net::TcpListener, state: Arc<MockState>) {
    nomyo_router::server::runtime::block_on(nomyo_router::config::IoDriver::Auto, async move {
        let listener = monoio::net::TcpListener::from_std(listener).expect("adopt listener");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            if state.opts.fault == "refuse" {
                drop(stream);
                continue;
            }
            let state = state.clone();
            monoio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let Ok(io) = stream.into_poll_io() else {
                    return;
                };
                let svc = service_fn(move |req| handle(req, state.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(MonoioTimer)
                    .serve_connection(MonoioIo::new(io), svc)
                    .await;
            });
        }
    });
}

type Resp = Response<MockBody>;

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    let mut r = Response::new(MockBody::Full(Some(Bytes::from(v.to_string()))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn handle(req: Request<Incoming>, state: Arc<MockState>) -> Result<Resp, std::io::Error> {
    state.stats.requests.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = req.into_parts();
    if let Some(auth) = header_str(&parts.headers, "authorization") {
        state
            .stats
            .auth
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(auth.to_string());
    }
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = parts.uri.path().to_string();
    let o = &state.opts;
    let resp = match (parts.method.clone(), path.as_str()) {
        (_, "/mock/stats") => json_resp(StatusCode::OK, &state.stats.to_json()),
        (_, "/mock/reset") => {
            state.stats.reset();
            json_resp(StatusCode::OK, &json!({"reset": true}))
        }
        (Method::GET | Method::HEAD, "/") => Response::new(MockBody::Full(Some(
            Bytes::from_static(b"Ollama is running"),
        ))),
        (_, "/api/version") => json_resp(StatusCode::OK, &json!({"version": o.version})),
        (_, "/api/tags") => json_resp(
            StatusCode::OK,
            &json!({"models": o.models.iter().map(|m| tag(m)).collect::<Vec<_>>()}),
        ),
        (_, "/api/ps") => json_resp(
            StatusCode::OK,
            &json!({"models": o.loaded_models().iter().map(|m| ps_entry(m)).collect::<Vec<_>>()}),
        ),
        (_, "/v1/models") | (_, "/models") => {
            let loaded = o.loaded_models();
            let llama = o.kind == "llama-server";
            let data: Vec<Value> = o
                .models
                .iter()
                .map(|m| openai_model(m, llama.then(|| loaded.contains(m))))
                .collect();
            json_resp(StatusCode::OK, &json!({"object": "list", "data": data}))
        }
        (_, "/api/show") => match model_of(&json_body).filter(|m| known(o, m)) {
            Some(m) => json_resp(
                StatusCode::OK,
                &json!({"modelfile": format!("FROM {m}"), "parameters": "", "template": "{{ .Prompt }}",
                "details": tag(&m)["details"], "model_info": {"general.architecture": "llama"}, "capabilities": ["completion"]}),
            ),
            None => json_resp(StatusCode::NOT_FOUND, &json!({"error": "model not found"})),
        },
        (_, "/api/pull") | (_, "/api/push") | (_, "/api/create") => progress(&json_body),
        (_, "/api/copy") | (_, "/api/delete") => {
            let name = json_body
                .get("source")
                .or_else(|| json_body.get("model"))
                .and_then(Value::as_str)
                .unwrap_or("");
            if known(o, name) {
                Response::new(MockBody::Full(None))
            } else {
                json_resp(
                    StatusCode::NOT_FOUND,
                    &json!({"error": format!("model '{name}' not found")}),
                )
            }
        }
        (_, p) if p.starts_with("/api/blobs/") => {
            let mut r = Response::new(MockBody::Full(None));
            *r.status_mut() = if parts.method == Method::POST {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            r
        }
        (Method::POST, p) => match Route::of(p) {
            Some(route) => return inference(route, &parts.headers, json_body, state.clone()).await,
            None => json_resp(
                StatusCode::NOT_FOUND,
                &json!({"error": "404 page not found"}),
            ),
        },
        _ => json_resp(
            StatusCode::NOT_FOUND,
            &json!({"error": "404 page not found"}),
        ),
    };
    Ok(resp)
}

fn model_of(v: &Value) -> Option<String> {
    v.get("model")
        .or_else(|| v.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn known(o: &Options, name: &str) -> bool {
    let strip = |s: &str| s.strip_suffix(":latest").unwrap_or(s).to_string();
    o.models.iter().any(|m| strip(m) == strip(name))
}

fn progress(body: &Value) -> Resp {
    let lines = [
        json!({"status": "pulling manifest"}),
        json!({"status": "pulling abc", "digest": "sha256:abc", "total": 100, "completed": 50}),
        json!({"status": "pulling abc", "digest": "sha256:abc", "total": 100, "completed": 100}),
        json!({"status": "success"}),
    ];
    if body.get("stream").and_then(Value::as_bool) == Some(false) {
        return json_resp(StatusCode::OK, &json!({"status": "success"}));
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut r = Response::new(MockBody::Full(Some(Bytes::from(text))));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    r
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
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
    fn of(path: &str) -> Option<Route> {
        let p = path
            .strip_prefix("/v1")
            .filter(|_| !path.starts_with("/v1/../"));
        Some(match (path, p) {
            ("/api/chat", _) => Route::Chat,
            ("/api/generate", _) => Route::Generate,
            ("/api/embed", _) => Route::Embed,
            ("/api/embeddings", _) => Route::Embeddings,
            (_, Some("/chat/completions")) | ("/chat/completions", _) => Route::OaiChat,
            (_, Some("/completions")) | ("/completions", _) => Route::OaiCompletions,
            (_, Some("/embeddings")) | ("/embeddings", _) => Route::OaiEmbeddings,
            (_, Some("/rerank")) | ("/rerank", _) => Route::Rerank,
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

async fn inference(
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
            let err = if route.ollama() {
                json!({"error": "mock failure"})
            } else {
                json!({"error": {"message": "mock failure", "type": "api_error", "param": null, "code": null}})
            };
            return Ok(json_resp(StatusCode::INTERNAL_SERVER_ERROR, &err));
        }
        "hang" => {
            // Until the client goes away; the drop of `flight` counts it as cancelled.
            monoio::time::sleep(Duration::from_secs(86_400)).await;
        }
        "refuse" => return Err(std::io::Error::other("refused")),
        _ => {}
    }
    let Some(model) = model_of(&body) else {
        flight.done = true;
        return Ok(json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"error": "model is required"}),
        ));
    };
    if !known(o, &model) {
        flight.done = true;
        let msg = format!("model '{model}' not found");
        let err = if route.ollama() {
            json!({"error": msg})
        } else {
            json!({"error": {"message": msg, "type": "not_found_error", "param": null, "code": null}})
        };
        return Ok(json_resp(StatusCode::NOT_FOUND, &err));
    }
    let prompt = prompt_tokens(&body);
    match route {
        Route::Embed | Route::Embeddings | Route::OaiEmbeddings => {
            flight.done = true;
            let texts = inputs(
                body.get("input")
                    .or_else(|| body.get("prompt"))
                    .unwrap_or(&Value::Null),
            );
            let v = match route {
                Route::Embed => {
                    json!({"model": model, "embeddings": texts.iter().map(|t| embedding(t)).collect::<Vec<_>>(), "total_duration": 1000, "load_duration": 0, "prompt_eval_count": texts.len()})
                }
                Route::Embeddings => {
                    json!({"embedding": embedding(texts.first().map(String::as_str).unwrap_or(""))})
                }
                _ => {
                    json!({"object": "list", "model": model, "data": texts.iter().enumerate().map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": embedding(t)})).collect::<Vec<_>>(), "usage": {"prompt_tokens": texts.len(), "total_tokens": texts.len()}})
                }
            };
            return Ok(json_resp(StatusCode::OK, &v));
        }
        Route::Rerank => {
            flight.done = true;
            let n = body
                .get("documents")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let results: Vec<Value> = (0..n)
                .map(|i| json!({"index": i, "relevance_score": 1.0 / (i as f64 + 1.0)}))
                .collect();
            return Ok(json_resp(
                StatusCode::OK,
                &json!({"model": model, "results": results}),
            ));
        }
        _ => {}
    }
    let stream = body
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(route.ollama());
    let die = fault == "die";
    if !stream && !die {
        if delay > 0.0 {
            monoio::time::sleep(Duration::from_secs_f64(delay * tokens as f64 / 1000.0)).await;
        }
        flight.done = true;
        let text: String = (0..tokens).map(token).collect();
        let id = "chatcmpl-mock";
        let v = match route {
            Route::Chat => ollama_final(true, &model, &text, prompt, tokens),
            Route::Generate => ollama_final(false, &model, &text, prompt, tokens),
            Route::OaiChat => openai_chat_whole(id, &model, &text, prompt, tokens),
            _ => openai_completion_whole(id, &model, &text, prompt, tokens),
        };
        return Ok(json_resp(StatusCode::OK, &v));
    }
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (tx, rx) = mpsc::channel(16);
    monoio::spawn(stream_tokens(
        route,
        model,
        tokens,
        delay,
        prompt,
        die,
        include_usage,
        tx,
        flight,
    ));
    let mut r = Response::new(MockBody::Stream(rx));
    let ct = if route.ollama() {
        "application/x-ndjson"
    } else {
        "text/event-stream"
    };
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    Ok(r)
}

#[allow(clippy::too_many_arguments)]
async fn stream_tokens(
    route: Route,
    model: String,
    tokens: usize,
    delay: f64,
    prompt: usize,
    die: bool,
    include_usage: bool,
    mut tx: mpsc::Sender<Result<Bytes, &'static str>>,
    mut flight: InFlight,
) {
    let id = "chatcmpl-mock";
    let sse = |v: Value| Bytes::from(format!("data: {v}\n\n"));
    let line = |v: Value| Bytes::from(format!("{v}\n"));
    if route == Route::OaiChat
        && tx
            .send(Ok(sse(openai_chunk(
                id,
                &model,
                json!({"role": "assistant", "content": ""}),
                None,
            ))))
            .await
            .is_err()
    {
        return;
    }
    for i in 0..tokens {
        if delay > 0.0 {
            monoio::time::sleep(Duration::from_secs_f64(delay / 1000.0)).await;
        }
        if die && i == tokens / 2 {
            let _ = tx.send(Err("mock died mid-stream")).await;
            return;
        }
        let t = token(i);
        let chunk = match route {
            Route::Chat => line(ollama_chunk(true, &model, &t)),
            Route::Generate => line(ollama_chunk(false, &model, &t)),
            Route::OaiChat => sse(openai_chunk(id, &model, json!({"content": t}), None)),
            _ => sse(openai_completion_chunk(id, &model, &t, None)),
        };
        if tx.send(Ok(chunk)).await.is_err() {
            return;
        }
    }
    let tail: Vec<Bytes> = match route {
        Route::Chat => vec![line(ollama_final(true, &model, "", prompt, tokens))],
        Route::Generate => vec![line(ollama_final(false, &model, "", prompt, tokens))],
        _ => {
            let (finish, object) = if route == Route::OaiChat {
                (
                    sse(openai_chunk(id, &model, json!({}), Some("stop"))),
                    "chat.completion.chunk",
                )
            } else {
                (
                    sse(openai_completion_chunk(id, &model, "", Some("stop"))),
                    "text_completion",
                )
            };
            let mut t = vec![finish];
            if include_usage {
                t.push(sse(openai_usage_chunk(id, &model, object, prompt, tokens)));
            }
            t.push(Bytes::from_static(b"data: [DONE]\n\n"));
            t
        }
    };
    for b in tail {
        if tx.send(Ok(b)).await.is_err() {
            return;
        }
    }
    flight.done = true;
}
