//! Property tests of the stream translators: the output is byte-identical however the upstream bytes are
//! split (1-byte reads, splits inside multi-byte UTF-8 characters and inside `\r\n`), the two directions
//! compose without losing content, and any input yields only well-formed output.

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Value};

use super::ndjson_to_sse::{OLLAMA_CHAT_STREAM, OLLAMA_GENERATE_STREAM};
use super::sse_to_ndjson::{
    llama_server_stream, AZURE_STREAM, ERROR_STREAM, OPENAI_TOOL_STREAM, PLAIN_JSON_ANSWER,
    REASONING_STREAM, SYNTAX_STREAM, VLLM_STREAM,
};
use super::{ndjson_values, run_ndjson, run_sse, sse, sse_payloads};
use crate::translate::{OllamaRoute, OpenAiRoute};

fn sse_streams() -> Vec<(OllamaRoute, String)> {
    let utf8 = sse(&[
        r#"{"choices":[{"index":0,"delta":{"reasoning":"pensée 思考"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"héllo 日本"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":" 🎌é"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
        "[DONE]",
    ]);
    vec![
        (OllamaRoute::Chat, OPENAI_TOOL_STREAM.to_string()),
        (OllamaRoute::Generate, OPENAI_TOOL_STREAM.to_string()),
        (OllamaRoute::Chat, REASONING_STREAM.to_string()),
        (OllamaRoute::Generate, VLLM_STREAM.to_string()),
        (OllamaRoute::Chat, llama_server_stream()),
        (OllamaRoute::Chat, AZURE_STREAM.to_string()),
        (OllamaRoute::Chat, ERROR_STREAM.to_string()),
        (OllamaRoute::Chat, SYNTAX_STREAM.to_string()),
        (OllamaRoute::Chat, utf8.clone()),
        (OllamaRoute::Generate, utf8.replace('\n', "\r")),
        (OllamaRoute::Chat, utf8.replace('\n', "\r\n")),
        (OllamaRoute::Generate, PLAIN_JSON_ANSWER.to_string()),
        (
            OllamaRoute::Chat,
            "{\"error\":\"héllo 日本 overloaded\"}".to_string(),
        ),
        // Cut mid-stream: ends in an error line whatever the split.
        (
            OllamaRoute::Chat,
            OPENAI_TOOL_STREAM[..OPENAI_TOOL_STREAM.len() / 2].to_string(),
        ),
    ]
}

fn ndjson_streams() -> Vec<(OpenAiRoute, bool, String)> {
    let utf8 = concat!(
        r#"{"message":{"role":"assistant","content":"héllo","thinking":"日本"},"done":false}"#,
        "\n",
        r#"{"message":{"role":"assistant","content":" 日本 🎌"},"done":false}"#,
        "\r\n",
        r#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":4}"#,
        "\n",
    );
    vec![
        (OpenAiRoute::Chat, true, OLLAMA_CHAT_STREAM.to_string()),
        (OpenAiRoute::Chat, false, OLLAMA_CHAT_STREAM.to_string()),
        (
            OpenAiRoute::Completions,
            true,
            OLLAMA_GENERATE_STREAM.to_string(),
        ),
        (OpenAiRoute::Chat, true, utf8.to_string()),
        (OpenAiRoute::Completions, false, utf8.to_string()),
        (
            OpenAiRoute::Chat,
            true,
            OLLAMA_CHAT_STREAM[..OLLAMA_CHAT_STREAM.len() / 2].to_string(),
        ),
    ]
}

/// Splits `bytes` at the given points (empty pieces included).
fn pieces<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::with_capacity(points.len() + 1);
    let mut prev = 0;
    for p in points {
        out.push(&bytes[prev..p]);
        prev = p;
    }
    out.push(&bytes[prev..]);
    out
}

#[test]
fn one_byte_reads_give_the_same_output() {
    for (route, stream) in sse_streams() {
        let whole = run_sse(route, &[stream.as_bytes()]);
        let bytes: Vec<&[u8]> = stream.as_bytes().chunks(1).collect();
        assert_eq!(run_sse(route, &bytes), whole, "stream {stream:?}");
        assert!(!whole.is_empty());
    }
    for (route, usage, stream) in ndjson_streams() {
        let whole = run_ndjson(route, usage, &[stream.as_bytes()]);
        let bytes: Vec<&[u8]> = stream.as_bytes().chunks(1).collect();
        assert_eq!(run_ndjson(route, usage, &bytes), whole, "stream {stream:?}");
        assert!(!whole.is_empty());
    }
}

#[test]
fn every_two_piece_split_gives_the_same_output() {
    for (route, stream) in sse_streams() {
        let b = stream.as_bytes();
        let whole = run_sse(route, &[b]);
        for at in 0..=b.len() {
            assert_eq!(
                run_sse(route, &[&b[..at], &b[at..]]),
                whole,
                "split at {at} of {stream:?}"
            );
        }
    }
    for (route, usage, stream) in ndjson_streams() {
        let b = stream.as_bytes();
        let whole = run_ndjson(route, usage, &[b]);
        for at in 0..=b.len() {
            assert_eq!(
                run_ndjson(route, usage, &[&b[..at], &b[at..]]),
                whole,
                "split at {at} of {stream:?}"
            );
        }
    }
}

