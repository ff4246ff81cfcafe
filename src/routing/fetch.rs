//! Requests to one endpoint built from parts: used by the proxy, the fan-out routes and discovery.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Response};
use http_body::Body;
use http_body_util::BodyExt;

use super::endpoint::EndpointState;
use crate::http::client::{self, Outgoing, Target, UpstreamBody, UpstreamError};
use crate::http::headers::upstream_request_head;
use crate::http::lazy_timer::LazyTimer;
use crate::http::request_headers::RequestHeaders;

/// How long a request may wait: to connect, and for its response head, on the calling task's timer.
pub struct Waits<'a> {
    pub connect: Duration,
    pub first_byte: Duration,
    pub timer: &'a mut LazyTimer,
}

/// The client's headers to pass on (their end-to-end ones).
#[derive(Clone, Copy)]
pub enum Forward<'a> {
    Nothing,
    /// As received: the proxy path.
    Raw(&'a RequestHeaders),
    /// As a map: routes that edit them first.
    Map(&'a HeaderMap),
}

impl Forward<'_> {
    fn len(self) -> usize {
        match self {
            Forward::Nothing => 0,
            Forward::Raw(h) => h.len(),
            Forward::Map(h) => h.len(),
        }
    }
}

/// Sends `method path` with `body` to `ep`, passing the client's end-to-end headers.
pub async fn request(
    ep: &EndpointState,
    method: Method,
    path: &str,
    body: Bytes,
    client_headers: Forward<'_>,
    waits: Waits<'_>,
) -> Result<Response<UpstreamBody>, UpstreamError> {
    // The path goes on the wire as is: it must be one request-target token.
    if path.is_empty() || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(UpstreamError::NotSent(
            ep.cfg.url.clone(),
            format!("invalid request path {path:?}"),
        ));
    }
    // Small bodies go out in the same write as the head.
    let inline_body = body.len() <= client::COALESCE_BODY;
    let mut wire = Vec::with_capacity(
        256 + client_headers.len() * 64 + if inline_body { body.len() } else { 0 },
    );
    let (authority, key) = (&ep.authority, ep.cfg.api_key.as_deref());
    match client_headers {
        Forward::Nothing => {
            let none = std::iter::empty;
            upstream_request_head(&mut wire, &method, path, none, authority, key, body.len())
        }
        Forward::Raw(h) => {
            let pairs = || h.iter();
            upstream_request_head(&mut wire, &method, path, pairs, authority, key, body.len())
        }
        Forward::Map(h) => {
            let pairs = || h.iter().map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
            upstream_request_head(&mut wire, &method, path, pairs, authority, key, body.len())
        }
    }
    let rest = if inline_body {
        wire.extend_from_slice(&body);
        Bytes::new()
    } else {
        body
    };
    let target = Target {
        url: &ep.url,
        pool: ep.id,
        name: &ep.cfg.url,
    };
    let mut req = Outgoing {
        method: &method,
        wire,
        rest,
    };
    client::round_trip(
        &target,
        &mut req,
        waits.connect,
        waits.first_byte,
        waits.timer,
    )
    .await
}

/// Sends a request and reads the whole answer (at most `MAX_COLLECT_BYTES`) within `timeout`:
/// `(status, body)`.
pub async fn request_whole(
    ep: &EndpointState,
    method: Method,
    path: &str,
    body: Bytes,
    client_headers: Option<&HeaderMap>,
    timeout: Duration,
) -> Result<(http::StatusCode, Bytes), String> {
    let work = async {
        let waits = Waits {
            connect: timeout,
            first_byte: timeout,
            timer: &mut LazyTimer::new(Instant::now()),
        };
        let forward = client_headers.map_or(Forward::Nothing, Forward::Map);
        let resp = request(ep, method, path, body, forward, waits)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = collect_capped(resp.into_body(), MAX_COLLECT_BYTES)
            .await
            .map_err(|e| format!("{}: {e}", ep.cfg.url))?;
        Ok((status, bytes))
    };
    match monoio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(format!("{} did not answer within {timeout:?}", ep.cfg.url)),
    }
}

/// Largest answer `request_whole` reads into memory. Its callers (discovery, listings, `show`,
/// management routes) get JSON documents far smaller than this; a larger answer is an error, so a
/// faulty or hostile backend cannot make the router buffer without bound.
pub const MAX_COLLECT_BYTES: usize = 32 * 1024 * 1024;

/// Reads a whole body of at most `cap` bytes; refused before reading when its declared length is larger.
async fn collect_capped<B>(body: B, cap: usize) -> Result<Bytes, String>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    let too_large = || format!("answer larger than {cap} bytes");
    if body.size_hint().lower() > cap as u64 {
        return Err(too_large());
    }
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|e| e.to_string())?.into_data() else {
            continue; // trailers
        };
        if out.len() + data.len() > cap {
            return Err(too_large());
        }
        out.extend_from_slice(&data);
    }
    Ok(out.freeze())
}

/// GETs `path` and parses the JSON answer; any failure is a message naming the endpoint.
pub async fn get_json(
    ep: &EndpointState,
    path: &str,
    timeout: Duration,
) -> Result<serde_json::Value, String> {
    let (status, body) = request_whole(ep, Method::GET, path, Bytes::new(), None, timeout).await?;
    if !status.is_success() {
        let snippet = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
        return Err(format!(
            "{} answered {status} to GET {path}: {snippet}",
            ep.cfg.url
        ));
    }
    serde_json::from_slice(&body)
        .map_err(|e| format!("{} sent invalid JSON for GET {path}: {e}", ep.cfg.url))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body::Frame;
    use http_body_util::{Full, StreamBody};

    use super::*;

    /// A body of `frames` pieces of `size` bytes, with no size hint (like a chunked answer).
    fn unsized_body(
        frames: usize,
        size: usize,
    ) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, Infallible>>> {
        let frames = (0..frames).map(move |_| Ok(Frame::data(Bytes::from(vec![b'x'; size]))));
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[test]
    fn collect_is_capped() {
        crate::rt::block_on(crate::config::IoDriver::Auto, async {
            let at_cap = collect_capped(Full::new(Bytes::from(vec![b'x'; 10])), 10).await;
            assert_eq!(at_cap.unwrap().len(), 10);
            let known_too_long = collect_capped(Full::new(Bytes::from(vec![b'x'; 11])), 10).await;
            assert!(known_too_long.unwrap_err().contains("larger than 10 bytes"));
            assert_eq!(
                collect_capped(unsized_body(5, 2), 10).await.unwrap().len(),
                10
            );
            let too_long = collect_capped(unsized_body(6, 2), 10).await;
            assert!(too_long.unwrap_err().contains("larger than 10 bytes"));
        });
    }
}
