//! Golden tests of `SseToNdjson` (OpenAI SSE → Ollama NDJSON) on recorded-style streams.

use super::{ndjson_values, run_sse, sse, sse_translator, AT};
use crate::translate::OllamaRoute;

/// OpenAI (gpt-4o) chat stream: role chunk, content deltas (one with multi-byte UTF-8), a tool call whose
/// arguments arrive in 3 fragments, a finish-only chunk, a usage-only `choices: []` chunk, `[DONE]`.
pub(super) const OPENAI_TOOL_STREAM: &str = r#"data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Let me check "},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"héllo 日本."},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":"{\"ci"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\": \"Tök"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"yo\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[],"usage":{"prompt_tokens":42,"completion_tokens":17,"total_tokens":59,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}

data: [DONE]

"#;

const OPENAI_TOOL_STREAM_OUT: &str = concat!(
    r#"{"model":"llama3","created_at":"2023-11-14T22:13:20Z","message":{"role":"assistant","content":"Let me check "},"done":false}"#,
    "\n",
    r#"{"model":"llama3","created_at":"2023-11-14T22:13:20Z","message":{"role":"assistant","content":"héllo 日本."},"done":false}"#,
    "\n",
    r#"{"model":"llama3","created_at":"2023-11-14T22:13:20Z","message":{"role":"assistant","content":"","tool_calls":[{"id":"call_abc","function":{"index":0,"name":"get_weather","arguments":{"city":"Tökyo"}}}]},"done":false}"#,
    "\n",
    r#"{"model":"llama3","created_at":"2023-11-14T22:13:20Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":0,"load_duration":0,"prompt_eval_count":42,"prompt_eval_duration":0,"eval_count":17,"eval_duration":0}"#,
    "\n",
);

/// Ollama's own `/v1` (and vLLM ≥ 0.10): `delta.reasoning`, usage on the finish chunk.
pub(super) const REASONING_STREAM: &str = r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen3","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"Let me think"},"finish_reason":null}]}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen3","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":" more."},"finish_reason":null}]}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen3","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"Answer"},"finish_reason":null}]}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"qwen3","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":5,"total_tokens":14}}

data: [DONE]

"#;

/// vLLM (older reasoning parser): `reasoning_content`, running usage on every chunk starting with
/// `completion_tokens: 0`, a finish chunk with empty content, and a usage chunk with `choices: null`.
pub(super) const VLLM_STREAM: &str = r#"data: {"id":"chatcmpl-v","object":"chat.completion.chunk","created":1700000000,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":12,"completion_tokens":0}}

data: {"id":"chatcmpl-v","object":"chat.completion.chunk","created":1700000000,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"reasoning_content":"Hmm"},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":13,"completion_tokens":1}}

