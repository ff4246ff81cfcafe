//! Ollama NDJSON stream → OpenAI SSE stream, for OpenAI clients of Ollama-native backends.
//!
//! Chat: a first chunk with `role`, then one chunk per thinking (`delta.reasoning`), content and tool-call
//! piece (a line with several becomes several chunks), then at the `done` line a finish-only chunk, the
//! usage chunk (`choices: []`) when asked for, and `data: [DONE]`. Text completions have no role chunk and
//! no reasoning. Every chunk carries the same `id` and `created`.

use super::lines::{LineBuffer, Next};
use crate::translate::json::parse_lenient;
use crate::translate::resp_to_openai::openai_calls;
use crate::translate::time::now_unix;
use crate::translate::upstream_error::{error_message, message_of};
use crate::translate::wire_ollama::OllamaIn;
use crate::translate::wire_openai::{error_event, Chunk, ChunkChoice, Delta, UsageOut};
use crate::translate::{ids, usage, OpenAiRoute};

const TRUNCATED: &str = "the upstream stream ended before the answer was complete";

/// Ollama NDJSON stream → OpenAI SSE stream. See the module documentation.
#[derive(Debug)]
pub struct NdjsonToSse {
    lines: LineBuffer,
    st: State,
}

/// The identity every chunk of one stream shares; fixed in tests so outputs compare byte for byte.
#[derive(Debug, Clone)]
pub(crate) struct Stamp {
    pub id: String,
    pub created: i64,
    /// Tool calls Ollama sent without an id are named `call_<prefix><n>`.
    pub call_prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Streaming,
    Done,
    Failed,
}

#[derive(Debug)]
struct State {
    chat: bool,
    model: String,
    stamp: Stamp,
    include_usage: bool,
    phase: Phase,
    started: bool,
    tools_sent: u64,
    usage: Option<(u64, u64)>,
}

impl NdjsonToSse {
    /// `route` is Chat (`chat.completion.chunk`) or Completions (`text_completion`; Embeddings, which never
    /// streams, is treated as Chat); `model` is the name the client asked for; `include_usage` from the
    /// client's `stream_options` (see [`crate::translate::request::stream_include_usage`]).
    pub fn new(route: OpenAiRoute, model: &str, include_usage: bool) -> Self {
        let chat = route != OpenAiRoute::Completions;
        let stamp = Stamp {
            id: if chat {
                ids::chat_completion_id()
            } else {
                ids::completion_id()
            },
            created: now_unix(),
            call_prefix: ids::random_alnum(16),
        };
        Self::with_stamp(route, model, include_usage, stamp)
    }

    pub(crate) fn with_stamp(
        route: OpenAiRoute,
        model: &str,
        include_usage: bool,
        stamp: Stamp,
    ) -> Self {
        NdjsonToSse {
            lines: LineBuffer::new(false),
            st: State {
                chat: route != OpenAiRoute::Completions,
                model: model.to_string(),
                stamp,
                include_usage,
                phase: Phase::Streaming,
                started: false,
                tools_sent: 0,
                usage: None,
            },
        }
    }

    /// Feeds upstream bytes; appends zero or more `data: {...}\n\n` events to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.st.phase != Phase::Streaming {
            return;
        }
        self.lines.push(bytes);
        while self.st.phase == Phase::Streaming {
            match self.lines.next_line() {
                Next::Line(line) => self.st.on_line(line, false, out),
                Next::Pending => break,
                Next::TooLong => self
                    .st
                    .fail("the upstream sent an over-long stream line", out),
            }
        }
    }

    /// Upstream ended. Everything up to `data: [DONE]` was sent with the `done` line; if that line never
    /// came the stream was cut short and ends with an error event (no `[DONE]`). After an error event
    /// nothing more is sent.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.st.phase != Phase::Streaming {
            return;
        }
        if let Some(rest) = self.lines.take_rest() {
            self.st.on_line(&rest, true, out);
        }
        if self.st.phase == Phase::Streaming {
            self.st.fail(TRUNCATED, out);
        }
    }

    /// Usage learned so far: (prompt_tokens, completion_tokens).
    pub fn usage(&self) -> Option<(u64, u64)> {
        self.st.usage
    }
}

