//! Reads an answer off the bytes on their way to the client, so a complete one can be stored
//! (SPEC §6.5). Ollama bytes (a whole JSON answer is one NDJSON line) are gathered line by line as
//! they pass; OpenAI bytes are first put into Ollama's shape by the translators (which keep tool-call
//! ids, reasoning and usage), streams as they pass, whole answers once ended. Whatever the split of
//! the bytes, the gathered answer is the same; an answer larger than the limit is given up on.

use super::answer::{Answer, Gather, NotStored};
use crate::translate::response::openai_to_ollama_response;
use crate::translate::stream::SseToNdjson;
use crate::translate::usage::is_plain_finish;
use crate::translate::OllamaRoute;

/// The client's wire format, which decides how its bytes are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Ollama NDJSON stream or whole JSON answer.
    Ollama,
    /// A whole OpenAI JSON answer.
    OpenAiJson,
    /// An OpenAI SSE stream.
    OpenAiSse,
}

pub struct Capture {
    wire: Wire,
    route: OllamaRoute,
    gather: Gather,
    /// A partial NDJSON line, or a whole OpenAI JSON answer.
    pending: Vec<u8>,
    sse: Option<SseToNdjson>,
    limit: usize,
    seen: usize,
    failed: Option<NotStored>,
}

impl Capture {
    /// `chat`: the answer is a chat message (else a completion text); `limit`: bytes read at most.
    pub fn new(wire: Wire, chat: bool, limit: usize) -> Self {
        let route = if chat {
            OllamaRoute::Chat
        } else {
            OllamaRoute::Generate
        };
        Capture {
            wire,
            route,
            gather: Gather::new(chat),
            pending: Vec::new(),
            sse: (wire == Wire::OpenAiSse).then(|| SseToNdjson::new(route, "")),
            limit,
            seen: 0,
            failed: None,
        }
    }

    /// The next bytes the client was sent.
    pub fn data(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        self.seen += bytes.len();
        if self.seen > self.limit {
            self.give_up(NotStored::TooLarge);
            return;
        }
        match self.wire {
            Wire::Ollama => self.ndjson(bytes),
            Wire::OpenAiJson => self.pending.extend_from_slice(bytes),
            Wire::OpenAiSse => {
                let mut lines = Vec::new();
                if let Some(t) = self.sse.as_mut() {
                    t.feed(bytes, &mut lines);
                }
                self.ndjson(&lines);
            }
        }
    }

    /// The answer, if the bytes made a complete, successful one.
    pub fn finish(mut self) -> Result<Answer, NotStored> {
        if let Some(why) = self.failed.take() {
            return Err(why);
        }
        match self.wire {
            Wire::Ollama => {}
            Wire::OpenAiJson => {
                if !plain_finish(&self.pending) {
                    return Err(NotStored::Error);
                }
                let json = openai_to_ollama_response(self.route, &self.pending, "")
                    .map_err(|_| NotStored::Error)?;
                self.pending.clear();
                self.gather.line(&json)?;
            }
            Wire::OpenAiSse => {
                let mut lines = Vec::new();
                let mut plain = false;
                if let Some(t) = self.sse.as_mut() {
                    t.finish(&mut lines);
                    plain = t.finished_plainly();
                }
                self.ndjson(&lines);
                if !plain {
                    return Err(NotStored::Error);
                }
            }
        }
        if let Some(why) = self.failed.take() {
            return Err(why);
        }
        if !self.pending.trim_ascii().is_empty() {
            // An Ollama answer's last line has no newline when the answer is a whole JSON.
            let last = std::mem::take(&mut self.pending);
            self.gather.line(last.trim_ascii())?;
        }
        let answer = self.gather.finish()?;
        // Tool arguments that were not a JSON object reached Ollama's shape wrapped (`_raw`): the
        // replay would not be what the upstream said.
        if self.wire != Wire::Ollama
            && answer
                .tool_calls
                .iter()
                .any(|c| c.function.arguments.get("_raw").is_some())
        {
            return Err(NotStored::Malformed);
        }
        Ok(answer)
    }

    fn ndjson(&mut self, bytes: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (line, tail) = rest.split_at(end);
            rest = &tail[1..];
            let result = if self.pending.is_empty() {
                self.line(line)
            } else {
                let mut whole = std::mem::take(&mut self.pending);
                whole.extend_from_slice(line);
                self.line(&whole)
            };
            if let Err(why) = result {
                self.give_up(why);
                return;
            }
        }
        self.pending.extend_from_slice(rest);
    }

    fn line(&mut self, line: &[u8]) -> Result<(), NotStored> {
        let line = line.trim_ascii();
        if line.is_empty() {
            return Ok(());
        }
        self.gather.line(line)
    }

    fn give_up(&mut self, why: NotStored) {
        self.failed = Some(why);
        self.pending = Vec::new();
        self.sse = None;
    }
}

