//! Router-key checks: arbitrary `Authorization` bytes and query string against a fixed key.
//! Input: byte 0 says which of the two are present (bit 0: header, bit 1: query); the rest is the
//! header value, a newline, then the query (lossily made UTF-8). Bit 2 picks the API format (a
//! wrong key is 403 on Ollama's routes, 401 on OpenAI's).
#![no_main]

use http::StatusCode;
use libfuzzer_sys::fuzz_target;
use nomyo_router::api::errors::ApiFormat;
use nomyo_router::auth::{check, query_without_key};
use nomyo_router::http::request_headers::RequestHeaders;

const KEY: &str = "s3cret-k3y";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (header, query) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let header = (flags & 1 != 0).then_some(header);
    let query = String::from_utf8_lossy(query);
    let query = (flags & 2 != 0).then_some(&*query);
    let pairs: Vec<(&[u8], &[u8])> = header.iter().map(|h| (&b"authorization"[..], *h)).collect();
    let headers = RequestHeaders::from_raw_pairs(&pairs);
    let format = match flags & 4 {
        0 => ApiFormat::Ollama,
        _ => ApiFormat::OpenAi,
    };
    match check(KEY, &headers, query, format) {
        Ok(()) => {}
        Err(e) if header.is_none() && query.is_none() => {
            assert_eq!(e.status, StatusCode::UNAUTHORIZED)
        }
        Err(e) => assert!(match format {
            ApiFormat::Ollama => matches!(
                e.status,
                StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ),
            _ => matches!(e.status, StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED),
        }),
    }
    if header.is_some_and(|h| h.strip_prefix(b"Bearer ") == Some(KEY.as_bytes())) {
        assert!(
            check(KEY, &headers, query, format).is_ok(),
            "the right key is refused"
        );
    }
    // What is forwarded never carries the key parameter, in any encoding of its name.
    if let Some(kept) = query_without_key(query) {
        assert!(form_urlencoded::parse(kept.as_bytes()).all(|(name, _)| name != "api_key"));
    }
});
