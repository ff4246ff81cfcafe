//! The router's own routes (SPEC §2.3): `/`, `/health`, `/api/config`, `/api/config/reload`
//! (`/api/usage` is in `usage.rs`).

use std::sync::Arc;

use http::{header, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

use super::errors::ApiError;
use super::util::json_value;
use crate::http::body::RouterBody;
use crate::state::Shared;

/// `GET /`: `Ollama is running` for the ollama CLI's heartbeat and scripts (a browser gets the
/// dashboard instead: `dashboard::root`).
pub fn root() -> Response<RouterBody> {
    let mut resp = Response::new(RouterBody::full("Ollama is running"));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `GET /health`: per-endpoint state; 200 while one endpoint is healthy, else 503.
pub fn health(shared: &Shared) -> Response<RouterBody> {
    let endpoints: serde_json::Map<String, Value> = shared
        .endpoints
        .iter()
        .map(|e| {
            let state = json!({
                "status": if e.is_healthy() { "ok" } else { "error" },
                "kind": e.kind().as_str(),
                "in_flight": e.in_flight.load(std::sync::atomic::Ordering::Relaxed),
                "since": e.changed_at(),
                "error": e.last_error(),
            });
            (e.cfg.url.clone(), state)
        })
        .collect();
    let ok = shared.any_healthy();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_value(
        status,
        &json!({"status": if ok { "ok" } else { "error" }, "endpoints": endpoints}),
    )
}

/// `GET /api/config`: the endpoints with their state, and whether a router key is required. No secrets.
pub fn config(shared: &Shared) -> Response<RouterBody> {
    let describe = |e: &crate::routing::endpoint::EndpointState| {
        json!({
            "url": e.cfg.url,
            "kind": e.kind().as_str(),
            "status": if e.is_healthy() { "ok" } else { "error" },
            "detail": e.last_error(),
            "max_concurrent_connections": e.cfg.max_concurrent,
            "has_api_key": e.cfg.api_key.is_some(),
        })
    };
    use crate::config::EndpointKind::LlamaServer;
    let (llama, plain): (Vec<_>, Vec<_>) = shared
        .endpoints
        .iter()
        .partition(|e| e.kind() == LlamaServer);
    let endpoints: Vec<Value> = plain.into_iter().map(|e| describe(e)).collect();
    let llama: Vec<Value> = llama.into_iter().map(|e| describe(e)).collect();
    let c = &shared.config;
    json_value(
        StatusCode::OK,
        &json!({
            "endpoints": endpoints,
            "llama_server_endpoints": llama,
            "require_router_api_key": c.router_api_key.is_some(),
            "queue": {"mode": format!("{:?}", c.queue.mode).to_lowercase(), "max_queue": c.queue.max_queue, "queue_timeout_s": c.queue.queue_timeout.as_secs_f64()},
            "workers": c.worker_count(),
            "source": c.source,
        }),
    )
}

/// `POST /api/config/reload`: what the reload changed, 422 with why the configuration was refused
/// (the running one stays), or 409 while another reload runs.
pub async fn reload(shared: Arc<Shared>) -> Result<Response<RouterBody>, ApiError> {
    match crate::reload::reload_off_worker(shared).await {
        Ok(summary) => Ok(json_value(
            StatusCode::OK,
            &json!({"status": "reloaded", "summary": summary}),
        )),
        Err(Some(e)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("configuration refused, the running one stays: {e}"),
        )),
        Err(None) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "a reload is already running: try again when it has finished",
        )),
    }
}
