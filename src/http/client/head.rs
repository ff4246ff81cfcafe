//! Parsing an upstream response head, and how its body is framed (RFC 9112 §6.3).

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode};

use crate::http::framing::Framing;
use crate::http::headers::connection_keep_alive;

/// Most headers accepted in one upstream response.
const MAX_HEADERS: usize = 128;
/// Largest upstream response head accepted.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

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
            // The limit holds however the head arrived, in one read or in many.
            Ok(httparse::Status::Complete(len)) if len <= MAX_HEAD_BYTES => len,
            Ok(httparse::Status::Complete(_)) => return Err(too_large()),
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => return Err(too_large()),
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
        let (framing, reusable) = framing(status, method, resp.headers, http11)?;
        let keep_alive = reusable
            && framing != Framing::UntilClose
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

fn too_large() -> String {
    format!("response head larger than {MAX_HEAD_BYTES} bytes")
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

/// The elements of a comma-separated list spread over every line of header `name`, with optional
/// whitespace trimmed; empty elements are kept (for the caller to reject or skip).
fn list_elements<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'static str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    values(headers, name).flat_map(|v| v.split(|&b| b == b',').map(<[u8]>::trim_ascii))
}

/// The body's framing (RFC 9112 §6.3), and whether the framing allows the connection to be reused.
fn framing(
    status: StatusCode,
    method: &Method,
    headers: &[httparse::Header<'_>],
    http11: bool,
) -> Result<(Framing, bool), String> {
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, true));
    }
    let has_length = values(headers, "content-length").next().is_some();
    if values(headers, "transfer-encoding").next().is_some() {
        // All lines form one list of codings; only a final `chunked` delimits the body (rule 4:
        // otherwise a response runs until close). With a content-length too (rule 3) or on
        // HTTP/1.0 (§6.1) the framing is suspect: the connection is not reused.
        let last = list_elements(headers, "transfer-encoding")
            .filter(|c| !c.is_empty())
            .last();
        let chunked = last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
        let framing = if chunked {
            Framing::Chunked
        } else {
            Framing::UntilClose
        };
        return Ok((framing, http11 && !has_length));
    }
    if !has_length {
        return Ok((Framing::UntilClose, false));
    }
    // Every element of every line must be 1*DIGIT, and all the same number.
    let mut length = None;
    for v in list_elements(headers, "content-length") {
        let n = parse_digits(v)
            .ok_or_else(|| format!("invalid content-length {:?}", String::from_utf8_lossy(v)))?;
        if length.is_some_and(|l| l != n) {
            return Err("conflicting content-length values".into());
        }
        length = Some(n);
    }
    Ok(match length {
        Some(0) | None => (Framing::Empty, true),
        Some(n) => (Framing::Length(n), true),
    })
}

/// `1*DIGIT` as a u64: no sign, no whitespace, no overflow.
fn parse_digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
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
    fn transfer_encoding_lines_are_combined() {
        // The last coding of all TE lines together decides; chunked must be final.
        let h = complete(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::GET,
        );
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, true));
        let h = complete(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            Method::GET,
        );
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let h = complete(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,\tCHUNKED ,\r\n\r\n",
            Method::GET,
        );
        assert_eq!(h.framing, Framing::Chunked);
        let h = complete(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\ncontent-length: 5\r\n\r\n",
            Method::GET,
        );
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
    }

    #[test]
    fn transfer_encoding_with_content_length_or_on_http10_is_not_reused() {
        let h = complete(
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::GET,
        );
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        let h = complete(
            "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
            Method::GET,
        );
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
    }

    #[test]
    fn content_length_is_digits_only_and_consistent() {
        for bad in [
            "+12",
            "-1",
            "1 2",
            "0x5",
            "",
            "5,",
            "5, 6",
            "99999999999999999999",
        ] {
            let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {bad}\r\n\r\n");
            assert!(parse_str(&head, Method::GET).is_err(), "{bad:?}");
        }
        let h = complete(
            "HTTP/1.1 200 OK\r\ncontent-length: 7, 7\r\ncontent-length: 7\r\n\r\n",
            Method::GET,
        );
        assert_eq!((h.framing, h.keep_alive), (Framing::Length(7), true));
        assert!(parse_str(
            "HTTP/1.1 200 OK\r\ncontent-length: 7\r\ncontent-length: 7, 8\r\n\r\n",
            Method::GET
        )
        .is_err());
    }

    #[test]
    fn a_whole_head_over_the_limit_is_refused() {
        let huge = format!(
            "HTTP/1.1 200 OK\r\nx: {}\r\ncontent-length: 0\r\n\r\n",
            "a".repeat(200 * 1024)
        );
        assert!(parse_str(&huge, Method::GET).is_err());
        // An interim head counts on its own: each must fit.
        let interim = format!(
            "HTTP/1.1 100 Continue\r\nx: {}\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            "a".repeat(MAX_HEAD_BYTES)
        );
        assert!(parse_str(&interim, Method::GET).is_err());
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
