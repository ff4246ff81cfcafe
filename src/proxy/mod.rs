//! A request's life as named phases (see `run`).

pub mod fault;
pub mod inference;
pub mod policy;
pub mod run;
pub mod translated;
