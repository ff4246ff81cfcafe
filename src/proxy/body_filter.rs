//! The body-filter phase: the answer the client gets from an upstream answer that passed the
//! response filter. Same-API answers are relayed frame by frame; answers of an OpenAI-compatible
//! endpoint to an Ollama-API client are translated (streams chunk by chunk, whole answers once
//! read). The body carries the slot until it ends, then runs the epilogue.

use std::time::{Duration, Instant};

use http::{Response, StatusCode};

use super::cache::{Pending, Store};
use super::epilogue::Epilogue;
use super::relay::{Relay, StreamErrorFormat};
use super::session::{InferenceRequest, Session};
use super::translated;
use super::upstream::UpstreamRequest;
use crate::api::errors::ApiFormat;
use crate::http::body::RouterBody;
use crate::http::client::UpstreamBody;
use crate::routing::slots::SlotGuard;

/// The client's answer; `hard` is the request's `timeouts.total` deadline, when it has one.
pub async fn answer(
    s: &mut Session,
    inf: &InferenceRequest<'_>,
    up: &UpstreamRequest,
    guard: SlotGuard,
    resp: Response<UpstreamBody>,
    hard: Option<Instant>,
    pending: Option<Pending>,
) -> Response<RouterBody> {
    let status = resp.status();
    let store = pending.and_then(|p| Store::new(p, status));
    let epilogue = Epilogue::new(s, &inf.sniffed.model, guard.slot(), status).with_store(store);
    let cfg = &s.shared.config;
    match up.translate {
        Some(route) => {
            let t = translated::Answer {
                route,
                model: &inf.sniffed.model,
                stream: up.stream,
                limits: &cfg.limits,
                idle: cfg.timeouts.idle,
                hard_deadline: hard,
            };
            // Boxed: only translated requests need this future's room.
            Box::pin(t.respond(resp, guard, epilogue)).await
        }
        None => same_api(resp, guard, inf, up, cfg.timeouts.idle, epilogue, hard),
    }
}

/// Same-API answer: status, end-to-end headers and body bytes as they come.
fn same_api(
    resp: Response<UpstreamBody>,
    guard: SlotGuard,
    inf: &InferenceRequest<'_>,
    up: &UpstreamRequest,
    idle: Duration,
    epilogue: Epilogue,
    hard: Option<Instant>,
) -> Response<RouterBody> {
    let status: StatusCode = resp.status();
    let upstream_body = resp.into_body();
    // A stream of known length (rare) is left as it is: its length would be wrong without the
    // usage chunk, and its headers would have to go.
    let hide_usage = up.hide_usage && status.is_success() && !upstream_body.has_length();
    let errors = match (
        inf.sniffed.stream && !upstream_body.has_length(),
        inf.route.format(),
    ) {
        (false, _) => StreamErrorFormat::None,
        (true, ApiFormat::Ollama) => StreamErrorFormat::NdjsonLine,
        (true, ApiFormat::OpenAi) => StreamErrorFormat::SseEvent,
    };
    // The upstream's header lines are written through by the connection, filtered, without a map.
    let mut relay =
        Relay::new(upstream_body, Some(guard), errors, idle, epilogue).with_hard_deadline(hard);
    if let Some(t) = super::fault::body(&inf.head.headers) {
        relay = relay.with_transform(t);
    }
    if hide_usage {
        relay = relay.with_filter(Box::new(super::hidden_usage::HideUsage::default()));
    }
    let mut out = Response::new(RouterBody::Streamed(Box::new(relay)));
    *out.status_mut() = status;
    out
}
