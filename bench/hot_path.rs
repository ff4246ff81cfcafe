//! Criterion micro-benchmarks of the per-request hot pieces of the router:
//!
//! - `sniff`: reading `model`/`stream` (and checking field kinds) from a small and a ~30 KB chat body;
//! - `route`: the route table match for common paths;
//! - `placement`: resolving a requested model name to its candidates;
//! - `choose`: endpoint choice plus slot take and release (guard drop), single-threaded and while a
//!   second thread takes and releases slots on the same candidates;
//! - `headers`: filtering the client's headers for upstream, and the upstream's for the client;
//! - `translate`: an Ollama chat request turned into an OpenAI one, and a whole 100-token stream
//!   translated chunk by chunk both ways (OpenAI SSE → Ollama NDJSON and back);
//! - `cache_key` and `cache_miss`: the exact key, and everything a miss does with the cache on.
//!
//! Not here: stream chunk pass-through (`http::body::Relay` reads from a live upstream connection;
//! the load test measures it).
//!
//! Run: `cargo bench --bench hot_path` (about a minute), or `cargo bench --bench hot_path -- --quick`.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::{HeaderMap, Method};
use nomyo_router::api::routes::{route, Inference};
use nomyo_router::api::sniff::sniff;
use nomyo_router::config::{EndpointConfig, EndpointKind};
use nomyo_router::http::framing::Framing;
use nomyo_router::http::headers::upstream_request_head;
use nomyo_router::http::request_headers::RequestHeaders;
use nomyo_router::http::response_head;
use nomyo_router::routing::choose::try_choose;
use nomyo_router::routing::endpoint::EndpointState;
use nomyo_router::routing::placement::{EndpointModels, Placement};
use nomyo_router::routing::queue::WaitQueue;
use nomyo_router::routing::slots::Slot;
use nomyo_router::translate::request::ollama_to_openai;
use nomyo_router::translate::stream::{NdjsonToSse, SseToNdjson};
use nomyo_router::translate::{OllamaRoute, OpenAiRoute};

const SMALL_CHAT: &str = r#"{"model":"llama3:latest","messages":[{"role":"user","content":"Why is the sky blue?"}],"stream":false}"#;

/// A chat body of about 30 KB: a long conversation with options, like an agent's request.
fn big_chat() -> Vec<u8> {
    let mut messages = Vec::new();
    let sentence = "The quick brown fox jumps over the lazy dog, then asks the router \\\"why?\\\" in UTF-8: \u{e9}t\u{e9}. ";
    let mut size = 0;
    let mut i = 0;
    while size < 30_000 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        let content = sentence.repeat(4);
        size += content.len() + 40;
        messages.push(format!(r#"{{"role":"{role}","content":"{content}"}}"#));
        i += 1;
    }
    format!(
        r#"{{"model":"qwen2:7b","messages":[{}],"stream":true,"options":{{"temperature":0.7,"top_p":0.9,"num_ctx":8192,"stop":["<|im_end|>"]}},"keep_alive":"5m","tools":[{{"type":"function","function":{{"name":"get_weather","parameters":{{"type":"object","properties":{{"city":{{"type":"string"}}}}}}}}}}]}}"#,
        messages.join(",")
    )
    .into_bytes()
}

fn bench_sniff(c: &mut Criterion) {
    let big = big_chat();
    assert!(sniff(SMALL_CHAT.as_bytes(), Inference::Chat).is_ok());
    assert!(
        sniff(&big, Inference::Chat).is_ok(),
        "the 30 KB body must sniff"
    );
    let mut g = c.benchmark_group("sniff");
    for (name, body) in [
        ("small_chat", SMALL_CHAT.as_bytes()),
        ("chat_30kb", big.as_slice()),
    ] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
            b.iter(|| sniff(black_box(body), Inference::Chat).expect("valid body"))
        });
    }
    g.finish();
}

/// The exact cache key: the CPU a miss adds with the cache on (SPEC §6.2; the budget is 10 µs).
fn bench_cache_key(c: &mut Criterion) {
    use nomyo_router::cache::key::{key, Family};
    let big = big_chat();
    let mut g = c.benchmark_group("cache_key");
    for (name, body) in [
        ("small_chat", SMALL_CHAT.as_bytes()),
        ("chat_30kb", big.as_slice()),
    ] {
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(name), body, |b, body| {
            b.iter(|| {
                key(Family::OllamaChat, black_box(body), "qwen2:7b", None, None).expect("object")
            })
        });
    }
    g.finish();
}

