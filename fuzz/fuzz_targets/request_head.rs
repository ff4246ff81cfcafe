//! A client's request head with the router's default limits, then its chunked body if it has one.
#![no_main]

use std::sync::OnceLock;

use bytes::BytesMut;
use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use nomyo_router::config::Limits;
use nomyo_router::http::framing::Framing;
use nomyo_router::http::request_head::parse;
use nomyo_router_fuzz::{assert_suffix, check_chunked, default_limits};

fuzz_target!(|data: &[u8]| {
    static LIMITS: OnceLock<Limits> = OnceLock::new();
    let limits = LIMITS.get_or_init(default_limits);
    let mut buf = BytesMut::from(data);
    let result = parse(&mut buf, limits);
    assert_suffix(data, &buf);
    match result {
        Ok(Some(head)) => {
            assert!(head.headers.len() <= limits.max_headers);
            if head.body == Framing::Chunked {
                check_chunked(&buf);
            }
        }
        Ok(None) => assert!(buf.len() <= limits.max_header_bytes),
        Err(e) => assert!(e.status.is_client_error() || e.status == StatusCode::NOT_IMPLEMENTED),
    }
});
