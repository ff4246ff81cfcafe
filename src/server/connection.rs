//! One client connection, served on the runtime's native (io_uring) operations: read a head, read
//! the body, run the handler, write the answer, and again while the client keeps the connection.
//! A read stays in flight while the handler runs and while a body streams, so a client that hangs
//! up is noticed at once and its request is dropped (which releases its slot and cancels upstream).

use std::future::{poll_fn, Future};
use std::os::fd::AsRawFd;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::{Method, StatusCode, Version};
use http_body::Body;
use monoio::io::Splitable;
use monoio::net::TcpStream;

use super::body_budget::BODY_BUDGET;
use super::idle::{IdleRegistry, IdleState, Ticket};
use crate::api::errors::ApiError;
use crate::api::routes::route;
use crate::api::util::{request_id, RouterHeaders};
use crate::config::Limits;
use crate::http::body::RouterBody;
use crate::http::chunked::{ChunkedDecoder, Decoded};
use crate::http::framing::Framing;
use crate::http::lazy_timer::LazyTimer;
use crate::http::reader::Reader;
use crate::http::request_head::{self, HeadError, RequestHead};
use crate::http::response_head::{self, LAST_CHUNK};
use crate::http::writer::Writer;
use crate::proxy::run::{refuse_before_body, run};
use crate::state::Shared;

/// How long an idle keep-alive connection is kept open.
const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(75);
/// Streamed output is written once this much is gathered, even if more frames are ready.
const WRITE_BATCH: usize = 64 * 1024;
/// Buffers above this size are not kept between requests.
const KEEP_BUFFER: usize = 256 * 1024;
/// After refusing a body, how long (and how much) of it is read and dropped before closing, so that
/// closing with unread data (a TCP reset) does not destroy the error answer before the client reads it.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 16 << 20;
/// How much a client may send ahead (pipelined requests) while its current request is served and
/// the socket is still watched for a hang-up.
const WATCH_AHEAD: usize = 64 * 1024;

pub async fn serve(stream: TcpStream, shared: Arc<Shared>, idle: &IdleRegistry) {
    let _ = stream.set_nodelay(true);
    let ticket = idle.register(stream.as_raw_fd());
    let (read, write) = stream.into_split();
    let mut conn = Connection {
        reader: Reader::new(read),
        writer: Writer::new(write),
        buf: BytesMut::new(),
        out: Vec::with_capacity(1024),
        limits: shared.config.limits,
        shared,
        linger_on_close: false,
        read_deadline: LazyTimer::new(Instant::now() + KEEP_ALIVE_IDLE),
        upstream_deadline: LazyTimer::new(Instant::now()),
        ticket,
        served_one: false,
        body_budget_held: 0,
    };
    while conn.serve_one().await {}
    if conn.linger_on_close {
        conn.linger().await;
    }
}

struct Connection {
    reader: Reader,
    writer: Writer,
    /// Bytes read and not yet consumed (with the reader while a read is in flight).
    buf: BytesMut,
    /// Bytes to write.
    out: Vec<u8>,
    /// The configuration's limits, copied once per connection (and at a reload) rather than
    /// reached through `shared`.
    limits: Limits,
    shared: Arc<Shared>,
    /// A refused request (its body or an oversized head) may still be partly on the wire.
    linger_on_close: bool,
    /// The deadline of the read being waited for (keep-alive idle, head, body, linger).
    read_deadline: LazyTimer,
    /// The deadline of the upstream answer a request waits for: one timer for all of the
    /// connection's requests, moved by each.
    upstream_deadline: LazyTimer,
    /// What the worker's idle registry knows of this connection (declared after the socket's
    /// halves: the entry must not outlive the socket).
    ticket: Rc<Ticket>,
    /// A request began on this connection: it waits for the next one up to the keep-alive idle
    /// time, where a new connection has `header_read_timeout` to begin its first.
    served_one: bool,
    /// What the current request's body holds of the process's body budget.
    body_budget_held: usize,
}

impl Drop for Connection {
    fn drop(&mut self) {
        BODY_BUDGET.release(&mut self.body_budget_held);
    }
}