data: {"id":"chatcmpl-v","object":"chat.completion.chunk","created":1700000000,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":14,"completion_tokens":2}}

data: {"id":"chatcmpl-v","object":"chat.completion.chunk","created":1700000000,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":{"prompt_tokens":12,"total_tokens":15,"completion_tokens":3}}

data: {"id":"chatcmpl-v","object":"chat.completion.chunk","created":1700000000,"model":"Qwen/Qwen3-8B","choices":null,"usage":{"prompt_tokens":12,"total_tokens":15,"completion_tokens":3}}

data: [DONE]

"#;

/// llama-server event payloads: no `usage`, `timings` on the finish chunk (sent with `\r\n` line ends).
pub(super) const LLAMA_SERVER_EVENTS: [&str; 4] = [
    r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"created":1700000000,"id":"chatcmpl-l","model":"gpt-oss-20b-GGUF","system_fingerprint":"b6000-abc","object":"chat.completion.chunk"}"#,
    r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hello"}}],"created":1700000000,"id":"chatcmpl-l","model":"gpt-oss-20b-GGUF","system_fingerprint":"b6000-abc","object":"chat.completion.chunk"}"#,
    r#"{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1700000000,"id":"chatcmpl-l","model":"gpt-oss-20b-GGUF","system_fingerprint":"b6000-abc","object":"chat.completion.chunk","timings":{"cache_n":10,"prompt_n":5,"prompt_ms":12.5,"prompt_per_token_ms":2.5,"prompt_per_second":400.0,"predicted_n":3,"predicted_ms":30.0,"predicted_per_token_ms":10.0,"predicted_per_second":100.0}}"#,
    "[DONE]",
];

pub(super) fn llama_server_stream() -> String {
    sse(&LLAMA_SERVER_EVENTS).replace('\n', "\r\n")
}

/// Azure OpenAI: a first chunk with empty `choices` (prompt filter results), no usage.
pub(super) const AZURE_STREAM: &str = r#"data: {"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}

data: {"choices":[{"content_filter_results":{},"delta":{"content":"","refusal":null,"role":"assistant"},"finish_reason":null,"index":0,"logprobs":null}],"created":1700000000,"id":"chatcmpl-a","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_a"}

data: {"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"delta":{"content":"Hi there"},"finish_reason":null,"index":0,"logprobs":null}],"created":1700000000,"id":"chatcmpl-a","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_a"}

data: {"choices":[{"content_filter_results":{},"delta":{},"finish_reason":"stop","index":0,"logprobs":null}],"created":1700000000,"id":"chatcmpl-a","model":"gpt-4o-2024-08-06","object":"chat.completion.chunk","system_fingerprint":"fp_a"}

data: [DONE]

"#;

/// A server error in the middle of the stream; what follows it must not be sent.
pub(super) const ERROR_STREAM: &str = r#"data: {"id":"c","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"Partial"},"finish_reason":null}]}

data: {"error":{"message":"CUDA error: out of memory","type":"server_error","param":null,"code":500}}

data: {"id":"c","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"content":"ignored"},"finish_reason":"stop"}]}

data: [DONE]

"#;

/// SSE syntax corners: BOM, comments, `event:`/`id:`/`retry:` lines, a payload split over two `data:`
/// lines, `data:` without a space, and a `[DONE]` without the final blank line.
pub(super) const SYNTAX_STREAM: &str = "\u{feff}: OPENROUTER PROCESSING\n\nevent: message\nid: 1\nretry: 5000\ndata: {\"choices\":[{\"index\":0,\ndata: \"delta\":{\"content\":\"x\"}}]}\n\n: keep-alive\ndata:{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"y\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]";

fn final_line(reason: &str, prompt: u64, eval: u64) -> String {
    format!(
        r#"{{"model":"llama3","created_at":"{AT}","message":{{"role":"assistant","content":""}},"done":true,"done_reason":"{reason}","total_duration":0,"load_duration":0,"prompt_eval_count":{prompt},"prompt_eval_duration":0,"eval_count":{eval},"eval_duration":0}}"#
    ) + "\n"
}

fn content_line(content: &str) -> String {
    format!(
        r#"{{"model":"llama3","created_at":"{AT}","message":{{"role":"assistant","content":"{content}"}},"done":false}}"#
    ) + "\n"
}

#[test]
fn tool_call_stream_golden() {
    assert_eq!(
        run_sse(OllamaRoute::Chat, &[OPENAI_TOOL_STREAM.as_bytes()]),
        OPENAI_TOOL_STREAM_OUT
    );
}

#[test]
fn tool_call_is_sent_at_finish_reason_and_final_line_at_done() {
    let mut t = sse_translator(OllamaRoute::Chat);
    let events: Vec<&str> = OPENAI_TOOL_STREAM.split_inclusive("\n\n").collect();
    assert_eq!(events.len(), 9);
    let mut out = Vec::new();
    let mut lines_after = Vec::new();
    for ev in &events {
        t.feed(ev.as_bytes(), &mut out);
        lines_after.push(out.iter().filter(|&&b| b == b'\n').count());
    }
    // role: nothing; 2 content lines; fragments: nothing; finish chunk: the tool call; usage: nothing
    // (waits for [DONE]); [DONE]: the final line.
    assert_eq!(lines_after, [0, 1, 2, 2, 2, 2, 3, 3, 4]);
    assert_eq!(t.usage(), Some((42, 17)));
    t.finish(&mut out);
    assert_eq!(String::from_utf8(out).unwrap(), OPENAI_TOOL_STREAM_OUT);
}

#[test]
fn reasoning_stream_golden() {
    let expected = [
        format!(r#"{{"model":"llama3","created_at":"{AT}","message":{{"role":"assistant","content":"","thinking":"Let me think"}},"done":false}}"#) + "\n",
        format!(r#"{{"model":"llama3","created_at":"{AT}","message":{{"role":"assistant","content":"","thinking":" more."}},"done":false}}"#) + "\n",
        content_line("Answer"),
        content_line("!"),
        final_line("stop", 9, 5),
    ]
    .concat();
    assert_eq!(
        run_sse(OllamaRoute::Chat, &[REASONING_STREAM.as_bytes()]),
        expected
    );
}

#[test]
fn vllm_reasoning_content_on_generate_with_running_usage() {
    let expected = [
        format!(r#"{{"model":"llama3","created_at":"{AT}","response":"","thinking":"Hmm","done":false}}"#) + "\n",
        format!(r#"{{"model":"llama3","created_at":"{AT}","response":"Hi","done":false}}"#) + "\n",
        format!(r#"{{"model":"llama3","created_at":"{AT}","response":"","done":true,"done_reason":"length","total_duration":0,"load_duration":0,"prompt_eval_count":12,"prompt_eval_duration":0,"eval_count":3,"eval_duration":0}}"#) + "\n",
    ]
    .concat();
    assert_eq!(
        run_sse(OllamaRoute::Generate, &[VLLM_STREAM.as_bytes()]),
        expected
    );
}

#[test]
fn first_usage_with_zero_completion_tokens_is_overwritten() {
    let mut t = sse_translator(OllamaRoute::Chat);
    let first = VLLM_STREAM.split_inclusive("\n\n").next().unwrap();
    let mut out = Vec::new();
    t.feed(first.as_bytes(), &mut out);
    assert!(out.is_empty(), "a role-only chunk sends nothing");
    assert_eq!(t.usage(), Some((12, 0)));
    t.feed(&VLLM_STREAM.as_bytes()[first.len()..], &mut out);
    assert_eq!(t.usage(), Some((12, 3)));
}

#[test]
fn llama_server_timings_instead_of_usage() {
    let expected = [
        content_line("Hello"),
        format!(r#"{{"model":"llama3","created_at":"{AT}","message":{{"role":"assistant","content":""}},"done":true,"done_reason":"stop","total_duration":42500000,"load_duration":0,"prompt_eval_count":15,"prompt_eval_duration":12500000,"eval_count":3,"eval_duration":30000000}}"#) + "\n",
    ]
    .concat();
    assert_eq!(
        run_sse(OllamaRoute::Chat, &[llama_server_stream().as_bytes()]),
        expected
    );
    let mut t = sse_translator(OllamaRoute::Chat);
    t.feed(llama_server_stream().as_bytes(), &mut Vec::new());
    assert_eq!(t.usage(), Some((15, 3)));
}

#[test]
fn usage_from_usage_wins_over_timings() {
    let stream = sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}],"timings":{"prompt_n":1,"predicted_n":1,"predicted_ms":2.0}}"#,
        r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":8,"total_tokens":15}}"#,
        "[DONE]",
    ]);
    let out = ndjson_values(&run_sse(OllamaRoute::Chat, &[stream.as_bytes()]));
    let last = out.last().unwrap();
    assert_eq!(
        (
            last["prompt_eval_count"].as_u64(),
            last["eval_count"].as_u64()
        ),
        (Some(7), Some(8))
    );
    assert_eq!(last["eval_duration"], 2_000_000);
}

#[test]
fn empty_choices_chunks_are_skipped_without_error() {
    let expected = [content_line("Hi there"), final_line("stop", 0, 0)].concat();
    assert_eq!(
        run_sse(OllamaRoute::Chat, &[AZURE_STREAM.as_bytes()]),
        expected
    );
}

#[test]
fn error_event_mid_stream_ends_the_stream() {
    let expected = [
        content_line("Partial"),
        "{\"error\":\"CUDA error: out of memory\"}\n".to_string(),
    ]
    .concat();
    let mut t = sse_translator(OllamaRoute::Chat);
    let mut out = Vec::new();
    t.feed(ERROR_STREAM.as_bytes(), &mut out);
    t.finish(&mut out);
    t.feed(
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"late\"}}]}\n\n",
        &mut out,
    );
    t.finish(&mut out);
    assert_eq!(String::from_utf8(out).unwrap(), expected);
}

#[test]
fn openrouter_error_chunk_with_finish_reason_error() {
    let stream = sse(&[
        r#"{"id":"gen-1","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
        r#"{"id":"gen-1","error":{"code":502,"message":"Provider disconnected"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#,
    ]);
    let out = ndjson_values(&run_sse(OllamaRoute::Chat, &[stream.as_bytes()]));
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[1],
        serde_json::json!({"error": "Provider disconnected"})
    );
}

#[test]
fn truncated_stream_is_an_error() {
    let cut = &OPENAI_TOOL_STREAM[..OPENAI_TOOL_STREAM.find(r#"{"arguments":"yo"#).unwrap()];
    let out = ndjson_values(&run_sse(OllamaRoute::Chat, &[cut.as_bytes()]));
    assert_eq!(
        out.len(),
        3,
        "two content lines and the error, no half tool call: {out:?}"
    );
    assert_eq!(
        out[2],
        serde_json::json!({"error": "the upstream stream ended before the answer was complete"})
    );
    // Nothing at all, then the end: still an error, not an empty answer.
    assert_eq!(ndjson_values(&run_sse(OllamaRoute::Chat, &[])).len(), 1);
}

#[test]
fn finish_reason_without_done_completes_at_finish() {
    let cut = &OPENAI_TOOL_STREAM[..OPENAI_TOOL_STREAM.find("data: [DONE]").unwrap()];
    assert_eq!(
        run_sse(OllamaRoute::Chat, &[cut.as_bytes()]),
        OPENAI_TOOL_STREAM_OUT
    );
}

#[test]
fn done_without_finish_reason_flushes_tool_calls() {
    let stream = sse(&[
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}}]}}]}"#,
        "[DONE]",
    ]);
    let out = ndjson_values(&run_sse(OllamaRoute::Chat, &[stream.as_bytes()]));
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[0]["message"]["tool_calls"],
        serde_json::json!([{"id": "c1", "function": {"index": 0, "name": "f", "arguments": {"a": 1}}}])
    );
    assert_eq!(out[1]["done_reason"], "stop");
}

