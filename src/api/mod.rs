//! The API surface: the route table, errors in each API's format, request sniffing, and the
//! answers the router makes itself (merged listings, management fan-out, its own routes). The
//! request's life, inference included, is in `proxy`.

pub mod accept;
pub mod accounting_routes;
pub mod cache_routes;
pub mod dashboard;
pub mod errors;
pub mod listing;
pub mod manage;
pub mod metrics_text;
pub mod own;
pub mod routes;
pub mod show;
pub mod show_remote;
pub mod sniff;
pub mod usage;
pub mod util;
