//! API edges: `/v1/responses` passed through to an endpoint that serves it (another one tried when
//! the first has no such route), else an OpenAI-format 404 that says so; unknown `/v1/` routes in
//! OpenAI's format; a wrong router key on OpenAI's routes as 401.

mod common;

use common::*;

const RESPONSES: &str = r#"{"model":"m","input":"hello"}"#;
const RESPONSES_STREAM: &str = r#"{"model":"m","input":"hello","stream":true}"#;

#[test]
fn responses_reach_an_endpoint_that_serves_them() {
    let ollama = Mock::start(&["--models", "m"]);
    let openai = Mock::start(&["--kind", "openai", "--models", "m"]);
    let router = Router::start(
        &config_for(&[ollama.url(), format!("{}/v1", openai.url())], ""),
        &[],
    );
    // Whichever endpoint is chosen first, the answer comes from the one with the route.
    for _ in 0..4 {
        let r = post(&router.url("/v1/responses"), RESPONSES);
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(
            r.json()["output"][0]["content"][0]["text"],
            "You said \"hello\""
        );
        assert_eq!(
            r.header("x-router-endpoint"),
            Some(format!("{}/v1", openai.url()).as_str())
        );
    }
    let r = post(&router.url("/v1/responses"), RESPONSES_STREAM);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(
        r.body.contains("event: response.output_text.delta"),
        "{}",
        r.body
    );
    assert!(
        r.body.contains("\"type\":\"response.completed\""),
        "{}",
        r.body
    );
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
    // Counted from the Responses API's usage (3 in, 4 out), whole and streamed: five answers.
    let endpoint = format!("{}/v1", openai.url());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while router.usage()["token_usage_counts"][&endpoint]["m"] != 35 {
        assert!(std::time::Instant::now() < deadline, "{}", router.usage());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn responses_nobody_serves_are_an_openai_404_that_says_so() {
    let ollama = Mock::start(&["--models", "m"]);
    let router = Router::start(&config_for(&[ollama.url()], ""), &[]);
    let r = post(&router.url("/v1/responses"), RESPONSES);
    assert_eq!(r.status, 404, "{}", r.body);
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("serves /v1/responses"), "{message}");
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    // Unknown routes and wrong methods under /v1/ answer in OpenAI's format too.
    let r = post(&router.url("/v1/nothing"), "{}");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v1/nothing"));
    let r = get(&router.url("/v1/responses"));
    assert_eq!(r.status, 405);
    assert!(r.json()["error"]["message"].is_string(), "{}", r.body);
    assert_eq!(router.wait_idle()["total_in_flight"], 0);
}

#[test]
fn a_wrong_key_is_401_on_openai_routes_and_403_on_ollama_routes() {
    let m = Mock::start(&["--models", "m"]);
    let router = Router::start(&config_for(&[m.url()], "nomyo-router-api-key: k\n"), &[]);
    let wrong = [("authorization", "Bearer nope")];
    let r = request("GET", &router.url("/v1/models"), "", &wrong);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let r = request("POST", &router.url("/v1/chat/completions"), "{}", &wrong);
    assert_eq!(r.status, 401, "{}", r.body);
    let r = request("GET", &router.url("/api/tags"), "", &wrong);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.json()["error"].is_string());
}

const TOOLS_CHAT: &str = r#"{"model":"m","stream":false,"messages":[{"role":"user","content":"weather?"}],
  "tools":[{"type":"function","function":{"name":"w","parameters":{"type":"object"}}}]}"#;
const IMAGE_CHAT: &str = r#"{"model":"m","stream":false,"messages":[{"role":"user","content":"what is this?","images":["aGk="]}]}"#;

#[test]
fn a_backend_without_tools_or_vision_gets_the_request_again_without_them() {
    for kind in ["ollama", "llama-server"] {
        let m = Mock::start(&["--kind", kind, "--models", "m", "--refuse", "tools,images"]);
        let router = Router::start(
            &config_for(&[format!("{{url: '{}', kind: {kind}}}", m.url())], ""),
            &[],
        );
        let r = post(&router.url("/api/chat"), TOOLS_CHAT);
        assert_eq!(r.status, 200, "{kind}: {}", r.body);
        assert_eq!(
            r.header("x-router-retried-without"),
            Some("tools"),
            "{kind}"
        );
        assert!(r.json()["message"]["content"].is_string(), "{}", r.body);
        let r = post(&router.url("/api/chat"), IMAGE_CHAT);
        assert_eq!(r.status, 200, "{kind}: {}", r.body);
        assert_eq!(
            r.header("x-router-retried-without"),
            Some("images"),
            "{kind}"
        );
        // Both refused in one request: two retries, both named.
        let both = TOOLS_CHAT.replace(
            r#""content":"weather?""#,
            r#""content":"weather?","images":["aGk="]"#,
        );
        let r = post(&router.url("/api/chat"), &both);
        assert_eq!(r.status, 200, "{kind}: {}", r.body);
        let said = r.header("x-router-retried-without").unwrap().to_string();
        assert!(said.contains("tools") && said.contains("images"), "{said}");
        assert!(router.log().contains("sending it again without them"));
        assert_eq!(router.wait_idle()["total_in_flight"], 0);
    }
}