impl State {
    /// `at_end`: the line was cut off by the end of the stream, so unparseable means truncated.
    fn on_line(&mut self, line: &[u8], at_end: bool, out: &mut Vec<u8>) {
        let line = line.trim_ascii();
        if line.is_empty() {
            return;
        }
        let r: OllamaIn = match parse_lenient(line) {
            Ok(r) => r,
            // A cut-off last line means a truncated stream; unless nothing came before it, then it is
            // a plain error body (an HTML error page) whose text is the best message there is.
            Err(_) if at_end && self.started => {
                self.fail(TRUNCATED, out);
                return;
            }
            Err(_) if at_end => {
                self.fail(&error_message(line), out);
                return;
            }
            Err(_) => {
                let excerpt: String = String::from_utf8_lossy(line).chars().take(100).collect();
                self.fail(
                    &format!("the upstream sent an invalid stream line: {excerpt}"),
                    out,
                );
                return;
            }
        };
        if let Some(err) = r.error.as_ref().filter(|e| !e.is_null()) {
            let wrapped = serde_json::json!({ "error": err });
            self.fail(
                &message_of(&wrapped).unwrap_or_else(|| "upstream error".to_string()),
                out,
            );
            return;
        }
        if !self.started {
            self.started = true;
            if self.chat {
                let delta = Delta {
                    role: Some("assistant"),
                    content: Some(""),
                    ..Delta::default()
                };
                self.delta(delta, None, out);
            }
        }
        let (content, thinking, calls) = r.parts();
        if self.chat {
            if !thinking.is_empty() {
                self.delta(
                    Delta {
                        reasoning: Some(thinking),
                        ..Delta::default()
                    },
                    None,
                    out,
                );
            }
            if !content.is_empty() {
                self.delta(
                    Delta {
                        content: Some(content),
                        ..Delta::default()
                    },
                    None,
                    out,
                );
            }
            if !calls.is_empty() {
                let prefix = &self.stamp.call_prefix;
                let mut n = self.tools_sent;
                let mut new_id = || {
                    let id = format!("call_{prefix}{n}");
                    n += 1;
                    id
                };
                let tool_calls = openai_calls(calls, Some(self.tools_sent), &mut new_id);
                self.tools_sent += tool_calls.len() as u64;
                self.delta(
                    Delta {
                        tool_calls: Some(tool_calls),
                        ..Delta::default()
                    },
                    None,
                    out,
                );
            }
        } else if !content.is_empty() {
            self.text(content, None, out);
        }
        if r.done == Some(true) {
            let (prompt, completion) = r.counts();
            self.usage = Some((prompt, completion));
            let finish = usage::finish_reason(r.done_reason.as_deref(), self.tools_sent > 0);
            if self.chat {
                self.delta(Delta::default(), Some(finish), out);
            } else {
                self.text("", Some(finish), out);
            }
            if self.include_usage {
                self.write(
                    Vec::new(),
                    Some(Some(UsageOut::new(prompt, completion))),
                    out,
                );
            }
            out.extend_from_slice(b"data: [DONE]\n\n");
            self.phase = Phase::Done;
        }
    }

    fn delta(&self, delta: Delta<'_>, finish_reason: Option<&str>, out: &mut Vec<u8>) {
        let choice = ChunkChoice::Chat {
            index: 0,
            delta,
            logprobs: None,
            finish_reason,
        };
        self.write(vec![choice], self.include_usage.then_some(None), out);
    }

    fn text(&self, text: &str, finish_reason: Option<&str>, out: &mut Vec<u8>) {
        let choice = ChunkChoice::Text {
            text,
            index: 0,
            logprobs: None,
            finish_reason,
        };
        self.write(vec![choice], self.include_usage.then_some(None), out);
    }

    fn write(
        &self,
        choices: Vec<ChunkChoice<'_>>,
        usage: Option<Option<UsageOut>>,
        out: &mut Vec<u8>,
    ) {
        let chunk = Chunk {
            id: &self.stamp.id,
            object: if self.chat {
                "chat.completion.chunk"
            } else {
                "text_completion"
            },
            created: self.stamp.created,
            model: &self.model,
            choices,
            usage,
        };
        // Serialising these plain structs cannot fail; if it somehow did, the chunk is skipped rather
        // than half-written.
        if let Ok(json) = serde_json::to_vec(&chunk) {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&json);
            out.extend_from_slice(b"\n\n");
        }
    }

    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&error_event(message));
        self.phase = Phase::Failed;
    }
}
