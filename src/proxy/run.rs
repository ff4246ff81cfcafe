//! A request's whole life, top to bottom. Each phase is a function named after it, in its own file:
//!
//! 1. request filter (`request_filter`, here): route, CORS preflight, router key — may answer at once;
//! 2. local answer (`local.rs`): every route but inference is answered by the router itself;
//! 3. for inference, the body is read for its model (`api/sniff.rs`), then
//! 4. cache lookup (`cache.rs`): a hit is the answer, no slot taken;
//! 5. upstream peer (`peer.rs`): the candidates, a slot on the best one (queueing when all are busy);
//! 6. upstream request (`upstream.rs`): the client's bytes rewritten or translated, sent;
//! 7. response filter (`response_filter.rs`): `policy` judges the answer head (or its absence):
//!    relay it, try the next candidate (back to 5), or answer with the error;
//! 8. body filter (`body_filter.rs`): relay or translate the body; the slot is held until it ends;
//! 9. epilogue (`epilogue.rs`) when the body ends: cache store, logging.
//!
//! Nothing here fails: every error becomes an answer in the client's API format.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};

use super::body_filter;
use super::cache;
use super::capability;
use super::context;
use super::epilogue::log_local_answer;
use super::local;
use super::moe;
use super::peer;
use super::response_filter;
use super::rework;
use super::session::{InferenceRequest, Session};
use super::upstream::{self, Deadlines};
use crate::api::errors::ApiError;
use crate::api::routes::{route, Inference, Route};
use crate::api::sniff::{sniff, Sniffed};
use crate::api::util::RouterHeaders;
use crate::http::body::RouterBody;
use crate::http::lazy_timer::LazyTimer;
use crate::http::request_head::RequestHead;
use crate::state::Shared;

/// Serves one request; the body was read by the connection, or is the error to answer with once a
/// route needs it (413, 408). `timer` is the connection's, for the wait on an upstream's answer.
/// The head is borrowed: the connection keeps the one copy. Returns the answer and the headers the
/// router adds to it (request id, endpoint), which the connection writes itself.
pub async fn run(
    req: &RequestHead,
    body: Result<Bytes, ApiError>,
    shared: Arc<Shared>,
    timer: &mut LazyTimer,
) -> (Response<RouterBody>, RouterHeaders) {
    let mut s = Session::new(req, shared);
    let answer = match request_filter(&s, req) {
        Err(e) => Err(e),
        Ok(Some(answer)) => Ok(answer),
        Ok(None) => match s.route {
            Route::Inference(i) => proxy(&mut s, i, req, body, timer).await,
            // Boxed: these routes are rare next to inference, and their futures (listing
            // fan-outs, pulls) would otherwise enlarge every request's future.
            _ => Box::pin(local::answer(s.shared.clone(), &s.route, req, body)).await,
        },
    };
    let mut resp = answer.unwrap_or_else(|e| e.into_response(s.route.format()));
    if let Some(cached) = s.cache {
        resp.headers_mut()
            .insert(cache::HEADER, HeaderValue::from_static(cached));
    }
    if let Some((candidates, inner)) = s.moe {
        let said = format!(
            "candidates={candidates}; prompt_tokens={}; completion_tokens={}",
            inner.prompt, inner.completion
        );
        if let Ok(v) = HeaderValue::from_str(&said) {
            resp.headers_mut().insert(moe::HEADER.clone(), v);
        }
    }
    if s.context_trimmed > 0 {
        resp.headers_mut().insert(
            context::HEADER.clone(),
            HeaderValue::from(s.context_trimmed),
        );
    }
    if !s.retried_without.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&s.retried_without.join(", ")) {
            resp.headers_mut().insert(capability::HEADER.clone(), v);
        }
    }
    let origin = req.headers.value("origin");
    if let Some(allowed) = origin.and_then(|o| local::allowed_origin(&s.shared, &o)) {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    }
    if let Some(m) = &s.shared.metrics {
        m.first_byte(s.route.index(), s.started.elapsed());
    }
    if !s.logs_at_end {
        log_local_answer(&s, &req.method, resp.status());
    }
    let added = RouterHeaders {
        request_id: s.request_id,
        endpoint: s.endpoint,
    };
    (resp, added)
}

/// The request filter: a CORS preflight is answered here; the router key is checked on every
/// route but the public ones. `Ok(None)`: the request goes on.
fn request_filter(
    s: &Session,
    req: &RequestHead,
) -> Result<Option<Response<RouterBody>>, ApiError> {
    if req.method == Method::OPTIONS {
        let origin = req.headers.value("origin");
        return Ok(Some(local::preflight(&s.shared, origin.as_ref())));
    }
    if let (Some(key), false) = (&s.shared.config.router_api_key, s.route.is_public()) {
        crate::auth::check(key, &req.headers, req.uri.query(), s.route.format())?;
    }
    Ok(None)
}

/// The answer a request gets before its body is read: the router key is checked on the head alone,
/// so an unauthenticated client cannot make the router read (or ask for, with `100 Continue`) a
/// body of up to `max_body_bytes`. `None` when the request may go on.
pub fn refuse_before_body(req: &RequestHead, shared: &Shared) -> Option<ApiError> {
    let key = shared.config.router_api_key.as_ref()?;
    let route = route(&req.method, req.uri.path());
    if req.method == Method::OPTIONS || route.is_public() {
        return None;
    }
    crate::auth::check(key, &req.headers, req.uri.query(), route.format()).err()
}

