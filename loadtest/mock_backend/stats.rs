//! What the mock served, for tests: request counts, in-flight and its peak, the order of test ids.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::json;

#[derive(Default)]
pub struct Stats {
    /// TCP connections accepted.
    pub connections: AtomicU64,
    pub requests: AtomicU64,
    pub inference: AtomicU64,
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
    pub cancelled: AtomicU64,
    /// `x-test-id` headers of inference requests, in arrival order (bounded).
    pub order: Mutex<Vec<String>>,
    /// Authorization headers seen, to check upstream keys.
    pub auth: Mutex<Vec<String>>,
    /// The last user message of the last chat request (its first 16 KiB), to check prompts.
    pub last_user: Mutex<String>,
}

impl Stats {
    pub fn start(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
    }

    pub fn finish(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "connections": self.connections.load(Ordering::SeqCst),
            "requests": self.requests.load(Ordering::SeqCst),
            "inference": self.inference.load(Ordering::SeqCst),
            "in_flight": self.in_flight.load(Ordering::SeqCst),
            "max_in_flight": self.max_in_flight.load(Ordering::SeqCst),
            "cancelled": self.cancelled.load(Ordering::SeqCst),
            "order": *self.order.lock().unwrap_or_else(|p| p.into_inner()),
            "auth": *self.auth.lock().unwrap_or_else(|p| p.into_inner()),
            "last_user": *self.last_user.lock().unwrap_or_else(|p| p.into_inner()),
        })
    }

    pub fn reset(&self) {
        self.requests.store(0, Ordering::SeqCst);
        self.inference.store(0, Ordering::SeqCst);
        self.max_in_flight
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
        self.cancelled.store(0, Ordering::SeqCst);
        self.order.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.auth.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Counts an in-flight inference until dropped; a drop before `done` means the client went away.
pub struct InFlight {
    pub state: std::sync::Arc<crate::serve::MockState>,
    pub done: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            self.state.stats.cancelled.fetch_add(1, Ordering::SeqCst);
        }
        self.state.stats.finish();
    }
}
