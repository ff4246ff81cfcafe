//! The upstream-peer phase: which endpoints may serve the request, and a slot on one of them
//! (waiting in the model's queue when every candidate is busy).

use std::sync::Arc;

use http::StatusCode;

use crate::api::errors::ApiError;
use crate::api::routes::Inference;
use crate::config::{EndpointKind, QueueConfig};
use crate::routing::choose::{acquire, Saturated};
use crate::routing::placement::Candidate;
use crate::routing::slots::SlotGuard;
use crate::state::Shared;

/// The endpoint chosen for one attempt, with the slot the request holds on it.
pub struct Peer {
    pub guard: SlotGuard,
    /// The model is loaded there (it answers sooner: `timeouts.first_byte` applies, not
    /// `first_byte_cold`).
    pub loaded: bool,
}

/// A slot on the best candidate not in `skip` (endpoints that failed this request already).
/// `Ok(None)` when none is healthy any more after an earlier failure: the caller answers with that
/// failure.
pub async fn upstream_peer(
    cands: &[Candidate],
    skip: &[usize],
    queue: &QueueConfig,
    model: &str,
    after_failure: bool,
) -> Result<Option<Peer>, ApiError> {
    let guard = match acquire(cands, skip, queue).await {
        Ok(g) => g,
        Err(Saturated::NoneHealthy) if after_failure => return Ok(None),
        Err(s) => return Err(saturated(s, model, queue.queue_timeout.as_secs())),
    };
    let loaded = cands
        .iter()
        .any(|c| Arc::ptr_eq(&c.slot, guard.slot()) && c.is_loaded());
    Ok(Some(Peer { guard, loaded }))
}

/// Candidates for the model that can serve this route; 404 when nobody advertises it, 503 when all are down.
pub fn candidates(
    shared: &Shared,
    route: Inference,
    model: &str,
) -> Result<Vec<Candidate>, ApiError> {
    let placement = shared.placement.load();
    let all = placement.resolve(model);
    let usable: Vec<Candidate> = all
        .iter()
        .filter(|c| serves(c.slot.endpoint.kind(), route))
        .cloned()
        .collect();
    if usable.is_empty() {
        if !shared.any_healthy() {
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
