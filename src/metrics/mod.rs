//! Prometheus metrics (SPEC §8.3). Counters live in one shard per worker thread (plus one for any
//! other thread): a worker adds to its own cache lines only, and a scrape sums the shards
//! (`api::metrics_text`). Gauges (slots, queues, health, loaded models) are read at scrape time from
//! the state the router keeps anyway. Routes are counted by their index in
//! `api::routes::ROUTE_NAMES`.

pub mod labels;

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use labels::{status_index, Reason, REASONS, STATUSES};

/// How many routes are counted (`api::routes::ROUTE_NAMES`; checked at compile time there).
pub const ROUTES: usize = 36;

/// Upper bounds of the latency buckets, seconds (`+Inf` follows).
pub const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
];
/// Per histogram: one count per bucket, `+Inf`, and the sum in microseconds.
const HIST: usize = BUCKETS.len() + 2;
/// 128 bytes of padding at both ends of a shard: no two shards share a cache line (or the pair
/// of lines the prefetcher fetches together).
const PAD: usize = 16;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Marks the calling thread as worker `i`: its counters go to shard `i`.
pub fn set_worker(i: usize) {
    WORKER.with(|w| w.set(i));
}

/// Where each group of counters starts in a shard.
#[derive(Clone, Copy)]
struct Layout {
    endpoints: usize,
    requests: usize,
    latency: usize,
    first_byte: usize,
    attempts: usize,
    errors: usize,
    len: usize,
}

impl Layout {
    fn new(endpoints: usize) -> Layout {
        let requests = PAD;
        let latency = requests + ROUTES * (STATUSES.len() + 1) * (endpoints + 1);
        let first_byte = latency + ROUTES * HIST;
        let attempts = first_byte + ROUTES * HIST;
        let errors = attempts + endpoints;
        let len = errors + endpoints * REASONS.len() + PAD;
        Layout {
            endpoints,
            requests,
            latency,
            first_byte,
            attempts,
            errors,
            len,
        }
    }

    fn request(&self, route: usize, status: usize, endpoint: Option<usize>) -> usize {
        let ep = endpoint.map_or(0, |e| e + 1);
        self.requests + (route * (STATUSES.len() + 1) + status) * (self.endpoints + 1) + ep
    }
}

pub struct Metrics {
    layout: Layout,
    shards: Box<[Box<[AtomicU64]>]>,
}

impl Metrics {
    pub fn new(workers: usize, endpoints: usize) -> Metrics {
        let layout = Layout::new(endpoints);
        let shards = (0..=workers)
            .map(|_| (0..layout.len).map(|_| AtomicU64::new(0)).collect())
            .collect();
        Metrics { layout, shards }
    }

    fn shard(&self) -> &[AtomicU64] {
        let i = WORKER.with(|w| w.get());
        self.shards
            .get(i)
            .unwrap_or_else(|| &self.shards[self.shards.len() - 1])
    }

    /// A request answered (to its last byte): by route (`Route::index`), status and the endpoint
    /// that answered.
    pub fn request(&self, route: usize, status: u16, endpoint: Option<usize>, took: Duration) {
        let r = route.min(ROUTES - 1);
        let s = self.shard();
        let at = self.layout.request(
            r,
            status_index(status),
            endpoint.filter(|&e| e < self.layout.endpoints),
        );
        s[at].fetch_add(1, Ordering::Relaxed);
        observe(&s[self.layout.latency + r * HIST..][..HIST], took);
    }

    /// The answer's head was ready for the client.
    pub fn first_byte(&self, route: usize, took: Duration) {
        let r = route.min(ROUTES - 1);
        observe(
            &self.shard()[self.layout.first_byte + r * HIST..][..HIST],
            took,
        );
    }

    /// An attempt on an upstream began.
    pub fn upstream_attempt(&self, endpoint: usize) {
        if endpoint < self.layout.endpoints {
            self.shard()[self.layout.attempts + endpoint].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn upstream_error(&self, endpoint: usize, reason: Reason) {
        if endpoint < self.layout.endpoints {
            let at = self.layout.errors + endpoint * REASONS.len() + reason.index();
            self.shard()[at].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Endpoints counted (the configured ones, by index).
    pub fn endpoints(&self) -> usize {
        self.layout.endpoints
    }

    /// Requests of a route (index) with a status (index in `STATUSES`, or its length for the
    /// others) answered by `endpoint` (`None`: the router itself), summed over the workers.
    pub fn requests(&self, route: usize, status: usize, endpoint: Option<usize>) -> u64 {
        self.sum(self.layout.request(route, status, endpoint))
    }

    /// A route's latency histogram: per-bucket counts (`+Inf` last) and the sum in seconds.
    pub fn latency(&self, route: usize) -> (Vec<u64>, f64) {
        self.histogram(self.layout.latency + route * HIST)
    }

    /// A route's time-to-first-byte histogram, as `latency`.
    pub fn time_to_first_byte(&self, route: usize) -> (Vec<u64>, f64) {
        self.histogram(self.layout.first_byte + route * HIST)
    }

    pub fn upstream_attempts(&self, endpoint: usize) -> u64 {
        self.sum(self.layout.attempts + endpoint)
    }

    pub fn upstream_errors(&self, endpoint: usize, reason: usize) -> u64 {
        self.sum(self.layout.errors + endpoint * REASONS.len() + reason)
    }

    /// The sum over the shards of the counter at `at`.
    fn sum(&self, at: usize) -> u64 {
        self.shards
            .iter()
            .map(|s| s[at].load(Ordering::Relaxed))
            .fold(0u64, u64::wrapping_add)
    }

    /// A histogram summed over the shards: per-bucket counts (`+Inf` last), and the sum in seconds.
    fn histogram(&self, start: usize) -> (Vec<u64>, f64) {
        let counts = (0..=BUCKETS.len()).map(|b| self.sum(start + b)).collect();
        let sum_us = self.sum(start + BUCKETS.len() + 1);
        (counts, sum_us as f64 / 1e6)
    }
}

fn observe(hist: &[AtomicU64], took: Duration) {
    let secs = took.as_secs_f64();
    let bucket = BUCKETS.partition_point(|&b| b < secs);
    hist[bucket].fetch_add(1, Ordering::Relaxed);
    hist[BUCKETS.len() + 1].fetch_add(took.as_micros() as u64, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_sum_at_scrape() {
        let m = Metrics::new(2, 3);
        let chat = 1;
        std::thread::scope(|s| {
            for w in 0..2 {
                let m = &m;
                s.spawn(move || {
                    set_worker(w);
                    for _ in 0..10 {
                        m.request(chat, 200, Some(1), Duration::from_millis(3));
                    }
                });
            }
        });
        m.request(chat, 200, Some(1), Duration::from_secs(1000));
        m.request(chat, 200, Some(99), Duration::ZERO);
        assert_eq!(m.requests(chat, status_index(200), Some(1)), 21);
        let (counts, sum) = m.latency(chat);
        assert_eq!(counts.iter().sum::<u64>(), 22);
        assert_eq!(counts[BUCKETS.partition_point(|&b| b < 0.003)], 20);
        assert_eq!(counts[BUCKETS.len()], 1);
        assert!((sum - 1000.06).abs() < 1e-6, "{sum}");
        // The unknown endpoint went to the no-endpoint series.
        assert_eq!(m.requests(chat, status_index(200), None), 1);
        m.upstream_error(2, Reason::Closed);
        m.upstream_error(7, Reason::Closed);
        assert_eq!(m.upstream_errors(2, Reason::Closed.index()), 1);
    }
}
