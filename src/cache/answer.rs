//! A stored answer in a neutral form (SPEC §6.5): what the model said, not the bytes of one wire
//! format, so that one entry serves JSON, NDJSON and SSE clients of both APIs. It is gathered from
//! Ollama's shapes (an OpenAI answer is first translated by `translate`, which keeps tool-call ids),
//! and rendered back into Ollama's (OpenAI clients get the translation of that rendering).

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::translate::wire_ollama::{self, End, Metrics, OllamaFunction, OllamaToolCall, Parts};

/// One tool call, arguments kept as the JSON object the model produced.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: Option<String>,
    pub function: Function,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Function {
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

/// What the model answered, whole.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
pub struct Answer {
    /// `/api/chat` (a message) or `/api/generate` (a response text).
    pub chat: bool,
    pub content: String,
    pub thinking: String,
    pub tool_calls: Vec<ToolCall>,
    pub done_reason: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// The parts of one Ollama line (or whole answer) that make an answer.
/// Strings are borrowed from the line where they have no escapes: a streamed line costs no
/// allocation but its text's append.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(default, borrow)]
    message: Option<Message<'a>>,
    #[serde(default, borrow)]
    response: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(default)]
    done: bool,
    #[serde(default, borrow)]
    done_reason: Option<Cow<'a, str>>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCall>>,
}

/// Why an answer cannot be stored.
#[derive(Debug, PartialEq, Eq)]
pub enum NotStored {
    /// Not Ollama JSON of the expected shape.
    Malformed,
    /// The answer carries an error (an error line, or an error object).
    Error,
    /// The stream ended before its `done: true` line.
    Unfinished,
    /// Larger than a capture may hold.
    TooLarge,
}

/// Gathers an answer from Ollama stream lines (or one whole answer, which is a single line).
#[derive(Default)]
pub struct Gather {
    answer: Answer,
    finished: bool,
}

impl Gather {
    pub fn new(chat: bool) -> Self {
        Gather {
            answer: Answer {
                chat,
                ..Answer::default()
            },
            finished: false,
        }
    }

    /// Adds one NDJSON line (without its newline).
    pub fn line(&mut self, line: &[u8]) -> Result<(), NotStored> {
        if self.finished {
            return Err(NotStored::Malformed);
        }
        let l: Line = serde_json::from_slice(line).map_err(|_| NotStored::Malformed)?;
        if l.error.is_some() {
            return Err(NotStored::Error);
        }
        let a = &mut self.answer;
        if a.chat {
            let m = l.message.ok_or(NotStored::Malformed)?;
            a.content.push_str(m.content.as_deref().unwrap_or(""));
            a.thinking.push_str(m.thinking.as_deref().unwrap_or(""));
            a.tool_calls.extend(m.tool_calls.unwrap_or_default());
        } else {
            a.content
                .push_str(l.response.as_deref().ok_or(NotStored::Malformed)?);
            a.thinking.push_str(l.thinking.as_deref().unwrap_or(""));
        }
        if l.done {
            a.done_reason = l.done_reason.map_or_else(|| "stop".into(), Cow::into_owned);
            a.prompt_tokens = l.prompt_eval_count.unwrap_or(0);
            a.completion_tokens = l.eval_count.unwrap_or(0);
            self.finished = true;
        }
        Ok(())
    }

    /// Adds NDJSON bytes: every whole line in them (a stream relayed in any split is fed whole
    /// lines by the caller).
    pub fn lines(&mut self, ndjson: &[u8]) -> Result<(), NotStored> {
        for line in ndjson.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            self.line(line)?;
        }
        Ok(())
    }

    /// The whole answer, if the stream finished well.
    pub fn finish(self) -> Result<Answer, NotStored> {
        if !self.finished {
            return Err(NotStored::Unfinished);
        }
        if self.answer.done_reason != "stop"
            && self.answer.done_reason != "length"
            && self.answer.done_reason != "tool_calls"
        {
            // `load`, `unload`, or a reason of an error: not an answer to replay.
            return Err(NotStored::Error);
        }
        let mut a = self.answer;
        // Kept for long: give back what growing by appends reserved.
        a.content.shrink_to_fit();
        a.thinking.shrink_to_fit();
        Ok(a)
    }
}

