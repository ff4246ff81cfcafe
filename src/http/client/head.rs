//! Parsing an upstream response head, and how its body is framed (RFC 9112 §6.3).

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use crate::http::headers::connection_keep_alive;

/// Most headers accepted in one upstream response.
const MAX_HEADERS: usize = 128;
/// Largest upstream response head accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How the body after a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD request, 204, 304, or `content-length: 0`).
    Empty,
    Length(u64),
    Chunked,
    /// Everything until the peer closes (the connection cannot be reused).
    UntilClose,
}

#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Parses a complete head from the front of `buf` (consuming it); `Ok(None)` when more bytes are needed.
/// Interim (1xx) heads are consumed and skipped.
pub fn parse(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, String> {
    loop {
        // Left uninitialised: httparse writes only the slots it uses.
        let mut slots = [const { MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut resp, buf, &mut slots)
        {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                return Err(format!("response head larger than {MAX_HEAD_BYTES} bytes"))
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(format!("invalid response head: {e}")),
        };
        let code = resp.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| format!("invalid status code {code}"))?;
        if status.is_informational() {
            if code == 101 {
                return Err("upstream switched protocols".into());
            }
            buf.advance(len);
            continue;
        }
        let http11 = resp.version == Some(1);
        // Values are slices of one shared copy of the head: no allocation per header. Room is left
        // for the headers the router adds to the answer.
        let base = buf.as_ptr() as usize;
        let mut spans = [MaybeUninit::<(usize, usize, usize, usize)>::uninit(); MAX_HEADERS];
        let count = resp.headers.len();
        for (span, h) in spans.iter_mut().zip(resp.headers.iter()) {
            let name = h.name.as_ptr() as usize - base;
            let value = h.value.as_ptr() as usize - base;
            span.write((name, name + h.name.len(), value, value + h.value.len()));
        }
        let head = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(count + 4);
        let mut has_connection = false;
        for span in &spans[..count] {
            // SAFETY: the loop above wrote the first `count` spans.
            let (ns, ne, vs, ve) = unsafe { span.assume_init() };
            let name = HeaderName::from_bytes(&head[ns..ne]).map_err(|_| {
                format!(
                    "invalid header name {:?}",
                    String::from_utf8_lossy(&head[ns..ne])
                )
            })?;
            let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
                .map_err(|_| format!("invalid value for header {name}"))?;
            has_connection |= name == header::CONNECTION;
            headers.append(name, value);
        }
        let framing = framing(status, method, &headers)?;
        let keep_alive = framing != Framing::UntilClose
            && if has_connection {
                connection_keep_alive(&headers, http11)
            } else {
                http11
            };
        return Ok(Some(Head {
            status,
            headers,
            framing,
            keep_alive,
        }));
    }
}

fn framing(status: StatusCode, method: &Method, headers: &HeaderMap) -> Result<Framing, String> {
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if let Some(te) = headers.get(header::TRANSFER_ENCODING) {
        let chunked_last = te
            .to_str()
            .ok()
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        return Ok(if chunked_last {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let Some(first) = lengths.next() else {
        return Ok(Framing::UntilClose);
    };
    let parse = |v: &HeaderValue| {
        v.to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("invalid content-length {v:?}"))
    };
    let n = parse(first)?;
    for other in lengths {
        if parse(other)? != n {
            return Err("conflicting content-length headers".into());
        }
    }
    Ok(if n == 0 {
        Framing::Empty
    } else {
        Framing::Length(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str, method: Method) -> Result<Option<Head>, String> {
        parse(&mut BytesMut::from(s), &method)
    }

    #[test]
    fn framing_follows_the_rules() {
        let h = parse_str("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", Method::POST)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(5), true));
        let h = parse_str(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\ncontent-length: 5\r\n\r\n",
            Method::POST,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        let h = parse_str("HTTP/1.1 200 OK\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = parse_str("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", Method::HEAD)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        let h = parse_str("HTTP/1.1 204 No Content\r\n\r\n", Method::DELETE)
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
    }

    #[test]
    fn keep_alive_by_version_and_connection() {
        let close = "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        assert!(!parse_str(close, Method::GET).unwrap().unwrap().keep_alive);
        let old = "HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert!(!parse_str(old, Method::GET).unwrap().unwrap().keep_alive);
        let old_keep = "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 0\r\n\r\n";
        assert!(
            parse_str(old_keep, Method::GET)
                .unwrap()
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn skips_interim_heads_and_keeps_the_body() {
        let mut buf = BytesMut::from(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi",
        );
        let h = parse(&mut buf, &Method::POST).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(&buf[..], b"hi");
    }

    #[test]
    fn partial_and_invalid_heads() {
        assert!(parse_str("HTTP/1.1 200 OK\r\ncontent-le", Method::GET)
            .unwrap()
            .is_none());
        assert!(parse_str("garbage\r\n\r\n", Method::GET).is_err());
        assert!(parse_str(
            "HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n",
            Method::GET
        )
        .is_err());
        assert!(parse_str("HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", Method::GET).is_err());
        let huge = format!("HTTP/1.1 200 OK\r\nx: {}", "a".repeat(MAX_HEAD_BYTES + 1));
        assert!(parse_str(&huge, Method::GET).is_err());
    }
}
