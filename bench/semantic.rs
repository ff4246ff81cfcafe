//! The semantic cache's own costs, on one core (the embedding core's budget):
//!
//! - `embed`: one short prompt at a time (latency, p50/p99), and batches of 32 (prompts/s);
//! - `index`: 100,000 random unit vectors in one scope: the time to build the HNSW graph, a search
//!   (p50/p99, k = 8), and the memory (RSS) the graph and the vector map take.
//!
//! Run: `RAYON_NUM_THREADS=1 cargo bench --bench semantic` (needs the model:
//! `bash scripts/fetch-embedding-model.sh`). Prints a table; about two minutes.
#![cfg_attr(not(feature = "semantic"), allow(unused))]

#[cfg(feature = "semantic")]
use nomyo_router::cache::semantic::DIMS;

#[cfg(feature = "semantic")]
fn main() {
    use nomyo_router::cache::semantic::default_model_dir;
    use nomyo_router::cache::semantic::embedder::Embedder;
    use std::time::Instant;

    // One core, as in the router.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let before_model = rss();
    let e = Embedder::load(&default_model_dir()).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "model loaded: RSS {:.1} MB (+{:.1} MB)",
        rss(),
        rss() - before_model
    );
    // Real questions (the evaluation sets'), and the same padded to ~16 word pieces.
    let short: Vec<String> = include_str!("../tests/fixtures/semantic/pairs.jsonl")
        .lines()
        .chain(include_str!("../tests/fixtures/semantic/held_out.jsonl").lines())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .flat_map(|v| {
            [
                v["a"].as_str().map(String::from),
                v["b"].as_str().map(String::from),
            ]
        })
        .flatten()
        .collect();
    let tiny: Vec<String> = short
        .iter()
        .filter(|q| q.split_whitespace().count() <= 4)
        .cloned()
        .collect();
    let long: Vec<String> = short
        .iter()
        .map(|q| format!("{q} Please answer briefly and give one example."))
        .collect();
    e.embed(&[short[0].as_str()]).unwrap();
    for (label, prompts) in [
        ("a short question (<= 4 words, ~8 word pieces)", &tiny),
        ("a question (~12 word pieces)", &short),
        ("a longer prompt (~22 word pieces)", &long),
    ] {
        let mut one = Vec::new();
        let rounds = if smoke() { 4 } else { 200 };
        for p in prompts.iter().cycle().take(rounds) {
            let t = Instant::now();
            e.embed(&[p.as_str()]).unwrap();
            one.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        one.sort_by(f64::total_cmp);
        println!(
            "embed {label}, one at a time: p50 {:.2} ms, p99 {:.2} ms ({:.0}/s)",
            one[rounds / 2],
            one[rounds * 99 / 100],
            1000.0 / one[rounds / 2]
        );
        for batch in [8usize, 32] {
            let t = Instant::now();
            let mut n = 0;
            let cycled: Vec<String> = prompts
                .iter()
                .cycle()
                .take(if smoke() { batch } else { 400 })
                .cloned()
                .collect();
            for chunk in cycled.chunks(batch) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                e.embed(&refs).unwrap();
                n += chunk.len();
            }
            let secs = t.elapsed().as_secs_f64();
            println!("  in batches of {batch}: {:.0}/s", n as f64 / secs);
        }
    }
    let basis: Vec<[f32; DIMS]> = short[..if smoke() { 64 } else { short.len() }]
        .chunks(32)
        .flat_map(|c| {
            e.embed(&c.iter().map(String::as_str).collect::<Vec<_>>())
                .unwrap()
        })
        .collect();
    drop(e);
    index_bench(&basis);
}

/// `cargo test --all-targets` runs this without `--bench`: a quick smoke of every step instead
/// of the measurement.
fn smoke() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// This process's resident memory, MB.
fn rss() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

#[cfg(feature = "semantic")]
/// Entries made of real question embeddings: each a mix of three (weights 1, 0.5, 0.25) plus a
/// little noise, so that neighbourhoods look like a cache's (random vectors in 384 dimensions are
/// all orthogonal, the worst case of any graph index and nothing like text).
fn index_bench(basis: &[[f32; DIMS]]) {
    use nomyo_router::cache::semantic::index::Index;
    use nomyo_router::cache::semantic::vectors::{Arena, Quantized, SCRATCH};
    use std::time::Instant;

    let n: u32 = std::env::var("NOMYO_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke() { 500 } else { 100_000 });
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut unit = || {
        let (a, b, c) = (
            &basis[next() as usize % basis.len()],
            &basis[next() as usize % basis.len()],
            &basis[next() as usize % basis.len()],
        );
        let mut v = [0f32; DIMS];
        for i in 0..DIMS {
            let noise = (next() % 2001) as f32 / 1000.0 - 1.0;
            v[i] = a[i] + 0.5 * b[i] + 0.25 * c[i] + 0.01 * noise;
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    };
    let base = rss();
    let mut arena = Arena::open(None).unwrap();
    let mut index = Index::new(arena.view());
    let scope = [7u8; 16];
    let t = Instant::now();
    for id in 1..=n {
        arena.write(id, &Quantized::new(&unit()), None).unwrap();
        index.insert(scope, id);
    }
    let build = t.elapsed().as_secs_f64();
    println!(
        "index {n} vectors: built in {build:.1} s ({:.0} inserts/s); RSS +{:.1} MB (vectors in an anonymous map, {:.1} MB of them)",
        f64::from(n) / build,
        rss() - base,
        f64::from(n) * (2 * DIMS + 8) as f64 / 1e6
    );
    let mut times = Vec::new();
    let live = |_: u32| true;
    let view = arena.view();
    let mut right = 0;
    for i in 0..1000 {
        let q = unit();
        arena.write(SCRATCH, &Quantized::new(&q), None).unwrap();
        let t = Instant::now();
        let found = index.search(&scope, 8, &live);
        times.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(found.len(), 8);
        // Recall: the graph's nearest against every vector's (for the first 200 queries).
        if i < 200 {
            let best =
                (1..=n).max_by(|&a, &b| view.dot(SCRATCH, a).total_cmp(&view.dot(SCRATCH, b)));
            right += usize::from(
                best.is_some_and(|b| view.dot(SCRATCH, b) <= view.dot(SCRATCH, found[0]) + 1e-6),
            );
        }
    }
    println!("nearest found by the graph = the true nearest in {right} of 200 searches");
    let path = std::env::temp_dir().join(format!("nomyo-bench-{}.hnsw", std::process::id()));
    let t = Instant::now();
    index.dump(&path).unwrap();
    let dumped = t.elapsed().as_secs_f64();
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    let t = Instant::now();
    let mut reloaded = Index::new(arena.view());
    let points = reloaded.load(&path, &|_, _| true);
    println!(
        "graph dump: written in {dumped:.2} s ({:.1} MB), reloaded in {:.2} s ({points} points)",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_file(&path);
    times.sort_by(f64::total_cmp);
    println!(
        "search k=8 among {n}: p50 {:.0} us, p99 {:.0} us",
        times[500], times[990]
    );
}

#[cfg(not(feature = "semantic"))]
fn main() {
    eprintln!("built without the `semantic` feature");
}
