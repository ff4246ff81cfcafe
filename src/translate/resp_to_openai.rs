//! Whole Ollama responses (/api/chat, /api/generate) → whole OpenAI responses (`chat.completion`,
//! `text_completion`), for OpenAI clients of Ollama-native backends.

use super::json::{parse_lenient, to_vec};
use super::time::{now_unix, parse_rfc3339};
use super::tools::args_to_string;
use super::upstream_error::message_of;
use super::wire_ollama::{OllamaIn, OllamaToolCallIn};
use super::wire_openai::{Completion, FunctionOut, MessageOut, ToolCallOut, UsageOut, WholeChoice};
use super::{ids, usage, TranslateError};

pub(crate) fn completion(chat: bool, body: &[u8], model: &str) -> Result<Vec<u8>, TranslateError> {
    let r: OllamaIn = parse_lenient(body)
        .map_err(|e| TranslateError::bad_upstream(format!("not an Ollama response: {e}")))?;
    if let Some(e) = r.error.as_ref().filter(|e| !e.is_null()) {
        let wrapped = serde_json::json!({ "error": e });
        return Err(TranslateError::Upstream(
            message_of(&wrapped).unwrap_or_else(|| "upstream error".into()),
        ));
    }
    let (content, thinking, calls) = r.parts();
    let created = r
        .created_at
        .as_deref()
        .and_then(parse_rfc3339)
        .unwrap_or_else(now_unix);
    let (prompt, completion) = r.counts();
    let finish = usage::finish_reason(r.done_reason.as_deref(), chat && !calls.is_empty());
    let (id, object, choice) = if chat {
        let tool_calls = openai_calls(calls, None, &mut || ids::call_id());
        let message = MessageOut {
            role: "assistant",
            // OpenAI's form of a pure tool-call answer has null content.
            content: (!content.is_empty() || tool_calls.is_empty()).then_some(content),
            reasoning: (!thinking.is_empty()).then_some(thinking),
            tool_calls: (!tool_calls.is_empty()).then_some(tool_calls),
        };
        let choice = WholeChoice::Chat {
            index: 0,
            message,
            logprobs: None,
            finish_reason: finish,
        };
        (ids::chat_completion_id(), "chat.completion", choice)
    } else {
        let choice = WholeChoice::Text {
            text: content,
            index: 0,
            logprobs: None,
            finish_reason: finish,
        };
        (ids::completion_id(), "text_completion", choice)
    };
    to_vec(&Completion {
        id: &id,
        object,
        created,
        model,
        choices: vec![choice],
        usage: UsageOut::new(prompt, completion),
    })
}

/// Ollama whole tool calls → OpenAI calls with string arguments; `first_index` numbers them for stream
/// deltas (`None` in whole responses); `new_id` names calls Ollama sent without an id.
pub(crate) fn openai_calls(
    calls: &[OllamaToolCallIn],
    first_index: Option<u64>,
    new_id: &mut dyn FnMut() -> String,
) -> Vec<ToolCallOut> {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| ToolCallOut {
            index: first_index.map(|f| f + i as u64),
            id: c
                .id
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(&mut *new_id),
            kind: "function",
            function: FunctionOut {
                name: c.function.name.clone().unwrap_or_default(),
                arguments: args_to_string(c.function.arguments.as_ref()),
            },
        })
        .collect()
}