/// Phases 3-8 for an inference request (see the module's doc).
async fn proxy(
    s: &mut Session,
    route: Inference,
    head: &RequestHead,
    body: Result<Bytes, ApiError>,
    timer: &mut LazyTimer,
) -> Result<Response<RouterBody>, ApiError> {
    let body = body?;
    let sniffed = sniff(&body, route)?;
    // MOE: candidates and critiques first; the final answer is then an ordinary request.
    let (body, sniffed, moe) = match moe::requested(route, &sniffed.model) {
        Some(model) => {
            let model = model.to_string();
            let p = Box::pin(moe::prepare(s, route, head, &body, &model)).await?;
            let sniffed = Sniffed { model, ..sniffed };
            (p.body.clone(), sniffed, Some(p))
        }
        None => (body, sniffed, None),
    };
    let inf = InferenceRequest {
        route,
        head,
        body: &body,
        sniffed,
    };
    let pending = match &moe {
        Some(p) => {
            s.moe = Some((p.candidates, p.inner));
            if s.shared.cache.is_some() {
                s.cache = Some("bypass");
            }
            None
        }
        None => match cache::lookup(s, &inf).await? {
            cache::Lookup::Hit(answer) => return Ok(answer),
            cache::Lookup::Upstream(pending) => pending,
        },
    };
    let mut pending = pending;
    let shared = s.shared.clone();
    let cfg = &shared.config;
    let cands = peer::candidates(&shared, route, &inf.sniffed.model)?;
    let attempts = (1 + cfg.limits.max_retries as usize).min(cands.len().max(1));
    let mut skip: Vec<usize> = Vec::new();
    let mut last_error: Option<ApiError> = None;
    // The body without what a backend refused (tools, images), once a capability retry happened.
    let mut stripped: Option<Bytes> = None;
    while (s.attempts as usize) < attempts {
        s.attempts += 1;
        let after_failure = last_error.is_some();
        let model = &inf.sniffed.model;
        let Some(peer) =
            peer::upstream_peer(&cands, &skip, &cfg.queue, model, after_failure).await?
        else {
            break;
        };
        let ep = peer.guard.endpoint().clone();
        if let Some(m) = &shared.metrics {
            m.upstream_attempt(ep.id);
        }
        let body_now = stripped.as_ref().unwrap_or(inf.body);
        if let Some(cut) = rework::before_sending(s, route, &ep, peer.guard.slot(), body_now) {
            stripped = Some(cut);
            pending = None;
        }
        let sent_body = stripped.as_ref().unwrap_or(inf.body);
        // The client's request, or (after a capability retry) the one without what was refused.
        let stripped_request;
        let this_try = match &stripped {
            None => &inf,
            Some(body) => {
                stripped_request = InferenceRequest {
                    route,
                    head,
                    body,
                    sniffed: inf.sniffed.clone(),
                };
                &stripped_request
            }
        };
        let mut up = upstream::request(&ep, this_try, &peer.guard.slot().model, cfg.stream_usage)?;
        up.plain |= pending.is_some();
        super::fault::upstream(&head.headers);
        let deadlines = Deadlines::new(cfg, s.started, peer.loaded);
        let sent =
            upstream::forward(&ep, &mut up, head, cfg.timeouts.connect, &deadlines, timer).await;
        let judged = response_filter::filter_or_skip(
            &shared,
            &peer.guard,
            sent,
            &mut skip,
            &mut last_error,
        )?;
        let Some(resp) = judged else { continue };
        if !resp.status().is_success() && rework::worth_reading(s, route, &ep, sent_body) {
            let slot = peer.guard.slot();
            // The error's body is read within the idle time (a body that stalls is cut off).
            let idle = cfg.timeouts.idle;
            let within = match idle.is_zero() {
                true => deadlines.first_byte,
                false => idle.min(deadlines.first_byte),
            };
            // Boxed: a rare path whose futures (the error's read, the questions to the endpoint)
            // would otherwise enlarge every request's future.
            let next = rework::after_error(s, route, &ep, slot, sent_body, resp, within);
            match Box::pin(next).await {
                rework::Next::Retry(next) => {
                    stripped = Some(next);
                    s.attempts -= 1;
                    pending = None;
                    continue;
                }
                rework::Next::Answer(e) => return Err(e),
            }
        }
        if route == Inference::OaiResponses && resp.status() == StatusCode::NOT_FOUND {
            // A server without the Responses API (Ollama before it had one, llama-server): another
            // endpoint with the model may have it.
            skip.push(ep.id);
            last_error = Some(ApiError::new(
                StatusCode::NOT_FOUND,
                format!(
                    "no endpoint with '{model}' serves /v1/responses ({} answered 404)",
                    ep.cfg.url
                ),
            ));
            continue;
        }
        s.endpoint = ep.name_header.clone();
        let store = pending.take();
        let answer = body_filter::answer(s, &inf, &up, peer.guard, resp, deadlines.hard, store);
        return Ok(answer.await);
    }
    Err(last_error.unwrap_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no healthy endpoint serves this model",
        )
        .retry_after(1)
    }))
}
