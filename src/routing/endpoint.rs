//! Live state of one configured endpoint: health and total in-flight, shared by all threads.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::url::EndpointUrl;
use crate::config::{EndpointConfig, EndpointKind};

pub struct EndpointState {
    /// Position in the configuration this state belongs to (placement and routing use it).
    pub index: usize,
    /// The endpoint's number for the process's life, the same across reloads for the same URL
    /// (`state::EndpointIds`): upstream connection pools and metrics are kept under it.
    pub id: usize,
    pub cfg: EndpointConfig,
    /// The configured URL, shared by the records and metrics that name the endpoint.
    pub label: std::sync::Arc<str>,
    pub url: EndpointUrl,
    /// The `Host` header value, computed once.
    pub authority: String,
    /// The `x-router-endpoint` answer header, built once (its clones share the bytes).
    pub name_header: Option<http::HeaderValue>,
    /// Path prefix of the OpenAI API on this endpoint, computed once.
    openai_base: String,
    healthy: AtomicBool,
    /// Requests in flight on this endpoint, over all models (shared with the states that follow
    /// this one at a reload, so requests still running on the old settings count too).
    pub in_flight: Arc<AtomicU32>,
    /// Failed requests in a row (reset by any success): the circuit breaker's count.
    consecutive_failures: AtomicU32,
    /// Unix seconds of the last state change, for /health.
    changed_at: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl EndpointState {
    pub fn new(index: usize, id: usize, cfg: EndpointConfig) -> Self {
        let url = crate::config::url::parse(&cfg.url).expect("validated at load");
        EndpointState {
            index,
            id,
            openai_base: openai_base(cfg.kind, &url.base_path),
            name_header: http::HeaderValue::from_str(&cfg.url).ok(),
            label: cfg.url.as_str().into(),
            cfg,
            authority: url.authority(),
            url,
            // Unknown until the first poll: assume usable so that a request is never refused before it.
            healthy: AtomicBool::new(true),
            in_flight: Arc::new(AtomicU32::new(0)),
            consecutive_failures: AtomicU32::new(0),
            changed_at: AtomicU64::new(now_secs()),
            last_error: Mutex::new(None),
        }
    }

    /// The state of the same endpoint (same URL) under a reloaded configuration: it goes on
    /// counting the requests in flight and keeps what is known of the endpoint's health.
    pub fn successor(&self, index: usize, cfg: EndpointConfig) -> Self {
        let next = EndpointState::new(index, self.id, cfg);
        let last_error = self.last_error();
        EndpointState {
            in_flight: self.in_flight.clone(),
            healthy: AtomicBool::new(self.is_healthy()),
            consecutive_failures: AtomicU32::new(self.consecutive_failures.load(Ordering::Relaxed)),
            changed_at: AtomicU64::new(self.changed_at()),
            last_error: Mutex::new(last_error),
            ..next
        }
    }

    pub fn kind(&self) -> EndpointKind {
        self.cfg.kind
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn mark_up(&self) {
        self.consecutive_failures.store(0, Ordering::Relaxed);
        if !self.healthy.swap(true, Ordering::Relaxed) {
            self.changed_at.store(now_secs(), Ordering::Relaxed);
            tracing::info!(endpoint = %self.cfg.url, "endpoint is back up");
        }
        if let Ok(mut e) = self.last_error.lock() {
            *e = None;
        }
    }

    pub fn mark_down(&self, reason: &str) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            self.changed_at.store(now_secs(), Ordering::Relaxed);
            tracing::warn!(endpoint = %self.cfg.url, reason, "endpoint marked down");
        }
        if let Ok(mut e) = self.last_error.lock() {
            *e = Some(reason.to_string());
        }
    }

    /// A request failed in a way that is the endpoint's fault (see `proxy::policy`): after
    /// `threshold` in a row, the endpoint is marked down until a discovery poll succeeds. One
    /// client's unlucky request does not take an endpoint away from everyone.
    pub fn record_failure(&self, reason: &str, threshold: u32) {
        let failures = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures >= threshold {
            self.mark_down(&format!(
                "{failures} failed requests in a row, the last: {reason}"
            ));
        }
    }

    /// A request got an answer: the run of failures is over. Reads before writing, so the hot
    /// path does not dirty the shared cache line when there was no failure.
    pub fn record_success(&self) {
        if self.consecutive_failures.load(Ordering::Relaxed) != 0 {
            self.consecutive_failures.store(0, Ordering::Relaxed);
        }
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    pub fn changed_at(&self) -> u64 {
        self.changed_at.load(Ordering::Relaxed)
    }

    /// Path prefix of the OpenAI API on this endpoint (`/v1` for Ollama, the URL's own path for others).
    pub fn openai_base(&self) -> &str {
        &self.openai_base
    }
}

fn openai_base(kind: EndpointKind, base: &str) -> String {
    match kind {
        EndpointKind::Ollama => format!("{base}/v1"),
        _ if base.ends_with("/v1") => base.to_string(),
        EndpointKind::LlamaServer => format!("{base}/v1"),
        EndpointKind::OpenAi => base.to_string(),
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_run_of_failures_marks_an_endpoint_down() {
        let cfg = EndpointConfig {
            url: "http://a:1".into(),
            kind: EndpointKind::Ollama,
            max_concurrent: 1,
            api_key: None,
            weight: 1,
        };
        let ep = EndpointState::new(0, 0, cfg);
        ep.record_failure("refused", 3);
        ep.record_failure("refused", 3);
        ep.record_success();
        ep.record_failure("refused", 3);
        ep.record_failure("refused", 3);
        assert!(ep.is_healthy(), "a success broke the run");
        ep.record_failure("reset", 3);
        assert!(!ep.is_healthy());
        assert!(ep
            .last_error()
            .unwrap()
            .contains("3 failed requests in a row, the last: reset"));
        ep.mark_up();
        ep.record_failure("refused", 3);
        assert!(ep.is_healthy(), "a successful poll resets the run");
    }
}