#[test]
fn parallel_tool_calls_interleaved() {
    let stream = sse(&[
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c0","type":"function","function":{"name":"weather","arguments":""}},{"index":1,"id":"c1","type":"function","function":{"name":"time","arguments":""}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"tz\":\"UTC\"}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Paris\"}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
        "[DONE]",
    ]);
    let out = ndjson_values(&run_sse(OllamaRoute::Chat, &[stream.as_bytes()]));
    assert_eq!(
        out[0]["message"]["tool_calls"],
        serde_json::json!([
            {"id": "c0", "function": {"index": 0, "name": "weather", "arguments": {"city": "Paris"}}},
            {"id": "c1", "function": {"index": 1, "name": "time", "arguments": {"tz": "UTC"}}}
        ])
    );
}

#[test]
fn sse_syntax_corners() {
    let expected = [
        content_line("x"),
        content_line("y"),
        final_line("stop", 0, 0),
    ]
    .concat();
    assert_eq!(
        run_sse(OllamaRoute::Chat, &[SYNTAX_STREAM.as_bytes()]),
        expected
    );
}

#[test]
fn events_without_blank_lines_between_them() {
    let stream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}]}\ndata: [DONE]\n";
    let expected = [
        content_line("a"),
        content_line("b"),
        final_line("stop", 0, 0),
    ]
    .concat();
    assert_eq!(run_sse(OllamaRoute::Chat, &[stream.as_bytes()]), expected);
}

