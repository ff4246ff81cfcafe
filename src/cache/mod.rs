//! The response cache (SPEC §6). This part: the exact key.

pub mod key;
