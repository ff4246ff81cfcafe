//! Injected panics, for the tests that prove a panic in one request cannot take its worker down.
//! Only debug builds have them, and only when `NOMYO_ROUTER_FAULT_INJECTION=1` was set at startup;
//! a request then asks for one with the header `x-nomyo-fault: panic-upstream` (a panic while the
//! request holds a slot, before any byte of the answer) or `panic-body` (a panic in the middle of a
//! relayed body, after the answer's head). Release builds compile both checks to nothing.

use super::relay::Transform;
use crate::http::request_headers::RequestHeaders;

#[cfg(debug_assertions)]
fn asked(headers: &RequestHeaders, what: &str) -> bool {
    use std::sync::OnceLock;
    static ARMED: OnceLock<bool> = OnceLock::new();
    *ARMED
        .get_or_init(|| std::env::var_os("NOMYO_ROUTER_FAULT_INJECTION").is_some_and(|v| v == "1"))
        && headers.get("x-nomyo-fault") == Some(what.as_bytes())
}

/// Panics here when the request asked for `panic-upstream`.
#[inline(always)]
pub fn upstream(_headers: &RequestHeaders) {
    #[cfg(debug_assertions)]
    if asked(_headers, "panic-upstream") {
        panic!("injected panic before the upstream request");
    }
}

/// A transform that panics on the body's first bytes, when the request asked for `panic-body`.
#[inline(always)]
pub fn body(_headers: &RequestHeaders) -> Option<Box<dyn Transform>> {
    #[cfg(debug_assertions)]
    if asked(_headers, "panic-body") {
        return Some(Box::new(PanicOnFeed));
    }
    None
}

#[cfg(debug_assertions)]
struct PanicOnFeed;

#[cfg(debug_assertions)]
impl Transform for PanicOnFeed {
    fn feed(&mut self, _input: &[u8], _out: &mut Vec<u8>) {
        panic!("injected panic in a relayed body");
    }
    fn finish(&mut self, _out: &mut Vec<u8>) {}
}
