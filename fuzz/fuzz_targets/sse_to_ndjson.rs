//! The OpenAI SSE → Ollama NDJSON stream translator, for every Ollama route, fed the stream whole and
//! cut at fuzzer-chosen points. Input layout: see `nomyo_router_fuzz::stream_input`.
//! Asserts: no panic, the output is well-formed NDJSON, and the split changes neither the number of
//! lines nor the usage.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nomyo_router::translate::stream::SseToNdjson;
use nomyo_router::translate::OllamaRoute;
use nomyo_router_fuzz::{assert_ndjson, pieces, stream_input};

const ROUTES: [OllamaRoute; 4] = [
    OllamaRoute::Chat,
    OllamaRoute::Generate,
    OllamaRoute::Embed,
    OllamaRoute::Embeddings,
];

fn run(route: OllamaRoute, parts: &[&[u8]]) -> (Vec<u8>, Option<(u64, u64)>) {
    let mut t = SseToNdjson::new(route, "fuzz-model");
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
    let (whole, usage) = run(route, &[stream]);
    let (split, split_usage) = run(route, &pieces(stream, &cuts));
    assert_eq!(
        assert_ndjson(&whole),
        assert_ndjson(&split),
        "line count depends on the split"
    );
    assert_eq!(usage, split_usage, "usage depends on the split");
});
