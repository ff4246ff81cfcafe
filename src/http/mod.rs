//! The HTTP/1.1 layer: the router's own codec on the runtime's native (io_uring) operations, for
//! both sides, knowing nothing of routing, slots or APIs (tests/layers.rs). `request_head.rs`
//! parses a client's request head and `response_head.rs` writes the answer's; `framing.rs` says how
//! a body is delimited; `chunked.rs` is the chunked decoder both sides share; `reader.rs` the
//! in-flight read both sides use; `writer.rs` the client's sends (a streamed batch is sent without
//! waiting for the send); `future_slot.rs` the reused allocation their in-flight futures live in;
//! `lazy_timer.rs` the idle deadlines that move on every request or chunk without touching the
//! timer wheel; `body.rs` the answer body types; `client/` upstream requests over per-worker
//! keep-alive pools (plain and TLS), read in the request's own task; `request_headers.rs` a
//! client's headers as slices of its head; `resolve.rs` upstream host names looked up off the
//! workers; `tls_roots.rs` the certificates HTTPS upstreams are checked against.

pub mod body;
pub mod chunked;
pub mod client;
pub mod clock;
pub mod framing;
pub mod future_slot;
pub mod headers;
pub mod io;
pub mod lazy_timer;
pub mod reader;
pub mod request_head;
pub mod request_headers;
pub mod resolve;
pub mod response_head;
pub mod tls_roots;
pub mod writer;