#[test]
fn invalid_event_is_an_error() {
    let stream = sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"a"}}]}"#,
        "{not json",
        "[DONE]",
    ]);
    let out = ndjson_values(&run_sse(OllamaRoute::Chat, &[stream.as_bytes()]));
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[1],
        serde_json::json!({"error": "the upstream sent an invalid stream event: {not json"})
    );
}

#[test]
fn bare_non_finite_numbers_in_chunks_are_tolerated() {
    let stream = sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[{"token":"a","logprob":-Infinity}]},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]);
    let expected = [content_line("a"), final_line("stop", 0, 0)].concat();
    assert_eq!(run_sse(OllamaRoute::Chat, &[stream.as_bytes()]), expected);
}

#[test]
fn other_choices_and_content_parts() {
    let stream = sse(&[
        r#"{"choices":[{"index":1,"delta":{"content":"other choice"}},{"index":0,"delta":{"content":[{"type":"text","text":"pa"},{"type":"text","text":"rts"}]}}]}"#,
        r#"{"choices":[{"index":0,"text":" legacy","finish_reason":"length"}]}"#,
        "[DONE]",
    ]);
    let expected = [
        content_line("parts"),
        content_line(" legacy"),
        final_line("length", 0, 0),
    ]
    .concat();
    assert_eq!(run_sse(OllamaRoute::Chat, &[stream.as_bytes()]), expected);
}

