//! `/api/usage` and its live form `/api/usage-stream` (SSE): slots in use and tokens counted, per
//! endpoint × model, in the reference's shape (`usage_counts`, `token_usage_counts`, keys sorted)
//! plus the slot limits and queues.
//!
//! The stream costs the workers nothing per proxied request: one snapshot is built at most every
//! tick (`accounting::feed`, by whichever watcher finds it stale) and every watcher compares its
//! version on its own timer; a change reaches them within two ticks, unchanged state sends a comment
//! line every `HEARTBEAT`, and SIGTERM ends the streams.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body::{Frame, SizeHint};
use serde_json::{json, Map, Value};

use super::util::json_value;
use crate::accounting::feed::HEARTBEAT;
use crate::http::body::{BoxError, RouterBody, Streamed};
use crate::http::lazy_timer::LazyTimer;
use crate::state::Shared;

/// `GET /api/usage`.
pub fn usage(shared: &Shared) -> Response<RouterBody> {
    json_value(StatusCode::OK, &usage_value(shared))
}

fn usage_value(shared: &Shared) -> Value {
    let placement = shared.placement.load();
    // Endpoints a reload removed show while requests begun before it still run on them.
    let draining = shared.routing().draining(&shared.endpoints);
    let per_endpoint = || -> Map<String, Value> {
        shared
            .endpoints
            .iter()
            .map(|e| &e.cfg.url)
            .chain(draining.iter().map(|s| &s.endpoint.cfg.url))
            .map(|url| (url.clone(), json!({})))
            .collect()
    };
    let (mut usage, mut limits, mut tokens) = (per_endpoint(), per_endpoint(), per_endpoint());
    let mut queues = Map::new();
    let (mut total_in_flight, mut total_queued) = (0u64, 0u64);
    let put = |map: &mut Map<String, Value>, ep: &str, model: &str, v: Value| {
        if let Some(Value::Object(m)) = map.get_mut(ep) {
            m.insert(model.to_string(), v);
        }
    };
    for slot in placement.slots.iter().chain(&draining) {
        let n = slot.in_flight();
        total_in_flight += u64::from(n);
        let (ep, model) = (&slot.endpoint.cfg.url, &*slot.model);
        put(&mut usage, ep, model, json!(n));
        put(&mut limits, ep, model, json!(slot.limit));
        let depth = slot.queue.depth();
        if depth > 0 || !queues.contains_key(model) {
            queues.insert(model.to_string(), json!(depth));
        }
    }
    total_queued += queues.values().filter_map(Value::as_u64).sum::<u64>();
    if let Some(acc) = &shared.accounting {
        for ((ep, model), (i, o)) in &acc.totals.load().all_time {
            put(&mut tokens, ep, model, json!(i + o));
        }
    }
    json!({
        "usage_counts": usage,
        "slot_limits": limits,
        "token_usage_counts": tokens,
        "queue_depth": queues,
        "total_in_flight": total_in_flight,
        "total_queued": total_queued,
    })
}

/// The SSE event of the current state.
fn event(shared: &Shared) -> Vec<u8> {
    let mut event = Vec::with_capacity(1024);
    event.extend_from_slice(b"data: ");
    // A `Value` always serialises.
    let _ = serde_json::to_writer(&mut event, &usage_value(shared));
    event.extend_from_slice(b"\n\n");
    event
}

/// `GET /api/usage-stream`.
pub fn stream(shared: Arc<Shared>) -> Response<RouterBody> {
    shared.feed.watch();
    let body = Watcher {
        shared,
        sent: None,
        timer: LazyTimer::new(Instant::now()),
        heartbeat: Instant::now() + HEARTBEAT,
        done: false,
    };
    let mut resp = Response::new(RouterBody::Streamed(Box::new(body)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

struct Watcher {
    shared: Arc<Shared>,
    /// The version last sent; `None` before the first.
    sent: Option<u64>,
    timer: LazyTimer,
    heartbeat: Instant,
    done: bool,
}

impl Streamed for Watcher {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.done || self.shared.stopping.load(Ordering::Relaxed) {
                self.done = true;
                return Poll::Ready(None);
            }
            if !self.timer.poll_expired(cx) {
                return Poll::Pending;
            }
            let now = Instant::now();
            self.timer.set(now + crate::accounting::feed::TICK);
            // A reload's endpoints and slots show from the next tick; a reload that changed the
            // router key ends the stream (the client comes back with the new key).
            if !self.shared.is_current() {
                let next = self.shared.current();
                if next.config.router_api_key != self.shared.config.router_api_key {
                    self.done = true;
                    continue;
                }
                self.shared = next;
            }
            let snap = self.shared.feed.snapshot(|| event(&self.shared));
            if self.sent != Some(snap.version) {
                let first = self.sent.is_none();
                self.sent = Some(snap.version);
                self.heartbeat = now + HEARTBEAT;
                let event = if first {
                    // Tell EventSource clients how soon to reconnect.
                    [&b"retry: 2000\n"[..], &snap.event].concat().into()
                } else {
                    snap.event.clone()
                };
                return Poll::Ready(Some(Ok(Frame::data(event))));
            }
            if now >= self.heartbeat {
                self.heartbeat = now + HEARTBEAT;
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b": ping\n\n")))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }

    fn take_header_lines(&mut self) -> Bytes {
        Bytes::new()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shared.feed.unwatch();
    }
}
