//! HTTP glue. Both sides speak HTTP/1.1 through the router's own codec on the runtime's native
//! (io_uring) operations: `server/` parses client requests and writes answers, `client/` sends
//! upstream requests over per-worker keep-alive pools (plain and TLS) and reads their answers in the
//! request's own task. `body.rs` holds the response body types, `chunked.rs` the chunked decoder
//! both sides share, `reader.rs` the in-flight read both sides use, `writer.rs` the client's sends
//! (a streamed batch is sent without waiting for the send), `future_slot.rs` the reused allocation
//! their in-flight futures live in, `lazy_timer.rs` the
//! idle deadlines that move on every request or chunk without touching the timer wheel,
//! `request_headers.rs` a client's headers as slices of its head, `resolve.rs` upstream host names
//! looked up off the workers, `tls_roots.rs` the certificates HTTPS upstreams are checked against.

pub mod body;
pub mod chunked;
pub mod client;
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
