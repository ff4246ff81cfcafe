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
fn main() {
    if std::env::var_os("NOMYO_BENCH_INDEX_ONLY").is_some() {
        return index_bench(&rss);
    }
    use nomyo_router::cache::semantic::default_model_dir;
    use nomyo_router::cache::semantic::embedder::Embedder;
    use std::time::Instant;

    // One core, as in the router.
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let before_model = rss();
    let e = Embedder::load(&default_model_dir()).unwrap_or_else(|e| panic!("{e}"));
    println!("model loaded: RSS {:.1} MB (+{:.1} MB)", rss(), rss() - before_model);
    let prompts: Vec<String> = (0..256)
        .map(|i| format!("How do I reverse a list of {i} items in Python without a loop?"))
        .collect();
    e.embed(&[prompts[0].as_str()]).unwrap();
    let mut one = Vec::new();
    for p in prompts.iter().take(100) {
        let t = Instant::now();
        e.embed(&[p.as_str()]).unwrap();
        one.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    one.sort_by(f64::total_cmp);
    println!(
        "embed 1 short prompt: p50 {:.2} ms, p99 {:.2} ms ({:.0} prompts/s)",
        one[50],
        one[98],
        1000.0 / one[50]
    );
    for batch in [8usize, 32] {
        let t = Instant::now();
        let mut n = 0;
        for chunk in prompts.chunks(batch) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            e.embed(&refs).unwrap();
            n += chunk.len();
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "embed in batches of {batch}: {:.0} prompts/s ({:.2} ms per batch)",
            n as f64 / secs,
            secs * 1000.0 / (n / batch) as f64
        );
    }
    drop(e);
    index_bench(&rss);
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
fn index_bench(rss: &dyn Fn() -> f64) {
    use nomyo_router::cache::semantic::index::Index;
    use nomyo_router::cache::semantic::vectors::{Arena, Quantized, SCRATCH};
    use nomyo_router::cache::semantic::DIMS;
    use std::time::Instant;

    let n: u32 = std::env::var("NOMYO_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut unit = || {
        let mut v = [0f32; DIMS];
        for x in v.iter_mut() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            *x = (seed % 20001) as f32 / 10000.0 - 1.0;
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
    for _ in 0..1000 {
        let q = unit();
        arena.write(SCRATCH, &Quantized::new(&q), None).unwrap();
        let t = Instant::now();
        let found = index.search(&scope, 8, &live);
        times.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(found.len(), 8);
    }
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