/// A whole OpenAI answer's one choice ended with `stop`, `length` or `tool_calls` (what a replay
/// can say as it is), and there is exactly one choice.
fn plain_finish(json: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Whole<'a> {
        #[serde(borrow)]
        choices: Vec<Choice<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Choice<'a> {
        #[serde(borrow)]
        finish_reason: Option<std::borrow::Cow<'a, str>>,
    }
    match serde_json::from_slice::<Whole>(json) {
        Ok(w) => {
            w.choices.len() == 1
                && w.choices[0]
                    .finish_reason
                    .as_deref()
                    .is_some_and(is_plain_finish)
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NDJSON: &str = concat!(
        r#"{"model":"m","created_at":"t","message":{"role":"assistant","content":"Hel"},"done":false}"#,
        "\n",
        r#"{"model":"m","created_at":"t","message":{"role":"assistant","content":"lo"},"done":false}"#,
        "\n",
        r#"{"model":"m","created_at":"t","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":2}"#,
        "\n",
    );

    const SSE: &str = concat!(
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"}}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_9\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":\"}}]}}]}\n\n",
        "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]},\"finish_reason\":\"tool_calls\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n",
        "data: [DONE]\n\n",
    );

    fn captured(wire: Wire, bytes: &[u8], split: usize) -> Result<Answer, NotStored> {
        let mut c = Capture::new(wire, true, 1 << 20);
        for part in bytes.chunks(split.max(1)) {
            c.data(part);
        }
        c.finish()
    }

    #[test]
    fn any_split_of_an_ollama_stream_gives_the_same_answer() {
        let whole = captured(Wire::Ollama, NDJSON.as_bytes(), usize::MAX).unwrap();
        assert_eq!(whole.content, "Hello");
        assert_eq!((whole.prompt_tokens, whole.completion_tokens), (3, 2));
        for split in [1, 2, 7, 50] {
            assert_eq!(
                captured(Wire::Ollama, NDJSON.as_bytes(), split).unwrap(),
                whole
            );
        }
        let json = NDJSON.lines().last().unwrap().replace("\"\"", "\"Hello\"");
        let one = captured(Wire::Ollama, json.as_bytes(), 5).unwrap();
        assert_eq!(one.content, "Hello", "a whole answer without a newline");
    }

    #[test]
    fn openai_streams_keep_tool_call_ids_and_usage() {
        let a = captured(Wire::OpenAiSse, SSE.as_bytes(), 3).unwrap();
        assert_eq!(a.content, "Hello");
        assert_eq!(a.tool_calls.len(), 1);
        assert_eq!(a.tool_calls[0].id.as_deref(), Some("call_9"));
        assert_eq!(a.tool_calls[0].function.arguments["a"], 1);
        assert_eq!((a.prompt_tokens, a.completion_tokens), (3, 2));
        assert_eq!(
            a.done_reason, "stop",
            "Ollama's reason for a tool-call answer"
        );
    }

    #[test]
    fn whole_openai_answers() {
        let json = br#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi","reasoning_content":"hmm"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
        let a = captured(Wire::OpenAiJson, json, 4).unwrap();
        assert_eq!((a.content.as_str(), a.thinking.as_str()), ("hi", "hmm"));
        let err = br#"{"error":{"message":"boom"}}"#;
        assert!(captured(Wire::OpenAiJson, err, 4).is_err());
    }

    #[test]
    fn finish_reasons_a_replay_would_change_are_not_captured() {
        let filtered = SSE.replace(
            "\"finish_reason\":\"tool_calls\"",
            "\"finish_reason\":\"content_filter\"",
        );
        assert!(captured(Wire::OpenAiSse, filtered.as_bytes(), 7).is_err());
        let none = SSE.replace("\"finish_reason\":\"tool_calls\"", "\"finish_reason\":null");
        assert!(captured(Wire::OpenAiSse, none.as_bytes(), 7).is_err());
        let json = br#"{"choices":[{"index":0,"message":{"content":"hi"},"finish_reason":"content_filter"}]}"#;
        assert!(captured(Wire::OpenAiJson, json, 4).is_err());
        let two = br#"{"choices":[{"index":0,"message":{"content":"a"},"finish_reason":"stop"},{"index":1,"message":{"content":"b"},"finish_reason":"stop"}]}"#;
        assert!(captured(Wire::OpenAiJson, two, 4).is_err());
        let raw_args = SSE
            .replace("\"{\\\"a\\\":\"", "\"not \"")
            .replace("\"1}\"", "\"json\"");
        assert_eq!(
            captured(Wire::OpenAiSse, raw_args.as_bytes(), 9),
            Err(NotStored::Malformed),
            "{raw_args}"
        );
    }

    #[test]
    fn cut_errored_and_oversized_answers_are_not_captured() {
        let cut = &NDJSON.as_bytes()[..NDJSON.len() - 30];
        assert!(captured(Wire::Ollama, cut, 9).is_err());
        let sse_cut = &SSE.as_bytes()[..SSE.find("[DONE]").unwrap() - 200];
        assert!(captured(Wire::OpenAiSse, sse_cut, 9).is_err());
        let errored = format!(
            "{}{{\"error\":\"boom\"}}\n",
            &NDJSON[..NDJSON.find('\n').unwrap() + 1]
        );
        assert_eq!(
            captured(Wire::Ollama, errored.as_bytes(), 4),
            Err(NotStored::Error)
        );
        let mut small = Capture::new(Wire::Ollama, true, 10);
        small.data(NDJSON.as_bytes());
        assert_eq!(small.finish(), Err(NotStored::TooLarge));
    }
}
