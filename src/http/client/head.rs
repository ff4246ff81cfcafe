//! Parsing an upstream response head, and how its body is framed (RFC 9112 §6.3).

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
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
    /// The header lines as received (`name: value`, each ending in a line break), sliced from the
    /// head without copying: a same-API answer writes them through, filtered, without a header map.
    pub lines: Bytes,
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
        let framing = framing(status, method, resp.headers)?;
        let keep_alive = framing != Framing::UntilClose
            && connection_keep_alive(values(resp.headers, "connection"), http11);
        // The header block: after the status line, before the blank line that ends the head.
        let first = buf[..len]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(len, |i| i + 1);
        let block_end = if first >= len {
            len
        } else {
            len - if buf[..len].ends_with(b"\r\n\r\n") {
                2
            } else {
                1
            }
        };
        let head = buf.split_to(len).freeze();
        return Ok(Some(Head {
            status,
            lines: head.slice(first.min(block_end)..block_end),
            framing,
            keep_alive,
        }));
    }
}

/// The values of every header called `name` (ASCII case-insensitive).
fn values<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'static str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn framing(
    status: StatusCode,
    method: &Method,
    headers: &[httparse::Header<'_>],
) -> Result<Framing, String> {
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Empty);
    }
    if let Some(te) = values(headers, "transfer-encoding").next() {
        let chunked_last = std::str::from_utf8(te)
            .ok()
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        return Ok(if chunked_last {
            Framing::Chunked
        } else {
            Framing::UntilClose
        });
    }
    let mut lengths = values(headers, "content-length");
    let Some(first) = lengths.next() else {
        return Ok(Framing::UntilClose);
    };
    let parse = |v: &[u8]| {
        std::str::from_utf8(v)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| format!("invalid content-length {:?}", String::from_utf8_lossy(v)))
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

    /// A head that must parse completely.
    fn complete(s: &str, method: Method) -> Head {
        parse_str(s, method).unwrap().unwrap()
    }

    #[test]
    fn framing_follows_the_rules() {
        let h = complete("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", Method::POST);
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(5), true));
        let h = complete(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\ncontent-length: 5\r\n\r\n",
            Method::POST,
        );
        assert_eq!(h.framing, Framing::Chunked);
        let h = complete("HTTP/1.1 200 OK\r\n\r\n", Method::GET);
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = complete("HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\n", Method::HEAD);
        assert_eq!(h.framing, Framing::Empty);
        let h = complete("HTTP/1.1 204 No Content\r\n\r\n", Method::DELETE);
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
        assert_eq!(&h.lines[..], b"content-length: 2\r\n");
        assert_eq!(&buf[..], b"hi");
    }

    #[test]
    fn header_lines_are_the_block_between_status_line_and_blank_line() {
        let h = parse_str(
            "HTTP/1.1 200 OK\r\nContent-Type: a\r\nX-B: c d\r\ncontent-length: 0\r\n\r\n",
            Method::GET,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            &h.lines[..],
            b"Content-Type: a\r\nX-B: c d\r\ncontent-length: 0\r\n"
        );
        let h = parse_str("HTTP/1.1 204 No Content\r\n\r\n", Method::GET)
            .unwrap()
            .unwrap();
        assert!(h.lines.is_empty());
        // Bare line feeds (tolerated by the parser) keep their shape; the writer normalises them.
        let h = parse_str("HTTP/1.1 200 OK\nx: 1\ncontent-length: 0\n\n", Method::GET)
            .unwrap()
            .unwrap();
        assert_eq!(&h.lines[..], b"x: 1\ncontent-length: 0\n");
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
