//! Whole (non-streamed) response translation entry points, both directions, and the extraction of a
//! message from an upstream error body in either format.

use super::{
    embeddings, resp_to_ollama, resp_to_openai, upstream_error, OllamaRoute, OpenAiRoute,
    TranslateError,
};

/// OpenAI response body → Ollama response body for the client; `model` is the name the client asked for.
/// An OpenAI error body gives [`TranslateError::Upstream`] with its message.
pub fn openai_to_ollama_response(
    route: OllamaRoute,
    body: &[u8],
    model: &str,
) -> Result<Vec<u8>, TranslateError> {
    match route {
        OllamaRoute::Chat => resp_to_ollama::chat_or_generate(true, body, model),
        OllamaRoute::Generate => resp_to_ollama::chat_or_generate(false, body, model),
        OllamaRoute::Embed => embeddings::to_ollama(body, model, false),
        OllamaRoute::Embeddings => embeddings::to_ollama(body, model, true),
    }
}

/// Ollama response body → OpenAI response body. An Ollama error body gives [`TranslateError::Upstream`].
pub fn ollama_to_openai_response(
    route: OpenAiRoute,
    body: &[u8],
    model: &str,
) -> Result<Vec<u8>, TranslateError> {
    match route {
        OpenAiRoute::Chat => resp_to_openai::completion(true, body, model),
        OpenAiRoute::Completions => resp_to_openai::completion(false, body, model),
        OpenAiRoute::Embeddings => embeddings::to_openai(body, model),
    }
}

/// An upstream error body in either format → its message (for re-wrapping in the client's format). Falls
/// back to the raw text (trimmed, at most 500 chars; a fixed message when empty).
pub fn error_message(body: &[u8]) -> String {
    upstream_error::error_message(body)
}
