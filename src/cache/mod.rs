//! The response cache (SPEC §6): the exact key, the bounded in-memory store, the neutral answer
//! form with its renderings, and the interface of the persistent stores.

pub mod answer;
pub mod key;
pub mod memory;
pub mod store;
