//! Test harness: real mock-backend and router processes on 127.0.0.1, killed when dropped, and a
//! small blocking HTTP client.
#![allow(dead_code)]

pub mod redis;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on port {port}");
}

/// A child process that is killed when dropped.
pub struct Proc {
    pub child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Mock {
    pub port: u16,
    pub proc: Proc,
}

impl Mock {
    pub fn start(args: &[&str]) -> Mock {
        let port = free_port();
        Self::start_on(port, args)
    }

    pub fn start_on(port: u16, args: &[&str]) -> Mock {
        let child = Command::new(env!("CARGO_BIN_EXE_mock-backend"))
            .args(["--port", &port.to_string()])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mock-backend");
        wait_for_port(port, "mock-backend");
        Mock {
            port,
            proc: Proc { child },
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stats(&self) -> serde_json::Value {
        get_json(&format!("{}/mock/stats", self.url())).1
    }

    pub fn kill(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }
}

pub struct Router {
    pub port: u16,
    pub proc: Proc,
    pub dir: PathBuf,
}

fn temp_dir() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("nomyo-test-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh directory under the system's temporary one, for a test's files.
pub fn scratch_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "nomyo-{name}-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Router {
    /// SIGTERM, then waits for the exit (the drain flushes the cache's writes).
    pub fn stop(mut self) {
        unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.proc.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the router did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the router with `yaml` as its config file and extra flags; waits until it listens.
    pub fn start(yaml: &str, args: &[&str]) -> Router {
        Self::start_env(yaml, args, &[])
    }

    pub fn start_env(yaml: &str, args: &[&str], env: &[(&str, &str)]) -> Router {
        let dir = temp_dir();
        let config = dir.join("config.yaml");
        std::fs::write(&config, yaml).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("router.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nomyo-router"));
        cmd.args([
            "--config",
            config.to_str().unwrap(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .args(args)
        // Relative paths (the token database's default) land in the test's own directory.
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start nomyo-router");
        wait_for_port(port, "nomyo-router");
        Router {
            port,
            proc: Proc { child },
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("router.log")).unwrap_or_default()
    }

    pub fn usage(&self) -> serde_json::Value {
        self.usage_as(&[])
    }

    /// `/api/usage` with extra request headers (a router key).
    pub fn usage_as(&self, headers: &[(&str, &str)]) -> serde_json::Value {
        request("GET", &self.url("/api/usage"), "", headers).json()
    }

    /// Waits until every slot and queue is back at zero; returns the last usage seen.
    pub fn wait_idle(&self) -> serde_json::Value {
        self.wait_idle_as(&[])
    }

    /// `wait_idle`, asking with extra request headers (a router key).
    pub fn wait_idle_as(&self, headers: &[(&str, &str)]) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let u = self.usage_as(headers);
            if (u["total_in_flight"] == 0 && u["total_queued"] == 0) || Instant::now() > deadline {
                return u;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.child.id()
    }
}

/// A response: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

fn to_resp(r: Result<ureq::Response, ureq::Error>) -> Resp {
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = r.status();
    let headers = r
        .headers_names()
        .into_iter()
        .map(|n| {
            (
                n.to_ascii_lowercase(),
                r.header(&n).unwrap_or("").to_string(),
            )
        })
        .collect();
    let mut body = String::new();
    let _ = r.into_reader().read_to_string(&mut body);
    Resp {
        status,
        headers,
        body,
    }
}

pub fn get(url: &str) -> Resp {
    to_resp(agent().get(url).call())
}

pub fn get_json(url: &str) -> (u16, serde_json::Value) {
    let r = get(url);
    (
        r.status,
        serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null),
    )
}

pub fn post(url: &str, body: &str) -> Resp {
    post_with(url, body, &[])
}

pub fn post_with(url: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().post(url).set("content-type", "application/json");
    for (k, v) in headers {
        req = req.set(k, v);
    }
    to_resp(req.send_string(body))
}

pub fn request(method: &str, url: &str, body: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    to_resp(if body.is_empty() {
        req.call()
    } else {
        req.send_string(body)
    })
}

/// The status code of a raw response (0 when there is none).
pub fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Sends raw bytes and returns what came back until the server closed or `timeout` passed.
pub fn raw(port: u16, bytes: &[u8], timeout: Duration) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // One response is enough: stop once a complete head and declared body arrived.
                if response_complete(&out) {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn response_complete(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let Some(head_end) = text.find("\r\n\r\n") else {
        return false;
    };
    let head = text[..head_end].to_ascii_lowercase();
    match head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        Some(n) => data.len() >= head_end + 4 + n,
        None => head.contains("transfer-encoding: chunked") && text.ends_with("0\r\n\r\n"),
    }
}

/// Streams an NDJSON answer and returns its lines.
pub fn stream_lines(url: &str, body: &str, headers: &[(&str, &str)]) -> (u16, Vec<String>) {
    let mut req = agent().post(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let r = match req.send_string(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = r.status();
    let lines = BufReader::new(r.into_reader())
        .lines()
        .map_while(Result::ok)
        .filter(|l| !l.is_empty())
        .collect();
    (status, lines)
}

pub fn config_for(endpoints: &[String], extra: &str) -> String {
    let mut y = String::from("endpoints:\n");
    for e in endpoints {
        y.push_str(&format!("  - {e}\n"));
    }
    // A poll that times out marks its endpoint down: 3 s keeps a loaded CI machine from failing one.
    y.push_str("discovery:\n  loaded_interval: 200ms\n  models_interval: 1s\n  poll_timeout: 3s\n");
    y.push_str(extra);
    y
}
