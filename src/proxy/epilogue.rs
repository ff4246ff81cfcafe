//! The last two phases, run once the answer's body has ended (or at once for a whole answer):
//! cache store, then logging.

use std::time::Instant;

use http::{HeaderValue, StatusCode};

use super::cache;
use super::relay::Outcome;
use super::session::Session;

/// What the last phases need, carried by the answer's body until it ends.
pub struct Epilogue {
    /// `None` when request lines are not logged (below `info`): nothing is copied for them then.
    log: Option<RequestLog>,
}

struct RequestLog {
    request_id: HeaderValue,
    started: Instant,
    route: &'static str,
    model: String,
    endpoint: String,
    status: StatusCode,
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
        });
        Epilogue { log }
    }

    pub fn run(self, outcome: Outcome) {
        cache::store(&outcome);
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
            cache = "off",
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
        latency_ms = format_args!("{:.2}", s.started.elapsed().as_secs_f64() * 1000.0),
        "request"
    );
}
