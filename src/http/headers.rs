//! Header rules of a transparent proxy (SPEC §2.5): end-to-end headers pass, hop-by-hop ones do not,
//! `Host` and the client's `Authorization` are replaced.

use http::header::HeaderName;
use http::Method;

/// Which endpoint served an answer.
pub static X_ROUTER_ENDPOINT: HeaderName = HeaderName::from_static("x-router-endpoint");

/// Hop-by-hop names (RFC 9110 §7.6.1, plus the legacy `keep-alive` and `proxy-connection`).
const HOP_BY_HOP: [&[u8]; 9] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
];

/// Header names listed in `Connection:` are hop-by-hop too. The usual `keep-alive` and `close` are
/// left out: they are dropped anyway, and most clients send one (so most requests list nothing).
fn connection_listed<'a>(client: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> Vec<&'a [u8]> {
    client
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"connection"))
        .flat_map(|(_, value)| value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|token| is_extra_connection_token(token))
        .collect()
}

/// A `Connection` token that names a header to drop beyond the hop-by-hop ones.
pub fn is_extra_connection_token(token: &[u8]) -> bool {
    !token.is_empty() && !token.eq_ignore_ascii_case(b"close") && !is_hop_by_hop_name(token)
}

/// Whether the client's header `name` goes upstream: not hop-by-hop, not listed in `Connection`,
/// and not one the router writes itself (`Host`, `Authorization`, `Content-Length`).
fn is_forwarded(name: &[u8], listed: &[&[u8]]) -> bool {
    !(is_hop_by_hop_name(name)
        || name.eq_ignore_ascii_case(b"host")
        || name.eq_ignore_ascii_case(b"authorization")
        || name.eq_ignore_ascii_case(b"content-length")
        || listed.iter().any(|l| l.eq_ignore_ascii_case(name)))
}

/// Appends the request head to send upstream to `out`: the client's end-to-end headers (`client`
/// gives them as `(name, value)` pairs, each time it is called; they are written as they came), our
/// Host, the endpoint's key.
pub fn upstream_request_head<'a, I>(
    out: &mut Vec<u8>,
    method: &Method,
    path: &str,
    client: impl Fn() -> I,
    authority: &str,
    api_key: Option<&str>,
    body_len: usize,
) where
    I: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    let listed = connection_listed(client());
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
    for (name, value) in client() {
        if !is_forwarded(name, &listed) {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
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
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request_headers::RequestHeaders;

    fn head_of(h: &RequestHeaders, key: Option<&str>, len: usize) -> String {
        let mut head = Vec::new();
        upstream_request_head(
            &mut head,
            &Method::POST,
            "/api/chat",
            || h.iter(),
            "backend:11434",
            key,
            len,
        );
        String::from_utf8(head).unwrap()
    }

    #[test]
    fn strips_hop_by_hop_and_replaces_auth() {
        let h = RequestHeaders::from_pairs(&[
            ("Connection", "keep-alive, X-Secret"),
            ("x-secret", "1"),
            ("Authorization", "Bearer client"),
            ("Host", "router:12434"),
            ("TraceParent", "00-abc"),
            ("Transfer-Encoding", "chunked"),
            ("Content-Length", "999"),
            ("Keep-Alive", "timeout=5"),
        ]);
        let head = head_of(&h, Some("k"), 5);
        assert_eq!(
            head,
            "POST /api/chat HTTP/1.1\r\nhost: backend:11434\r\nauthorization: Bearer k\r\n\
             TraceParent: 00-abc\r\ncontent-length: 5\r\n\r\n"
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
            std::iter::empty,
            "b",
            None,
            0,
        );
        assert_eq!(head, b"GET /api/tags HTTP/1.1\r\nhost: b\r\n\r\n");
    }
}
