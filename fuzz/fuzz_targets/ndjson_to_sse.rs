//! The Ollama NDJSON → OpenAI SSE stream translator, for every OpenAI route with and without the usage
//! chunk, fed the stream whole and cut at fuzzer-chosen points. Input layout: see
//! `nomyo_router_fuzz::stream_input`.
//! Asserts: no panic, the output is well-formed SSE, and the split changes neither the number of
//! events nor the usage.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomyo_router::translate::stream::NdjsonToSse;
use nomyo_router::translate::OpenAiRoute;
use nomyo_router_fuzz::{assert_sse, pieces, stream_input};

const ROUTES: [OpenAiRoute; 3] = [
    OpenAiRoute::Chat,
    OpenAiRoute::Completions,
    OpenAiRoute::Embeddings,
];

fn run(route: OpenAiRoute, include_usage: bool, parts: &[&[u8]]) -> (Vec<u8>, Option<(u64, u64)>) {
    let mut t = NdjsonToSse::new(route, "fuzz-model", include_usage);
    let mut out = Vec::new();
    for p in parts {
        t.feed(p, &mut out);
    }
    t.finish(&mut out);
    (out, t.usage())
}

fuzz_target!(|data: &[u8]| {
    let Some((variant, cuts, stream)) = stream_input(data) else {
        return;
    };
    let route = ROUTES[variant as usize % ROUTES.len()];
    let include_usage = variant & 0x80 != 0;
    let (whole, usage) = run(route, include_usage, &[stream]);
    let (split, split_usage) = run(route, include_usage, &pieces(stream, &cuts));
    assert_eq!(
        assert_sse(&whole),
        assert_sse(&split),
        "event count depends on the split"
    );
    assert_eq!(usage, split_usage, "usage depends on the split");
});