#[test]
fn escapes_survive() {
    let stream = sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"line1\nquote\" tab\t \u00e9 \ud83d\ude00"},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]);
    let out = ndjson_values(&run_sse(OllamaRoute::Chat, &[stream.as_bytes()]));
    assert_eq!(out[0]["message"]["content"], "line1\nquote\" tab\t é 😀");
}

#[test]
fn streamed_refusal_is_content() {
    let stream = sse(&[
        r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"refusal":"I can't help with that."}}]}"#,
        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]);
    let expected = [
        content_line("I can't help with that."),
        final_line("stop", 0, 0),
    ]
    .concat();
    assert_eq!(run_sse(OllamaRoute::Chat, &[stream.as_bytes()]), expected);
}

#[test]
fn absurd_tool_call_indexes_do_not_panic() {
    let stream = sse(&[
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":18446744073709551615,"id":"a","function":{"name":"f","arguments":"{}"}}]}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"b","function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#,
        "[DONE]",
    ]);
    let out = ndjson_values(&run_sse(OllamaRoute::Chat, &[stream.as_bytes()]));
    assert_eq!(
        out[0]["message"]["tool_calls"].as_array().map(Vec::len),
        Some(2)
    );
}

/// A server that ignores `stream: true` and answers with one whole chat completion.
pub(super) const PLAIN_JSON_ANSWER: &str = r#"{"id":"chatcmpl-p","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Whole héllo"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;

#[test]
fn plain_json_answer_to_a_stream_request_is_one_final_line() {
    let expected = format!(
        r#"{{"model":"llama3","created_at":"{AT}","message":{{"role":"assistant","content":"Whole héllo"}},"done":true,"done_reason":"stop","total_duration":0,"load_duration":0,"prompt_eval_count":5,"prompt_eval_duration":0,"eval_count":2,"eval_duration":0}}"#
    ) + "\n";
    assert_eq!(
        run_sse(OllamaRoute::Chat, &[PLAIN_JSON_ANSWER.as_bytes()]),
        expected
    );
    let mut t = sse_translator(OllamaRoute::Chat);
    t.feed(PLAIN_JSON_ANSWER.as_bytes(), &mut Vec::new());
    t.finish(&mut Vec::new());
    assert_eq!(t.usage(), Some((5, 2)));
}

#[test]
fn plain_error_bodies_keep_their_message() {
    let json_error =
        "{\"error\":{\"message\":\"model is overloaded\",\"type\":\"server_error\"}}\n";
    assert_eq!(
        run_sse(OllamaRoute::Chat, &[json_error.as_bytes()]),
        "{\"error\":\"model is overloaded\"}\n"
    );
    let html = "<html><body>502 Bad Gateway</body></html>";
    assert_eq!(
        run_sse(OllamaRoute::Generate, &[html.as_bytes()]),
        "{\"error\":\"<html><body>502 Bad Gateway</body></html>\"}\n"
    );
}

#[test]
fn vllm_error_object_event() {
    let stream = sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"a"}}]}"#,
        r#"{"object":"error","message":"The decoder prompt is longer than the maximum model length","type":"BadRequestError","param":null,"code":400}"#,
    ]);
    let expected = [
        content_line("a"),
        "{\"error\":\"The decoder prompt is longer than the maximum model length\"}\n".to_string(),
    ]
    .concat();
    assert_eq!(run_sse(OllamaRoute::Chat, &[stream.as_bytes()]), expected);
}

#[test]
fn comments_only_is_a_truncated_stream() {
    assert_eq!(
        run_sse(OllamaRoute::Chat, &[b": keep-alive\n\n: keep-alive\n\n"]),
        "{\"error\":\"the upstream stream ended before the answer was complete\"}\n"
    );
}