/// Text pieces per replayed stream line: a client's incremental parser sees deltas, as from a
/// model, without one line per character.
const PIECE_CHARS: usize = 16;

/// The first byte of an encoded answer: a store's bytes of another version are not read as this one.
const CODEC_VERSION: u8 = 1;

impl Answer {
    /// The bytes a persistent store keeps.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![CODEC_VERSION];
        // Serialising owned strings and JSON values cannot fail.
        serde_json::to_writer(&mut out, self).expect("an answer serialises");
        out
    }

    /// An answer from a store's bytes; `None` for bytes of another version or damaged ones.
    pub fn decode(bytes: &[u8]) -> Option<Answer> {
        match bytes.split_first() {
            Some((&CODEC_VERSION, rest)) => serde_json::from_slice(rest).ok(),
            _ => None,
        }
    }

    /// Bytes charged for keeping it.
    /// Bytes charged for keeping it in memory: its text, and what holding an entry costs besides
    /// (the LRU's node and slot, reference counts, the allocator's rounding), measured as about
    /// 256 bytes (`loadtest/cache_fill.py`).
    pub fn size(&self) -> usize {
        const ENTRY_OVERHEAD: usize = 256;
        let calls: usize = self
            .tool_calls
            .iter()
            .map(|c| c.function.name.len() + c.function.arguments.to_string().len() + 96)
            .sum();
        std::mem::size_of::<Self>()
            + ENTRY_OVERHEAD
            + self.content.capacity()
            + self.thinking.capacity()
            + calls
    }

    /// The tool calls in the translators' Ollama shape (numbered in order).
    fn ollama_calls(&self) -> Vec<OllamaToolCall> {
        self.tool_calls
            .iter()
            .enumerate()
            .map(|(i, c)| OllamaToolCall {
                id: c.id.clone(),
                function: OllamaFunction {
                    index: i as u64,
                    name: c.function.name.clone(),
                    arguments: c.function.arguments.clone(),
                },
            })
            .collect()
    }

    fn end(&self) -> End<'_> {
        End {
            done_reason: &self.done_reason,
            metrics: Metrics {
                prompt_tokens: self.prompt_tokens,
                completion_tokens: self.completion_tokens,
                ..Metrics::default()
            },
        }
    }

    /// The whole answer as Ollama sends it for `stream: false`.
    pub fn to_ollama_json(&self, model: &str, created_at: &str) -> Vec<u8> {
        let calls = self.ollama_calls();
        let parts = Parts {
            content: &self.content,
            thinking: Some(&self.thinking),
            tool_calls: Some(&calls),
        };
        wire_ollama::line(self.chat, model, created_at, parts, Some(self.end()))
    }

    /// The answer as an Ollama NDJSON stream: thinking, then the text in pieces, then the tool
    /// calls, then the `done: true` line.
    pub fn to_ndjson(&self, model: &str, created_at: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.content.len() * 8 + 256);
        let mut lines = NdjsonLines::default();
        while lines.next_line(self, model, created_at, &mut out) {}
        out
    }
}

