//! The response cache (SPEC §6). So far: the exact key, the bounded in-memory store and the
//! neutral answer form with its Ollama renderings; not yet wired into requests.

pub mod answer;
pub mod key;
pub mod memory;
