//! The upstream client: per-worker keep-alive pools of HTTP/1.1 connections, one pool per endpoint.
//! A connection goes back to its pool only after its response body was read to the end; a dropped
//! response (client gone, timeout) closes it, which cancels the request upstream at once.

use std::cell::RefCell;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use crate::config::url::EndpointUrl;

/// Idle connections kept per endpoint per worker.
const MAX_IDLE_PER_ENDPOINT: usize = 1024;

type Sender = SendRequest<Full<Bytes>>;

thread_local! {
    /// Idle connections by pool index (the endpoint's index; discovery uses its own thread's pools).
    static POOLS: RefCell<Vec<Vec<Sender>>> = const { RefCell::new(Vec::new()) };
}

/// Why an upstream request failed before a response head arrived.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect to {0} failed: {1}")]
    Connect(String, std::io::Error),
    #[error("connect to {0} timed out")]
    ConnectTimeout(String),
    #[error("{0} sent no response head within {1:?}")]
    FirstByteTimeout(String, Duration),
    #[error("request to {0} failed: {1}")]
    Http(String, hyper::Error),
}

impl UpstreamError {
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            UpstreamError::ConnectTimeout(_) | UpstreamError::FirstByteTimeout(..)
        )
    }
}

/// A connection lent out for one request; `finish` returns it to the pool.
pub struct Lease {
    pool: usize,
    sender: Sender,
}

impl Lease {
    /// The response was read to the end: the connection can carry the next request.
    pub fn finish(self) {
        if self.sender.is_closed() {
            return;
        }
        POOLS.with(|p| {
            let mut pools = p.borrow_mut();
            if pools.len() <= self.pool {
                pools.resize_with(self.pool + 1, Vec::new);
            }
            let idle = &mut pools[self.pool];
            if idle.len() < MAX_IDLE_PER_ENDPOINT {
                idle.push(self.sender);
            }
        });
    }
}

fn take_idle(pool: usize) -> Option<Sender> {
    POOLS.with(|p| {
        let mut pools = p.borrow_mut();
        let idle = pools.get_mut(pool)?;
        while let Some(s) = idle.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    })
}

async fn connect(url: &EndpointUrl, key: &str, timeout: Duration) -> Result<Sender, UpstreamError> {
    let io = match monoio::time::timeout(timeout, super::io::connect(&url.host, url.port, url.tls))
        .await
    {
        Ok(Ok(io)) => io,
        Ok(Err(e)) => return Err(UpstreamError::Connect(key.to_string(), e)),
        Err(_) => return Err(UpstreamError::ConnectTimeout(key.to_string())),
    };
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(16 << 20)
        .handshake(io)
        .await
        .map_err(|e| UpstreamError::Http(key.to_string(), e))?;
    monoio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends `req` to the endpoint at `url` (pool key `key`), waiting at most `first_byte` for the head.
pub async fn send(
    url: &EndpointUrl,
    pool: usize,
    name: &str,
    build: &dyn Fn() -> Request<Full<Bytes>>,
    connect_timeout: Duration,
    first_byte: Duration,
) -> Result<(Response<Incoming>, Lease), UpstreamError> {
    // A pooled connection may have been closed by the peer since; such a failure is retried once on a
    // fresh connection (the request is built again: no copy is made on the common path).
    if let Some(mut sender) = take_idle(pool) {
        match monoio::time::timeout(first_byte, sender.send_request(build())).await {
            Ok(Ok(resp)) => return Ok((resp, Lease { pool, sender })),
            Ok(Err(e)) if !(e.is_canceled() || e.is_closed() || e.is_incomplete_message()) => {
                return Err(UpstreamError::Http(name.to_string(), e))
            }
            Ok(Err(_)) => {}
            Err(_) => {
                return Err(UpstreamError::FirstByteTimeout(
                    name.to_string(),
                    first_byte,
                ))
            }
        }
    }
    let mut sender = connect(url, name, connect_timeout).await?;
    match monoio::time::timeout(first_byte, sender.send_request(build())).await {
        Ok(Ok(resp)) => Ok((resp, Lease { pool, sender })),
        Ok(Err(e)) => Err(UpstreamError::Http(name.to_string(), e)),
        Err(_) => Err(UpstreamError::FirstByteTimeout(
            name.to_string(),
            first_byte,
        )),
    }
}
