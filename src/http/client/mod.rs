//! The upstream HTTP/1.1 client. A request is written and its answer read in the calling task, on a
//! connection taken from the worker's keep-alive pool for the endpoint: no connection task, no
//! channel, no copy of the request's headers into an intermediate map.

mod body;
pub mod head;
mod pool;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Response};

pub use body::UpstreamBody;
pub use pool::sweep_idle_connections;
use pool::Conn;

use crate::config::url::EndpointUrl;
use crate::http::lazy_timer::LazyTimer;

/// Request bodies up to this size are sent in the same write as the head.
pub const COALESCE_BODY: usize = 64 * 1024;

/// Why an upstream request failed before a response head arrived.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect to {0} failed: {1}")]
    Connect(String, std::io::Error),
    #[error("connect to {0} timed out")]
    ConnectTimeout(String),
    #[error("{0} sent no response head within {1:?}")]
    FirstByteTimeout(String, Duration),
    /// The request could not be written whole: the backend cannot have acted on it.
    #[error("sending the request to {0} failed: {1}")]
    NotSent(String, String),
    /// The connection ended (closed or reset) after the request was written and before any byte
    /// of an answer: the backend dropped it, or died with it.
    #[error("{0} closed the connection without answering: {1}")]
    Closed(String, String),
    /// An answer that is not HTTP, or one cut off inside its head.
    #[error("request to {0} failed: {1}")]
    Http(String, String),
}

/// One request, ready to write: the encoded head (with the body when it is small), then the rest.
pub struct Outgoing<'a> {
    pub method: &'a Method,
    pub wire: Vec<u8>,
    pub rest: Bytes,
}

/// Where a request goes: the endpoint's address, its pool, and its name for messages.
pub struct Target<'a> {
    pub url: &'a EndpointUrl,
    pub pool: usize,
    pub name: &'a str,
}

/// How a single attempt on one connection failed.
enum Failure {
    /// Nothing came back on a connection that had carried requests before: the peer may have closed
    /// it while idle, so one fresh connection is tried.
    Stale,
    /// No response head by the deadline.
    TimedOut,
    Fatal(UpstreamError),
}

/// Sends the request, waiting at most `first_byte` for the response head. `timer` is the calling
/// task's: a client connection keeps one across its requests, so a request only moves its deadline
/// (no timer registered and removed per request).
pub async fn round_trip(
    target: &Target<'_>,
    req: &mut Outgoing<'_>,
    connect_timeout: Duration,
    first_byte: Duration,
    timer: &mut LazyTimer,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    timer.set(Instant::now() + first_byte);
    let mut idle = pool::take_idle(target.pool);
    loop {
        let conn = match idle.take() {
            Some(conn) => conn,
            // Boxed: connecting is rare with pooling, and its future would otherwise double the
            // size of every request's future (which is moved, byte by byte, at each await level).
            None => Box::pin(connect(target, connect_timeout)).await?,
        };
        match exchange(conn, req, target.name, timer).await {
            Ok(resp) => return Ok(resp),
            Err(Failure::Fatal(e)) => return Err(e),
            // Only a reused connection is stale: the next turn connects afresh.
            Err(Failure::Stale) => {}
            Err(Failure::TimedOut) => {
                return Err(UpstreamError::FirstByteTimeout(
                    target.name.to_string(),
                    first_byte,
                ))
            }
        }
    }
}

async fn connect(target: &Target<'_>, timeout: Duration) -> Result<Conn, UpstreamError> {
    let url = target.url;
    match monoio::time::timeout(
        timeout,
        crate::http::io::connect(&url.host, url.port, url.tls),
    )
    .await
    {
        Ok(Ok(io)) => Ok(Conn::new(io, target.pool)),
        Ok(Err(e)) => Err(UpstreamError::Connect(target.name.to_string(), e)),
        Err(_) => Err(UpstreamError::ConnectTimeout(target.name.to_string())),
    }
}

/// Writes the request on `conn` and reads the response head.
async fn exchange(
    mut conn: Conn,
    req: &mut Outgoing<'_>,
    name: &str,
    deadline: &mut LazyTimer,
) -> Result<Response<UpstreamBody>, Failure> {
    // A reused connection that fails before any answer byte was most likely ended by the backend
    // while idle: one fresh connection is tried (see `proxy::policy` for why that is safe).
    let reused = conn.reused;
    let fail = |e: UpstreamError| {
        if reused {
            Failure::Stale
        } else {
            Failure::Fatal(e)
        }
    };
    let not_sent = |msg: String| fail(UpstreamError::NotSent(name.to_string(), msg));
    let closed = |msg: String| fail(UpstreamError::Closed(name.to_string(), msg));
    let Some((written, wire)) = conn
        .write_all_by(std::mem::take(&mut req.wire), deadline)
        .await
    else {
        return Err(Failure::TimedOut);
    };
    req.wire = wire;
    let written = match written {
        Ok(()) if !req.rest.is_empty() => {
            match conn.write_all_by(req.rest.clone(), deadline).await {
                Some((r, _)) => r,
                None => return Err(Failure::TimedOut),
            }
        }
        other => other,
    };
    written.map_err(|e| not_sent(e.to_string()))?;
    loop {
        match head::parse(&mut conn.buf, req.method) {
            Ok(Some(h)) => {
                let body = UpstreamBody::new(conn, h.framing, h.keep_alive, h.lines);
                let mut resp = Response::new(body);
                *resp.status_mut() = h.status;
                return Ok(resp);
            }
            Ok(None) => {}
            Err(e) => return Err(Failure::Fatal(UpstreamError::Http(name.to_string(), e))),
        }
        let got_bytes = !conn.buf.is_empty();
        let Some(read) = conn.fill_by(deadline).await else {
            return Err(Failure::TimedOut);
        };
        match read {
            Ok(0) if got_bytes => {
                return Err(Failure::Fatal(UpstreamError::Http(
                    name.to_string(),
                    "connection closed inside the response head".into(),
                )))
            }
            Ok(0) => return Err(closed("end of stream before a response".into())),
            Ok(_) => {}
            Err(e) if got_bytes => {
                return Err(Failure::Fatal(UpstreamError::Http(
                    name.to_string(),
                    e.to_string(),
                )))
            }
            Err(e) => return Err(closed(e.to_string())),
        }
    }
}
