//! A stored answer rendered for the client that asked (SPEC §6.5): JSON, NDJSON stream or SSE
//! stream, Ollama or OpenAI, from the one neutral entry. Streams come as a real model's do — text
//! in small deltas, then tool calls, then the end (`done: true` / `[DONE]`) — so a client's
//! incremental parser reads them unchanged; OpenAI renderings are the translators' output of the
//! Ollama one, with ids, reasoning, tool calls and usage.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::answer::{Answer, NdjsonLines};
use super::key::Family;
use crate::http::body::{BoxError, Streamed};
use crate::translate::response::ollama_to_openai_response;
use crate::translate::stream::NdjsonToSse;
use crate::translate::time::{now, rfc3339};
use crate::translate::OpenAiRoute;

/// A rendered hit: its content type and body.
pub struct Rendered {
    pub content_type: &'static str,
    pub body: Body,
}

pub enum Body {
    /// A whole answer (JSON).
    Whole(Vec<u8>),
    /// A stream, rendered as the client reads it.
    Stream(Box<ReplayStream>),
}

/// Output rendered per frame of a replayed stream at most (about): the writer waits for the
/// client between frames, so a slow reader holds one frame, not the whole replay.
const FRAME_BYTES: usize = 32 * 1024;

/// A replayed stream: NDJSON lines from the entry, translated to SSE for OpenAI clients, a frame
/// at a time.
pub struct ReplayStream {
    answer: Arc<Answer>,
    model: String,
    created_at: String,
    lines: NdjsonLines,
    sse: Option<NdjsonToSse>,
    done: bool,
}

impl ReplayStream {
    /// The next frame's bytes; `None` at the end.
    pub fn next_chunk(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        let mut ndjson = Vec::with_capacity(FRAME_BYTES / 2);
        let mut more = true;
        while ndjson.len() < FRAME_BYTES / 4 {
            more = self
                .lines
                .next_line(&self.answer, &self.model, &self.created_at, &mut ndjson);
            if !more {
                break;
            }
        }
        let out = match self.sse.as_mut() {
            None => ndjson,
            Some(t) => {
                let mut sse = Vec::with_capacity(ndjson.len() * 2);
                t.feed(&ndjson, &mut sse);
                if !more {
                    t.finish(&mut sse);
                }
                sse
            }
        };
        self.done = !more;
        Some(out)
    }
}

impl Streamed for ReplayStream {
    fn poll_frame(&mut self, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Poll::Ready(self.next_chunk().map(|b| Ok(Frame::data(Bytes::from(b)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }

    fn take_header_lines(&mut self) -> Bytes {
        Bytes::new()
    }
}

/// `answer` as `family`'s answer to a request for `model` (the name the client used), streamed or
/// whole; `include_usage`: an OpenAI stream client asked for the usage chunk.
pub fn render(
    answer: &Arc<Answer>,
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
    if stream {
        let body = Body::Stream(Box::new(ReplayStream {
            answer: answer.clone(),
            model: model.to_string(),
            created_at,
            lines: NdjsonLines::default(),
            sse: openai.map(|route| NdjsonToSse::new(route, model, include_usage)),
            done: false,
        }));
        let content_type = if openai.is_some() {
            "text/event-stream"
        } else {
            "application/x-ndjson"
        };
        return Rendered { content_type, body };
    }
    let ollama = answer.to_ollama_json(model, &created_at);
    let body = match openai {
        None => ollama,
        // The translator reads what `to_ollama_json` wrote: it cannot fail on it.
        Some(route) => ollama_to_openai_response(route, &ollama, model).unwrap_or_default(),
    };
    Rendered {
        content_type: "application/json",
        body: Body::Whole(body),
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

    fn bytes(r: Rendered) -> Vec<u8> {
        match r.body {
            Body::Whole(b) => b,
            Body::Stream(mut s) => {
                let mut out = Vec::new();
                while let Some(chunk) = s.next_chunk() {
                    out.extend_from_slice(&chunk);
                }
                out
            }
        }
    }

    #[test]
    fn every_format_from_one_entry() {
        let a = Arc::new(answer(true));
        let j = bytes(render(&a, Family::OllamaChat, false, "m", false));
        let v: Value = serde_json::from_slice(&j).unwrap();
        assert_eq!(v["message"]["content"], a.content.as_str());
        assert_eq!(v["message"]["tool_calls"][0]["function"]["name"], "lookup");
        assert_eq!(v["done"], true);
        let s = render(&a, Family::OllamaChat, true, "m", false);
        assert_eq!(s.content_type, "application/x-ndjson");
        let s = bytes(s);
        let last = s.trim_ascii_end().rsplit(|&b| b == b'\n').next().unwrap();
        let last: Value = serde_json::from_slice(last).unwrap();
        assert_eq!(
            (last["done"].clone(), last["eval_count"].clone()),
            (true.into(), 9.into())
        );
        let o = bytes(render(&a, Family::OpenAiChat, false, "m", false));
        let v: Value = serde_json::from_slice(&o).unwrap();
        assert_eq!(v["choices"][0]["message"]["tool_calls"][0]["id"], "call_7");
        assert_eq!(v["usage"]["prompt_tokens"], 5);
        let sse = render(&a, Family::OpenAiChat, true, "m", true);
        assert_eq!(sse.content_type, "text/event-stream");
        let text = String::from_utf8(bytes(sse)).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(text.matches("data: ").count() > 4, "deltas: {text}");
        assert!(
            text.contains("\"completion_tokens\":9"),
            "usage chunk: {text}"
        );
        let g = Arc::new(answer(false));
        let c = bytes(render(&g, Family::OpenAiCompletions, false, "m", false));
        let v: Value = serde_json::from_slice(&c).unwrap();
        assert_eq!(v["choices"][0]["text"], g.content.as_str());
        let n = bytes(render(&g, Family::OllamaGenerate, true, "m", false));
        assert!(String::from_utf8(n)
            .unwrap()
            .contains("\"response\":\"The answer"));
    }

    #[test]
    fn a_long_stream_is_rendered_a_frame_at_a_time() {
        let long = Arc::new(Answer {
            content: "ü".repeat(1 << 19),
            ..answer(true)
        });
        for family in [Family::OllamaChat, Family::OpenAiChat] {
            let Body::Stream(mut s) = render(&long, family, true, "m", false).body else {
                panic!("a stream")
            };
            let mut frames = 0;
            let mut text = String::new();
            while let Some(chunk) = s.next_chunk() {
                assert!(
                    chunk.len() < 4 * FRAME_BYTES,
                    "{} bytes in one frame",
                    chunk.len()
                );
                frames += 1;
                text.push_str(std::str::from_utf8(&chunk).unwrap());
            }
            assert!(frames > 100, "{frames} frames");
            assert_eq!(text.matches('ü').count(), 1 << 19, "every piece once");
        }
    }
}
