//! An upstream response head, read as the answer to a POST and to a HEAD, then its chunked body.
#![no_main]

use bytes::BytesMut;
use http::Method;
use libfuzzer_sys::fuzz_target;
use nomyo_router::http::client::head::{parse, MAX_HEAD_BYTES};
use nomyo_router::http::framing::Framing;
use nomyo_router_fuzz::{assert_suffix, check_chunked};

fuzz_target!(|data: &[u8]| {
    for method in [Method::POST, Method::HEAD] {
        let mut buf = BytesMut::from(data);
        let result = parse(&mut buf, &method);
        assert_suffix(data, &buf);
        match result {
            Ok(Some(head)) => {
                assert!(!head.status.is_informational(), "interim head returned");
                assert!(head.lines.len() < data.len());
                let no_body = method == Method::HEAD || matches!(head.status.as_u16(), 204 | 304);
                if no_body {
                    assert_eq!(head.framing, Framing::Empty);
                }
                assert_ne!(head.framing, Framing::Length(0));
                if head.framing == Framing::UntilClose {
                    assert!(!head.keep_alive);
                }
                if head.framing == Framing::Chunked {
                    check_chunked(&buf);
                }
            }
            Ok(None) => assert!(buf.len() <= MAX_HEAD_BYTES),
            Err(_) => {}
        }
    }
});
