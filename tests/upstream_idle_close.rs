//! Backends that close idle keep-alive connections (llama.cpp and vLLM after 5 s): the router must
//! notice before it reuses one, and never write a request into a connection the backend has ended.
//! Over plain HTTP and over HTTPS (a certificate from the private test CA in tests/fixtures/tls).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use common::*;

/// How long the backend keeps an idle keep-alive connection before it ends its side: shorter than
/// the pauses between requests below (so every pooled connection is ended before its reuse), and far
/// longer than any stall between two requests sent back to back (discovery asks `/api/ps` and then
/// `/api/tags` on one connection).
const BACKEND_IDLE: Duration = Duration::from_millis(200);

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");

/// A backend connection, plain or TLS.
trait Link: Read + Write {
    fn set_read_timeout(&self, wait: Duration);
    /// Ends our side: FIN on plain TCP; close_notify, then FIN, on TLS.
    fn end(&mut self);
}

impl Link for TcpStream {
    fn set_read_timeout(&self, wait: Duration) {
        TcpStream::set_read_timeout(self, Some(wait)).unwrap();
    }

    fn end(&mut self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

type TlsLink = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

impl Link for TlsLink {
    fn set_read_timeout(&self, wait: Duration) {
        self.sock.set_read_timeout(Some(wait)).unwrap();
    }

    fn end(&mut self) {
        self.conn.send_close_notify();
        let _ = self.flush();
        let _ = self.sock.shutdown(Shutdown::Write);
    }
}

fn tls_server_config() -> Arc<rustls::ServerConfig> {
    let chain = CertificateDer::pem_file_iter(format!("{FIXTURES}/server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(format!("{FIXTURES}/server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    Arc::new(config)
}

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
/// send an unasked `408`). With `tls`, it serves HTTPS as `localhost`.
fn idle_closing_backend(farewell: &'static [u8], tls: bool) -> (String, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = if tls {
        format!("https://localhost:{port}")
    } else {
        format!("http://127.0.0.1:{port}")
    };
    let config = tls.then(tls_server_config);
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            c.connections.fetch_add(1, Ordering::SeqCst);
            let c = c.clone();
            let config = config.clone();
            std::thread::spawn(move || match config {
                None => serve(stream, &c, farewell),
                Some(config) => {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    serve(TlsLink::new(conn, stream), &c, farewell)
                }
            });
        }
    });
    (url, counts)
}

fn serve<L: Link>(link: L, counts: &Counts, farewell: &[u8]) {
    let mut reader = BufReader::new(link);
    let mut served = false;
    loop {
        // A new connection's first request may take its time; after an answer, only BACKEND_IDLE.
        let wait = if served {
            BACKEND_IDLE
        } else {
            Duration::from_secs(10)
        };
        reader.get_ref().set_read_timeout(wait);
        match reader.fill_buf() {
            Ok([]) => return,
            Ok(_) => {}
            Err(_) => {
                // Idle too long: end our side, then watch for anything sent after it.
                let _ = reader.get_mut().write_all(farewell);
                reader.get_mut().end();
                reader.get_ref().set_read_timeout(Duration::from_secs(3));
                let mut byte = [0u8; 1];
                if matches!(reader.read(&mut byte), Ok(n) if n > 0) {
                    counts.after_close.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
        }
        reader.get_ref().set_read_timeout(Duration::from_secs(5));
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
        let out = reader.get_mut();
        let wrote = out
            .write_all(head.as_bytes())
            .and_then(|_| out.write_all(answer.as_bytes()));
        if wrote.and_then(|_| out.flush()).is_err() {
            return;
        }
    }
}

/// The request line and the body's length.
fn read_head(reader: &mut BufReader<impl Read>) -> Option<(String, usize)> {
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
fn chats_after_idle_pauses(farewell: &'static [u8], tls: bool) {
    let (url, counts) = idle_closing_backend(farewell, tls);
    // Discovery polls far apart too, so that its pooled connections also go idle past the backend's limit.
    let yaml = format!(
        "endpoints:\n  - {url}\ndiscovery:\n  loaded_interval: 700ms\n  models_interval: 700ms\n  poll_timeout: 1s\n"
    );
    let ca = format!("{FIXTURES}/ca.pem");
    let router = Router::start_env(&yaml, &[], &[("SSL_CERT_FILE", ca.as_str())]);
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
    chats_after_idle_pauses(b"", false);
}

/// The unasked answer sits in the socket: reusing the connection would hand it to the next request.
#[test]
fn an_unasked_408_before_the_end_is_not_taken_for_the_next_answer() {
    chats_after_idle_pauses(UNASKED_408, false);
}

const UNASKED_408: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// On TLS the end is a close_notify alert, readable before the FIN: the connection must still be
/// dropped, not reused.
#[test]
fn a_tls_connection_the_backend_ended_while_idle_is_not_reused() {
    chats_after_idle_pauses(b"", true);
}

/// Over TLS too, an unasked answer on an idle connection is not taken for the next one.
#[test]
fn an_unasked_408_over_tls_is_not_taken_for_the_next_answer() {
    chats_after_idle_pauses(UNASKED_408, true);
}