/// Everything a miss does with the cache on (memory tier), but the network: the key, the lookup,
/// joining the key's flight, reading a 20-token NDJSON answer as it passes, storing it and
/// landing the flight. The budget over the cache off is 10 µs.
fn bench_cache_miss(c: &mut Criterion) {
    use nomyo_router::cache::answer::Answer;
    use nomyo_router::cache::capture::{Capture, Wire};
    use nomyo_router::cache::flights::{Flights, Join};
    use nomyo_router::cache::key::{key, Family};
    use nomyo_router::cache::memory::MemoryStore;
    use std::sync::Arc;
    let mut stream = Vec::new();
    for i in 0..20 {
        stream.extend_from_slice(format!(
            "{{\"model\":\"qwen2:7b\",\"created_at\":\"2026-01-01T00:00:00Z\",\"message\":{{\"role\":\"assistant\",\"content\":\"tok{i} \"}},\"done\":false}}\n"
        ).as_bytes());
    }
    stream.extend_from_slice(b"{\"model\":\"qwen2:7b\",\"created_at\":\"2026-01-01T00:00:00Z\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":12,\"eval_count\":20}\n");
    let memory: MemoryStore<Answer> = MemoryStore::new(100_000, 256 << 20);
    let flights = Arc::new(Flights::default());
    let mut n: u64 = 0;
    c.bench_function("cache_miss/small_chat_20_token_stream", |b| {
        b.iter(|| {
            // A new request each time (a miss), as a real stream of them would be.
            n += 1;
            let body = SMALL_CHAT.replace("Why", &format!("Why {n}"));
            let k =
                key(Family::OllamaChat, body.as_bytes(), "qwen2:7b", None, None).expect("object");
            assert!(memory.get(&k.exact, std::time::Instant::now()).is_none());
            let Join::Leader(leader) = flights.join(k.exact) else {
                unreachable!("one request at a time")
            };
            let mut capture = Capture::new(Wire::Ollama, true, 1 << 20);
            for line in stream.split_inclusive(|&b| b == b'\n') {
                capture.data(black_box(line));
            }
            let answer = Arc::new(capture.finish().expect("complete"));
            let size = answer.size();
            memory.put(&k.exact, "qwen2:7b".into(), answer.clone(), size, None);
            leader.land(Some(answer));
        })
    });
}

fn bench_route(c: &mut Criterion) {
    let mut g = c.benchmark_group("route");
    let cases = [
        ("post_api_chat", Method::POST, "/api/chat"),
        (
            "post_v1_chat_completions",
            Method::POST,
            "/v1/chat/completions",
        ),
        ("get_v1_model_id", Method::GET, "/v1/models/org/model:q4"),
        ("get_unknown", Method::GET, "/nope/nothing/here"),
    ];
    for (name, method, path) in cases {
        g.bench_function(name, |b| {
            b.iter(|| route(black_box(&method), black_box(path)))
        });
    }
    g.finish();
}

fn endpoint(index: usize, limit: u32) -> Arc<EndpointState> {
    let cfg = EndpointConfig {
        url: format!("http://127.0.0.1:{}", 11434 + index),
        kind: EndpointKind::Ollama,
        max_concurrent: limit,
        api_key: None,
        weight: 1,
    };
    Arc::new(EndpointState::new(index, index, cfg))
}

/// Three Ollama endpoints advertising the same three models, each with a different one loaded (as in
/// the load test), `limit` slots per endpoint×model.
fn placement(limit: u32) -> Placement {
    let models = ["llama3:latest", "qwen2:7b", "mistral:7b"];
    let endpoints: Vec<_> = (0..3).map(|i| endpoint(i, limit)).collect();
    let queues: Vec<Arc<WaitQueue>> = models
        .iter()
        .map(|_| Arc::new(WaitQueue::default()))
        .collect();
    let reports = (0..3)
        .map(|i| EndpointModels {
            advertised: models.iter().map(|m| m.to_string()).collect(),
            loaded: vec![models[i].to_string()],
        })
        .collect();
    let kinds = [EndpointKind::Ollama; 3];
    Placement::build(reports, &kinds, &mut |ep, name| {
        let q = models.iter().position(|m| *m == name).expect("known model");
        Arc::new(Slot::new(
            endpoints[ep].clone(),
            Arc::from(name),
            queues[q].clone(),
        ))
    })
}

