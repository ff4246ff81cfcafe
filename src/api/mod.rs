//! The API surface: the route table, errors in each API's format, request sniffing, and the handlers
//! (proxied inference, merged listings, management fan-out, the router's own routes).

pub mod errors;
pub mod listing;
pub mod manage;
pub mod own;
pub mod routes;
pub mod show;
pub mod sniff;
pub mod util;
