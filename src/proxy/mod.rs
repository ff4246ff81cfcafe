//! The proxy layer: a request's life as named phases. `run.rs` reads top to bottom as the whole
//! life and names each phase's file; `session.rs` is what a request carries through them;
//! `policy.rs` the rules for failures before an answer; `relay.rs` the body that holds the slot.

pub mod body_filter;
pub mod cache;
pub mod capability;
pub mod context;
pub mod epilogue;
pub mod fault;
pub mod hidden_usage;
pub mod local;
pub mod moe;
pub mod peer;
pub mod policy;
pub mod relay;
pub mod response_filter;
pub mod rework;
pub mod run;
pub mod session;
pub mod translated;
pub mod upstream;
