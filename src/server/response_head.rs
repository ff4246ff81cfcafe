//! Writing a response head and chunk framing onto the connection's write buffer.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap};
use http::{Method, StatusCode};

/// How the body after a head is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body bytes follow (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// HTTP/1.0 client, unknown length: the end of the body is the end of the connection.
    UntilClose,
}

/// Chooses the framing: an exact size is sent as `content-length`; otherwise chunked (HTTP/1.1) or
/// close-delimited (HTTP/1.0).
pub fn framing(
    method: &Method,
    status: StatusCode,
    exact_len: Option<u64>,
    http11: bool,
) -> ResponseFraming {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return ResponseFraming::None;
    }
    match exact_len {
        Some(n) => ResponseFraming::Length(n),
        None if http11 => ResponseFraming::Chunked,
        None => ResponseFraming::UntilClose,
    }
    .for_method(method)
}

impl ResponseFraming {
    fn for_method(self, method: &Method) -> Self {
        if method == Method::HEAD {
            // A HEAD answer sends no body; its content-length header (if any) describes the one it
            // stands for and is passed through by `encode`.
            return ResponseFraming::None;
        }
        self
    }
}

/// Appends the status line and headers. Framing headers come from `framing` only: any
/// `content-length` or `transfer-encoding` in `headers` is left out.
pub fn encode(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    framing: ResponseFraming,
    method: &Method,
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    out.extend_from_slice(b"\r\n");
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
    match framing {
        ResponseFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        ResponseFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        ResponseFraming::None | ResponseFraming::UntilClose => {}
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
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = crate::translate::time::civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
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
            ResponseFraming::Length(3)
        );
        assert_eq!(
            framing(&get, StatusCode::OK, None, true),
            ResponseFraming::Chunked
        );
        assert_eq!(
            framing(&get, StatusCode::OK, None, false),
            ResponseFraming::UntilClose
        );
        assert_eq!(
            framing(&get, StatusCode::NO_CONTENT, Some(0), true),
            ResponseFraming::None
        );
        assert_eq!(
            framing(&Method::HEAD, StatusCode::OK, None, true),
            ResponseFraming::None
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
            ResponseFraming::Chunked,
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
