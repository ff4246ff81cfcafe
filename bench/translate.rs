//! Criterion benchmarks of stream translation per token (SPEC §3.2): one upstream chunk carrying one
//! token in, the client's chunk out. Also the same-API pass-through, which copies nothing.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nomyo_router::translate::stream::{NdjsonToSse, SseToNdjson};
use nomyo_router::translate::{OllamaRoute, OpenAiRoute};

const SSE_TOKEN: &[u8] = b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1767225600,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" hello\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n";
const NDJSON_TOKEN: &[u8] = b"{\"model\":\"llama3:latest\",\"created_at\":\"2026-01-01T00:00:00.000000000Z\",\"message\":{\"role\":\"assistant\",\"content\":\" hello\"},\"done\":false}\n";

fn per_token(c: &mut Criterion) {
    let mut g = c.benchmark_group("stream_token");
    g.throughput(Throughput::Elements(1));
    g.bench_function("openai_sse_to_ollama_ndjson", |b| {
        let mut t = SseToNdjson::new(OllamaRoute::Chat, "gpt-4o-mini");
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            t.feed(black_box(SSE_TOKEN), &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("ollama_ndjson_to_openai_sse", |b| {
        let mut t = NdjsonToSse::new(OpenAiRoute::Chat, "llama3:latest", false);
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            t.feed(black_box(NDJSON_TOKEN), &mut out);
            black_box(out.len())
        })
    });
    // Same-API relay: the chunk is handed on as the refcounted buffer it arrived in.
    let chunk = Bytes::from_static(SSE_TOKEN);
    g.bench_function("same_api_pass_through", |b| {
        b.iter(|| black_box(black_box(&chunk).clone()))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = per_token
}
criterion_main!(benches);
