//! The body filter's relay: an upstream answer passed to the client frame by frame (translated on
//! the way when the APIs differ). It owns the request's slot and, through the upstream body, its
//! pooled connection, and releases both the moment the answer ends or the client leaves; then the
//! request's epilogue runs (cache store, logging).

use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;

use super::epilogue::Epilogue;
use crate::http::body::{BoxError, Streamed};
use crate::http::client::UpstreamBody;
use crate::http::lazy_timer::LazyTimer;
use crate::routing::slots::SlotGuard;

/// How a relayed stream ended, for the request log and accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Complete,
    /// Upstream failed or went idle mid-body.
    UpstreamFailed(String),
    /// The client went away before the end.
    ClientGone,
}

/// How a streaming client is told that the upstream failed mid-stream (SPEC §3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamErrorFormat {
    /// Not a stream (or length known): the connection just ends.
    None,
    /// One more `{"error": "..."}` line.
    NdjsonLine,
    /// One more `data: {"error": {...}}` event.
    SseEvent,
}

impl StreamErrorFormat {
    pub fn error_chunk(self, message: &str) -> Option<Bytes> {
        let msg = serde_json::to_string(message).unwrap_or_else(|_| "\"upstream error\"".into());
        match self {
            StreamErrorFormat::None => None,
            StreamErrorFormat::NdjsonLine => Some(Bytes::from(format!("{{\"error\":{msg}}}\n"))),
            StreamErrorFormat::SseEvent => Some(Bytes::from(format!(
                "data: {{\"error\":{{\"message\":{msg},\"type\":\"api_error\",\"param\":null,\"code\":null}}}}\n\n"
            ))),
        }
    }
}

/// Rewrites a stream on its way through (API translation). Must give the same output however the
/// input is split.
pub trait Transform {
    /// Appends the output for `input` to `out` (possibly nothing yet).
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>);
    /// The input ended: appends what is still owed.
    fn finish(&mut self, out: &mut Vec<u8>);
    /// The output ended with an error of the transform's own (an over-long event, say): the
    /// rest of the input is not wanted, so the relay stops reading and frees the slot.
    fn has_failed(&self) -> bool {
        false
    }
}

/// Relays an upstream body. Owns the slot and (through the body) the connection; releases both when
/// done or dropped.
pub struct Relay {
    upstream: UpstreamBody,
    guard: Option<SlotGuard>,
    errors: StreamErrorFormat,
    idle: Duration,
    /// When the upstream counts as idle: moved on every frame.
    idle_timer: LazyTimer,
    /// The request's total budget (`timeouts.total`), when it has one.
    hard_deadline: Option<Instant>,
    epilogue: Option<Epilogue>,
    transform: Option<Box<dyn Transform>>,
    /// The epilogue reads the upstream's bytes rather than the transform's (a filter that only
    /// takes out what the client did not ask for: the cache and the accounting want all of it).
    epilogue_reads_input: bool,
    /// The upstream's header lines, for the client's answer head; taken when the head is written
    /// (they are a slice of the connection's read buffer, which they would pin for the whole body).
    upstream_headers: Bytes,
    done: bool,
}

impl Relay {
    pub fn new(
        mut upstream: UpstreamBody,
        guard: Option<SlotGuard>,
        errors: StreamErrorFormat,
        idle: Duration,
        epilogue: Epilogue,
    ) -> Self {
        Relay {
            upstream_headers: upstream.take_header_lines(),
            upstream,
            guard,
            errors,
            idle,
            idle_timer: LazyTimer::new(Instant::now() + idle),
            hard_deadline: None,
            epilogue: Some(epilogue),
            transform: None,
            epilogue_reads_input: false,
            done: false,
        }
    }

    /// Ends the relay at `at` whatever the upstream does (the request's total time budget).
    pub fn with_hard_deadline(mut self, at: Option<Instant>) -> Self {
        self.hard_deadline = at;
        let next = self.next_deadline();
        self.idle_timer.set(next);
        self
    }

    fn next_deadline(&self) -> Instant {
        let idle = Instant::now() + self.idle;
        self.hard_deadline.map_or(idle, |h| h.min(idle))
    }

    /// Passes every chunk through `t`, keeping the upstream's header lines (only for an upstream
    /// body without a length, whose headers name none); the epilogue reads the unfiltered bytes.
    pub fn with_filter(mut self, t: Box<dyn Transform>) -> Self {
        self.transform = Some(t);
        self.epilogue_reads_input = true;
        self
    }

