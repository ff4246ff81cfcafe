//! The response cache (SPEC §6). So far: the exact key and the bounded in-memory store.

pub mod key;
pub mod memory;
