//! OpenAI shapes the translators write to OpenAI clients: stream chunks (chat and text completions), whole
//! responses, usage and the error event. Field order follows OpenAI's own.

use serde::Serialize;

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub(crate) struct UsageOut {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl UsageOut {
    pub(crate) fn new(prompt: u64, completion: u64) -> Self {
        UsageOut {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt.saturating_add(completion),
        }
    }
}

/// A tool call as OpenAI sends it (`arguments` is a JSON string). `index` only in stream deltas.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct ToolCallOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionOut,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub(crate) struct FunctionOut {
    pub name: String,
    pub arguments: String,
}

/// A chat `delta`; every field optional so the finish chunk serialises as `{}`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallOut>>,
}

/// One choice of a stream chunk: chat (`delta`) or text completion (`text`).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum ChunkChoice<'a> {
    Chat {
        index: u32,
        delta: Delta<'a>,
        logprobs: Option<()>,
        finish_reason: Option<&'a str>,
    },
    Text {
        text: &'a str,
        index: u32,
        logprobs: Option<()>,
        finish_reason: Option<&'a str>,
    },
}

/// A stream chunk. `usage` is omitted without `include_usage`, `null` on ordinary chunks with it (as
/// OpenAI documents), and the counts on the usage chunk.
#[derive(Debug, Serialize)]
pub(crate) struct Chunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: i64,
    pub model: &'a str,
    pub choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<UsageOut>>,
}

/// The assistant message of a whole chat response. `content` is `null` when there is none.
#[derive(Debug, Serialize)]
pub(crate) struct MessageOut<'a> {
    pub role: &'static str,
    pub content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallOut>>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum WholeChoice<'a> {
    Chat {
        index: u32,
        message: MessageOut<'a>,
        logprobs: Option<()>,
        finish_reason: &'a str,
    },
    Text {
        text: &'a str,
        index: u32,
        logprobs: Option<()>,
        finish_reason: &'a str,
    },
}

/// A whole `chat.completion` or `text_completion` response.
#[derive(Debug, Serialize)]
pub(crate) struct Completion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: i64,
    pub model: &'a str,
    pub choices: Vec<WholeChoice<'a>>,
    pub usage: UsageOut,
}

/// `data: {"error": {...}}` event, in OpenAI's error object shape.
pub(crate) fn error_event(message: &str) -> Vec<u8> {
    #[derive(Serialize)]
    struct Body<'a> {
        error: ErrorOut<'a>,
    }
    #[derive(Serialize)]
    struct ErrorOut<'a> {
        message: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
        param: Option<()>,
        code: Option<()>,
    }
    let body = Body {
        error: ErrorOut {
            message,
            kind: "api_error",
            param: None,
            code: None,
        },
    };
    let mut out = b"data: ".to_vec();
    // Serialising a plain struct cannot fail; the fallback keeps the stream well-formed regardless.
    out.extend(
        serde_json::to_vec(&body)
            .unwrap_or_else(|_| br#"{"error":{"message":"upstream error"}}"#.to_vec()),
    );
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn chunk_shapes() {
        let chunk = Chunk {
            id: "c",
            object: "chat.completion.chunk",
            created: 1,
            model: "m",
            choices: vec![ChunkChoice::Chat {
                index: 0,
                delta: Delta::default(),
                logprobs: None,
                finish_reason: Some("stop"),
            }],
            usage: Some(None),
        };
        assert_eq!(
            serde_json::to_value(&chunk).unwrap(),
            json!({"id":"c","object":"chat.completion.chunk","created":1,"model":"m",
                   "choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null})
        );
        let ev = error_event("bad");
        assert!(ev.starts_with(b"data: ") && ev.ends_with(b"\n\n"));
        let v: Value = serde_json::from_slice(&ev[6..ev.len() - 2]).unwrap();
        assert_eq!(
            v,
            json!({"error":{"message":"bad","type":"api_error","param":null,"code":null}})
        );
    }
}