/// Where a replayed NDJSON stream is: the lines are written one at a time, on demand, so that a
/// long answer is never rendered whole for a client that reads slowly.
#[derive(Default)]
pub struct NdjsonLines {
    part: LinePart,
    /// Byte offset in the current text (always at a character boundary).
    at: usize,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum LinePart {
    #[default]
    Thinking,
    Content,
    Tools,
    End,
    Done,
}

impl NdjsonLines {
    /// Appends the next line (with its newline) to `out`; false when the stream has ended.
    pub fn next_line(
        &mut self,
        a: &Answer,
        model: &str,
        created_at: &str,
        out: &mut Vec<u8>,
    ) -> bool {
        let mut push = |parts: Parts<'_>, end: Option<End<'_>>| {
            wire_ollama::write_line(out, a.chat, model, created_at, parts, end);
            out.push(b'\n');
        };
        loop {
            match self.part {
                LinePart::Thinking | LinePart::Content => {
                    let thinking = self.part == LinePart::Thinking;
                    let text = if thinking { &a.thinking } else { &a.content };
                    let Some(piece) = next_piece(text, &mut self.at) else {
                        self.part = if thinking {
                            LinePart::Content
                        } else {
                            LinePart::Tools
                        };
                        self.at = 0;
                        continue;
                    };
                    let parts = if thinking {
                        Parts {
                            thinking: Some(piece),
                            ..Parts::default()
                        }
                    } else {
                        Parts {
                            content: piece,
                            ..Parts::default()
                        }
                    };
                    push(parts, None);
                    return true;
                }
                LinePart::Tools => {
                    self.part = LinePart::End;
                    let calls = a.ollama_calls();
                    if calls.is_empty() {
                        continue;
                    }
                    let parts = Parts {
                        tool_calls: Some(&calls),
                        ..Parts::default()
                    };
                    push(parts, None);
                    return true;
                }
                LinePart::End => {
                    self.part = LinePart::Done;
                    push(Parts::default(), Some(a.end()));
                    return true;
                }
                LinePart::Done => return false,
            }
        }
    }
}

/// The next piece of about `PIECE_CHARS` characters of `text` from byte `*at` (a character
/// boundary), moving `*at` past it.
fn next_piece<'t>(text: &'t str, at: &mut usize) -> Option<&'t str> {
    let rest = text.get(*at..).filter(|r| !r.is_empty())?;
    let cut = rest
        .char_indices()
        .nth(PIECE_CHARS)
        .map_or(rest.len(), |(i, _)| i);
    *at += cut;
    Some(&rest[..cut])
}

