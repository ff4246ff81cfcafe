//! The inference pipeline, one named step each: sniff → resolve → take slot → prepare → send → relay.
//! A failure before the answer's head may go to the next candidate: `policy` says when (SPEC §4.6).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Response, StatusCode};

use crate::api::errors::{ApiError, ApiFormat};
use super::policy;
use crate::api::routes::Inference;
use crate::api::sniff::{rewrite, sniff, Sniffed};
use super::translated;
use crate::api::util::Ctx;
use crate::config::EndpointKind;
use crate::http::body::{OnEnd, Outcome, Relay, RouterBody, StreamFraming, Transform};
use crate::http::client::UpstreamBody;
use crate::routing::fetch;
use crate::http::lazy_timer::LazyTimer;
use crate::routing::choose::{acquire, Saturated};
use crate::routing::endpoint::EndpointState;
use crate::routing::names::ollama_equivalent;
use crate::routing::placement::Candidate;
use crate::routing::slots::SlotGuard;
use crate::http::request_head::RequestHead;
use crate::translate::OllamaRoute;

/// Why one attempt failed.
pub enum AttemptError {
    /// Before any byte reached the client: another candidate may serve it.
    Retry(usize, ApiError),
    /// Final (e.g. the request cannot be translated).
    Fatal(ApiError),
}

