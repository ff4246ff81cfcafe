//! Small helpers shared by the handlers: bounded body reads, JSON responses, the per-request context.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::errors::ApiError;
use crate::http::body::RouterBody;
use crate::state::{ActiveRequest, Shared};

/// What a handler knows about the request it serves.
pub struct Ctx {
    pub shared: Arc<Shared>,
    pub request_id: HeaderValue,
    pub started: Instant,
    pub active: Option<ActiveRequest>,
}

/// Reads the whole request body, refusing more than `limit` bytes (413) or a client slower than `timeout` (408).
pub async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let limited = http_body_util::Limited::new(body, limit);
    match monoio::time::timeout(timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large(limit))
        }
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "could not read the request body: {e}"
        ))),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("request body not received within {timeout:?}"),
        )),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body exceeds the limit of {limit} bytes"),
    )
}

/// A JSON response with the given status.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<RouterBody> {
    let mut resp = Response::new(RouterBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A JSON response from a serde value.
pub fn json_value(status: StatusCode, v: &serde_json::Value) -> Response<RouterBody> {
    json(status, serde_json::to_vec(v).unwrap_or_default())
}

/// The client's `X-Request-Id` when it is sane, else a new random one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get("x-request-id")
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&format!("{:016x}", fastrand::u64(..)))
                .expect("hex is a valid header")
        })
}

/// The query string without the router's `api_key`, which must never go upstream.
pub fn forwardable_query(query: Option<&str>) -> Option<String> {
    let q = query?;
    let kept: Vec<&str> = q
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("api_key=") && *p != "api_key")
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_api_key_from_query() {
        assert_eq!(forwardable_query(Some("api_key=s3cret")), None);
        assert_eq!(
            forwardable_query(Some("a=1&api_key=x&b=2")),
            Some("a=1&b=2".into())
        );
        assert_eq!(forwardable_query(None), None);
    }
}
