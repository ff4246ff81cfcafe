//! The OpenAI stream chunk as `SseToNdjson` reads it: only the fields it translates; unknown fields are
//! ignored, and fields whose type varies between servers are read as `Value`.

use serde::Deserialize;
use serde_json::Value;

/// One chunk of an OpenAI chat (or text completion) stream.
#[derive(Debug, Deserialize)]
pub(super) struct ChunkIn {
    pub object: Option<String>,
    /// With `object: "error"` (vLLM).
    pub message: Option<Value>,
    pub choices: Option<Vec<ChoiceIn>>,
    pub usage: Option<Value>,
    pub timings: Option<Value>,
    pub error: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ChoiceIn {
    pub index: Option<u64>,
    pub delta: Option<DeltaIn>,
    /// Some servers stream whole `message` objects instead of deltas.
    pub message: Option<DeltaIn>,
    /// Legacy text completions.
    pub text: Option<String>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DeltaIn {
    pub content: Option<Value>,
    pub reasoning: Option<Value>,
    pub reasoning_content: Option<Value>,
    pub refusal: Option<Value>,
    pub tool_calls: Option<Vec<ToolDeltaIn>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ToolDeltaIn {
    pub index: Option<u64>,
    pub id: Option<String>,
    pub function: Option<FunctionDeltaIn>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct FunctionDeltaIn {
    pub name: Option<String>,
    pub arguments: Option<Value>,
}
