//! Parsing a client's request head (httparse): method, target, headers (as slices of the head), and
//! how its body is framed.

use std::mem::MaybeUninit;

use bytes::{Buf, BytesMut};
use http::{Method, StatusCode, Uri, Version};

use crate::config::Limits;
use crate::http::framing::Framing;
use crate::http::headers::connection_keep_alive;
use crate::http::request_headers::RequestHeaders;

pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: RequestHeaders,
    /// `Empty` when no body was announced.
    pub body: Framing,
    /// The client asked to keep the connection open after this exchange.
    pub keep_alive: bool,
    /// `Expect: 100-continue`: the client waits for a go-ahead before sending its body.
    pub expects_continue: bool,
}

/// A head the router refuses at the HTTP level, before any route is known.
#[derive(Debug)]
pub struct HeadError {
    pub status: StatusCode,
    pub message: String,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> HeadError {
    HeadError {
        status,
        message: message.into(),
    }
}

/// Parses a complete head from the front of `buf` (consuming it); `Ok(None)` when more bytes are needed.
pub fn parse(buf: &mut BytesMut, limits: &Limits) -> Result<Option<RequestHead>, HeadError> {
    // Blank lines before a request are allowed (RFC 9112 §2.2).
    while buf.first().is_some_and(|b| *b == b'\r' || *b == b'\n') {
        buf.advance(1);
    }
    // Most requests fit the stack array (left uninitialised: httparse writes what it uses); a
    // configured limit above it spills to the heap.
    let mut stack = [const { MaybeUninit::<httparse::Header>::uninit() }; 128];
    let mut heap = Vec::new();
    let slots: &mut [MaybeUninit<httparse::Header>] = if limits.max_headers <= stack.len() {
        &mut stack[..limits.max_headers.max(1)]
    } else {
        heap.resize_with(limits.max_headers, MaybeUninit::uninit);
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_header_bytes => {
            return Err(too_large(limits))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(refuse(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!("more than {} request headers", limits.max_headers),
            ))
        }
        Err(e) => {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("invalid request: {e}"),
            ))
        }
    };
    if len > limits.max_header_bytes {
        return Err(too_large(limits));
    }
    let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "invalid method"))?;
    let version = if req.version == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let path = req.path.unwrap_or("");
    let uri: Uri = path
        .parse()
        .map_err(|_| refuse(StatusCode::BAD_REQUEST, "invalid request target"))?;
    // Headers stay slices of the received head: spans now, one shared copy of the bytes below.
    let base = buf.as_ptr() as usize;
    let mut spans = Vec::with_capacity(req.headers.len());
    let mut seen = Seen::default();
    for h in req.headers.iter() {
        let name = (h.name.as_ptr() as usize - base) as u32;
        let value = (h.value.as_ptr() as usize - base) as u32;
        spans.push([
            name,
            name + h.name.len() as u32,
            value,
            value + h.value.len() as u32,
        ]);
        seen.note(h.name.as_bytes());
    }
    let headers = RequestHeaders::new(buf.split_to(len).freeze(), spans);
    let http11 = version == Version::HTTP_11;
    // RFC 9112 §3.2: a 1.1 request without Host, or any request with two, is refused.
    if seen.hosts > 1 || (http11 && seen.hosts == 0) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "a request needs exactly one Host header",
        ));
    }
    let body = body_framing(&headers, seen)?;
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 request is faulty framing: answer it, then
    // close, so that nothing after it is read as a request.
    let keep_alive = if !http11 && seen.transfer_encoding {
        false
    } else if seen.connection {
        connection_keep_alive(headers.get_all("connection"), http11)
    } else {
        http11
    };
    let expects_continue = http11
        && seen.expect
        && headers
            .get("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
    Ok(Some(RequestHead {
        method,
        uri,
        version,
        headers,
        body,
        keep_alive,
        expects_continue,
    }))
}

/// Which framing and connection headers the head carries, noted while the spans are taken, so that
/// the common head (no `Connection`, no `Expect`) needs no lookups for them.
#[derive(Default, Clone, Copy)]
struct Seen {
    connection: bool,
    expect: bool,
    content_length: bool,
    transfer_encoding: bool,
    /// How many `Host` lines (RFC 9112 §3.2 wants exactly one in HTTP/1.1).
    hosts: u8,
}

impl Seen {
    fn note(&mut self, name: &[u8]) {
        // The length picks the one candidate worth comparing.
        if name.len() == 4 && name.eq_ignore_ascii_case(b"host") {
            self.hosts = self.hosts.saturating_add(1);
            return;
        }
        let (flag, wanted): (&mut bool, &[u8]) = match name.len() {
            10 => (&mut self.connection, b"connection"),
            6 => (&mut self.expect, b"expect"),
            14 => (&mut self.content_length, b"content-length"),
            17 => (&mut self.transfer_encoding, b"transfer-encoding"),
            _ => return,
        };
        *flag |= name.eq_ignore_ascii_case(wanted);
    }
}

