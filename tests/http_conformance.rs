//! The router's HTTP/1.1 server and upstream client, seen from the wire: keep-alive, pipelining,
//! chunked request bodies, 100-continue, HTTP/1.0 clients, HEAD, framing refusals, and which upstream
//! headers reach the client.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}"#;

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// A connection as a writer and a buffered reader.
fn open(port: u16) -> (TcpStream, BufReader<TcpStream>) {
    let s = connect(port);
    (s.try_clone().unwrap(), BufReader::new(s))
}

/// Reads one response with a content-length body: (status, head, body).
fn read_head(r: &mut BufReader<TcpStream>) -> String {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).unwrap() > 0,
            "connection closed inside a head: {head}"
        );
        if line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

fn read_response(r: &mut BufReader<TcpStream>) -> (u16, String, String) {
    let head = read_head(r);
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .map(|v| v.trim().parse::<usize>().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    (status, head, String::from_utf8(body).unwrap())
}

fn chat_request(extra_headers: &str) -> String {
    format!(
        "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra_headers}Content-Length: {}\r\n\r\n{CHAT}",
        CHAT.len()
    )
}

fn start() -> (Mock, Router) {
    let m = Mock::start(&["--models", "m", "--loaded", "m"]);
    let router = Router::start(&config_for(&[m.url()], ""), &["--log-level", "warn"]);
    (m, router)
}

#[test]
fn keep_alive_and_pipelined_requests_are_answered_in_order() {
    let (m, router) = start();
    let (mut w, mut r) = open(router.port);
    // Two requests one after the other on one connection, then three in a single write.
    for _ in 0..2 {
        w.write_all(chat_request("").as_bytes()).unwrap();
        let (status, head, body) = read_response(&mut r);
        assert_eq!(status, 200, "{head}{body}");
        assert!(body.contains("\"done\":true"), "{body}");
    }
    let three = format!(
        "{}GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n{}",
        chat_request(""),
        chat_request("")
    );
    w.write_all(three.as_bytes()).unwrap();
    let (s1, _, b1) = read_response(&mut r);
    let (s2, _, b2) = read_response(&mut r);
    let (s3, _, b3) = read_response(&mut r);
    assert_eq!((s1, s2, s3), (200, 200, 200));
    assert!(b1.contains("\"done\":true") && b3.contains("\"done\":true"));
    assert!(b2.contains("version"), "{b2}");
    assert_eq!(m.stats()["inference"], 4);
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

#[test]
fn upstream_headers_pass_through_and_hop_by_hop_ones_do_not() {
    let (_m, router) = start();
    let (mut w, mut r) = open(router.port);
    let body = r#"{"model":"m","messages":[],"stream":true}"#;
    write!(
        w,
        "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let head = read_head(&mut r).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    // The mock's end-to-end headers arrive as it sent them.
    assert!(head.contains("\r\nx-mock-stream: 1\r\n"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/x-ndjson\r\n"),
        "{head}"
    );
    // Its hop-by-hop ones do not, nor the one its `Connection` header names.
    for gone in ["keep-alive:", "x-mock-private", "\r\nconnection:"] {
        assert!(!head.contains(gone), "{gone} passed through: {head}");
    }
    // One framing header (the router's own), and the router's headers.
    assert_eq!(head.matches("transfer-encoding:").count(), 1, "{head}");
    assert!(!head.contains("content-length:"), "{head}");
    assert!(head.contains("\r\nx-router-endpoint: "), "{head}");
    assert!(head.contains("\r\nx-request-id: "), "{head}");
}

#[test]
fn chunked_request_bodies_and_expect_continue() {
    let (m, router) = start();
    // A chunked body, split in odd places, with a chunk extension and a trailer.
    let (a, b) = CHAT.split_at(17);
    let chunked = format!(
        "POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x};ext=1\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\nx-t: 1\r\n\r\n",
        a.len(),
        b.len()
    );
    let (mut w, mut r) = open(router.port);
    w.write_all(chunked.as_bytes()).unwrap();
    let (status, _, body) = read_response(&mut r);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"done\":true"));

    // Expect: 100-continue: the go-ahead comes before the body is sent.
    w.write_all(
        format!(
            "POST /api/chat HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            CHAT.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    r.read_line(&mut line).unwrap();
    w.write_all(CHAT.as_bytes()).unwrap();
    let (status, _, body) = read_response(&mut r);
    assert_eq!(status, 200, "{body}");
    assert_eq!(m.stats()["inference"], 2);
}

#[test]
fn http10_clients_get_a_close_delimited_stream_and_head_gets_no_body() {
    let (_m, router) = start();
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let mut s = connect(router.port);
    s.write_all(
        format!(
            "POST /api/chat HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, stream) = out.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        !lower.contains("transfer-encoding"),
        "no chunked coding for HTTP/1.0: {head}"
    );
    assert!(lower.contains("connection: close"), "{head}");
    let lines: Vec<&str> = stream.lines().collect();
    assert!(lines.len() > 2, "{stream}");
    assert!(lines.last().unwrap().contains("\"done\":true"), "{stream}");

    // HEAD: the headers of a GET, no body, and the connection stays usable.
    let (mut w, mut r) = open(router.port);
    w.write_all(b"HEAD /api/version HTTP/1.1\r\nHost: x\r\n\r\nGET /api/version HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_head(&mut r);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (status, _, body) = read_response(&mut r);
    assert_eq!(status, 200);
    assert!(
        body.contains("version"),
        "the HEAD answer had a body in front of: {body}"
    );
}

#[test]
fn conflicting_or_unknown_framing_is_refused() {
    let (m, router) = start();
    let both = raw(
        router.port,
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(both.starts_with("HTTP/1.1 400"), "{both}");
    let gzip = raw(
        router.port,
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(gzip.starts_with("HTTP/1.1 501"), "{gzip}");
    let bad_chunk = raw(
        router.port,
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n",
        Duration::from_secs(5),
    );
    assert!(bad_chunk.starts_with("HTTP/1.1 400"), "{bad_chunk}");
    assert!(bad_chunk.contains("request body"), "{bad_chunk}");
    assert_eq!(m.stats()["inference"], 0);
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

/// Reads a chunked body to its end and returns it decoded.
fn read_chunked(r: &mut BufReader<TcpStream>) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let size = usize::from_str_radix(line.trim_end(), 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        let mut data = vec![0u8; size + 2];
        r.read_exact(&mut data).unwrap();
        assert_eq!(&data[size..], b"\r\n", "chunk not followed by CRLF");
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&data[..size]);
    }
}

#[test]
fn a_client_that_stops_reading_mid_stream_gets_every_byte_once_it_reads_again() {
    // 5 MB of stream, far more than the socket buffers hold: the router's sends back up while
    // the upstream keeps sending, and must neither lose, reorder nor mis-frame anything.
    const TOKENS: usize = 40_000;
    let m = Mock::start(&[
        "--models",
        "m",
        "--loaded",
        "m",
        "--tokens",
        &TOKENS.to_string(),
    ]);
    let router = Router::start(&config_for(&[m.url()], ""), &["--log-level", "warn"]);
    let (mut w, mut r) = open(router.port);
    r.get_ref()
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#;
    let req = format!(
        "POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    w.write_all(req.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let head = read_head(&mut r).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let streamed = String::from_utf8(read_chunked(&mut r)).unwrap();
    let lines: Vec<&str> = streamed.lines().collect();
    assert!(streamed.len() > 2_000_000, "only {} bytes", streamed.len());
    assert_eq!(
        lines.len(),
        TOKENS + 1,
        "one line per token and the final one"
    );
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {i} is not JSON ({e}): {line:.200}"));
        assert_eq!(v["done"], i == TOKENS, "line {i}: {line:.200}");
    }
    // The connection goes on: the next answer follows the stream on it.
    w.write_all(chat_request("").as_bytes()).unwrap();
    let (status, _, answer) = read_response(&mut r);
    assert_eq!(status, 200);
    assert!(answer.contains("\"done\":true"), "{answer}");
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}
