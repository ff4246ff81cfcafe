//! Request translation entry points: an Ollama-native request body → an OpenAI request, and the reverse.
//! The body's `model` is replaced by the backend's name for it; fields the target API has no use for are
//! dropped (listed in `req_to_openai.rs`, `req_to_ollama.rs` and `options.rs`).

use serde_json::Value;

use super::json::client_object;
use super::{
    req_to_ollama, req_to_openai, Dialect, OllamaRoute, OpenAiRoute, TranslateError, Translated,
};

/// Ollama request (body of /api/chat, /api/generate, /api/embed, /api/embeddings) → OpenAI request for
/// `upstream_model`. Chat and generate both target `/chat/completions`.
pub fn ollama_to_openai(
    route: OllamaRoute,
    body: &[u8],
    upstream_model: &str,
) -> Result<Translated, TranslateError> {
    to_openai_dialect(route, body, upstream_model, Dialect::OpenAi)
}

/// `ollama_to_openai` for a llama-server, which also takes llama.cpp's samplers (`options.rs`).
pub fn ollama_to_llama_server(
    route: OllamaRoute,
    body: &[u8],
    upstream_model: &str,
) -> Result<Translated, TranslateError> {
    to_openai_dialect(route, body, upstream_model, Dialect::LlamaServer)
}

fn to_openai_dialect(
    route: OllamaRoute,
    body: &[u8],
    upstream_model: &str,
    dialect: Dialect,
) -> Result<Translated, TranslateError> {
    let req = client_object(body)?;
    match route {
        OllamaRoute::Chat => req_to_openai::chat(&req, upstream_model, dialect),
        OllamaRoute::Generate => req_to_openai::generate(&req, upstream_model, dialect),
        OllamaRoute::Embed => req_to_openai::embed(&req, upstream_model),
        OllamaRoute::Embeddings => req_to_openai::embeddings_legacy(&req, upstream_model),
    }
}

/// OpenAI request (/v1/chat/completions, /v1/completions, /v1/embeddings) → Ollama native request for
/// `upstream_model`.
pub fn openai_to_ollama(
    route: OpenAiRoute,
    body: &[u8],
    upstream_model: &str,
) -> Result<Translated, TranslateError> {
    let req = client_object(body)?;
    match route {
        OpenAiRoute::Chat => req_to_ollama::chat(&req, upstream_model),
        OpenAiRoute::Completions => req_to_ollama::completions(&req, upstream_model),
        OpenAiRoute::Embeddings => req_to_ollama::embeddings(&req, upstream_model),
    }
}

/// Whether an OpenAI request asks for the usage chunk (`stream_options.include_usage: true`), for
/// [`super::stream::NdjsonToSse::new`]. False for anything unparseable.
pub fn stream_include_usage(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("stream_options")?.get("include_usage")?.as_bool())
        .unwrap_or(false)
}
