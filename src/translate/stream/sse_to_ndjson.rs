//! OpenAI SSE stream → Ollama NDJSON stream, for Ollama clients of OpenAI-compatible backends.
//!
//! Each content or reasoning delta becomes one Ollama line as soon as it arrives. Tool-call argument
//! fragments are joined and sent as one whole Ollama call when the choice's `finish_reason` arrives.
//! Usage may come with the finish chunk, in a later `choices: []` chunk, or as llama-server `timings`, so
//! the final `done: true` line waits for `[DONE]` (or the end of the stream after a `finish_reason`). A
//! stream that ends with neither is truncated and ends with an `{"error": ...}` line instead.

use serde_json::Value;

use super::chunk_in::ChunkIn;
use super::lines::Next;
use super::sse::SseParser;
use super::MAX_PENDING;
use crate::translate::json::{parse_lenient, parse_lenient_borrowed};
use crate::translate::resp_to_ollama;
use crate::translate::time::{self, Rfc3339Cache};
use crate::translate::tools::ToolAccumulator;
use crate::translate::upstream_error::{error_message, message_of};
use crate::translate::wire_ollama::{self, End, Metrics, OllamaToolCall, Parts};
use crate::translate::{usage, OllamaRoute};

const TRUNCATED: &str = "the upstream stream ended before the answer was complete";

/// How much of a stream's start is kept until its first event, in case the upstream answered with a
/// plain (non-SSE) body.
const PRELUDE_CAP: usize = 1024 * 1024;

/// OpenAI SSE stream → Ollama NDJSON stream. See the module documentation.
#[derive(Debug)]
pub struct SseToNdjson {
    parser: SseParser,
    st: State,
    /// The first bytes of the stream, kept until the first event arrives (then freed).
    prelude: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Streaming,
    /// The final line was sent.
    Done,
    /// An error line was sent.
    Failed,
}

#[derive(Debug)]
struct State {
    chat: bool,
    model: String,
    clock: fn() -> (i64, u32),
    created_at: Rfc3339Cache,
    phase: Phase,
    tools: ToolAccumulator,
    /// Ollama `done_reason`, once a `finish_reason` was seen.
    done_reason: Option<&'static str>,
    /// The `finish_reason` was one Ollama has a name for (`stop`, `length`, `tool_calls`), not
    /// one mapped onto `stop` (`content_filter`, a server's own).
    plain_finish: bool,
    usage: Option<(u64, u64)>,
    timings: Option<Metrics>,
    /// An SSE event was dispatched (the body is a stream, not a plain answer).
    seen_event: bool,
}

impl SseToNdjson {
    /// `route` is Chat (lines carry `message`) or Generate (lines carry `response`; the embedding routes,
    /// which never stream, are treated alike); `model` is the name the client asked for.
    pub fn new(route: OllamaRoute, model: &str) -> Self {
        Self::with_clock(route, model, time::now)
    }

    /// As [`Self::new`] with a fixed clock for `created_at`, so tests can compare bytes.
    pub(crate) fn with_clock(route: OllamaRoute, model: &str, clock: fn() -> (i64, u32)) -> Self {
        SseToNdjson {
            parser: SseParser::new(),
            st: State {
                chat: route == OllamaRoute::Chat,
                model: model.to_string(),
                clock,
                created_at: Rfc3339Cache::default(),
                phase: Phase::Streaming,
                tools: ToolAccumulator::default(),
                done_reason: None,
                plain_finish: false,
                usage: None,
                timings: None,
                seen_event: false,
            },
            prelude: Vec::new(),
        }
    }

