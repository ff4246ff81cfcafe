//! Routing: which endpoint serves a request. The discovery thread publishes an immutable placement
//! snapshot; workers read it without locks, take a per endpoint×model slot on atomics, and wait in a
//! bounded FIFO when every candidate is full. `fetch.rs` sends a request to one endpoint (its pool, URL, key).

pub mod choose;
pub mod context;
pub mod endpoint;
pub mod fetch;
pub mod names;
pub mod placement;
pub mod queue;
pub mod registry;
pub mod slots;
