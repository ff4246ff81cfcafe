//! The response cache (SPEC §6): the exact key, the bounded in-memory store, the neutral answer
//! form with its renderings, the interface of the persistent stores, and the shared store on Redis.

pub mod answer;
pub mod key;
pub mod memory;
pub mod redis_store;
pub mod store;
