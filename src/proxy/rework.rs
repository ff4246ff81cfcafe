//! A request sent again, changed, after an error answer came before any byte reached the client:
//! without what the backend refused (`capability.rs`), or cut to fit the context (`context.rs`);
//! and the cut made before sending, once the context is known.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde_json::{json, Value};

use super::session::Session;
use super::{capability, context};
use crate::api::errors::ApiError;
use crate::api::routes::Inference;
use crate::config::EndpointKind;
use crate::http::client::UpstreamBody;
use crate::routing::endpoint::EndpointState;
use crate::routing::fetch;
use crate::routing::slots::Slot;
use crate::state::Shared;

pub enum Next {
    /// Send this body instead (not a failure: no attempt used up, nothing stored in the cache).
    Retry(Bytes),
    /// The client's answer.
    Answer(ApiError),
}

/// Whether an error answer to this request is worth reading for a changed retry.
pub fn worth_reading(s: &Session, route: Inference, ep: &EndpointState, body: &[u8]) -> bool {
    capability::may_be_refused(body)
        || (s.shared.config.context_trim && context::applies(route, ep.kind()))
}

/// Reads the error answer (bounded) and decides.
pub async fn after_error(
    s: &mut Session,
    route: Inference,
    ep: &EndpointState,
    slot: &Slot,
    body: &[u8],
    resp: Response<UpstreamBody>,
    within: Duration,
) -> Next {
    let status = resp.status();
    let Some(error) = capability::read_error(resp, within).await else {
        return Next::Answer(ApiError::new(
            StatusCode::BAD_GATEWAY,
            format!(
                "{} answered {status} and its error could not be read",
                ep.cfg.url
            ),
        ));
    };
    let model = &*slot.model;
    let refused = capability::may_be_refused(body)
        .then(|| capability::refusal(&error))
        .flatten()
        .filter(|r| !s.retried_without.contains(&r.name()));
    if let Some(refused) = refused {
        tracing::info!(request_id = ?s.request_id, endpoint = %ep.cfg.url, model, without = refused.name(), "the backend refused the request's {}: sending it again without them", refused.name());
        s.retried_without.push(refused.name());
        return match capability::without(body, refused) {
            Ok(next) => Next::Retry(next),
            Err(e) => Next::Answer(e),
        };
    }
    if s.shared.config.context_trim
        && context::applies(route, ep.kind())
        && context::exceeded(&error)
        && s.context_tries < 2
    {
        if let Some(next) = cut_after_error(s, ep, slot, body, &error).await {
            return Next::Retry(next);
        }
    }
    s.endpoint = ep.name_header.clone();
    Next::Answer(ApiError::new(
        status,
        crate::translate::response::error_message(&error),
    ))
}

/// The cut after an "exceeds the context" error; a request cut before also leaves out the tools
/// and counts tokens as denser than the last cut did.
async fn cut_after_error(
    s: &mut Session,
    ep: &EndpointState,
    slot: &Slot,
    body: &[u8],
    error: &[u8],
) -> Option<Bytes> {
    let facts = &slot.context;
    let n_ctx = match context::n_ctx_in(error).or(facts.n_ctx()) {
        Some(n) => n,
        None => crate::api::show_remote::facts(&s.shared, ep, &slot.model)
            .await
            .n_ctx
            .and_then(|n| u32::try_from(n).ok())?,
    };
    facts.learn_n_ctx(n_ctx);
    // What the request's tokens really number: from the error, or from llama-server's own
    // tokenizer (its chat template applied first), so that the cut fits the first time.
    let counted = match context::prompt_tokens_in(error) {
        Some(n) => Some(n),
        None if ep.kind() == EndpointKind::LlamaServer => count_tokens(&s.shared, ep, body).await,
        None => None,
    };
    if let Some(tokens) = counted {
        facts.learn_density(body.len(), tokens);
    }
    // A request already cut (before sending, or once after an error) that still does not fit:
    // its tokens are denser than estimated, and its tools go too.
    let second = s.context_tries == 1 || s.context_trimmed > 0;
    if second {
        facts.denser();
    }
    s.context_tries += 1;
    let (cut, dropped) = context::trim(body, facts, n_ctx, second)?;
    s.context_trimmed += dropped;
    tracing::info!(request_id = ?s.request_id, endpoint = %ep.cfg.url, model = %slot.model, n_ctx, dropped, without_tools = second, "the request exceeds the model's context: sending it again without its oldest messages");
    Some(cut)
}

/// The tokens llama-server counts for the request's messages: `/apply-template`, then `/tokenize`.
async fn count_tokens(shared: &Shared, ep: &EndpointState, body: &[u8]) -> Option<u64> {
    let messages = serde_json::from_slice::<Value>(body)
        .ok()?
        .get("messages")?
        .clone();
    let timeout = shared.config.discovery.poll_timeout;
    let ask = |path: &'static str, v: Value| async move {
        let bytes = Bytes::from(serde_json::to_vec(&v).ok()?);
        let (status, answer) = fetch::request_whole(ep, Method::POST, path, bytes, None, timeout)
            .await
            .ok()?;
        status
            .is_success()
            .then(|| serde_json::from_slice::<Value>(&answer).ok())?
    };
    let prompt = ask("/apply-template", json!({ "messages": messages })).await?;
    let prompt = prompt.get("prompt")?.as_str()?.to_string();
    let tokens = ask("/tokenize", json!({ "content": prompt })).await?;
    Some(tokens.get("tokens")?.as_array()?.len() as u64)
}

/// The cut made before sending when the endpoint × model's context is known to be too small.
pub fn before_sending(
    s: &mut Session,
    route: Inference,
    ep: &EndpointState,
    slot: &Slot,
    body: &[u8],
) -> Option<Bytes> {
    if !s.shared.config.context_trim || !context::applies(route, ep.kind()) {
        return None;
    }
    let n_ctx = context::too_long(body, &slot.context)?;
    let (cut, dropped) = context::trim(body, &slot.context, n_ctx, false)?;
    s.context_trimmed += dropped;
    tracing::info!(request_id = ?s.request_id, endpoint = %ep.cfg.url, model = %slot.model, n_ctx, dropped, "the request does not fit the model's context: sent without its oldest messages");
    Some(cut)
}
