//! The mock's HTTP server and route handlers.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use monoio::io::IntoPollIo;
use monoio_compat::hyper::{MonoioIo, MonoioTimer};
use serde_json::{json, Value};

use crate::answer::{inference, Route};
use crate::body::MockBody;
use crate::options::Options;
use crate::replies::*;
use crate::stats::Stats;

pub struct MockState {
    pub opts: Options,
    pub stats: Stats,
    /// Set with --tls-cert/--tls-key: every connection is HTTPS.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl MockState {
    pub fn new(opts: Options, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        MockState {
            opts,
            stats: Stats::default(),
            tls,
        }
    }
}

pub fn run(listener: std::net::TcpListener, state: Arc<MockState>) {
    nomyo_router::rt::block_on(nomyo_router::config::IoDriver::Auto, async move {
        let listener = monoio::net::TcpListener::from_std(listener).expect("adopt listener");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            state.stats.connections.fetch_add(1, Ordering::SeqCst);
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
                match state.tls.clone() {
                    None => serve_http(io, state).await,
                    Some(acceptor) => {
                        if let Ok(tls) = acceptor.accept(io).await {
                            serve_http(tls, state).await;
                        }
                    }
                }
            });
        }
    });
}

async fn serve_http<T>(io: T, state: Arc<MockState>)
where
    T: monoio::io::poll_io::AsyncRead + monoio::io::poll_io::AsyncWrite + Unpin + 'static,
{
    let svc = service_fn(move |req| handle(req, state.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(MonoioTimer)
        .serve_connection(MonoioIo::new(io), svc)
        .await;
}

pub type Resp = Response<MockBody>;

pub fn json_resp(status: StatusCode, v: &Value) -> Resp {
    json_text_resp(status, v.to_string())
}

/// A JSON answer already written out.
pub fn json_text_resp(status: StatusCode, text: String) -> Resp {
    let mut r = Response::new(MockBody::Full(Some(Bytes::from(text))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

pub fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
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
        // OpenAI's Responses API, as the `openai` kind serves it (Ollama and llama-server mocks
        // answer 404 like servers without it).
        (Method::POST, "/v1/responses") if o.kind == "openai" => responses(&json_body),
        (Method::GET, "/props") if o.kind == "llama-server" => json_resp(
            StatusCode::OK,
            &json!({"default_generation_settings": {"n_ctx": if o.n_ctx > 0 { o.n_ctx } else { 4096 }},
                    "total_slots": 1, "modalities": {"vision": false, "audio": false}}),
        ),
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

pub fn model_of(v: &Value) -> Option<String> {
    v.get("model")
        .or_else(|| v.get("name"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

pub fn known(o: &Options, name: &str) -> bool {
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

/// `/v1/responses`: one output message whose text names the input; streamed as OpenAI streams it
/// (`response.output_text.delta` events, then `response.completed`) when asked.
fn responses(body: &Value) -> Resp {
    let model = model_of(body).unwrap_or_default();
    let input = body.get("input").map(Value::to_string).unwrap_or_default();
    let text = format!("You said {input}");
    let done = json!({"id": "resp_mock", "object": "response", "status": "completed", "model": model,
        "output": [{"type": "message", "role": "assistant",
                    "content": [{"type": "output_text", "text": text}]}],
        "usage": {"input_tokens": 3, "output_tokens": 4, "total_tokens": 7}});
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        return json_resp(StatusCode::OK, &done);
    }
    let mut events = String::new();
    for word in text.split_inclusive(' ') {
        let delta = json!({"type": "response.output_text.delta", "delta": word});
        events.push_str(&format!(
            "event: response.output_text.delta\ndata: {delta}\n\n"
        ));
    }
    let completed = json!({"type": "response.completed", "response": done});
    events.push_str(&format!("event: response.completed\ndata: {completed}\n\n"));
    let mut r = Response::new(MockBody::Full(Some(Bytes::from(events))));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r
}
