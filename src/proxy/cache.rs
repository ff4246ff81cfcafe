//! The cache phases. The response cache is not built yet: a lookup always misses and nothing is
//! stored. Its place in the request's life is fixed here so that it plugs in without moving
//! anything: the lookup runs after the request filter and before an endpoint is chosen (a hit
//! takes no slot), the store runs in the epilogue once the answer ended complete.

use http::Response;

use super::relay::Outcome;
use crate::api::sniff::Sniffed;
use crate::http::body::RouterBody;

/// The cached answer to this request, rendered in the client's format; `None` (a miss) for now.
#[inline(always)]
pub fn lookup(_request: &Sniffed) -> Option<Response<RouterBody>> {
    None
}

/// Keeps a complete answer for later lookups; nothing for now.
#[inline(always)]
pub fn store(_outcome: &Outcome) {}