    /// Feeds upstream bytes; appends zero or more complete NDJSON lines ("...\n") to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.st.phase != Phase::Streaming {
            return;
        }
        if !self.st.seen_event {
            let room = PRELUDE_CAP.saturating_sub(self.prelude.len());
            self.prelude
                .extend_from_slice(&bytes[..room.min(bytes.len())]);
        }
        self.parser.push(bytes);
        while self.st.phase == Phase::Streaming {
            match self.parser.next_event() {
                Next::Line(data) => self.st.on_event(data, false, out),
                Next::Pending => break,
                Next::TooLong => self
                    .st
                    .fail("the upstream sent an over-long stream event", out),
            }
        }
        if self.st.seen_event && self.prelude.capacity() > 0 {
            self.prelude = Vec::new();
        }
    }

    /// Upstream ended. Appends whatever must still be sent: the final `done: true` line if it was not
    /// sent yet, or an `{"error": ...}` line if the stream ended without a `finish_reason` and without
    /// `[DONE]`. Further calls append nothing.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.st.phase != Phase::Streaming {
            return;
        }
        if let Some(data) = self.parser.finish() {
            self.st.on_event(data, true, out);
        }
        if self.st.phase != Phase::Streaming {
            return;
        }
        if self.st.done_reason.is_some() {
            self.st.complete(out);
        } else if !self.st.seen_event {
            self.st.plain_body(&self.prelude, out);
        } else {
            self.st.fail(TRUNCATED, out);
        }
    }

    /// The stream's `finish_reason` was `stop`, `length` or `tool_calls` (what a cache may
    /// replay as it is).
    pub fn finished_plainly(&self) -> bool {
        self.st.plain_finish
    }

    /// An error line ended the output: further input is ignored.
    pub fn has_failed(&self) -> bool {
        self.st.phase == Phase::Failed
    }

    /// Usage learned so far: (prompt_tokens, completion_tokens).
    pub fn usage(&self) -> Option<(u64, u64)> {
        self.st.usage.or(self
            .st
            .timings
            .map(|m| (m.prompt_tokens, m.completion_tokens)))
    }
}

impl State {
    /// `at_end`: the event was cut off by the end of the stream, so unparseable means truncated.
    fn on_event(&mut self, data: &[u8], at_end: bool, out: &mut Vec<u8>) {
        self.seen_event = true;
        let data = data.trim_ascii();
        if data.is_empty() {
            return;
        }
        if data == b"[DONE]" {
            self.complete(out);
            return;
        }
        let mut scratch = Vec::new();
        match parse_lenient_borrowed::<ChunkIn>(data, &mut scratch) {
            Ok(chunk) => self.on_chunk(chunk, out),
            // Servers that omit the blank line between events put several payloads in one event.
            Err(_) if data.contains(&b'\n') => {
                for piece in data.split(|&b| b == b'\n') {
                    if self.phase != Phase::Streaming {
                        break;
                    }
                    self.on_event(piece, at_end, out);
                }
            }
            Err(_) if at_end => self.fail(TRUNCATED, out),
            Err(_) => {
                let excerpt: String = String::from_utf8_lossy(data).chars().take(100).collect();
                self.fail(
                    &format!("the upstream sent an invalid stream event: {excerpt}"),
                    out,
                );
            }
        }
    }

