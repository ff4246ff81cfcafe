//! Small helpers shared by the handlers: JSON responses, request ids, the headers the router adds.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::http::body::RouterBody;

/// The headers the router adds to an answer, written by the connection without a header map.
pub struct RouterHeaders {
    pub request_id: HeaderValue,
    pub endpoint: Option<HeaderValue>,
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

/// The client's `X-Request-Id` (`given`) when it is sane, else a new random one.
pub fn request_id(given: Option<HeaderValue>) -> HeaderValue {
    given
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .unwrap_or_else(|| {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let v = fastrand::u64(..);
            let mut id = [0u8; 16];
            for (i, c) in id.iter_mut().enumerate() {
                *c = HEX[((v >> (60 - 4 * i)) & 0xf) as usize];
            }
            HeaderValue::from_bytes(&id).expect("hex is a valid header")
        })
}
