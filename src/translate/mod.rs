//! Ollama ⇄ OpenAI translation: requests, whole responses and incremental stream translators in both
//! directions, as pure functions independent of the HTTP layer.
//!
//! Public entry points: [`request`] (request bodies both ways), [`response`] (whole response bodies and
//! upstream error bodies), [`stream`] (NDJSON ⇄ SSE, chunk by chunk). Everything else is private helpers,
//! one job per file.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;

mod embeddings;
mod ids;
mod images;
mod json;
mod msgs_to_ollama;
mod msgs_to_openai;
mod options;
mod req_to_ollama;
mod req_to_openai;
mod resp_to_ollama;
mod resp_to_openai;
pub(crate) mod time;
mod tools;
mod upstream_error;
pub(crate) mod usage;
pub(crate) mod wire_ollama;
mod wire_openai;

#[cfg(test)]
mod tests;

pub use error::TranslateError;

/// The Ollama-native inference routes a client can call (or a translated request targets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OllamaRoute {
    Chat,
    Generate,
    Embed,
    Embeddings,
}

/// The OpenAI inference routes a client can call (or a translated request targets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenAiRoute {
    Chat,
    Completions,
    Embeddings,
}

/// Which OpenAI-compatible server a translated Ollama request goes to: llama-server also takes
/// llama.cpp's samplers (`options.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    LlamaServer,
}

/// A translated request: the path to call (relative: for OpenAI targets relative to the OpenAI base URL,
/// e.g. "/chat/completions"; for Ollama targets absolute, e.g. "/api/chat"), the new body, and whether
/// the upstream will stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translated {
    pub path: &'static str,
    pub body: Vec<u8>,
    pub stream: bool,
}