/// `text` cut into pieces of about `PIECE_CHARS` characters, at character boundaries.
#[cfg(test)]
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut at = 0;
    std::iter::from_fn(move || next_piece(text, &mut at))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAT_STREAM: &str = concat!(
        r#"{"model":"m","created_at":"t","message":{"role":"assistant","content":"","thinking":"let me "},"done":false}"#,
        "\n",
        r#"{"model":"m","created_at":"t","message":{"role":"assistant","content":"","thinking":"think"},"done":false}"#,
        "\n",
        r#"{"model":"m","created_at":"t","message":{"role":"assistant","content":"Héllo, "},"done":false}"#,
        "\n",
        r#"{"model":"m","created_at":"t","message":{"role":"assistant","content":"wörld — a long enough answer to be cut"},"done":false}"#,
        "\n",
        r#"{"model":"m","created_at":"t","message":{"role":"assistant","content":"","tool_calls":[{"id":"call_1","function":{"name":"get","arguments":{"city":"Paris"}}}]},"done":false}"#,
        "\n",
        r#"{"model":"m","created_at":"t","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":7,"eval_count":12}"#,
        "\n",
    );

    fn gathered(ndjson: &str, chat: bool) -> Result<Answer, NotStored> {
        let mut g = Gather::new(chat);
        g.lines(ndjson.as_bytes())?;
        g.finish()
    }

    #[test]
    fn a_stream_gathers_into_one_answer_and_replays_the_same() {
        let a = gathered(CHAT_STREAM, true).unwrap();
        assert_eq!(a.content, "Héllo, wörld — a long enough answer to be cut");
        assert_eq!(a.thinking, "let me think");
        assert_eq!(a.tool_calls[0].id.as_deref(), Some("call_1"));
        assert_eq!((a.prompt_tokens, a.completion_tokens), (7, 12));
        let replay = a.to_ndjson("m", "t");
        let lines = replay
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        assert!(lines > 4, "the text comes in pieces: {lines} lines");
        assert_eq!(
            gathered(std::str::from_utf8(&replay).unwrap(), true).unwrap(),
            a
        );
        let whole = a.to_ollama_json("m", "t");
        assert_eq!(
            gathered(std::str::from_utf8(&whole).unwrap(), true).unwrap(),
            a
        );
    }

    #[test]
    fn encoding_round_trips_and_refuses_other_bytes() {
        let a = gathered(CHAT_STREAM, true).unwrap();
        assert_eq!(Answer::decode(&a.encode()), Some(a.clone()));
        let mut other = a.encode();
        other[0] = 2;
        assert_eq!(Answer::decode(&other), None);
        assert_eq!(Answer::decode(b""), None);
        assert_eq!(Answer::decode(&a.encode()[..10]), None);
    }

    #[test]
    fn generate_answers_use_response() {
        let s = concat!(
            r#"{"model":"m","created_at":"t","response":"a","done":false}"#,
            "\n",
            r#"{"model":"m","created_at":"t","response":"b","done":true,"done_reason":"length","eval_count":2}"#,
            "\n",
        );
        let a = gathered(s, false).unwrap();
        assert_eq!(
            (a.content.as_str(), a.done_reason.as_str()),
            ("ab", "length")
        );
        let v: Value = serde_json::from_slice(&a.to_ollama_json("m", "t")).unwrap();
        assert_eq!(v["response"], "ab");
        assert!(v.get("message").is_none());
    }

    #[test]
    fn errors_and_unfinished_streams_are_not_stored() {
        let cut = CHAT_STREAM.lines().take(3).collect::<Vec<_>>().join("\n");
        assert_eq!(gathered(&cut, true), Err(NotStored::Unfinished));
        let errored = format!(
            "{}\n{{\"error\":\"boom\"}}\n",
            CHAT_STREAM.lines().next().unwrap()
        );
        assert_eq!(gathered(&errored, true), Err(NotStored::Error));
        let load = r#"{"model":"m","created_at":"t","message":{"role":"assistant","content":""},"done":true,"done_reason":"load"}"#;
        assert_eq!(gathered(load, true), Err(NotStored::Error));
        assert_eq!(gathered("not json", true), Err(NotStored::Malformed));
        let after_done = format!("{CHAT_STREAM}{}\n", CHAT_STREAM.lines().next().unwrap());
        assert_eq!(gathered(&after_done, true), Err(NotStored::Malformed));
    }

    #[test]
    fn pieces_cut_at_character_boundaries() {
        let text = "é".repeat(40);
        let parts: Vec<&str> = pieces(&text).collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts.concat(), text);
        assert_eq!(pieces("").count(), 0);
    }

    #[test]
    fn openai_clients_get_the_translation_with_ids_reasoning_and_usage() {
        use crate::translate::response::ollama_to_openai_response;
        use crate::translate::stream::NdjsonToSse;
        use crate::translate::OpenAiRoute;
        let a = gathered(CHAT_STREAM, true).unwrap();
        let json =
            ollama_to_openai_response(OpenAiRoute::Chat, &a.to_ollama_json("m", "t"), "m").unwrap();
        let v: Value = serde_json::from_slice(&json).unwrap();
        let msg = &v["choices"][0]["message"];
        assert_eq!(msg["content"], a.content.as_str());
        assert_eq!(msg["tool_calls"][0]["id"], "call_1");
        assert_eq!(v["usage"]["completion_tokens"], 12);
        let mut sse = Vec::new();
        let mut t = NdjsonToSse::new(OpenAiRoute::Chat, "m", true);
        t.feed(&a.to_ndjson("m", "t"), &mut sse);
        t.finish(&mut sse);
        let text = String::from_utf8(sse).unwrap();
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(text.contains("call_1") && text.contains("Paris"), "{text}");
        assert_eq!(t.usage(), Some((7, 12)));
    }
}
