//! The response-filter phase: the upstream's answer head, or its absence, judged by `policy`
//! before any byte reaches the client. The endpoint's health learns the result here.

use std::sync::atomic::Ordering;

use http::Response;

use super::policy::{self, Failure};
use crate::api::errors::ApiError;
use crate::http::client::{UpstreamBody, UpstreamError};
use crate::metrics::labels::Reason;
use crate::metrics::Metrics;
use crate::routing::slots::SlotGuard;
use crate::state::Shared;

/// Why an attempt's answer does not go to the client.
pub enum Rejected {
    /// Another candidate may serve the request; this is the answer if none does.
    Resend(ApiError),
    /// The client's answer.
    Final(ApiError),
}

/// The answer to relay, or why not. `threshold` is `limits.failures_before_down`; a rejected
/// attempt is counted in `metrics`.
pub fn filter(
    guard: &SlotGuard,
    sent: Result<Response<UpstreamBody>, UpstreamError>,
    threshold: u32,
    metrics: Option<&Metrics>,
) -> Result<Response<UpstreamBody>, Rejected> {
    match sent {
        Ok(resp) if policy::passes_through(resp.status()) => {
            guard.endpoint().record_success();
            if resp.status().is_success() {
                // The model answered here: it is loaded, whatever the last poll said.
                guard.slot().answered.store(true, Ordering::Relaxed);
            }
            Ok(resp)
        }
        Ok(resp) => Err(reject(
            guard,
            Failure::Answered(resp.status()),
            threshold,
            metrics,
        )),
        Err(e) => Err(reject(guard, Failure::NoAnswer(&e), threshold, metrics)),
    }
}

/// `filter` for a caller that tries the candidates in turn: `Ok(None)` when another candidate may
/// serve the request (this endpoint joins `skip`, its error becomes `last_error`).
pub fn filter_or_skip(
    shared: &Shared,
    guard: &SlotGuard,
    sent: Result<Response<UpstreamBody>, UpstreamError>,
    skip: &mut Vec<usize>,
    last_error: &mut Option<ApiError>,
) -> Result<Option<Response<UpstreamBody>>, ApiError> {
    let threshold = shared.config.limits.failures_before_down;
    match filter(guard, sent, threshold, shared.metrics.as_deref()) {
        Ok(resp) => Ok(Some(resp)),
        Err(Rejected::Resend(e)) => {
            skip.push(guard.endpoint().id);
            *last_error = Some(e);
            Ok(None)
        }
        Err(Rejected::Final(e)) => Err(e),
    }
}

/// The failure's reason in the metrics.
fn reason(failure: &Failure) -> Reason {
    match failure {
        Failure::Answered(_) => Reason::Status,
        Failure::NoAnswer(UpstreamError::Connect(..)) => Reason::Connect,
        Failure::NoAnswer(UpstreamError::ConnectTimeout(_)) => Reason::ConnectTimeout,
        Failure::NoAnswer(UpstreamError::FirstByteTimeout(..)) => Reason::FirstByteTimeout,
        Failure::NoAnswer(UpstreamError::NotSent(..)) => Reason::NotSent,
        Failure::NoAnswer(UpstreamError::Closed(..)) => Reason::Closed,
        Failure::NoAnswer(UpstreamError::Http(..)) => Reason::BadResponse,
    }
}

fn reject(
    guard: &SlotGuard,
    failure: Failure,
    threshold: u32,
    metrics: Option<&Metrics>,
) -> Rejected {
    let ep = guard.endpoint();
    if let Some(m) = metrics {
        m.upstream_error(ep.id, reason(&failure));
    }
    let error = policy::client_error(&failure, &ep.cfg.url);
    if policy::counts_against_endpoint(&failure) {
        ep.record_failure(&error.message, threshold);
    }
    if policy::may_resend(&failure) {
        Rejected::Resend(error)
    } else {
        Rejected::Final(error)
    }
}
