//! HTTP glue: the server side of a connection, the upstream client with per-worker pools (plain and
//! TLS), and the response body types. Hyper runs over monoio through `monoio-compat`; everything
//! else in the router talks to this module, so a native codec could replace it.

pub mod body;
pub mod fetch;
pub mod headers;
pub mod io;
pub mod upstream;
