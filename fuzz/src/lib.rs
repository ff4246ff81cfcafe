//! Helpers shared by the fuzz targets.

use bytes::BytesMut;
use nomyo_router::config::Limits;
use nomyo_router::http::chunked::{ChunkedDecoder, Decoded};

/// The limits the router runs with when the configuration sets none.
pub fn default_limits() -> Limits {
    use nomyo_router::config::{build::build, load};
    let layers = load::parse_file(load::EMBEDDED_DEFAULT, "<built-in defaults>").unwrap();
    build(&layers, "built-in defaults").unwrap().limits
}

/// Asserts that `rest` is what is left at the end of `input` (a parser consumed a prefix, nothing more).
pub fn assert_suffix(input: &[u8], rest: &[u8]) {
    assert!(rest.len() <= input.len(), "parser grew its buffer");
    assert_eq!(
        &input[input.len() - rest.len()..],
        rest,
        "rest is not a suffix of the input"
    );
}

/// How a chunked body decoded: the data seen, and how it ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunked {
    End(Vec<u8>),
    NeedMore(Vec<u8>),
    Error,
}

/// Decodes `body`, handing it to the decoder `step` bytes at a time as a socket read would.
pub fn decode_chunked(body: &[u8], step: usize) -> Chunked {
    let mut dec = ChunkedDecoder::new();
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut fed = 0;
    loop {
        match dec.decode(&mut buf) {
            Ok(Decoded::Data(d)) => {
                assert!(!d.is_empty(), "empty data slice");
                data.extend_from_slice(&d);
            }
            Ok(Decoded::End) => {
                assert!(dec.is_done());
                return Chunked::End(data);
            }
            Ok(Decoded::NeedMore) if fed < body.len() => {
                let n = step.min(body.len() - fed);
                buf.extend_from_slice(&body[fed..fed + n]);
                fed += n;
            }
            Ok(Decoded::NeedMore) => return Chunked::NeedMore(data),
            Err(_) => return Chunked::Error,
        }
    }
}

/// The decoder gives the same data and the same ending whether the body arrives whole or byte by byte.
pub fn check_chunked(body: &[u8]) {
    let whole = decode_chunked(body, body.len().max(1));
    let bytewise = decode_chunked(body, 1);
    assert_eq!(
        whole, bytewise,
        "chunked decoding depends on how the input is split"
    );
}

/// Splits `bytes` at the given points (taken modulo its length + 1; empty pieces allowed).
pub fn pieces<'a>(bytes: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|&c| c as usize % (bytes.len() + 1))
        .collect();
    points.sort_unstable();
    let mut out = Vec::with_capacity(points.len() + 1);
    let mut prev = 0;
    for p in points {
        out.push(&bytes[prev..p]);
        prev = p;
    }
    out.push(&bytes[prev..]);
    out
}

/// Reads the stream targets' input: byte 0 picks the variant, byte 1 the number of cuts (0..16), then
/// two bytes per cut (big-endian), then the stream itself.
pub fn stream_input(data: &[u8]) -> Option<(u8, Vec<u16>, &[u8])> {
    let (&variant, rest) = data.split_first()?;
    let (&n, rest) = rest.split_first()?;
    let n = (n % 16) as usize;
    if rest.len() < 2 * n {
        return None;
    }
    let (cuts, stream) = rest.split_at(2 * n);
    let cuts = cuts
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    Some((variant, cuts, stream))
}

/// Every line ends with `\n` and is one JSON value; returns how many.
pub fn assert_ndjson(out: &[u8]) -> usize {
    let text = std::str::from_utf8(out).expect("NDJSON output is UTF-8");
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "unterminated line in {text:?}"
    );
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("NDJSON line is JSON"))
        .count()
}

/// Every event is `data: <JSON or [DONE]>\n\n`; returns how many.
pub fn assert_sse(out: &[u8]) -> usize {
    let text = std::str::from_utf8(out).expect("SSE output is UTF-8");
    assert!(
        text.is_empty() || text.ends_with("\n\n"),
        "unterminated event in {text:?}"
    );
    text.split_terminator("\n\n")
        .map(|e| {
            let data = e.strip_prefix("data: ").expect("event is a data line");
            if data != "[DONE]" {
                serde_json::from_str::<serde_json::Value>(data).expect("event data is JSON");
            }
        })
        .count()
}

/// The output is one JSON value.
pub fn assert_json(out: &[u8]) {
    serde_json::from_slice::<serde_json::Value>(out).expect("output is JSON");
}
