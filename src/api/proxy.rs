//! The inference pipeline, one named step each: sniff → resolve → take slot → forward → relay.
//! Failures before the first byte reached the client are retried on the next candidate (SPEC §4.6).

use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};

use super::errors::ApiError;
use super::routes::Inference;
use super::sniff::{rewrite, sniff, Sniffed};
use super::util::{forwardable_query, Ctx};
use crate::config::EndpointKind;
use crate::http::body::{Outcome, Relay, RouterBody, StreamFraming};
use crate::http::fetch;
use crate::http::headers::client_response;
use crate::routing::choose::{acquire, Saturated};
use crate::routing::names::ollama_equivalent;
use crate::routing::placement::Candidate;
use crate::routing::slots::SlotGuard;

/// Serves one inference request end to end.
pub async fn inference(
    ctx: &mut Ctx,
    route: Inference,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<Response<RouterBody>, ApiError> {
    let sniffed = sniff(&body, route)?;
    let cands = resolve(ctx, route, &sniffed.model)?;
    let shared = ctx.shared.clone();
    let cfg = &shared.config;
    let mut skip: Vec<usize> = Vec::new();
    let mut last_error: Option<ApiError> = None;
    let attempts = 1 + cfg.limits.max_retries as usize;
    for _ in 0..attempts.min(cands.len().max(1)) {
        let guard = match acquire(&cands, &skip, &cfg.queue).await {
            Ok(g) => g,
            Err(Saturated::NoneHealthy) if last_error.is_some() => break,
            Err(s) => {
                return Err(saturated(
                    s,
                    &sniffed.model,
                    cfg.queue.queue_timeout.as_secs(),
                ))
            }
        };
        let loaded = cands
            .iter()
            .any(|c| std::sync::Arc::ptr_eq(&c.slot, guard.slot()) && c.is_loaded());
        match forward(ctx, route, parts, &body, &sniffed, guard, loaded).await {
            Ok(resp) => return Ok(resp),
            Err((ep_index, err)) => {
                skip.push(ep_index);
                last_error = Some(err);
            }
        }
    }
    Err(last_error.unwrap_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no healthy endpoint serves this model",
        )
        .retry_after(1)
    }))
}

/// Candidates for the model that can serve this route; 404 when nobody advertises it, 503 when all are down.
fn resolve(ctx: &Ctx, route: Inference, model: &str) -> Result<Vec<Candidate>, ApiError> {
    let placement = ctx.shared.placement.load();
    let all = placement.resolve(model);
    let usable: Vec<Candidate> = all
        .iter()
        .filter(|c| serves(c.slot.endpoint.kind(), route))
        .cloned()
        .collect();
    if usable.is_empty() {
        if !ctx.shared.any_healthy() {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no healthy endpoint: every configured backend is down",
            )
            .retry_after(2));
        }
        if !all.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                format!(
                    "model '{model}' is only served by endpoints that do not support {}",
                    route.path()
                ),
            ));
        }
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("model '{model}' not found on any endpoint"),
        ));
    }
    if !usable.iter().any(|c| c.slot.endpoint.is_healthy()) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("every endpoint serving '{model}' is down"),
        )
        .retry_after(2));
    }
    Ok(usable)
}

/// Whether an endpoint of `kind` serves `route` without translation.
fn serves(kind: EndpointKind, route: Inference) -> bool {
    match route {
        Inference::Chat | Inference::Generate | Inference::Embed | Inference::Embeddings => {
            kind == EndpointKind::Ollama
        }
        Inference::Rerank => kind != EndpointKind::Ollama,
        _ => true,
    }
}

fn saturated(s: Saturated, model: &str, timeout_secs: u64) -> ApiError {
    match s {
        Saturated::Rejected => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("every slot for '{model}' is busy"),
        )
        .retry_after(1),
        Saturated::QueueFull => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!("the queue for '{model}' is full"),
        )
        .retry_after(2),
        Saturated::TimedOut => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no slot for '{model}' became free within {timeout_secs}s"),
        )
        .retry_after(5),
        Saturated::NoneHealthy => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("every endpoint serving '{model}' is down"),
        )
        .retry_after(2),
    }
}

/// The path on the chosen endpoint.
fn upstream_path(
    ep_kind: EndpointKind,
    ep: &crate::routing::endpoint::EndpointState,
    route: Inference,
    query: Option<&str>,
) -> String {
    let mut path = match (route.format(), ep_kind) {
        (super::errors::ApiFormat::Ollama, _) => format!("{}{}", ep.url.base_path, route.path()),
        (super::errors::ApiFormat::OpenAi, _) => format!("{}{}", ep.openai_base(), route.path()),
    };
    if let Some(q) = forwardable_query(query) {
        path.push('?');
        path.push_str(&q);
    }
    path
}