    /// Passes every chunk through `t` (the size of the body is then unknown). The upstream's headers
    /// describe the untransformed bytes, so they do not go to the client.
    pub fn with_transform(mut self, t: Box<dyn Transform>) -> Self {
        self.transform = Some(t);
        self.upstream_headers = Bytes::new();
        self
    }

    /// The next frame for the client: upstream data (transformed when asked), an error line when the
    /// upstream fails or goes idle, or the end.
    fn next_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            let data = match Pin::new(&mut self.upstream).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let next = self.next_deadline();
                    self.idle_timer.set(next);
                    match frame.into_data() {
                        Ok(data) => data,
                        // Trailers are hop-by-hop for us: skip them.
                        Err(_) => continue,
                    }
                }
                Poll::Ready(None) => {
                    let tail = self.finish_transform();
                    self.end(Outcome::Complete);
                    return Poll::Ready(tail.map(|b| Ok(Frame::data(b))));
                }
                Poll::Ready(Some(Err(e))) => {
                    return self.fail(format!(
                        "upstream {} failed mid-response: {e}",
                        endpoint_name(self)
                    ))
                }
                Poll::Pending => {
                    if self.idle_timer.poll_expired(cx) {
                        let idle = self.idle;
                        let reason = if self.hard_deadline.is_some_and(|h| Instant::now() >= h) {
                            "the request's total time limit passed".to_string()
                        } else {
                            format!("upstream {} sent nothing for {idle:?}", endpoint_name(self))
                        };
                        return self.fail(reason);
                    }
                    return Poll::Pending;
                }
            };
            let mut out = match self.transform.as_mut() {
                None => {
                    if let Some(e) = self.epilogue.as_mut() {
                        e.observe(&data);
                    }
                    data
                }
                Some(t) => {
                    let mut buf = Vec::new();
                    t.feed(&data, &mut buf);
                    if t.has_failed() {
                        // The error line is in `buf`; nothing may follow it.
                        self.end(Outcome::UpstreamFailed(
                            "the upstream's stream could not be translated".into(),
                        ));
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))));
                    }
                    if let Some(e) = self.epilogue.as_mut() {
                        e.observe(if self.epilogue_reads_input {
                            &data
                        } else {
                            &buf
                        });
                    }
                    Bytes::from(buf)
                }
            };
            // A body of known length ends with its last byte: report the end with it.
            if self.upstream.is_end_stream() {
                if let Some(tail) = self.finish_transform() {
                    out = [out, tail].concat().into();
                }
                self.end(Outcome::Complete);
            }
            if !out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
    }

    /// What the transform still owes at the end of the input (seen by the epilogue like the rest).
    fn finish_transform(&mut self) -> Option<Bytes> {
        let t = self.transform.as_mut()?;
        let mut buf = Vec::new();
        t.finish(&mut buf);
        if let (Some(e), false) = (self.epilogue.as_mut(), self.epilogue_reads_input) {
            e.observe(&buf);
        }
        (!buf.is_empty()).then(|| Bytes::from(buf))
    }

    fn end(&mut self, outcome: Outcome) {
        self.done = true;
        self.guard = None;
        if let Some(e) = self.epilogue.take() {
            e.run(outcome);
        }
    }

    fn fail(&mut self, reason: String) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let chunk = self.errors.error_chunk(&reason);
        self.end(Outcome::UpstreamFailed(reason.clone()));
        match chunk {
            Some(c) => Poll::Ready(Some(Ok(Frame::data(c)))),
            None => Poll::Ready(Some(Err(reason.into()))),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if !self.done {
            self.end(Outcome::ClientGone);
        }
    }
}

impl Streamed for Relay {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.next_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        if self.errors == StreamErrorFormat::None && self.transform.is_none() {
            self.upstream.size_hint()
        } else {
            SizeHint::default()
        }
    }

    fn take_header_lines(&mut self) -> Bytes {
        std::mem::take(&mut self.upstream_headers)
    }
}

fn endpoint_name(r: &Relay) -> String {
    r.guard
        .as_ref()
        .map(|g| g.endpoint().cfg.url.clone())
        .unwrap_or_else(|| "endpoint".into())
}
