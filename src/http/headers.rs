//! Header rules of a transparent proxy (SPEC §2.5): end-to-end headers pass, hop-by-hop ones do not,
//! `Host` and the client's `Authorization` are replaced.

use http::header::{self, HeaderMap, HeaderName};
use http::Method;

/// The request id the router reads from clients and sets on every answer.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Which endpoint served an answer.
pub static X_ROUTER_ENDPOINT: HeaderName = HeaderName::from_static("x-router-endpoint");

/// Names, not strings: comparing and removing a known `HeaderName` needs no parsing.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn is_hop_by_hop(name: &HeaderName, connection_listed: &[String]) -> bool {
    HOP_BY_HOP.contains(name) || connection_listed.iter().any(|c| c == name.as_str())
}

/// Header names listed in `Connection:` are hop-by-hop too. The usual `keep-alive` and `close` are
/// left out before anything is allocated: they are dropped anyway, and most clients send one.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| is_extra_connection_token(s.as_bytes()))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// A `Connection` token that names a header to drop beyond the hop-by-hop ones.
pub fn is_extra_connection_token(token: &[u8]) -> bool {
    !token.is_empty() && !token.eq_ignore_ascii_case(b"close") && !is_hop_by_hop_name(token)
}

/// Appends the request head to send upstream to `out`: the client's end-to-end headers, our Host,
/// the endpoint's key, written straight into the bytes that go on the wire.
pub fn upstream_request_head(
    out: &mut Vec<u8>,
    method: &Method,
    path: &str,
    client: &HeaderMap,
    authority: &str,
    api_key: Option<&str>,
    body_len: usize,
) {
    let listed = connection_listed(client);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(authority.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(key) = api_key {
        out.extend_from_slice(b"authorization: Bearer ");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in client {
        if is_hop_by_hop(name, &listed)
            || name == header::HOST
            || name == header::AUTHORIZATION
            || name == header::CONTENT_LENGTH
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if body_len > 0 || matches!(*method, Method::POST | Method::PUT | Method::PATCH) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(itoa::Buffer::new().format(body_len).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Whether the peer wants the connection kept after this message, from its `Connection` values:
/// `default` is what its HTTP version implies (1.1: yes, 1.0: no), and `close` or `keep-alive`
/// overrides it.
pub fn connection_keep_alive<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    default: bool,
) -> bool {
    let mut keep = default;
    for v in values {
        for token in std::str::from_utf8(v).unwrap_or("").split(',') {
            let token = token.trim();
            if token.eq_ignore_ascii_case("close") {
                return false;
            }
            if token.eq_ignore_ascii_case("keep-alive") {
                keep = true;
            }
        }
    }
    keep
}

/// Whether a raw header name is hop-by-hop (ASCII case-insensitive).
pub fn is_hop_by_hop_name(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| h.as_str().as_bytes().eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(h: &HeaderMap, key: Option<&str>, len: usize) -> String {
        let mut head = Vec::new();
        upstream_request_head(
            &mut head,
            &Method::POST,
            "/api/chat",
            h,
            "backend:11434",
            key,
            len,
        );
        String::from_utf8(head).unwrap()
    }

    #[test]
    fn strips_hop_by_hop_and_replaces_auth() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-secret".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("authorization", "Bearer client".parse().unwrap());
        h.insert("host", "router:12434".parse().unwrap());
        h.insert("traceparent", "00-abc".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("content-length", "999".parse().unwrap());
        let head = head_of(&h, Some("k"), 5);
        assert_eq!(
            head,
            "POST /api/chat HTTP/1.1\r\nhost: backend:11434\r\nauthorization: Bearer k\r\n\
             traceparent: 00-abc\r\ncontent-length: 5\r\n\r\n"
        );
        let head = head_of(&h, None, 0);
        assert!(
            !head.contains("authorization") && !head.contains("client"),
            "the client's key never goes upstream: {head}"
        );
        assert!(
            head.contains("content-length: 0\r\n"),
            "POST always says its length"
        );
    }

    #[test]
    fn only_unusual_connection_tokens_name_extra_headers() {
        for usual in ["close", "Keep-Alive", "keep-alive", "TE", "upgrade", ""] {
            assert!(!is_extra_connection_token(usual.as_bytes()), "{usual}");
        }
        assert!(is_extra_connection_token(b"x-secret"));
    }

    #[test]
    fn bodiless_requests_carry_no_length() {
        let mut head = Vec::new();
        upstream_request_head(
            &mut head,
            &Method::GET,
            "/api/tags",
            &HeaderMap::new(),
            "b",
            None,
            0,
        );
        assert_eq!(head, b"GET /api/tags HTTP/1.1\r\nhost: b\r\n\r\n");
    }
}