/// Sends the request to the guard's endpoint and builds the relayed response. On a failure before the
/// response head the endpoint is marked down and its index returned so the caller tries another.
async fn forward(
    ctx: &mut Ctx,
    route: Inference,
    parts: &http::request::Parts,
    body: &Bytes,
    sniffed: &Sniffed,
    guard: SlotGuard,
    loaded: bool,
) -> Result<Response<RouterBody>, (usize, ApiError)> {
    let ep = guard.endpoint().clone();
    let shared = ctx.shared.clone();
    let cfg = &shared.config;
    let upstream_model = &*guard.slot().model;
    let rename = upstream_model != sniffed.model
        && !(ep.kind() == EndpointKind::Ollama
            && ollama_equivalent(&sniffed.model, upstream_model));
    let out_body = if sniffed.has_nomyo || rename {
        match rewrite(body, rename.then_some(upstream_model)) {
            Ok(b) => Bytes::from(b),
            Err(e) => return Err((ep.index, e)),
        }
    } else {
        body.clone()
    };
    let path = upstream_path(ep.kind(), &ep, route, parts.uri.query());
    let first_byte = if loaded {
        cfg.timeouts.first_byte
    } else {
        cfg.timeouts.first_byte_cold
    };
    let result = fetch::send(
        &ep,
        Method::POST,
        &path,
        out_body,
        Some(&parts.headers),
        cfg.timeouts.connect,
        first_byte,
    )
    .await;
    let (resp, lease) = match result {
        Ok(r) => r,
        Err(e) => {
            ep.mark_down(&e.to_string());
            let status = if e.is_timeout() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::BAD_GATEWAY
            };
            return Err((
                ep.index,
                ApiError::new(status, format!("upstream failure: {e}")),
            ));
        }
    };
    let status = resp.status();
    // An overloaded or failing gateway in front of the backend: try another candidate.
    if matches!(status.as_u16(), 502..=504) {
        return Err((
            ep.index,
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("{} answered {status}", ep.cfg.url),
            ),
        ));
    }
    if status.is_success() {
        guard.slot().answered.store(true, Ordering::Relaxed);
    }
    let (head, upstream_body) = resp.into_parts();
    let has_length = head.headers.contains_key(header::CONTENT_LENGTH);
    let framing = match (sniffed.stream && !has_length, route.format()) {
        (false, _) => StreamFraming::None,
        (true, super::errors::ApiFormat::Ollama) => StreamFraming::Ndjson,
        (true, super::errors::ApiFormat::OpenAi) => StreamFraming::Sse,
    };
    let on_end = request_logger(ctx, route, &sniffed.model, &ep.cfg.url, status);
    let relay = Relay::new(
        upstream_body,
        lease,
        Some(guard),
        framing,
        cfg.timeouts.idle,
        on_end,
    );
    let mut out = Response::new(RouterBody::Relay(Box::new(relay)));
    *out.status_mut() = status;
    *out.headers_mut() = client_response(&head.headers);
    if let Ok(v) = HeaderValue::from_str(&ep.cfg.url) {
        out.headers_mut().insert("x-router-endpoint", v);
    }
    Ok(out)
}

/// The closure that writes the request's log line when its response ends, and releases its shutdown hold.
fn request_logger(
    ctx: &mut Ctx,
    route: Inference,
    model: &str,
    endpoint: &str,
    status: StatusCode,
) -> Box<dyn FnOnce(Outcome)> {
    let started: Instant = ctx.started;
    let request_id = ctx.request_id.clone();
    let active = ctx.active.take();
    let model = model.to_string();
    let endpoint = endpoint.to_string();
    Box::new(move |outcome| {
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let outcome = match &outcome {
            Outcome::Complete => "complete".to_string(),
            Outcome::ClientGone => "client_gone".to_string(),
            Outcome::UpstreamFailed(r) => format!("upstream_failed: {r}"),
        };
        tracing::info!(
            request_id = request_id.to_str().unwrap_or(""),
            route = route.name(),
            model,
            endpoint,
            status = status.as_u16(),
            latency_ms = format_args!("{latency_ms:.2}"),
            cache = "off",
            outcome,
            "request"
        );
        drop(active);
    })
}
