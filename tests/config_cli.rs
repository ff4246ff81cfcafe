//! Configuration and CLI (SPEC §1): the brief's sample loads, `--check-config`, precedence, `${ENV}`,
//! errors with file, line, key and suggestion, `--help`.

mod common;

use std::process::Command;

use common::*;

fn router_cmd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nomyo-router"));
    for (k, _) in std::env::vars() {
        if k.starts_with("NOMYO_ROUTER_") {
            c.env_remove(k);
        }
    }
    c
}

fn write(name: &str, text: &str) -> String {
    let dir =
        std::env::temp_dir().join(format!("nomyo-cfg-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

const BRIEF: &str = r#"# config.yaml
endpoints:
  - http://ollama0:11434
  - http://ollama1:11434
  - http://ollama2:11434
  - https://api.openai.com/v1

llama_server_endpoints:
  - http://192.168.0.33:8889/v1

max_concurrent_connections: 2

nomyo-router-api-key: ""

api_keys:
  "http://192.168.0.50:11434": "ollama"
  "http://192.168.0.51:11434": "ollama"
  "http://192.168.0.52:11434": "ollama"
  "https://api.openai.com/v1": "${OPENAI_KEY}"
  "http://192.168.0.33:8889/v1": "llama"
"#;

#[test]
fn the_briefs_sample_config_loads_unchanged() {
    let path = write("config.yaml", BRIEF);
    let out = router_cmd()
        .args(["--config", &path, "--check-config"])
        .env("OPENAI_KEY", "sk-test")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("5 endpoint(s)"), "{stdout}");
    assert!(
        stdout.contains("https://api.openai.com/v1 [openai] slots per model: 2, api key set"),
        "{stdout}"
    );
    assert!(
        stdout.contains("http://192.168.0.33:8889/v1 [llama-server]"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: api_keys names endpoints that are not configured"),
        "{stdout}"
    );
    assert!(!stdout.contains("sk-test"), "secrets are never printed");
    // Without the variable the error names it and the key.
    let out = router_cmd()
        .args(["--config", &path, "--check-config"])
        .env_remove("OPENAI_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("OPENAI_KEY") && err.contains("api_keys") && err.contains(&path),
        "{err}"
    );
}

#[test]
fn config_errors_name_file_line_key_and_suggestion() {
    let cases = [
        (
            "endpoints: []\nmax_concurent_connections: 2\n",
            ":2: key 'max_concurent_connections'",
            "did you mean 'max_concurrent_connections'",
        ),
        (
            "endpoints:\n  - ollama0:11434\n",
            ":1: key 'endpoints'",
            "must start with http://",
        ),
        (
            "endpoints:\n  - http://a:1\n  - http://a:1/\n",
            "key 'endpoints'",
            "duplicate endpoint",
        ),
        ("port: 99999\n", ":1: key 'port'", "from 0 to 65535"),
        (
            "queue:\n  mode: maybe\n",
            ":2: key 'queue.mode'",
            "queue, overflow, reject",
        ),
        (
            "timeouts:\n  idle: soon\n",
            ":2: key 'timeouts.idle'",
            "duration",
        ),
        ("endpoints: [\n", "invalid YAML", ""),
        ("- a\n- b\n", "must be a mapping", ""),
    ];
    for (yaml, location, hint) in cases {
        let path = write("bad.yaml", yaml);
        let out = router_cmd()
            .args(["--config", &path, "--check-config"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{yaml}: {err}");
        assert!(
            err.contains(location) && err.contains(hint),
            "{yaml}: {err}"
        );
    }
    let out = router_cmd()
        .args(["--config", "/nonexistent/x.yaml", "--check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

#[test]
fn flags_override_env_which_overrides_the_file() {
    let path = write("c.yaml", "endpoints:\n  - http://${BACKEND_HOST:-127.0.0.1}:11434\nmax_concurrent_connections: 3\nport: 1000\n");
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut c = router_cmd();
        c.args(["--config", &path, "--check-config"]).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        String::from_utf8_lossy(&c.output().unwrap().stdout).to_string()
    };
    let file_only = run(&[], &[]);
    assert!(
        file_only.contains("http://127.0.0.1:11434 [ollama] slots per model: 3")
            && file_only.contains(":1000"),
        "{file_only}"
    );
    let env = run(
        &[
            ("NOMYO_ROUTER_MAX_CONCURRENT_CONNECTIONS", "5"),
            ("NOMYO_ROUTER_PORT", "2000"),
            ("BACKEND_HOST", "gpu1"),
        ],
        &[],
    );
    assert!(
        env.contains("http://gpu1:11434 [ollama] slots per model: 5") && env.contains(":2000"),
        "{env}"
    );
    let flags = run(
        &[("NOMYO_ROUTER_PORT", "2000")],
        &["--port", "3000", "--max-concurrent-connections", "7"],
    );
    assert!(
        flags.contains("slots per model: 7") && flags.contains(":3000"),
        "{flags}"
    );
    let env_eps = run(
        &[("NOMYO_ROUTER_ENDPOINTS", "http://x:1,http://y:2/v1")],
        &[],
    );
    assert!(
        env_eps.contains("http://x:1 [ollama]") && env_eps.contains("http://y:2/v1 [openai]"),
        "{env_eps}"
    );
}

#[test]
fn config_path_comes_from_the_environment_when_no_flag() {
    let path = write("env.yaml", "endpoints:\n  - http://from-env:11434\n");
    let out = router_cmd()
        .args(["--check-config"])
        .env("NOMYO_ROUTER_CONFIG_PATH", &path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("http://from-env:11434"));
}

#[test]
fn help_documents_every_flag_and_the_environment() {
    let out = router_cmd().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--host",
        "--port",
        "--workers",
        "--io-driver",
        "--endpoint",
        "--max-concurrent-connections",
        "--log-level",
        "--log-format",
        "--check-config",
        "--help",
        "NOMYO_ROUTER_CONFIG_PATH",
        "NOMYO_ROUTER_API_KEY",
        "NOMYO_ROUTER_<KEY>",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn a_second_router_on_a_taken_port_refuses_to_start() {
    let m = Mock::start(&[]);
    let first = Router::start(&config_for(&[m.url()], ""), &["--log-level", "warn"]);
    let cfg = write(
        "second.yaml",
        &config_for(&[m.url()], "token_accounting: false\n"),
    );
    let out = router_cmd()
        .args(["--config", &cfg, "--host", "127.0.0.1"])
        .args(["--port", &first.port.to_string()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another router"), "{err}");
    // The first still answers every request (none went to a second listener).
    for _ in 0..20 {
        assert_eq!(get(&first.url("/health")).status, 200);
    }
}