fn bench_placement(c: &mut Criterion) {
    let p = placement(4);
    let mut g = c.benchmark_group("placement_resolve");
    for (name, model) in [
        ("exact", "llama3:latest"),
        ("latest_alias", "llama3"),
        ("unknown", "no-such-model"),
    ] {
        g.bench_function(name, |b| b.iter(|| p.resolve(black_box(model)).len()));
    }
    g.finish();
}

fn bench_choose(c: &mut Criterion) {
    let p = placement(1_000);
    let loaded = p.resolve("llama3:latest").to_vec();
    assert_eq!(loaded.len(), 3);
    let mut g = c.benchmark_group("choose_take_release");

    // Tier 1: the model is loaded on one endpoint with a free slot.
    g.bench_function("single_thread_loaded", |b| {
        b.iter(|| {
            let guard = try_choose(black_box(&loaded), &[]).expect("a free slot");
            black_box(guard.endpoint().index)
            // the guard drops here: the slot is released
        })
    });

    // Tier 2: the loaded endpoint already failed this request, so a free slot elsewhere is taken.
    g.bench_function("single_thread_tier2", |b| {
        b.iter(|| {
            let guard = try_choose(black_box(&loaded), &[0]).expect("a free slot");
            black_box(guard.endpoint().index)
        })
    });

    // The same while a second thread takes and releases slots on the same candidates in a loop:
    // the atomics' cache lines bounce between cores.
    let stop = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicBool::new(false));
    let other = {
        let (stop, running) = (stop.clone(), running.clone());
        let cands = loaded.clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            running.store(true, Ordering::Relaxed);
            while !stop.load(Ordering::Relaxed) {
                if let Some(g) = try_choose(&cands, &[]) {
                    n += g.endpoint().index as u64;
                }
            }
            n
        })
    };
    while !running.load(Ordering::Relaxed) {
        std::hint::spin_loop();
    }
    g.bench_function("contended_2_threads", |b| {
        b.iter(|| {
            let guard = try_choose(black_box(&loaded), &[]).expect("a free slot");
            black_box(guard.endpoint().index)
        })
    });
    stop.store(true, Ordering::Relaxed);
    black_box(other.join().expect("contending thread"));

    // Saturated: every slot is taken (limit 1, held), so the choice finds nothing.
    let full = placement(1);
    let cands = full.resolve("llama3:latest").to_vec();
    let held: Vec<_> = (0..3).filter_map(|_| try_choose(&cands, &[])).collect();
    assert_eq!(held.len(), 3);
    g.bench_function("single_thread_all_full", |b| {
        b.iter(|| try_choose(black_box(&cands), &[]).is_none())
    });
    drop(held);
    g.finish();
}

/// A client's request headers as the head parser leaves them.
fn client_headers() -> RequestHeaders {
    RequestHeaders::from_pairs(&[
        ("host", "localhost:12434"),
        (
            "user-agent",
            "ollama-python/0.4.7 (x86_64 linux) Python/3.11.7",
        ),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate"),
        ("content-type", "application/json"),
        ("content-length", "118"),
        ("connection", "keep-alive"),
        ("authorization", "Bearer sk-router-key"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("x-request-id", "3f1c9f2e-7d4b-4a8e-9d61-2b7c2f1f0e11"),
    ])
}

/// An upstream answer's header lines as they arrive (written through to the client, filtered).
const UPSTREAM_LINES: &[u8] = b"content-type: application/x-ndjson\r\n\
    date: Tue, 25 Nov 2025 22:44:00 GMT\r\ntransfer-encoding: chunked\r\nconnection: keep-alive\r\n";

fn bench_headers(c: &mut Criterion) {
    let client = client_headers();
    let mut g = c.benchmark_group("headers");
    let post = http::Method::POST;
    for (name, key) in [
        ("upstream_request_head_10_headers", None),
        ("upstream_request_head_with_key", Some("sk-upstream")),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(512);
                upstream_request_head(
                    &mut out,
                    &post,
                    "/api/chat",
                    || black_box(&client).iter(),
                    "127.0.0.1:11434",
                    key,
                    118,
                );
                out
            })
        });
    }
    // The client's answer head: the request id plus the upstream's lines, filtered.
    let ours = HeaderMap::new();
    g.bench_function("client_response_head_4_upstream_lines", |b| {
        let mut out = Vec::with_capacity(512);
        b.iter(|| {
            out.clear();
            response_head::encode(
                &mut out,
                http::StatusCode::OK,
                black_box(&ours),
                response_head::Lines {
                    request_id: black_box(b"3f1c9f2e7d4b4a8e"),
                    endpoint: black_box(b"http://gpu-1:11434"),
                    upstream: black_box(UPSTREAM_LINES),
                },
                Framing::Chunked,
                &post,
                false,
            );
            black_box(out.len())
        })
    });
    g.finish();
}

