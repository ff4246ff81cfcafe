//! Backends that close idle keep-alive connections (llama.cpp and vLLM after 5 s): the router must
//! notice before it reuses one, and never write a request into a connection the backend has ended.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// How long the backend keeps an idle keep-alive connection before it ends its side: shorter than
/// the pauses between requests below (so every pooled connection is ended before its reuse), and far
/// longer than any stall between two requests sent back to back (discovery asks `/api/ps` and then
/// `/api/tags` on one connection).
const BACKEND_IDLE: Duration = Duration::from_millis(200);

#[derive(Default)]
struct Counts {
    connections: AtomicUsize,
    requests: AtomicUsize,
    /// Requests (or any bytes) that arrived on a connection after the backend had ended its side.
    after_close: AtomicUsize,
}

/// A minimal Ollama backend (model `m:latest`, loaded) that ends every connection after
/// `BACKEND_IDLE` without a request, the way uvicorn or cpp-httplib do, then keeps reading to see
/// whether anything still comes. `farewell`: bytes it sends just before ending one (some servers
/// send an unasked `408`).
fn idle_closing_backend(farewell: &'static [u8]) -> (String, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            c.connections.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            std::thread::spawn(move || serve(stream, &c, farewell));
        }
    });
    (url, counts)
}

fn serve(stream: TcpStream, counts: &Counts, farewell: &[u8]) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    let mut served = false;
    loop {
        // A new connection's first request may take its time; after an answer, only BACKEND_IDLE.
        let wait = if served {
            BACKEND_IDLE
        } else {
            Duration::from_secs(10)
        };
        reader.get_ref().set_read_timeout(Some(wait)).unwrap();
        match reader.fill_buf() {
            Ok([]) => return,
            Ok(_) => {}
            Err(_) => {
                // Idle too long: end our side, then watch for anything sent after it.
                let _ = out.write_all(farewell);
                let _ = out.shutdown(Shutdown::Write);
                reader
                    .get_ref()
                    .set_read_timeout(Some(Duration::from_secs(3)))
                    .unwrap();
                let mut byte = [0u8; 1];
                if matches!(reader.read(&mut byte), Ok(n) if n > 0) {
                    counts.after_close.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
        }
        reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let Some((line, body_len)) = read_head(&mut reader) else {
            return;
        };
        let mut body = vec![0u8; body_len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        counts.requests.fetch_add(1, Ordering::SeqCst);
        served = true;
        let answer = if line.starts_with("GET /api/tags") || line.starts_with("GET /api/ps") {
            r#"{"models":[{"name":"m:latest","model":"m:latest"}]}"#
        } else if line.starts_with("POST /api/chat") {
            r#"{"model":"m:latest","message":{"role":"assistant","content":"hi"},"done":true}"#
        } else {
            r#"{"error":"not here"}"#
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        if out.write_all(head.as_bytes()).is_err() || out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// The request line and the body's length.
fn read_head(reader: &mut BufReader<TcpStream>) -> Option<(String, usize)> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut len = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Some((line, len));
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
}

/// Four chats through the router, each after a pause longer than the backend keeps a connection:
/// all must succeed, and nothing may be written into a connection the backend has ended.
fn chats_after_idle_pauses(farewell: &'static [u8]) {
    let (url, counts) = idle_closing_backend(farewell);
    // Discovery polls far apart too, so that its pooled connections also go idle past the backend's limit.
    let yaml = format!(
        "endpoints:\n  - {url}\ndiscovery:\n  loaded_interval: 700ms\n  models_interval: 700ms\n  poll_timeout: 1s\n"
    );
    let router = Router::start(&yaml, &[]);
    let body = r#"{"model":"m:latest","messages":[{"role":"user","content":"hi"}],"stream":false}"#;
    for i in 0..4 {
        let r = post(&router.url("/api/chat"), body);
        assert_eq!(r.status, 200, "chat {i}: {}", r.body);
        assert_eq!(r.json()["message"]["content"], "hi");
        // Longer than the backend keeps an idle connection.
        std::thread::sleep(Duration::from_millis(600));
    }
    // Give the backend's watchers time to see anything late.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        counts.connections.load(Ordering::SeqCst) >= 5,
        "every chat after an idle pause needs a new connection"
    );
    assert_eq!(
        counts.after_close.load(Ordering::SeqCst),
        0,
        "the router wrote into connections the backend had ended ({} requests over {} connections)",
        counts.requests.load(Ordering::SeqCst),
        counts.connections.load(Ordering::SeqCst)
    );
}

#[test]
fn a_connection_the_backend_ended_while_idle_is_not_reused() {
    chats_after_idle_pauses(b"");
}

/// The unasked answer sits in the socket: reusing the connection would hand it to the next request.
#[test]
fn an_unasked_408_before_the_end_is_not_taken_for_the_next_answer() {
    chats_after_idle_pauses(
        b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    );
}