    fn on_chunk(&mut self, chunk: ChunkIn<'_>, out: &mut Vec<u8>) {
        // vLLM's error object, when it arrives as an event of its own.
        if chunk.object.as_deref() == Some("error") {
            let message = chunk.message.as_ref().and_then(Value::as_str);
            self.fail(message.unwrap_or("upstream error"), out);
            return;
        }
        if let Some(err) = chunk.error.filter(|e| !e.is_null()) {
            let wrapped = serde_json::json!({ "error": err });
            let message = message_of(&wrapped).unwrap_or_else(|| "upstream error".to_string());
            self.fail(&message, out);
            return;
        }
        // Later values win: some servers send running usage with completion_tokens 0 on early chunks.
        if let Some(u) = chunk.usage.as_ref().and_then(usage::from_usage) {
            self.usage = Some(u);
        }
        if let Some(t) = chunk.timings.as_ref().and_then(usage::from_timings) {
            self.timings = Some(t);
        }
        for choice in chunk.choices.unwrap_or_default() {
            // We never ask for n > 1; other choices would interleave into one Ollama answer.
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            let delta = choice.delta.or(choice.message).unwrap_or_default();
            let thinking = [&delta.reasoning, &delta.reasoning_content]
                .into_iter()
                .filter_map(|v| v.0.as_deref())
                .find(|s| !s.is_empty());
            let mut content: &str = &delta.content.0;
            if content.is_empty() {
                // A legacy text completion, or a refusal streamed in place of content.
                if let Some(text) = choice.text.as_deref().or(delta.refusal.0.as_deref()) {
                    content = text;
                }
            }
            if thinking.is_some() || !content.is_empty() {
                let parts = Parts {
                    content,
                    thinking,
                    tool_calls: None,
                };
                self.emit(parts, None, out);
            }
            for call in delta.tool_calls.unwrap_or_default() {
                let f = call.function.unwrap_or_default();
                self.tools.push(
                    call.index,
                    call.id.as_deref(),
                    f.name.as_deref(),
                    f.arguments.as_ref(),
                );
            }
            if self.tools.pending_bytes() > MAX_PENDING {
                self.fail("the upstream sent over-long tool call arguments", out);
                return;
            }
            if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
                self.done_reason = Some(usage::done_reason(Some(&*reason)));
                self.plain_finish = usage::is_plain_finish(&reason);
                self.flush_tools(out);
            }
        }
    }

    /// The upstream answered the streaming request with a plain body (no SSE event at all): a whole
    /// chat completion (servers that ignore `stream`) becomes the one final line; anything else (an error
    /// object, an HTML error page) becomes the error line with its message.
    fn plain_body(&mut self, body: &[u8], out: &mut Vec<u8>) {
        let body = body.trim_ascii();
        // Only comments, or an event cut off before its end: a stream that was cut short.
        let sse_like = [&b":"[..], b"data", b"event:", b"id:", b"retry:"]
            .iter()
            .any(|p| body.starts_with(p));
        if body.is_empty() || sse_like {
            self.fail(TRUNCATED, out);
            return;
        }
        if let Ok(v) = parse_lenient::<Value>(body) {
            let is_answer = v.get("choices").is_some() && v.get("error").is_none_or(Value::is_null);
            if is_answer {
                if let Ok(line) = resp_to_ollama::chat_or_generate(self.chat, body, &self.model) {
                    self.usage = v.get("usage").and_then(usage::from_usage);
                    self.timings = v.get("timings").and_then(usage::from_timings);
                    out.extend_from_slice(&line);
                    out.push(b'\n');
                    self.phase = Phase::Done;
                    return;
                }
            }
        }
        self.fail(&error_message(body), out);
    }

    /// Sends the accumulated tool calls as one Ollama line.
    fn flush_tools(&mut self, out: &mut Vec<u8>) {
        if self.tools.is_empty() {
            return;
        }
        let calls: Vec<OllamaToolCall> = self.tools.take();
        let parts = Parts {
            content: "",
            thinking: None,
            tool_calls: Some(&calls),
        };
        self.emit(parts, None, out);
    }

    /// Sends the final `done: true` line (pending tool calls first).
    fn complete(&mut self, out: &mut Vec<u8>) {
        self.flush_tools(out);
        let end = End {
            done_reason: self.done_reason.unwrap_or("stop"),
            metrics: usage::metrics(self.usage, self.timings),
        };
        self.emit(Parts::default(), Some(end), out);
        self.phase = Phase::Done;
    }

    fn fail(&mut self, message: &str, out: &mut Vec<u8>) {
        out.extend_from_slice(&wire_ollama::error_line(message));
        out.push(b'\n');
        self.phase = Phase::Failed;
    }

    fn emit(&mut self, parts: Parts<'_>, end: Option<End<'_>>, out: &mut Vec<u8>) {
        let (secs, nanos) = (self.clock)();
        let created_at = self.created_at.format(secs, nanos);
        wire_ollama::write_line(out, self.chat, &self.model, created_at, parts, end);
        out.push(b'\n');
    }
}
