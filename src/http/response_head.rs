//! Writing a response head and chunk framing onto the connection's write buffer.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap};
use http::{Method, StatusCode};

use crate::http::framing::Framing;
use crate::http::headers::{is_extra_connection_token, is_hop_by_hop_name};

/// Chooses the framing: an exact size is sent as `content-length`; otherwise chunked (HTTP/1.1) or
/// close-delimited (HTTP/1.0).
pub fn framing(
    method: &Method,
    status: StatusCode,
    exact_len: Option<u64>,
    http11: bool,
) -> Framing {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Framing::Empty;
    }
    match exact_len {
        Some(n) => Framing::Length(n),
        None if http11 => Framing::Chunked,
        None => Framing::UntilClose,
    }
    .for_method(method)
}

impl Framing {
    fn for_method(self, method: &Method) -> Self {
        if method == Method::HEAD {
            // A HEAD answer sends no body; its content-length header (if any) describes the one it
            // stands for and is passed through by `encode`.
            return Framing::Empty;
        }
        self
    }
}

/// Header lines written without a map.
#[derive(Default, Clone, Copy)]
pub struct Lines<'a> {
    /// The request's id, sent as `x-request-id` (none when empty).
    pub request_id: &'a [u8],
    /// The endpoint that answered, sent as `x-router-endpoint` (none when empty).
    pub endpoint: &'a [u8],
    /// The upstream's header lines as received (empty when there are none).
    pub upstream: &'a [u8],
}

