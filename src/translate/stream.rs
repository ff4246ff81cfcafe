//! Incremental stream translators: an OpenAI SSE stream → an Ollama NDJSON stream ([`SseToNdjson`]) and
//! the reverse ([`NdjsonToSse`]). They are fed upstream bytes as they arrive, emit each translated piece as
//! soon as it is complete, and give byte-identical output however the input is split.

mod chunk_in;
mod lines;
mod ndjson_to_sse;
mod sse;
mod sse_to_ndjson;

pub use ndjson_to_sse::NdjsonToSse;
pub use sse_to_ndjson::SseToNdjson;

#[cfg(test)]
pub(crate) use ndjson_to_sse::Stamp;

/// Longest line or event the translators buffer; an upstream that exceeds it is treated as broken rather
/// than allowed to grow the router's memory without bound.
const MAX_PENDING: usize = 16 * 1024 * 1024;
