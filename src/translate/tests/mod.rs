//! Golden and property tests of the translators on recorded-style wire examples (wire-formats.md), with
//! the helpers they share. Golden data are string constants in the exact wire format.

mod ndjson_to_sse;
mod requests;
mod responses;
mod split_props;
mod sse_to_ndjson;

use serde_json::Value;

use super::stream::Stamp;
use super::stream::{NdjsonToSse, SseToNdjson};
use super::{OllamaRoute, OpenAiRoute};

/// The instant every test stream is stamped with.
pub(super) fn fixed_clock() -> (i64, u32) {
    (1_700_000_000, 0)
}

/// `created_at` of [`fixed_clock`].
pub(super) const AT: &str = "2023-11-14T22:13:20Z";

pub(super) fn sse_translator(route: OllamaRoute) -> SseToNdjson {
    SseToNdjson::with_clock(route, "llama3", fixed_clock)
}

pub(super) fn ndjson_translator(route: OpenAiRoute, include_usage: bool) -> NdjsonToSse {
    let stamp = Stamp {
        id: "chatcmpl-test".into(),
        created: 1_700_000_000,
        call_prefix: "p".into(),
    };
    NdjsonToSse::with_stamp(route, "gpt-4o", include_usage, stamp)
}

/// Feeds `input` in the given pieces, then finishes.
pub(super) fn run_sse(route: OllamaRoute, pieces: &[&[u8]]) -> String {
    let mut t = sse_translator(route);
    let mut out = Vec::new();
    for p in pieces {
        t.feed(p, &mut out);
    }
    t.finish(&mut out);
    String::from_utf8(out).expect("translator output is UTF-8")
}

pub(super) fn run_ndjson(route: OpenAiRoute, include_usage: bool, pieces: &[&[u8]]) -> String {
    let mut t = ndjson_translator(route, include_usage);
    let mut out = Vec::new();
    for p in pieces {
        t.feed(p, &mut out);
    }
    t.finish(&mut out);
    String::from_utf8(out).expect("translator output is UTF-8")
}

/// Every line ends with `\n` and is one JSON object.
pub(super) fn ndjson_values(out: &str) -> Vec<Value> {
    assert!(
        out.is_empty() || out.ends_with('\n'),
        "unterminated line in {out:?}"
    );
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("invalid JSON line {l:?}: {e}")))
        .collect()
}

/// The data of every `data: ...\n\n` event (`[DONE]` kept as the string).
pub(super) fn sse_payloads(out: &str) -> Vec<String> {
    assert!(
        out.is_empty() || out.ends_with("\n\n"),
        "unterminated event in {out:?}"
    );
    out.split_terminator("\n\n")
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data event: {e:?}"))
                .to_string()
        })
        .collect()
}

/// Builds an SSE stream from event payloads.
pub(super) fn sse(events: &[&str]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}
