//! A stored answer rendered for the client that asked (SPEC §6.5): JSON, NDJSON stream or SSE
//! stream, Ollama or OpenAI, from the one neutral entry. Streams come as a real model's do — text
//! in small deltas, then tool calls, then the end (`done: true` / `[DONE]`) — so a client's
//! incremental parser reads them unchanged; OpenAI renderings are the translators' output of the
//! Ollama one, with ids, reasoning, tool calls and usage.

use super::answer::Answer;
use super::key::Family;
use crate::translate::response::ollama_to_openai_response;
use crate::translate::stream::NdjsonToSse;
use crate::translate::time::{now, rfc3339};
use crate::translate::OpenAiRoute;

/// A rendered hit: its content type and body.
pub struct Rendered {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// `answer` as `family`'s answer to a request for `model` (the name the client used), streamed or
/// whole; `include_usage`: an OpenAI stream client asked for the usage chunk.
pub fn render(
    answer: &Answer,
    family: Family,
    stream: bool,
    model: &str,
    include_usage: bool,
) -> Rendered {
    let (secs, nanos) = now();
    let created_at = rfc3339(secs, nanos);
    let openai = match family {
        Family::OllamaChat | Family::OllamaGenerate => None,
        Family::OpenAiChat => Some(OpenAiRoute::Chat),
        Family::OpenAiCompletions => Some(OpenAiRoute::Completions),
    };
    match (openai, stream) {
        (None, false) => Rendered {
            content_type: "application/json",
            body: answer.to_ollama_json(model, &created_at),
        },
        (None, true) => Rendered {
            content_type: "application/x-ndjson",
            body: answer.to_ndjson(model, &created_at),
        },
        (Some(route), false) => {
            let ollama = answer.to_ollama_json(model, &created_at);
            // The translator reads what `to_ollama_json` wrote: it cannot fail on it.
            let body = ollama_to_openai_response(route, &ollama, model).unwrap_or_default();
            Rendered {
                content_type: "application/json",
                body,
            }
        }
        (Some(route), true) => {
            let mut body = Vec::with_capacity(answer.content.len() * 12 + 512);
            let mut t = NdjsonToSse::new(route, model, include_usage);
            t.feed(&answer.to_ndjson(model, &created_at), &mut body);
            t.finish(&mut body);
            Rendered {
                content_type: "text/event-stream",
                body,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::answer::{Function, ToolCall};
    use serde_json::Value;

    fn answer(chat: bool) -> Answer {
        Answer {
            chat,
            content: "The answer is forty-two, as computed.".into(),
            thinking: if chat { "hmm".into() } else { String::new() },
            tool_calls: if chat {
                vec![ToolCall {
                    id: Some("call_7".into()),
                    function: Function {
                        name: "lookup".into(),
                        arguments: serde_json::json!({"q": "x"}),
                    },
                }]
            } else {
                vec![]
            },
            done_reason: "stop".into(),
            prompt_tokens: 5,
            completion_tokens: 9,
        }
    }

    #[test]
    fn every_format_from_one_entry() {
        let a = answer(true);
        let j = render(&a, Family::OllamaChat, false, "m", false);
        let v: Value = serde_json::from_slice(&j.body).unwrap();
        assert_eq!(v["message"]["content"], a.content.as_str());
        assert_eq!(v["message"]["tool_calls"][0]["function"]["name"], "lookup");
        assert_eq!(v["done"], true);
        let s = render(&a, Family::OllamaChat, true, "m", false);
        assert_eq!(s.content_type, "application/x-ndjson");
        let last: Value = serde_json::from_slice(
            s.body
                .trim_ascii_end()
                .rsplit(|&b| b == b'\n')
                .next()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (last["done"].clone(), last["eval_count"].clone()),
            (true.into(), 9.into())
        );
        let o = render(&a, Family::OpenAiChat, false, "m", false);
        let v: Value = serde_json::from_slice(&o.body).unwrap();
        assert_eq!(v["choices"][0]["message"]["tool_calls"][0]["id"], "call_7");
        assert_eq!(v["usage"]["prompt_tokens"], 5);
        let sse = render(&a, Family::OpenAiChat, true, "m", true);
        let text = String::from_utf8(sse.body).unwrap();
        assert_eq!(sse.content_type, "text/event-stream");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(text.matches("data: ").count() > 4, "deltas: {text}");
        assert!(
            text.contains("\"completion_tokens\":9"),
            "usage chunk: {text}"
        );
        let c = render(&answer(false), Family::OpenAiCompletions, false, "m", false);
        let v: Value = serde_json::from_slice(&c.body).unwrap();
        assert_eq!(v["choices"][0]["text"], answer(false).content.as_str());
        let g = render(&answer(false), Family::OllamaGenerate, true, "m", false);
        assert!(String::from_utf8(g.body)
            .unwrap()
            .contains("\"response\":\"The answer"));
    }
}
