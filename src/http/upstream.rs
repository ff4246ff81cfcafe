//! The upstream client: per-worker keep-alive pools of HTTP/1.1 connections, one pool per endpoint.
//! A connection goes back to its pool only after its response body was read to the end; a dropped
//! response (client gone, timeout) closes it, which cancels the request upstream at once.

use std::cell::RefCell;
use std::collections::HashMap;
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
    static POOLS: RefCell<HashMap<String, Vec<Sender>>> = RefCell::new(HashMap::new());
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
    key: String,
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
            let idle = pools.entry(self.key).or_default();
            if idle.len() < MAX_IDLE_PER_ENDPOINT {
                idle.push(self.sender);
            }
        });
    }
}

fn take_idle(key: &str) -> Option<Sender> {
    POOLS.with(|p| {
        let mut pools = p.borrow_mut();
        let idle = pools.get_mut(key)?;
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
    key: &str,
    req: Request<Full<Bytes>>,
    connect_timeout: Duration,
    first_byte: Duration,
) -> Result<(Response<Incoming>, Lease), UpstreamError> {
    // A pooled connection may have been closed by the peer since; such a failure is retried once on a
    // fresh connection, which needs a copy of the request.
    if let Some(mut sender) = take_idle(key) {
        let retry_copy = clone_request(&req);
        match monoio::time::timeout(first_byte, sender.send_request(req)).await {
            Ok(Ok(resp)) => {
                return Ok((
                    resp,
                    Lease {
                        key: key.to_string(),
                        sender,
                    },
                ))
            }
            Ok(Err(e)) if !(e.is_canceled() || e.is_closed() || e.is_incomplete_message()) => {
                return Err(UpstreamError::Http(key.to_string(), e))
            }
            Ok(Err(_)) => {
                return send_fresh(url, key, retry_copy, connect_timeout, first_byte).await
            }
            Err(_) => return Err(UpstreamError::FirstByteTimeout(key.to_string(), first_byte)),
        }
    }
    send_fresh(url, key, req, connect_timeout, first_byte).await
}

async fn send_fresh(
    url: &EndpointUrl,
    key: &str,
    req: Request<Full<Bytes>>,
    connect_timeout: Duration,
    first_byte: Duration,
) -> Result<(Response<Incoming>, Lease), UpstreamError> {
    let mut sender = connect(url, key, connect_timeout).await?;
    match monoio::time::timeout(first_byte, sender.send_request(req)).await {
        Ok(Ok(resp)) => Ok((
            resp,
            Lease {
                key: key.to_string(),
                sender,
            },
        )),
        Ok(Err(e)) => Err(UpstreamError::Http(key.to_string(), e)),
        Err(_) => Err(UpstreamError::FirstByteTimeout(key.to_string(), first_byte)),
    }
}

fn clone_request(req: &Request<Full<Bytes>>) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(req.method().clone())
        .uri(req.uri().clone())
        .version(req.version());
    if let Some(h) = b.headers_mut() {
        *h = req.headers().clone();
    }
    // Full<Bytes> is cheap to clone (refcounted bytes).
    b.body(req.body().clone())
        .expect("parts of a valid request")
}
