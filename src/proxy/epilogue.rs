//! The last two phases, run once the answer's body has ended (or at once for a whole answer):
//! cache store, then logging.

use std::time::Instant;

use http::{HeaderValue, StatusCode};

use super::cache::Store;
use super::relay::Outcome;
use super::session::Session;

/// What the last phases need, carried by the answer's body until it ends.
pub struct Epilogue {
    /// `None` when request lines are not logged (below `info`): nothing is copied for them then.
    log: Option<RequestLog>,
    /// The cache store, when the request uses the cache and its answer may be stored.
    store: Option<Store>,
}

struct RequestLog {
    request_id: HeaderValue,
    started: Instant,
    route: &'static str,
    model: String,
    endpoint: String,
    status: StatusCode,
    cache: &'static str,
}

impl Epilogue {
    /// Takes the logging phase over from `run`: the line is written when the body ends.
    pub fn new(s: &mut Session, model: &str, endpoint: &str, status: StatusCode) -> Self {
        s.logs_at_end = true;
        let log = tracing::enabled!(tracing::Level::INFO).then(|| RequestLog {
            request_id: s.request_id.clone(),
            started: s.started,
            route: s.route.name(),
            model: model.to_string(),
            endpoint: endpoint.to_string(),
            status,
            cache: s.cache.unwrap_or("off"),
        });
        Epilogue { log, store: None }
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
    }

    pub fn run(self, outcome: Outcome) {
        match (self.store, &outcome) {
            (Some(store), Outcome::Complete) => store.complete(),
            (Some(store), _) => store.abandon(),
            (None, _) => {}
        }
        if let Some(log) = self.log {
            log.write(&outcome);
        }
    }
}

impl RequestLog {
    fn write(&self, outcome: &Outcome) {
        let latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let outcome = match outcome {
            Outcome::Complete => "complete".to_string(),
            Outcome::ClientGone => "client_gone".to_string(),
            Outcome::UpstreamFailed(r) => format!("upstream_failed: {r}"),
        };
        tracing::info!(
            request_id = self.request_id.to_str().unwrap_or(""),
            route = self.route,
            model = self.model,
            endpoint = self.endpoint,
            status = self.status.as_u16(),
            latency_ms = format_args!("{latency_ms:.2}"),
            cache = self.cache,
            outcome,
            "request"
        );
    }
}

/// The logging phase of an answer the router made itself (or an error before any upstream answer).
pub fn log_local_answer(s: &Session, method: &http::Method, status: StatusCode) {
    tracing::info!(
        request_id = s.request_id.to_str().unwrap_or(""),
        method = %method,
        route = s.route.name(),
        status = status.as_u16(),
        cache = s.cache.unwrap_or("-"),
        latency_ms = format_args!("{:.2}", s.started.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
}
