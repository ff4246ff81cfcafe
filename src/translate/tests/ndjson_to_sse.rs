//! Golden tests of `NdjsonToSse` (Ollama NDJSON → OpenAI SSE) on recorded-style streams.

use super::{ndjson_translator, run_ndjson, sse_payloads};
use crate::translate::OpenAiRoute;

/// Ollama /api/chat stream of a thinking model: thinking alone, thinking and content in one line,
/// multi-byte UTF-8, two whole tool calls (one without id) and the final line with counts.
pub(super) const OLLAMA_CHAT_STREAM: &str = r#"{"model":"qwen3","created_at":"2025-01-01T00:00:00.1Z","message":{"role":"assistant","content":"","thinking":"Thinking..."},"done":false}
{"model":"qwen3","created_at":"2025-01-01T00:00:00.2Z","message":{"role":"assistant","content":"Sure","thinking":" done."},"done":false}
{"model":"qwen3","created_at":"2025-01-01T00:00:00.3Z","message":{"role":"assistant","content":" héllo 日本"},"done":false}
{"model":"qwen3","created_at":"2025-01-01T00:00:00.4Z","message":{"role":"assistant","content":"","tool_calls":[{"id":"call_x1","function":{"index":0,"name":"get_weather","arguments":{"city":"Tokyo"}}},{"function":{"index":1,"name":"get_time","arguments":{}}}]},"done":false}
{"model":"qwen3","created_at":"2025-01-01T00:00:00.5Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":123,"load_duration":1,"prompt_eval_count":26,"prompt_eval_duration":5,"eval_count":31,"eval_duration":100}
"#;

const OLLAMA_CHAT_STREAM_OUT: &str = r#"data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"reasoning":"Thinking..."},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"reasoning":" done."},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"Sure"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":" héllo 日本"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_x1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Tokyo\"}"}},{"index":1,"id":"call_p0","type":"function","function":{"name":"get_time","arguments":"{}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"chatcmpl-test","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":26,"completion_tokens":31,"total_tokens":57}}

data: [DONE]

"#;

/// Ollama /api/generate stream, cut by `num_predict`.
pub(super) const OLLAMA_GENERATE_STREAM: &str = r#"{"model":"llama3","created_at":"2025-01-01T00:00:00Z","response":"The","done":false}
{"model":"llama3","created_at":"2025-01-01T00:00:00Z","response":" sky","thinking":"hidden","done":false}
{"model":"llama3","created_at":"2025-01-01T00:00:00Z","response":"","done":true,"done_reason":"length","context":[1,2,3],"total_duration":10,"load_duration":1,"prompt_eval_count":4,"prompt_eval_duration":2,"eval_count":2,"eval_duration":3}
"#;

fn chat_chunk(delta: &str, finish: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-test","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish}}}]}}"#
    )
}

#[test]
fn chat_stream_golden_with_usage() {
    let out = run_ndjson(OpenAiRoute::Chat, true, &[OLLAMA_CHAT_STREAM.as_bytes()]);
    assert_eq!(out, OLLAMA_CHAT_STREAM_OUT);
}

