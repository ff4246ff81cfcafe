//! Ollama clients of OpenAI-compatible backends through the router (SPEC §3): streams are translated
//! chunk by chunk as they arrive, errors keep the upstream status and come back in Ollama's format,
//! before and during a stream.

mod common;

use std::io::{BufRead, BufReader};

use common::*;

fn openai_router(mock: &Mock) -> Router {
    Router::start(
        &config_for(&[format!("{}/v1", mock.url())], ""),
        &["--log-level", "warn"],
    )
}

#[test]
fn translated_stream_is_relayed_while_the_backend_still_generates() {
    let m = Mock::start(&[
        "--kind",
        "openai",
        "--models",
        "gpt-x",
        "--tokens",
        "30",
        "--token-delay-ms",
        "40",
    ]);
    let router = openai_router(&m);
    let resp = ureq::post(&router.url("/api/chat"))
        .send_string(r#"{"model":"gpt-x","messages":[{"role":"user","content":"hi"}]}"#)
        .unwrap();
    assert_eq!(resp.header("content-type"), Some("application/x-ndjson"));
    let mut reader = BufReader::new(resp.into_reader());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["message"]["content"], "tok0 ");
    assert_eq!(v["done"], false);
    // The first line reached us while the backend was still streaming: nothing was buffered.
    assert_eq!(m.stats()["in_flight"], 1);
    let rest: Vec<String> = reader.lines().map_while(Result::ok).collect();
    let last: serde_json::Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(last["done"], true);
    assert_eq!(last["eval_count"], 30);
    assert_eq!(rest.len(), 30, "29 more tokens and the final line");
}

#[test]
fn upstream_errors_keep_status_in_ollama_form_before_and_during_the_stream() {
    let m = Mock::start(&["--kind", "openai", "--models", "gpt-x", "--tokens", "8"]);
    let router = openai_router(&m);
    let url = router.url("/api/chat");
    let body = r#"{"model":"gpt-x","messages":[{"role":"user","content":"hi"}]}"#;
    let r = post_with(&url, body, &[("x-mock-fault", "500")]);
    assert_eq!(r.status, 500);
    assert_eq!(r.json(), serde_json::json!({"error": "mock failure"}));
    let (status, lines) = stream_lines(&url, body, &[("x-mock-fault", "die")]);
    assert_eq!(status, 200);
    let last: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert!(last["error"].is_string(), "{lines:?}");
    assert!(
        lines.iter().all(|l| !l.contains("\"done\":true")),
        "{lines:?}"
    );
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

#[test]
fn non_streamed_translation_and_stream_options_only_when_streaming() {
    let m = Mock::start(&["--kind", "openai", "--models", "gpt-x", "--tokens", "3"]);
    let router = openai_router(&m);
    let r = post(
        &router.url("/api/generate"),
        r#"{"model":"gpt-x","prompt":"hi","stream":false}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["response"], "tok0 tok1 tok2 ");
    assert_eq!(v["done"], true);
    assert_eq!(v["model"], "gpt-x");
    let r = post(
        &router.url("/api/embed"),
        r#"{"model":"gpt-x","input":["a","b","c"]}"#,
    );
    assert_eq!(r.json()["embeddings"].as_array().unwrap().len(), 3);
}

#[test]
fn show_answers_for_models_on_openai_endpoints() {
    let m = Mock::start(&["--kind", "llama-server", "--models", "org/tiny-GGUF:Q8_0"]);
    let router = Router::start(
        &format!("llama_server_endpoints:\n  - {}\nendpoints: []\n", m.url()),
        &["--log-level", "warn"],
    );
    let r = post(&router.url("/api/show"), r#"{"model":"tiny-GGUF"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["details"]["quantization_level"], "Q8_0");
}