/// Appends the status line and headers: the request id, the router's own (`headers`), then the
/// upstream's header lines written through, minus hop-by-hop headers and names the router set
/// itself. Framing headers come from `framing` only: any `content-length` or `transfer-encoding`
/// in either is left out.
pub fn encode(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    lines: Lines<'_>,
    framing: Framing,
    method: &Method,
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in [
        (&b"x-request-id: "[..], lines.request_id),
        (b"x-router-endpoint: ", lines.endpoint),
    ] {
        if !value.is_empty() {
            out.extend_from_slice(name);
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
    }
    let mut has_date = false;
    // A HEAD answer passes on the length of the body it stands for; otherwise framing is ours.
    let keep_length = method == Method::HEAD;
    for (name, value) in headers {
        let ours = name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
            || (name == header::CONTENT_LENGTH && !keep_length);
        if ours {
            continue;
        }
        has_date |= name == header::DATE;
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !lines.upstream.is_empty() {
        has_date |= write_passthrough(out, lines.upstream, headers, keep_length);
    }
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::UntilClose => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    if !has_date {
        out.extend_from_slice(b"date: ");
        with_date(|d| out.extend_from_slice(d));
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Splits header lines (`name: value`, ending in CRLF or a bare LF) into names and whole lines
/// without the line break.
fn header_lines(block: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    block
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
        .map(|line| {
            let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
            (&line[..colon], line)
        })
}

/// Writes the upstream's end-to-end header lines (each re-terminated with CRLF); true when one is `Date`.
fn write_passthrough(out: &mut Vec<u8>, block: &[u8], ours: &HeaderMap, keep_length: bool) -> bool {
    // Names listed in a `Connection` header are hop-by-hop too; most answers have none.
    let listed: Vec<&[u8]> = header_lines(block)
        .filter(|(name, _)| name.eq_ignore_ascii_case(b"connection"))
        .flat_map(|(name, line)| line[name.len() + 1..].split(|&b| b == b','))
        .map(|token| token.trim_ascii())
        .filter(|token| is_extra_connection_token(token))
        .collect();
    let mut has_date = false;
    for (name, line) in header_lines(block) {
        let skip = is_hop_by_hop_name(name)
            || (name.eq_ignore_ascii_case(b"content-length") && !keep_length)
            || name.eq_ignore_ascii_case(b"x-request-id")
            || name.eq_ignore_ascii_case(b"x-router-endpoint")
            || listed.iter().any(|l| l.eq_ignore_ascii_case(name))
            || ours
                .keys()
                .any(|k| k.as_str().as_bytes().eq_ignore_ascii_case(name));
        if skip {
            continue;
        }
        has_date |= name.eq_ignore_ascii_case(b"date");
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    has_date
}

/// Appends `n` in lowercase hex (a chunk size) without going through `fmt`.
fn push_hex(out: &mut Vec<u8>, n: usize) {
    let digits = (usize::BITS - n.leading_zeros()).div_ceil(4).max(1);
    for i in (0..digits).rev() {
        out.push(b"0123456789abcdef"[(n >> (i * 4)) & 0xf]);
    }
}

/// Appends one chunk of a chunked body.
pub fn chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    push_hex(out, data.len());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// The end of a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

thread_local! {
    /// The IMF-fixdate of the current second, formatted once per second per worker.
    static DATE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

fn with_date(f: impl FnOnce(&[u8])) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != now {
            d.1 = imf_fixdate(now).into_bytes();
            d.0 = now;
        }
        f(&d.1);
    });
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` for seconds since the epoch.
fn imf_fixdate(secs: u64) -> String {
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdate() {
        assert_eq!(imf_fixdate(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(imf_fixdate(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(imf_fixdate(1_709_208_000), "Thu, 29 Feb 2024 12:00:00 GMT");
    }

    #[test]
    fn framing_choices() {
        let get = Method::GET;
        assert_eq!(
            framing(&get, StatusCode::OK, Some(3), true),
            Framing::Length(3)
        );
        assert_eq!(framing(&get, StatusCode::OK, None, true), Framing::Chunked);
        assert_eq!(
            framing(&get, StatusCode::OK, None, false),
            Framing::UntilClose
        );
        assert_eq!(
            framing(&get, StatusCode::NO_CONTENT, Some(0), true),
            Framing::Empty
        );
        assert_eq!(
            framing(&Method::HEAD, StatusCode::OK, None, true),
            Framing::Empty
        );
    }

    #[test]
    fn head_has_one_framing_and_a_date() {
        let mut h = HeaderMap::new();
        h.insert("content-length", "99".parse().unwrap());
        h.insert("x-a", "b".parse().unwrap());
        let mut out = Vec::new();
        encode(
            &mut out,
            StatusCode::OK,
            &h,
            Lines::default(),
            Framing::Chunked,
            &Method::GET,
            true,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nx-a: b\r\ntransfer-encoding: chunked\r\nconnection: close\r\ndate: "));
        assert!(!text.contains("content-length"));
        assert!(text.ends_with(" GMT\r\n\r\n"));
        let mut out = Vec::new();
        chunk(&mut out, b"hello");
        assert_eq!(out, b"5\r\nhello\r\n");
    }

    #[test]
    fn upstream_lines_pass_through_without_hop_by_hop_framing_or_our_names() {
        let mut ours = HeaderMap::new();
        ours.insert("x-ours", "1".parse().unwrap());
        let upstream = b"Content-Type: application/json\r\nConnection: keep-alive, X-Secret\r\n\
            X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\
            Content-Length: 12\r\nX-Request-Id: theirs\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\
            X-Ours: theirs\r\nX-Trace: a:b\n";
        let mut out = Vec::new();
        encode(
            &mut out,
            StatusCode::OK,
            &ours,
            Lines {
                request_id: b"abc",
                endpoint: b"http://b:11434",
                upstream,
            },
            Framing::Length(12),
            &Method::POST,
            false,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\nx-request-id: abc\r\nx-router-endpoint: http://b:11434\r\nx-ours: 1\r\nContent-Type: application/json\r\n\
             Date: Mon, 01 Jan 2024 00:00:00 GMT\r\nX-Trace: a:b\r\ncontent-length: 12\r\n\r\n"
        );
        // A HEAD answer keeps the upstream's length; our own date is added when it sent none.
        let mut out = Vec::new();
        encode(
            &mut out,
            StatusCode::OK,
            &HeaderMap::new(),
            Lines {
                upstream: b"content-length: 7\r\n",
                ..Lines::default()
            },
            Framing::Empty,
            &Method::HEAD,
            false,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 7\r\ndate: "),
            "{text}"
        );
    }

    #[test]
    fn chunk_sizes_are_lowercase_hex() {
        for n in [
            1usize, 9, 10, 15, 16, 255, 256, 4095, 4096, 65_536, 1_000_000,
        ] {
            let mut out = Vec::new();
            chunk(&mut out, &vec![b'x'; n]);
            let line = format!("{n:x}\r\n");
            assert!(out.starts_with(line.as_bytes()), "size {n}");
            assert_eq!(out.len(), line.len() + n + 2);
        }
    }
}