#[test]
fn chat_stream_without_usage_has_no_usage_fields() {
    let out = run_ndjson(OpenAiRoute::Chat, false, &[OLLAMA_CHAT_STREAM.as_bytes()]);
    let payloads = sse_payloads(&out);
    assert_eq!(payloads.len(), 8, "no usage chunk: {payloads:?}");
    assert!(!out.contains("usage"));
    assert_eq!(
        payloads[0],
        chat_chunk(r#"{"role":"assistant","content":""}"#, "null")
    );
    assert_eq!(payloads[6], chat_chunk("{}", r#""tool_calls""#));
    assert_eq!(payloads[7], "[DONE]");
}

#[test]
fn usage_is_known_after_the_done_line() {
    let mut t = ndjson_translator(OpenAiRoute::Chat, false);
    let mut out = Vec::new();
    let (head, last) = OLLAMA_CHAT_STREAM.trim_end().rsplit_once('\n').unwrap();
    t.feed(head.as_bytes(), &mut out);
    t.feed(b"\n", &mut out);
    assert_eq!(t.usage(), None);
    assert!(!String::from_utf8_lossy(&out).contains("[DONE]"));
    t.feed(last.as_bytes(), &mut out);
    assert_eq!(
        t.usage(),
        None,
        "the line is not complete without its newline"
    );
    t.feed(b"\n", &mut out);
    assert_eq!(t.usage(), Some((26, 31)));
    assert!(out.ends_with(b"data: [DONE]\n\n"));
    let before = out.len();
    t.finish(&mut out);
    assert_eq!(out.len(), before, "finish adds nothing after [DONE]");
}

#[test]
fn generate_stream_to_text_completion() {
    let out = run_ndjson(
        OpenAiRoute::Completions,
        true,
        &[OLLAMA_GENERATE_STREAM.as_bytes()],
    );
    let text = |t: &str, finish: &str| {
        format!(
            r#"{{"id":"chatcmpl-test","object":"text_completion","created":1700000000,"model":"gpt-4o","choices":[{{"text":"{t}","index":0,"logprobs":null,"finish_reason":{finish}}}],"usage":null}}"#
        )
    };
    assert_eq!(
        sse_payloads(&out),
        [
            text("The", "null"),
            text(" sky", "null"),
            text("", r#""length""#),
            r#"{"id":"chatcmpl-test","object":"text_completion","created":1700000000,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}}"#.to_string(),
            "[DONE]".to_string(),
        ]
    );
}

#[test]
fn error_line_ends_the_stream_without_done() {
    let stream = concat!(
        r#"{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"Hi"},"done":false}"#,
        "\n",
        r#"{"error":"an error was encountered while running the model: unexpected EOF"}"#,
        "\n",
        r#"{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"late"},"done":false}"#,
        "\n",
    );
    let out = run_ndjson(OpenAiRoute::Chat, true, &[stream.as_bytes()]);
    let payloads = sse_payloads(&out);
    assert_eq!(payloads.len(), 3);
    assert_eq!(
        payloads[2],
        r#"{"error":{"message":"an error was encountered while running the model: unexpected EOF","type":"api_error","param":null,"code":null}}"#
    );
    assert!(!out.contains("[DONE]") && !out.contains("late"));
}

#[test]
fn error_before_anything_sends_only_the_error() {
    let out = run_ndjson(
        OpenAiRoute::Chat,
        false,
        &[b"{\"error\":\"model not found\"}\n"],
    );
    let payloads = sse_payloads(&out);
    assert_eq!(payloads.len(), 1);
    assert!(payloads[0].contains("model not found"));
}

#[test]
fn truncated_stream_is_an_error_event() {
    let cut = &OLLAMA_CHAT_STREAM[..OLLAMA_CHAT_STREAM
        .find(r#"{"model":"qwen3","created_at":"2025-01-01T00:00:00.3Z""#)
        .unwrap()];
    let out = run_ndjson(OpenAiRoute::Chat, true, &[cut.as_bytes()]);
    let payloads = sse_payloads(&out);
    assert_eq!(payloads.len(), 5);
    assert!(payloads[4].contains("ended before the answer was complete"));
    assert!(!out.contains("[DONE]"));
}

#[test]
fn crlf_blank_lines_and_unterminated_done_line() {
    let stream = "{\"message\":{\"role\":\"assistant\",\"content\":\"a\"},\"done\":false}\r\n\r\n{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"length\",\"prompt_eval_count\":1,\"eval_count\":2}";
    let out = run_ndjson(OpenAiRoute::Chat, false, &[stream.as_bytes()]);
    assert_eq!(
        sse_payloads(&out),
        [
            chat_chunk(r#"{"role":"assistant","content":""}"#, "null"),
            chat_chunk(r#"{"content":"a"}"#, "null"),
            chat_chunk("{}", r#""length""#),
            "[DONE]".to_string(),
        ]
    );
}

#[test]
fn load_reply_is_an_empty_answer() {
    let stream = "{\"model\":\"m\",\"created_at\":\"2025-01-01T00:00:00Z\",\"response\":\"\",\"done\":true,\"done_reason\":\"load\"}\n";
    let out = run_ndjson(OpenAiRoute::Chat, false, &[stream.as_bytes()]);
    assert_eq!(
        sse_payloads(&out),
        [
            chat_chunk(r#"{"role":"assistant","content":""}"#, "null"),
            chat_chunk("{}", r#""stop""#),
            "[DONE]".to_string()
        ]
    );
}

#[test]
fn invalid_line_is_an_error_event() {
    let out = run_ndjson(
        OpenAiRoute::Chat,
        false,
        &[b"<html>502 Bad Gateway</html>\n"],
    );
    let payloads = sse_payloads(&out);
    assert_eq!(payloads.len(), 1);
    assert!(payloads[0].contains("invalid stream line: <html>502 Bad Gateway</html>"));
}

#[test]
fn plain_error_page_keeps_its_text() {
    let out = run_ndjson(
        OpenAiRoute::Chat,
        false,
        &[b"<html>503 Service Unavailable</html>"],
    );
    assert_eq!(
        sse_payloads(&out),
        [
            r#"{"error":{"message":"<html>503 Service Unavailable</html>","type":"api_error","param":null,"code":null}}"#
        ]
    );
}