/// The chunks of a 100-token OpenAI chat stream as the upstream sends them (one event per read).
fn sse_stream(tokens: usize) -> Vec<Vec<u8>> {
    let head = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1767225600,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"#;
    let mut v =
        vec![format!(r#"data: {head}"delta":{{"role":"assistant","content":""}}}}]}}"#) + "\n\n"];
    for i in 0..tokens {
        v.push(
            format!(r#"data: {head}"delta":{{"content":"tok{i} "}},"finish_reason":null}}]}}"#)
                + "\n\n",
        );
    }
    v.push(format!(r#"data: {head}"delta":{{}},"finish_reason":"stop"}}]}}"#) + "\n\n");
    v.push("data: [DONE]\n\n".to_string());
    v.into_iter().map(String::into_bytes).collect()
}

/// The lines of a 100-token Ollama chat stream.
fn ndjson_stream(tokens: usize) -> Vec<Vec<u8>> {
    let mut v: Vec<String> = (0..tokens)
        .map(|i| {
            format!(
                r#"{{"model":"llama3:latest","created_at":"2026-01-01T00:00:00.000000Z","message":{{"role":"assistant","content":"tok{i} "}},"done":false}}"#
            ) + "\n"
        })
        .collect();
    v.push(r#"{"model":"llama3:latest","created_at":"2026-01-01T00:00:00.000000Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":1000,"load_duration":0,"prompt_eval_count":5,"prompt_eval_duration":1,"eval_count":100,"eval_duration":1000}"#.to_string() + "\n");
    v.into_iter().map(String::into_bytes).collect()
}

fn bench_translate(c: &mut Criterion) {
    let mut g = c.benchmark_group("translate");
    let req = SMALL_CHAT.as_bytes();
    assert!(ollama_to_openai(OllamaRoute::Chat, req, "gpt-4o-mini").is_ok());
    g.bench_function("request_ollama_to_openai_small_chat", |b| {
        b.iter(|| {
            ollama_to_openai(OllamaRoute::Chat, black_box(req), "gpt-4o-mini").expect("valid")
        })
    });

    // Whole streams, one feed per upstream chunk: time per stream, throughput in chunks.
    let sse = sse_stream(100);
    let mut out = Vec::with_capacity(64 * 1024);
    {
        let mut t = SseToNdjson::new(OllamaRoute::Chat, "gpt-4o-mini");
        for chunk in &sse {
            t.feed(chunk, &mut out);
        }
        t.finish(&mut out);
        let lines = out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
        assert!(lines >= 101, "100 token lines and a done line, got {lines}");
    }
    g.throughput(Throughput::Elements(sse.len() as u64));
    g.bench_function("stream_sse_to_ndjson_100_tokens", |b| {
        b.iter(|| {
            out.clear();
            let mut t = SseToNdjson::new(OllamaRoute::Chat, "gpt-4o-mini");
            for chunk in &sse {
                t.feed(black_box(chunk), &mut out);
            }
            t.finish(&mut out);
            out.len()
        })
    });

    let nd = ndjson_stream(100);
    out.clear();
    {
        let mut t = NdjsonToSse::new(OpenAiRoute::Chat, "llama3", false);
        for chunk in &nd {
            t.feed(chunk, &mut out);
        }
        t.finish(&mut out);
        assert!(
            out.ends_with(b"data: [DONE]\n\n"),
            "the SSE stream ends with [DONE]"
        );
    }
    g.throughput(Throughput::Elements(nd.len() as u64));
    g.bench_function("stream_ndjson_to_sse_100_tokens", |b| {
        b.iter(|| {
            out.clear();
            let mut t = NdjsonToSse::new(OpenAiRoute::Chat, "llama3", false);
            for chunk in &nd {
                t.feed(black_box(chunk), &mut out);
            }
            t.finish(&mut out);
            out.len()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    // Short runs: the whole file takes about a minute (`-- --quick` a few seconds).
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_sniff, bench_cache_key, bench_cache_miss, bench_route, bench_placement, bench_choose, bench_headers, bench_translate
}
criterion_main!(benches);
