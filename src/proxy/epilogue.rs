//! The last phases, run once the answer's body has ended (or at once for a whole answer): cache
//! store, accounting (tokens and metrics), then logging.

use std::sync::Arc;
use std::time::Instant;

use http::{HeaderValue, StatusCode};

use super::cache::Store;
use super::relay::Outcome;
use super::session::Session;
use crate::accounting::{Record, Tap, Tokens};
use crate::metrics::labels::Reason;
use crate::routing::slots::Slot;
use crate::state::Shared;

/// What the last phases need, carried by the answer's body until it ends.
pub struct Epilogue {
    /// `None` when request lines are not logged (below `info`): nothing is copied for them then.
    log: Option<RequestLog>,
    /// The cache store, when the request uses the cache and its answer may be stored.
    store: Option<Store>,
    count: Count,
}

/// The accounting phase: the answer's tokens (read off its tail) and its metrics.
struct Count {
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    /// `Route::index`.
    route: usize,
    started: Instant,
    status: StatusCode,
    /// Only for a successful answer, and only when tokens are counted.
    tap: Option<Tap>,
}

struct RequestLog {
    request_id: HeaderValue,
    route: &'static str,
    model: String,
    cache: &'static str,
}

impl Epilogue {
    /// Takes the last phases over from `run`: they run when the body ends. `model` is the name
    /// the client asked for; `slot` the endpoint × model that answers.
    pub fn new(s: &mut Session, model: &str, slot: &Arc<Slot>, status: StatusCode) -> Self {
        s.logs_at_end = true;
        let log = tracing::enabled!(tracing::Level::INFO).then(|| RequestLog {
            request_id: s.request_id.clone(),
            route: s.route.name(),
            model: model.to_string(),
            cache: s.cache.unwrap_or("off"),
        });
        let count = Count {
            tap: (status.is_success() && s.shared.accounting.is_some()).then(Tap::default),
            shared: s.shared.clone(),
            slot: slot.clone(),
            route: s.route.index(),
            started: s.started,
            status,
        };
        Epilogue {
            log,
            store: None,
            count,
        }
    }

    /// Reads the answer on its way for the cache store (see `cache::Store`).
    pub fn with_store(mut self, store: Option<Store>) -> Self {
        self.store = store;
        self
    }

    /// The next bytes the client is sent.
    #[inline]
    pub fn observe(&mut self, bytes: &[u8]) {
        if let Some(store) = self.store.as_mut() {
            store.observe(bytes);
        }
        if let Some(tap) = self.count.tap.as_mut() {
            tap.observe(bytes);
        }
    }

    pub fn run(self, outcome: Outcome) {
        match (self.store, &outcome) {
            (Some(store), Outcome::Complete) => store.complete(),
            (Some(store), _) => store.abandon(),
            (None, _) => {}
        }
        let tokens = self.count.run(&outcome);
        if let Some(log) = self.log {
            log.write(&self.count, &outcome, tokens);
        }
    }
}

impl Count {
    fn run(&self, outcome: &Outcome) -> Option<Tokens> {
        let ep = &self.slot.endpoint;
        if let Some(m) = &self.shared.metrics {
            m.request(
                self.route,
                self.status.as_u16(),
                Some(ep.id),
                self.started.elapsed(),
            );
            if matches!(outcome, Outcome::UpstreamFailed(_)) {
                m.upstream_error(ep.id, Reason::MidBody);
            }
        }
        // Only a complete answer has its totals: a stream cut short may hold running counts.
        if *outcome != Outcome::Complete {
            return None;
        }
        let tokens = self.tap.as_ref().and_then(Tap::tokens)?;
        if let Some(acc) = &self.shared.accounting {
            acc.record(Record {
                endpoint: ep.label.clone(),
                model: self.slot.model.clone(),
                tokens,
                cached: false,
            });
        }
        Some(tokens)
    }
}

impl RequestLog {
    fn write(&self, count: &Count, outcome: &Outcome, tokens: Option<Tokens>) {
        let latency_ms = count.started.elapsed().as_secs_f64() * 1000.0;
        let outcome = match outcome {
            Outcome::Complete => "complete".to_string(),
            Outcome::ClientGone => "client_gone".to_string(),
            Outcome::UpstreamFailed(r) => format!("upstream_failed: {r}"),
        };
        tracing::info!(
            request_id = self.request_id.to_str().unwrap_or(""),
            route = self.route,
            model = self.model,
            endpoint = &*count.slot.endpoint.label,
            status = count.status.as_u16(),
            latency_ms = format_args!("{latency_ms:.2}"),
            cache = self.cache,
            prompt_tokens = tokens.map(|t| t.prompt),
            completion_tokens = tokens.map(|t| t.completion),
            outcome,
            "request"
        );
    }
}

/// The accounting and logging phases of an answer the router made itself (or an error before any
/// upstream answer, or a cache hit).
pub fn log_local_answer(s: &Session, method: &http::Method, status: StatusCode) {
    let took = s.started.elapsed();
    if let Some(m) = &s.shared.metrics {
        m.request(s.route.index(), status.as_u16(), None, took);
    }
    tracing::info!(
        request_id = s.request_id.to_str().unwrap_or(""),
        method = %method,
        route = s.route.name(),
        status = status.as_u16(),
        cache = s.cache.unwrap_or("-"),
        prompt_tokens = s.tokens.map(|t| t.prompt),
        completion_tokens = s.tokens.map(|t| t.completion),
        latency_ms = format_args!("{:.2}", took.as_secs_f64() * 1000.0),
        "request"
    );
}
