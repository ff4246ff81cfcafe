//! The response cache (SPEC §6). `response_cache` is what the proxy calls: the lookup chain, the
//! store, coalescing (`flights`), invalidation and the numbers (`stats`). An entry is identified
//! by `key`, kept as a neutral `answer` read off the client's bytes by `capture`, and rendered for
//! each client by `replay`. Entries live in `memory`, mirrored to a file (`mmap_log`,
//! `sqlite_store`) or kept in Redis (`redis_store`) through the `store` interface, whose calls run
//! on the cache's own `thread`.

pub mod answer;
pub mod capture;
pub mod flights;
pub mod key;
pub mod memory;
pub mod mmap_log;
pub mod privacy;
pub mod redis_store;
pub mod replay;
pub mod response_cache;
pub mod semantic;
pub mod sqlite_store;
pub mod stats;
pub mod store;
#[cfg(test)]
pub(crate) mod test_dir;
pub mod thread;
