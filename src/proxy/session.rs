//! What one request carries through its phases.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::HeaderValue;

use crate::api::routes::{route, Inference, Route};
use crate::api::sniff::Sniffed;
use crate::api::util::request_id;
use crate::http::request_head::RequestHead;
use crate::state::Shared;

/// One request from its head to the end of its answer's body. `run` owns it; when the answer is
/// streamed, what the last phases need (slot, log record) moves into the body's epilogue.
pub struct Session {
    pub shared: Arc<Shared>,
    /// The client's `X-Request-Id` when sane, else a new one; sent back with the answer.
    pub request_id: HeaderValue,
    pub started: Instant,
    pub route: Route,
    /// Upstream attempts made (inference): one, or more after failures `policy` re-sends.
    pub attempts: u32,
    /// The endpoint that answered, sent back as `x-router-endpoint`.
    pub endpoint: Option<HeaderValue>,
    /// The answer's body carries the epilogue: the logging phase runs when the body ends.
    pub logs_at_end: bool,
    /// What the cache did (`X-Cache`): hit, miss or bypass; `None` when the cache is off.
    pub cache: Option<&'static str>,
    /// The tokens of an answer the router gave itself (a cache hit), for its log line.
    pub tokens: Option<crate::accounting::Tokens>,
    /// What a backend refused and the request was sent again without (`X-Router-Retried-Without`).
    pub retried_without: Vec<&'static str>,
    /// A `moe-` request: candidates used and the inner requests' tokens (`X-Router-Moe`).
    pub moe: Option<(usize, crate::accounting::Tokens)>,
    /// Messages left out to fit the context (`X-Router-Context-Trimmed`), and the cuts made
    /// after "exceeds the context" errors.
    pub context_trimmed: usize,
    pub context_tries: u8,
}

impl Session {
    pub fn new(req: &RequestHead, shared: Arc<Shared>) -> Self {
        Session {
            shared,
            request_id: request_id(req.headers.value("x-request-id")),
            started: Instant::now(),
            route: route(&req.method, req.uri.path()),
            attempts: 0,
            endpoint: None,
            logs_at_end: false,
            cache: None,
            tokens: None,
            retried_without: Vec::new(),
            moe: None,
            context_trimmed: 0,
            context_tries: 0,
        }
    }
}

/// An inference request as the phases after the request filter see it.
pub struct InferenceRequest<'a> {
    pub route: Inference,
    pub head: &'a RequestHead,
    /// The client's body as received.
    pub body: &'a Bytes,
    /// What the request filter read from the body: model, stream flag, `nomyo` options.
    pub sniffed: Sniffed,
}
