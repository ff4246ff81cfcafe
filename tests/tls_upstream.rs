//! HTTPS upstreams over real sockets: a mock backend serving TLS with a certificate from a private
//! test CA (tests/fixtures/tls), trusted through SSL_CERT_FILE; and the same backend refused when the
//! router does not trust its CA, or when SSL_CERT_FILE is unusable.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}"#;
const STREAM: &str = r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#;

fn tls_mock(extra: &[&str]) -> Mock {
    let cert = format!("{FIXTURES}/server.pem");
    let key = format!("{FIXTURES}/server.key");
    let mut args = vec![
        "--models",
        "m",
        "--tokens",
        "5",
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
    ];
    args.extend_from_slice(extra);
    Mock::start(&args)
}

/// Waits until discovery over HTTPS has listed the model (or gives up after 10 s).
/// How many connections the TLS mock has accepted (its `/mock/stats` over HTTPS with the test CA;
/// this request's own connection included).
fn tls_connections(port: u16) -> u64 {
    let mut roots = rustls::RootCertStore::empty();
    for cert in nomyo_router::http::tls_roots::load(&Path::new(FIXTURES).join("ca.pem")).unwrap() {
        roots.add(cert).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"GET /mock/stats HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer); // the mock may end without close_notify
    let answer = String::from_utf8_lossy(&answer);
    let (_, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    let stats: serde_json::Value = serde_json::from_str(body).expect("the stats JSON");
    stats["connections"].as_u64().unwrap()
}

fn wait_listed(router: &Router) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, tags) = get_json(&router.url("/api/tags"));
        let listed = tags["models"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["name"] == "m"));
        if (status == 200 && listed) || Instant::now() > deadline {
            return tags;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn https_upstream_behind_a_private_ca_serves_chat_streams_and_listings() {
    let mock = tls_mock(&[]);
    let ca = format!("{FIXTURES}/ca.pem");
    let router = Router::start_env(
        &config_for(&[format!("https://localhost:{}", mock.port)], ""),
        &["--log-level", "warn"],
        &[("SSL_CERT_FILE", ca.as_str())],
    );
    let tags = wait_listed(&router);
    assert!(
        tags["models"].as_array().is_some_and(|m| !m.is_empty()),
        "discovery over HTTPS listed nothing: {tags}"
    );

    // Several requests in a row: the pooled TLS connection is reused, or re-made, without errors.
    for i in 0..20 {
        let r = post(&router.url("/api/chat"), CHAT);
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
        let content = r.json()["message"]["content"].as_str().unwrap().to_string();
        assert!(!content.is_empty(), "request {i}: empty answer");
    }

    // After a pause past the pool's 250 ms check, the pooled TLS connection is peeked before reuse.
    // TLS 1.3 session tickets may be waiting in it unread: that is not a closed connection, so it is
    // reused, with no new handshake.
    let before = tls_connections(mock.port);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(post(&router.url("/api/chat"), CHAT).status, 200);
    assert_eq!(
        tls_connections(mock.port),
        before + 1,
        "a live TLS connection was dropped instead of reused (only the stats request may connect)"
    );

    let (status, lines) = stream_lines(&router.url("/api/chat"), STREAM, &[]);
    assert_eq!(status, 200);
    assert_eq!(lines.len(), 6, "5 token lines and the final one: {lines:?}");
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["done"], true);

    // The OpenAI route, translated onto the Ollama backend, over the same HTTPS upstream.
    let r = post(
        &router.url("/v1/chat/completions"),
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["choices"][0]["message"]["content"]
        .as_str()
        .is_some_and(|c| !c.is_empty()));
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

/// Discovery's handshake fails the certificate check, so the endpoint is marked down with the reason
/// logged, and a request gets a prompt 503 in the Ollama error format instead of a connection to it.
#[test]
fn https_upstream_with_an_untrusted_certificate_is_refused_not_hung() {
    let mock = tls_mock(&[]);
    // No SSL_CERT_FILE: the test CA is not among the built-in roots.
    let router = Router::start_env(
        &config_for(&[format!("https://localhost:{}", mock.port)], ""),
        &["--log-level", "warn"],
        &[("SSL_CERT_FILE", "")],
    );
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let r = post(&router.url("/api/chat"), CHAT);
    assert!(
        r.status == 502 || r.status == 503,
        "expected 502/503, got {} {}",
        r.status,
        r.body
    );
    assert!(
        r.json()["error"].as_str().is_some_and(|e| !e.is_empty()),
        "Ollama-style error body: {}",
        r.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the refusal took {:?}",
        started.elapsed()
    );
    let log = router.log();
    assert!(
        log.contains("invalid peer certificate"),
        "the log should name the certificate problem: {log}"
    );
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

#[test]
fn an_unusable_ssl_cert_file_stops_the_router_at_startup() {
    let config = std::env::temp_dir().join(format!("nomyo-tls-{}.yaml", std::process::id()));
    std::fs::write(&config, "endpoints: [http://127.0.0.1:9]\n").unwrap();
    // Each run must exit by itself: one that keeps serving is killed after 10 s and fails the test.
    let run = |cert_file: &str, check: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nomyo-router"));
        cmd.args(["--config", config.to_str().unwrap(), "--port", "0"])
            .env("SSL_CERT_FILE", cert_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if check {
            cmd.arg("--check-config");
        }
        let mut child = cmd.spawn().expect("run nomyo-router");
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("nomyo-router with SSL_CERT_FILE={cert_file} did not exit");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    };

    let missing = run("/nonexistent/ca.pem", false);
    assert_eq!(missing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("SSL_CERT_FILE=/nonexistent/ca.pem"),
        "stderr: {err}"
    );

    let key_not_cert = run(&format!("{FIXTURES}/server.key"), true);
    assert_eq!(key_not_cert.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&key_not_cert.stderr).contains("no PEM certificate"));

    let good = run(&format!("{FIXTURES}/ca.pem"), true);
    assert_eq!(good.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&good.stdout)
        .contains("HTTPS upstreams also trust 1 certificate(s) from SSL_CERT_FILE"));
    let _ = std::fs::remove_file(&config);
}