/// Why a request body could not be read.
enum BodyFailure {
    TooLarge,
    /// The process's budget for large bodies is spent (`limits.max_buffered_body_bytes`).
    NoBudget,
    Invalid(String),
    TimedOut,
    /// The client hung up: there is nobody to answer.
    Gone,
}

/// What the response body did next.
enum Next {
    Data(Bytes),
    End,
    Failed,
    ClientGone,
}

impl Connection {
    /// Serves one request; false when the connection is done.
    async fn serve_one(&mut self) -> bool {
        let head = match self.read_head().await {
            Ok(Some(head)) => Ok(head),
            Ok(None) => return false,
            Err(e) => Err(e),
        };
        // After a reload, this request and the connection's next take the new configuration.
        if !self.shared.is_current() {
            self.shared = self.shared.current();
            self.limits = self.shared.config.limits;
        }
        // Held until the answer's last byte is written, so a shutdown drain never cuts a response.
        let _active = self.shared.track_request();
        let head = match head {
            Ok(head) => head,
            Err(e) => {
                self.refuse(e).await;
                self.linger_on_close = true;
                return false;
            }
        };
        let limits = self.limits;
        let mut keep_alive = head.keep_alive;
        let refused = (head.body != Framing::Empty)
            .then(|| refuse_before_body(&head, &self.shared))
            .flatten();
        let body = match (head.body, refused) {
            (Framing::Empty, _) => Ok(Bytes::new()),
            // The handler answers the refusal; the unread body makes the connection close after.
            (_, Some(refusal)) => {
                keep_alive = false;
                self.linger_on_close = true;
                Err(refusal)
            }
            (framing, None) => match self.read_body(&head, framing).await {
                Ok(b) => Ok(b),
                Err(BodyFailure::Gone) => return false,
                Err(failure) => {
                    // The rest of the body is still on the wire: this connection cannot go on.
                    keep_alive = false;
                    self.linger_on_close = true;
                    Err(match failure {
                        BodyFailure::TooLarge => ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!(
                                "request body exceeds the limit of {} bytes",
                                limits.max_body_bytes
                            ),
                        ),
                        BodyFailure::NoBudget => ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "too many large request bodies are being received at once; retry shortly",
                        )
                        .retry_after(1),
                        BodyFailure::TimedOut => ApiError::new(
                            StatusCode::REQUEST_TIMEOUT,
                            format!(
                                "request body not received within {:?}",
                                limits.header_read_timeout
                            ),
                        ),
                        BodyFailure::Invalid(msg) => {
                            ApiError::bad_request(format!("could not read the request body: {msg}"))
                        }
                        BodyFailure::Gone => unreachable!("handled above"),
                    })
                }
            },
        };
        let http11 = head.version == Version::HTTP_11;
        let Some((resp, added, sound)) = self.run_handler(&head, body).await else {
            return false;
        };
        // The body went upstream (or was answered): its share of the budget is free again.
        BODY_BUDGET.release(&mut self.body_budget_held);
        self.respond(resp, &added, &head.method, http11, keep_alive && sound)
            .await
    }

    /// Reads until a whole head is buffered. `Ok(None)`: the client closed, or went quiet (idle
    /// keep-alive, or a head not finished within `header_read_timeout`).
    async fn read_head(&mut self) -> Result<Option<RequestHead>, HeadError> {
        let limits = self.limits;
        let (wait, state) = if self.served_one {
            (KEEP_ALIVE_IDLE, IdleState::BetweenRequests)
        } else {
            (limits.header_read_timeout, IdleState::NeverServed)
        };
        let mut deadline = Instant::now() + wait;
        let mut started = false;
        self.ticket.set_idle(state);
        loop {
            if !self.reader.has_buf() {
                if let Some(head) = request_head::parse(&mut self.buf, &limits)? {
                    self.ticket.set_busy();
                    self.served_one = true;
                    return Ok(Some(head));
                }
                if !started && !self.buf.is_empty() {
                    started = true;
                    self.ticket.set_busy();
                    deadline = Instant::now() + limits.header_read_timeout;
                }
            }
            match self.fill_by(deadline).await {
                Some(Ok(n)) if n > 0 => {}
                _ => return Ok(None),
            }
        }
    }

    async fn read_body(
        &mut self,
        head: &RequestHead,
        framing: Framing,
    ) -> Result<Bytes, BodyFailure> {
        let limits = self.limits;
        let limit = limits.max_body_bytes;
        if matches!(framing, Framing::Length(n) if n > limit as u64) {
            return Err(BodyFailure::TooLarge);
        }
        let budget = limits.max_buffered_body_bytes;
        if let Framing::Length(n) = framing {
            if !BODY_BUDGET.cover(&mut self.body_budget_held, n as usize, budget) {
                return Err(BodyFailure::NoBudget);
            }
        }
        if head.expects_continue {
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            if !self.flush().await {
                return Err(BodyFailure::Gone);
            }
        }
        let deadline = Instant::now() + limits.header_read_timeout;
        match framing {
            Framing::Length(n) => {
                let n = n as usize;
                while self.buf.len() < n || self.reader.has_buf() {
                    if !self.reader.has_buf() && self.buf.capacity() < n {
                        self.buf.reserve(n - self.buf.len());
                    }
                    self.fill_until(deadline).await?;
                }
                Ok(self.buf.split_to(n).freeze())
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut body = BytesMut::new();
                loop {
                    if !self.reader.has_buf() {
                        let decoded = decoder.decode(&mut self.buf);
                        // A size line announcing more than the limit allows is refused on sight.
                        if body.len() as u64 + decoder.announced() > limit as u64 {
                            return Err(BodyFailure::TooLarge);
                        }
                        match decoded {
                            Ok(Decoded::Data(d)) if body.len() + d.len() > limit => {
                                return Err(BodyFailure::TooLarge)
                            }
                            Ok(Decoded::Data(d)) => {
                                body.extend_from_slice(&d);
                                // Counted by what is allocated: it changes only as it grows.
                                if !BODY_BUDGET.cover(
                                    &mut self.body_budget_held,
                                    body.capacity(),
                                    budget,
                                ) {
                                    return Err(BodyFailure::NoBudget);
                                }
                                continue;
                            }
                            Ok(Decoded::End) => return Ok(body.freeze()),
                            Ok(Decoded::NeedMore) => {}
                            Err(msg) => return Err(BodyFailure::Invalid(msg)),
                        }
                    }
                    self.fill_until(deadline).await?;
                }
            }
            // A request without a length or chunked coding has no body (RFC 9112 §6.3).
            Framing::Empty | Framing::UntilClose => Ok(Bytes::new()),
        }
    }

    async fn fill_until(&mut self, deadline: Instant) -> Result<(), BodyFailure> {
        match self.fill_by(deadline).await {
            Some(Ok(n)) if n > 0 => Ok(()),
            Some(_) => Err(BodyFailure::Gone),
            None => Err(BodyFailure::TimedOut),
        }
    }

    /// Reads more into `buf`; `None` when `deadline` passes first (the read then stays in flight).
    async fn fill_by(&mut self, deadline: Instant) -> Option<std::io::Result<usize>> {
        self.read_deadline.set(deadline);
        poll_fn(|cx| {
            if let Poll::Ready(read) = self.reader.poll_fill(&mut self.buf, cx) {
                return Poll::Ready(Some(read));
            }
            if self.read_deadline.poll_expired(cx) {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await
    }

    /// Runs the handler while watching the socket; `None` when the client hung up first. A panic
    /// in the handler becomes a 500 in the route's format (the request's slot and queue place were
    /// released as its future unwound), after which the connection closes.
    async fn run_handler(
        &mut self,
        head: &RequestHead,
        body: Result<Bytes, ApiError>,
    ) -> Option<(http::Response<RouterBody>, RouterHeaders, bool)> {
        let handler = run(head, body, self.shared.clone(), &mut self.upstream_deadline);
        let handler = AssertUnwindSafe(handler).catch_unwind();
        let Some(outcome) = watching(&mut self.reader, &mut self.buf, handler).await else {
            // Dropping the handler released its slot or queue place and cancelled upstream; the
            // request's own log line (written when an answer ends) never comes, so say it here.
            tracing::info!(
                request_id = head.headers.value("x-request-id").as_ref().and_then(|v| v.to_str().ok()).unwrap_or(""),
                method = %head.method,
                route = route(&head.method, head.uri.path()).name(),
                outcome = "client_gone",
                "request"
            );
            return None;
        };
        match outcome {
            Ok((resp, added)) => Some((resp, added, true)),
            Err(_) => {
                let route = route(&head.method, head.uri.path());
                let added = RouterHeaders {
                    request_id: request_id(head.headers.value("x-request-id")),
                    endpoint: None,
                };
                tracing::error!(
                    request_id = added.request_id.to_str().unwrap_or(""),
                    route = route.name(),
                    "the request's handler panicked: answered 500, released its slot, closing the connection"
                );
                let resp = ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error while serving this request",
                )
                .into_response(route.format());
                Some((resp, added, false))
            }
        }
    }

    /// Writes the answer; false when the connection must close afterwards.
    async fn respond(
        &mut self,
        resp: http::Response<RouterBody>,
        added: &RouterHeaders,
        method: &Method,
        http11: bool,
        keep_alive: bool,
    ) -> bool {
        let (parts, mut body) = resp.into_parts();
        let upstream_lines = body.take_passthrough_header_lines();
        let framing =
            response_head::framing(method, parts.status, body.size_hint().exact(), http11);
        // A draining router closes keep-alive connections after their answer.
        let keep_alive = keep_alive
            && framing != Framing::UntilClose
            && !self.shared.stopping.load(Ordering::Relaxed);
        response_head::encode(
            &mut self.out,
            parts.status,
            &parts.headers,
            response_head::Lines {
                request_id: added.request_id.as_bytes(),
                endpoint: added.endpoint.as_ref().map_or(&[], |e| e.as_bytes()),
                upstream: &upstream_lines,
            },
            framing,
            method,
            !keep_alive,
        );
        drop((parts, upstream_lines));
        let complete = match body {
            RouterBody::Full(data) => {
                if let (Some(data), Framing::Length(_)) = (data, framing) {
                    self.out.extend_from_slice(&data);
                }
                self.flush().await
            }
            streaming => self.stream(streaming, framing).await,
        };
        if self.out.capacity() > KEEP_BUFFER {
            self.out = Vec::with_capacity(1024);
        }
        complete && keep_alive
    }

    /// Streams a body frame by frame, gathering the frames that are ready into one write.
    async fn stream(&mut self, mut body: RouterBody, framing: Framing) -> bool {
        let mut sent: u64 = 0;
        loop {
            let next = match poll_fn(|cx| Poll::Ready(poll_next(&mut body, cx))).await {
                Some(next) => next,
                None => {
                    // Nothing more is ready: the batch goes to the socket without waiting for the
                    // send. Unless that had to wait for an earlier send, nothing ran since the body
                    // was polled, so its waker is registered and it need not be polled again.
                    let mut fresh = true;
                    if !self.out.is_empty() {
                        match self.writer.send(&mut self.out).await {
                            Ok(yielded) => fresh = !yielded,
                            Err(_) => return false,
                        }
                    }
                    self.wait_next(&mut body, fresh).await
                }
            };
            match next {
                Next::Data(data) => {
                    sent += data.len() as u64;
                    match framing {
                        Framing::Chunked => response_head::chunk(&mut self.out, &data),
                        Framing::Length(_) | Framing::UntilClose => {
                            self.out.extend_from_slice(&data)
                        }
                        Framing::Empty => {}
                    }
                    if self.out.len() >= WRITE_BATCH
                        && self.writer.send(&mut self.out).await.is_err()
                    {
                        return false;
                    }
                }
                Next::End => {
                    if framing == Framing::Chunked {
                        self.out.extend_from_slice(LAST_CHUNK);
                    }
                    let whole = match framing {
                        Framing::Length(n) => sent == n,
                        _ => true,
                    };
                    return self.flush().await && whole;
                }
                // No last chunk: the client sees the body cut short, as it was.
                Next::Failed => {
                    self.flush().await;
                    return false;
                }
                Next::ClientGone => return false,
            }
        }
    }

    /// Waits for the next frame while watching for the client hanging up. `polled`: the body was
    /// just polled by this task and was not ready, so the first look can be skipped.
    async fn wait_next(&mut self, body: &mut RouterBody, polled: bool) -> Next {
        let mut skip = polled;
        let frame = poll_fn(|cx| {
            if std::mem::take(&mut skip) {
                return Poll::Pending;
            }
            match poll_next(body, cx) {
                Some(next) => Poll::Ready(next),
                None => Poll::Pending,
            }
        });
        watching(&mut self.reader, &mut self.buf, frame)
            .await
            .unwrap_or(Next::ClientGone)
    }

    /// Writes what is gathered; false when the client is gone.
    async fn flush(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let out = std::mem::take(&mut self.out);
        let (result, mut out) = self.writer.write_all(out).await;
        out.clear();
        self.out = out;
        result.is_ok()
    }

    /// Ends our side, then reads and drops what the client still sends, for a bounded time.
    async fn linger(&mut self) {
        if self.writer.shutdown().await.is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER;
        let mut drained = 0;
        while drained < LINGER_BYTES {
            self.buf.clear();
            match self.fill_by(deadline).await {
                Some(Ok(n)) if n > 0 => drained += n,
                _ => return,
            }
        }
    }

    /// Answers a head refused at the HTTP level; the connection closes after it.
    async fn refuse(&mut self, e: HeadError) {
        let body = serde_json::json!({ "error": e.message }).to_string();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        // The head could not be read, so neither could the client's id: the answer gets a new one.
        let id = request_id(None);
        let lines = response_head::Lines {
            request_id: id.as_bytes(),
            ..Default::default()
        };
        response_head::encode(
            &mut self.out,
            e.status,
            &headers,
            lines,
            Framing::Length(body.len() as u64),
            &Method::GET,
            true,
        );
        self.out.extend_from_slice(body.as_bytes());
        self.flush().await;
    }
}

/// Polls the body once: `None` when nothing is ready yet. A panic while producing the body (a
/// translator, a relay) ends it as a failure: the client sees the body cut short, the connection
/// closes, and dropping the body releases its slot.
fn poll_next(body: &mut RouterBody, cx: &mut std::task::Context<'_>) -> Option<Next> {
    loop {
        let polled =
            std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *body).poll_frame(cx)));
        return match polled {
            Err(_) => {
                tracing::error!("a response body panicked: ending it and closing the connection");
                Some(Next::Failed)
            }
            Ok(Poll::Pending) => None,
            Ok(Poll::Ready(None)) => Some(Next::End),
            Ok(Poll::Ready(Some(Err(_)))) => Some(Next::Failed),
            Ok(Poll::Ready(Some(Ok(frame)))) => match frame.into_data() {
                Ok(data) if data.is_empty() => continue,
                Ok(data) => Some(Next::Data(data)),
                // Trailers are not forwarded.
                Err(_) => continue,
            },
        };
    }
}

/// Runs `fut` while a read stays in flight on the client socket; `None` when the client hung up
/// (or the read failed) first. Bytes that arrive meanwhile (a pipelined request, a stray CRLF) are
/// kept for the next request and the watch goes on: a single byte must not blind it. Past
/// `WATCH_AHEAD` buffered bytes the client is not read further until `fut` is done.
async fn watching<F: Future>(reader: &mut Reader, buf: &mut BytesMut, fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        while reader.has_buf() || buf.len() < WATCH_AHEAD {
            match reader.poll_fill_keeping(buf, cx) {
                Poll::Pending => break,
                Poll::Ready(Ok(n)) if n > 0 => continue,
                Poll::Ready(_) => return Poll::Ready(None),
            }
        }
        Poll::Pending
    })
    .await
}