/// Serves one inference request end to end; `timer` is the client connection's, for upstream waits.
pub async fn inference(
    ctx: &mut Ctx,
    route: Inference,
    req: &RequestHead,
    body: Bytes,
    timer: &mut LazyTimer,
) -> Result<Response<RouterBody>, ApiError> {
    let sniffed = sniff(&body, route)?;
    let cands = resolve(ctx, route, &sniffed.model)?;
    let shared = ctx.shared.clone();
    let cfg = &shared.config;
    let mut skip: Vec<usize> = Vec::new();
    let mut last_error: Option<ApiError> = None;
    let attempts = (1 + cfg.limits.max_retries as usize).min(cands.len().max(1));
    for _ in 0..attempts {
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
            .any(|c| Arc::ptr_eq(&c.slot, guard.slot()) && c.is_loaded());
        match forward(ctx, route, req, &body, &sniffed, guard, loaded, timer).await {
            Ok(resp) => return Ok(resp),
            Err(AttemptError::Fatal(e)) => return Err(e),
            Err(AttemptError::Retry(ep_index, err)) => {
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

/// Whether an endpoint of `kind` serves `route` (natively, or through translation).
fn serves(kind: EndpointKind, route: Inference) -> bool {
    match route {
        Inference::Rerank => kind != EndpointKind::Ollama,
        _ => true,
    }
}

/// The Ollama route to translate into, when an Ollama-API request goes to an OpenAI-compatible endpoint.
fn translation(route: Inference, kind: EndpointKind) -> Option<OllamaRoute> {
    if kind == EndpointKind::Ollama {
        return None;
    }
    match route {
        Inference::Chat => Some(OllamaRoute::Chat),
        Inference::Generate => Some(OllamaRoute::Generate),
        Inference::Embed => Some(OllamaRoute::Embed),
        Inference::Embeddings => Some(OllamaRoute::Embeddings),
        _ => None,
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

/// What goes upstream: path, body, and whether the upstream answer will stream.
struct Prepared {
    path: String,
    body: Bytes,
    stream: bool,
    translate: Option<OllamaRoute>,
}

/// Builds the upstream request: the client's bytes (minus `nomyo`, with the model renamed when an
/// alias was resolved), or their translation for an OpenAI-compatible endpoint.
fn prepare(
    ep: &EndpointState,
    route: Inference,
    req: &RequestHead,
    body: &Bytes,
    sniffed: &Sniffed,
    upstream_model: &str,
) -> Result<Prepared, ApiError> {
    if let Some(oroute) = translation(route, ep.kind()) {
        let t = crate::translate::request::ollama_to_openai(oroute, body, upstream_model).map_err(
            |e| {
                ApiError::new(
                    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                    e.to_string(),
                )
            },
        )?;
        return Ok(Prepared {
            path: format!("{}{}", ep.openai_base(), t.path),
            body: Bytes::from(t.body),
            stream: t.stream,
            translate: Some(oroute),
        });
    }
    let rename = upstream_model != sniffed.model
        && !(ep.kind() == EndpointKind::Ollama
            && ollama_equivalent(&sniffed.model, upstream_model));
    let out_body = if sniffed.has_nomyo || rename {
        Bytes::from(rewrite(body, rename.then_some(upstream_model))?)
    } else {
        body.clone()
    };
    let base = match route.format() {
        ApiFormat::Ollama => ep.url.base_path.as_str(),
        ApiFormat::OpenAi => ep.openai_base(),
    };
    let mut path = String::with_capacity(base.len() + route.path().len() + 1);
    path.push_str(base);
    path.push_str(route.path());
    if let Some(q) = crate::auth::query_without_key(req.uri.query()) {
        path.push('?');
        path.push_str(&q);
    }
    Ok(Prepared {
        path,
        body: out_body,
        stream: sniffed.stream,
        translate: None,
    })
}

/// Sends the request to the guard's endpoint and builds the relayed response. A failure before the
/// response head marks the endpoint down and asks the caller to try another.
#[allow(clippy::too_many_arguments)]
async fn forward(
    ctx: &mut Ctx,
    route: Inference,
    req: &RequestHead,
    body: &Bytes,
    sniffed: &Sniffed,
    guard: SlotGuard,
    loaded: bool,
    timer: &mut LazyTimer,
) -> Result<Response<RouterBody>, AttemptError> {
    let ep = guard.endpoint().clone();
    let shared = ctx.shared.clone();
    let cfg = &shared.config;
    let prepared = prepare(&ep, route, req, body, sniffed, &guard.slot().model)
        .map_err(AttemptError::Fatal)?;
    crate::proxy::fault::upstream(&req.headers);
    let hard_deadline = (!cfg.timeouts.total.is_zero()).then(|| ctx.started + cfg.timeouts.total);
    let mut first_byte = if loaded {
        cfg.timeouts.first_byte
    } else {
        cfg.timeouts.first_byte_cold
    };
    if let Some(h) = hard_deadline {
        first_byte = first_byte.min(h.saturating_duration_since(Instant::now()));
    }
    let translated_headers = prepared
        .translate
        .map(|_| translated::request_headers(&req.headers));
    let headers = match &translated_headers {
        Some(map) => fetch::Forward::Map(map),
        None => fetch::Forward::Raw(&req.headers),
    };
    let result = fetch::send(
        &ep,
        Method::POST,
        &prepared.path,
        prepared.body,
        headers,
        fetch::Waits {
            connect: cfg.timeouts.connect,
            first_byte,
            timer,
        },
    )
    .await;
    let threshold = cfg.limits.failures_before_down;
    let failed = |verdict: policy::Verdict| {
        if verdict.blame {
            ep.record_failure(&verdict.error.message, threshold);
        }
        if verdict.retry {
            AttemptError::Retry(ep.index, verdict.error)
        } else {
            AttemptError::Fatal(verdict.error)
        }
    };
    let resp = result.map_err(|e| failed(policy::no_answer(&e)))?;
    let status = resp.status();
    if let Some(verdict) = policy::answer_status(status, &ep.cfg.url) {
        return Err(failed(verdict));
    }
    ep.record_success();
    if status.is_success() {
        guard.slot().answered.store(true, Ordering::Relaxed);
    }
    let on_end = request_logger(ctx, route, &sniffed.model, &ep.cfg.url, status);
    let out = match prepared.translate {
        Some(oroute) => {
            let t = translated::Answer {
                route: oroute,
                model: &sniffed.model,
                stream: prepared.stream,
                limits: &cfg.limits,
                idle: cfg.timeouts.idle,
                hard_deadline,
            };
            // Boxed: only translated requests need this future's room.
            Box::pin(t.respond(resp, guard, on_end)).await
        }
        None => relay(
            resp,
            guard,
            route,
            sniffed.stream,
            cfg.timeouts.idle,
            on_end,
            hard_deadline,
            crate::proxy::fault::body(&req.headers),
        ),
    };
    ctx.endpoint = ep.name_header.clone();
    Ok(out)
}

/// Same-API answer: status, end-to-end headers and body bytes as they come.
#[allow(clippy::too_many_arguments)]
fn relay(
    resp: Response<UpstreamBody>,
    guard: SlotGuard,
    route: Inference,
    stream: bool,
    idle: std::time::Duration,
    on_end: OnEnd,
    hard_deadline: Option<Instant>,
    transform: Option<Box<dyn Transform>>,
) -> Response<RouterBody> {
    let status = resp.status();
    let upstream_body = resp.into_body();
    let framing = match (stream && !upstream_body.has_length(), route.format()) {
        (false, _) => StreamFraming::None,
        (true, ApiFormat::Ollama) => StreamFraming::Ndjson,
        (true, ApiFormat::OpenAi) => StreamFraming::Sse,
    };
    // The upstream's header lines are written through by the connection, filtered, without a map.
    let mut relay = Relay::new(upstream_body, Some(guard), framing, idle, on_end)
        .with_hard_deadline(hard_deadline);
    if let Some(t) = transform {
        relay = relay.with_transform(t);
    }
    let mut out = Response::new(RouterBody::Relay(Box::new(relay)));
    *out.status_mut() = status;
    out
}

/// The closure that writes the request's log line when its response ends.
fn request_logger(
    ctx: &mut Ctx,
    route: Inference,
    model: &str,
    endpoint: &str,
    status: StatusCode,
) -> OnEnd {
    ctx.logs_at_end = true;
    if !tracing::enabled!(tracing::Level::INFO) {
        return Box::new(|_| {});
    }
    let started: Instant = ctx.started;
    let request_id = ctx.request_id.clone();
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
    })
}