/// Text pieces with quotes, backslashes, newlines and multi-byte characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof!["\\PC{0,10}", "[a\"\\\\\n\t é日本🎌]{0,8}"]
}

proptest! {
    #[test]
    fn sse_to_ndjson_is_split_independent(cuts in prop::collection::vec(any::<Index>(), 0..48)) {
        for (route, stream) in sse_streams() {
            let b = stream.as_bytes();
            prop_assert_eq!(run_sse(route, &pieces(b, &cuts)), run_sse(route, &[b]));
        }
    }

    #[test]
    fn ndjson_to_sse_is_split_independent(cuts in prop::collection::vec(any::<Index>(), 0..48)) {
        for (route, usage, stream) in ndjson_streams() {
            let b = stream.as_bytes();
            prop_assert_eq!(run_ndjson(route, usage, &pieces(b, &cuts)), run_ndjson(route, usage, &[b]));
        }
    }

    /// Ollama stream → SSE → Ollama stream keeps the text, the thinking, the counts and the end reason.
    #[test]
    fn both_directions_compose(
        pieces_in in prop::collection::vec((text(), text()), 0..8),
        counts in (0u64..100_000, 0u64..100_000),
        length in any::<bool>(),
        cuts_a in prop::collection::vec(any::<Index>(), 0..16),
        cuts_b in prop::collection::vec(any::<Index>(), 0..16),
    ) {
        let mut ndjson = String::new();
        for (thinking, content) in &pieces_in {
            let line = json!({"model": "m", "created_at": "2025-01-01T00:00:00Z",
                              "message": {"role": "assistant", "content": content, "thinking": thinking}, "done": false});
            ndjson.push_str(&format!("{line}\n"));
        }
        let reason = if length { "length" } else { "stop" };
        let last = json!({"model": "m", "message": {"role": "assistant", "content": ""}, "done": true,
                          "done_reason": reason, "prompt_eval_count": counts.0, "eval_count": counts.1});
        ndjson.push_str(&format!("{last}\n"));

        let sse_out = run_ndjson(OpenAiRoute::Chat, true, &pieces(ndjson.as_bytes(), &cuts_a));
        let back = run_sse(OllamaRoute::Chat, &pieces(sse_out.as_bytes(), &cuts_b));
        let lines = ndjson_values(&back);
        let content: String = lines.iter().filter_map(|l| l["message"]["content"].as_str()).collect();
        let thinking: String = lines.iter().filter_map(|l| l["message"]["thinking"].as_str()).collect();
        prop_assert_eq!(content, pieces_in.iter().map(|p| p.1.as_str()).collect::<String>());
        prop_assert_eq!(thinking, pieces_in.iter().map(|p| p.0.as_str()).collect::<String>());
        let end = lines.last().cloned().unwrap_or(Value::Null);
        prop_assert_eq!(&end["done"], &json!(true));
        prop_assert_eq!(&end["done_reason"], &json!(reason));
        prop_assert_eq!(&end["prompt_eval_count"], &json!(counts.0));
        prop_assert_eq!(&end["eval_count"], &json!(counts.1));
    }

    /// Whatever the upstream sends, every emitted line is JSON and exactly the last one ends the stream.
    #[test]
    fn any_sse_input_gives_well_formed_ndjson(
        input in prop::collection::vec(prop_oneof![
            Just("data: ".to_string()), Just("\n".to_string()), Just("\r".to_string()), Just("[DONE]".to_string()),
            Just(r#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#.to_string()),
            Just(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.to_string()),
            Just(r#"{"error":{"message":"e"}}"#.to_string()),
            "\\PC{0,6}",
        ], 0..24),
    ) {
        let input = input.concat();
        let out = run_sse(OllamaRoute::Chat, &[input.as_bytes()]);
        let lines = ndjson_values(&out);
        let terminal = |l: &Value| l.get("error").is_some() || l["done"] == json!(true);
        prop_assert!(lines.last().is_some_and(terminal));
        prop_assert_eq!(lines.iter().filter(|l| terminal(l)).count(), 1);
    }

    #[test]
    fn any_ndjson_input_gives_well_formed_sse(
        input in prop::collection::vec(prop_oneof![
            Just("\n".to_string()),
            Just(r#"{"message":{"role":"assistant","content":"x"},"done":false}"#.to_string()),
            Just(r#"{"message":{"role":"assistant","content":""},"done":true}"#.to_string()),
            Just(r#"{"error":"e"}"#.to_string()),
            "\\PC{0,6}",
        ], 0..24),
    ) {
        let input = input.concat();
        let out = run_ndjson(OpenAiRoute::Chat, true, &[input.as_bytes()]);
        let payloads = sse_payloads(&out);
        for p in &payloads {
            if p != "[DONE]" {
                prop_assert!(serde_json::from_str::<Value>(p).is_ok(), "bad event {:?}", p);
            }
        }
        let last = payloads.last().cloned().unwrap_or_default();
        prop_assert!(last == "[DONE]" || last.starts_with(r#"{"error""#), "last event {:?}", last);
    }
}