fn too_large(limits: &Limits) -> HeadError {
    refuse(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        format!("request head larger than {} bytes", limits.max_header_bytes),
    )
}

/// RFC 9112 §6.3: chunked wins only when it is the sole coding; both framings at once is refused
/// (request smuggling).
fn body_framing(headers: &RequestHeaders, seen: Seen) -> Result<Framing, HeadError> {
    if !seen.transfer_encoding && !seen.content_length {
        return Ok(Framing::Empty);
    }
    let has_te = seen.transfer_encoding;
    let mut lengths = headers.get_all("content-length");
    let first_length = lengths.next();
    if has_te {
        if first_length.is_some() {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let mut te = headers.get_all("transfer-encoding");
        let only_chunked = te
            .next()
            .is_some_and(|v| v.eq_ignore_ascii_case(b"chunked"))
            && te.next().is_none();
        if !only_chunked {
            return Err(refuse(
                StatusCode::NOT_IMPLEMENTED,
                "only the chunked transfer coding is supported",
            ));
        }
        return Ok(Framing::Chunked);
    }
    let Some(first) = first_length else {
        return Ok(Framing::Empty);
    };
    let parse = |v: &[u8]| -> Result<u64, HeadError> {
        if v.is_empty() || !v.iter().all(u8::is_ascii_digit) || v.len() > 19 {
            return Err(refuse(StatusCode::BAD_REQUEST, "invalid Content-Length"));
        }
        // At most 19 digits: fits a u64.
        Ok(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
    };
    let n = parse(first)?;
    for other in lengths {
        if parse(other)? != n {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "conflicting Content-Length headers",
            ));
        }
    }
    Ok(if n > 0 {
        Framing::Length(n)
    } else {
        Framing::Empty
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits() -> Limits {
        Limits {
            max_body_bytes: 1 << 20,
            max_headers: 8,
            max_header_bytes: 1024,
            header_read_timeout: Duration::from_secs(1),
            max_retries: 1,
            failures_before_down: 3,
            max_connections: 64,
            max_buffered_body_bytes: 1 << 30,
        }
    }

    fn parse_str(s: &str) -> Result<Option<RequestHead>, HeadError> {
        parse(&mut BytesMut::from(s), &limits())
    }

    #[test]
    fn parses_parts_and_leaves_the_body() {
        let mut buf = BytesMut::from(
            "\r\nPOST /api/chat?x=1 HTTP/1.1\r\nHost: r\r\nContent-Length: 2\r\nX-A: b\r\n\r\n{}",
        );
        let h = parse(&mut buf, &limits()).unwrap().unwrap();
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.uri.path(), "/api/chat");
        assert_eq!(h.uri.query(), Some("x=1"));
        assert_eq!(h.headers.get("x-a"), Some(&b"b"[..]));
        assert_eq!(h.body, Framing::Length(2));
        assert!(h.keep_alive && !h.expects_continue);
        assert_eq!(&buf[..], b"{}");
    }

    #[test]
    fn framing_and_connection_rules() {
        let h = parse_str("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.body, Framing::Chunked);
        let h = parse_str("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive && h.body == Framing::Empty);
        let h = parse_str("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = parse_str("POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive && h.expects_continue && h.body == Framing::Empty);
    }

    #[test]
    fn refusals() {
        let status = |s: &str| parse_str(s).err().map(|e| e.status.as_u16());
        assert_eq!(status("GARBAGE\r\n\r\n"), Some(400));
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            Some(501)
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Some(400)
        );
        let many: String = (0..9).map(|i| format!("X-{i}: v\r\n")).collect();
        assert_eq!(
            status(&format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n")),
            Some(431)
        );
        let big = format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}", "a".repeat(2000));
        assert_eq!(status(&big), Some(431));
        assert!(parse_str("GET / HTTP/1.1\r\nHost: x\r\nHost: x\r\n")
            .unwrap()
            .is_none());
    }

    #[test]
    fn host_is_required_once() {
        let status = |s: &str| parse_str(s).err().map(|e| e.status.as_u16());
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(
            status("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"),
            Some(400)
        );
        assert!(parse_str("GET / HTTP/1.0\r\n\r\n").unwrap().is_some());
        assert!(parse_str("GET / HTTP/1.1\r\nHOST: a\r\n\r\n")
            .unwrap()
            .is_some());
    }

    #[test]
    fn transfer_encoding_in_http_1_0_closes_the_connection() {
        let h = parse_str(
            "POST /x HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.body, Framing::Chunked);
        assert!(!h.keep_alive);
    }
}
