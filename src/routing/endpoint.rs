//! Live state of one configured endpoint: health and total in-flight, shared by all threads.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::url::EndpointUrl;
use crate::config::{EndpointConfig, EndpointKind};

pub struct EndpointState {
    pub index: usize,
    pub cfg: EndpointConfig,
    pub url: EndpointUrl,
    /// The `Host` header value, computed once.
    pub authority: String,
    /// The `x-router-endpoint` answer header, built once (its clones share the bytes).
    pub name_header: Option<http::HeaderValue>,
    /// Path prefix of the OpenAI API on this endpoint, computed once.
    openai_base: String,
    healthy: AtomicBool,
    /// Requests in flight on this endpoint, over all models.
    pub in_flight: AtomicU32,
    /// Unix seconds of the last state change, for /health.
    changed_at: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl EndpointState {
    pub fn new(index: usize, cfg: EndpointConfig) -> Self {
        let url = crate::config::url::parse(&cfg.url).expect("validated at load");
        EndpointState {
            index,
            openai_base: openai_base(cfg.kind, &url.base_path),
            name_header: http::HeaderValue::from_str(&cfg.url).ok(),
            cfg,
            authority: url.authority(),
            url,
            // Unknown until the first poll: assume usable so that a request is never refused before it.
            healthy: AtomicBool::new(true),
            in_flight: AtomicU32::new(0),
            changed_at: AtomicU64::new(now_secs()),
            last_error: Mutex::new(None),
        }
    }

    pub fn kind(&self) -> EndpointKind {
        self.cfg.kind
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub fn mark_up(&self) {
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