#[test]
fn an_openai_client_with_image_parts_keeps_its_text() {
    let m = Mock::start(&["--kind", "ollama", "--models", "m", "--refuse", "images"]);
    let router = Router::start(&config_for(&[m.url()], ""), &[]);
    let body = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"describe"},
        {"type":"image_url","image_url":{"url":"data:image/png;base64,aGk="}}]}]}"#;
    let r = post(&router.url("/v1/chat/completions"), body);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-router-retried-without"), Some("images"));
    // Errors that refuse nothing pass on in the client's format, once.
    let m = Mock::start(&["--models", "m", "--fault", "500"]);
    let router = Router::start(&config_for(&[m.url()], "limits:\n  max_retries: 0\n"), &[]);
    let r = post(&router.url("/api/chat"), TOOLS_CHAT);
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.json()["error"], "mock failure");
    assert_eq!(r.header("x-router-retried-without"), None);
    assert_eq!(m.stats()["inference"], 1);
}

fn long_chat(turns: usize, stream: bool) -> String {
    let mut messages = vec![serde_json::json!({"role": "system", "content": "be brief"})];
    for i in 0..turns {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(serde_json::json!({"role": role, "content": format!("turn {i} {}", "word ".repeat(40))}));
    }
    serde_json::json!({"model": "m", "stream": stream, "messages": messages,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]})
    .to_string()
}

fn upstream_requests(router: &Router) -> u64 {
    get(&router.url("/metrics"))
        .body
        .lines()
        .filter(|l| l.starts_with("nomyo_router_upstream_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn a_chat_longer_than_the_context_is_cut_and_the_next_is_cut_before_sending() {
    for style in ["new", "old"] {
        let m = Mock::start(&[
            "--kind",
            "llama-server",
            "--models",
            "m",
            "--n-ctx",
            "1024",
            "--ctx-error",
            style,
        ]);
        let router = Router::start(
            &config_for(&[format!("{{url: '{}', kind: llama-server}}", m.url())], ""),
            &[],
        );
        // Ollama's client, translated: cut once after the error.
        let r = post(&router.url("/api/chat"), &long_chat(60, false));
        assert_eq!(r.status, 200, "{style}: {}", r.body);
        let dropped: usize = r
            .header("x-router-context-trimmed")
            .unwrap()
            .parse()
            .unwrap();
        assert!(dropped > 0 && dropped < 60, "{dropped}");
        assert!(router
            .log()
            .contains("sending it again without its oldest messages"));
        // Learned: the next long chat is cut before it is sent, one upstream request.
        let before = upstream_requests(&router);
        let r = post(&router.url("/api/chat"), &long_chat(60, true));
        assert_eq!(r.status, 200, "{style}: {}", r.body);
        assert!(r.header("x-router-context-trimmed").is_some());
        assert_eq!(upstream_requests(&router) - before, 1, "{style}");
        // An OpenAI client's long chat is cut too.
        let r = post(&router.url("/v1/chat/completions"), &long_chat(60, false));
        assert_eq!(r.status, 200, "{style}: {}", r.body);
        assert!(r.header("x-router-context-trimmed").is_some());
        // What fits goes as it is.
        let r = post(&router.url("/api/chat"), &long_chat(3, false));
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-router-context-trimmed"), None);
        assert_eq!(router.wait_idle()["total_in_flight"], 0);
    }
}

#[test]
fn with_context_trim_off_the_error_passes_through() {
    let m = Mock::start(&["--kind", "llama-server", "--models", "m", "--n-ctx", "1024"]);
    let router = Router::start(
        &config_for(
            &[format!("{{url: '{}', kind: llama-server}}", m.url())],
            "context_trim: false\n",
        ),
        &[],
    );
    let r = post(&router.url("/v1/chat/completions"), &long_chat(60, false));
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("exceeds the available context size"),
        "{}",
        r.body
    );
    assert_eq!(r.header("x-router-context-trimmed"), None);
}
