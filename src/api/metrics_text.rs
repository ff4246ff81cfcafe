//! `GET /metrics`: the shards summed and the router's state read, in the Prometheus text format
//! (0.0.4) through the `prometheus` crate's encoder. Series that never counted anything are left
//! out; label values are route names, status codes, configured endpoint URLs and the model names
//! the endpoints report — never anything a client sent.

use std::sync::atomic::Ordering;

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};

use super::routes::ROUTE_NAMES;
use crate::metrics::labels::{status_label, REASONS, STATUSES};
use crate::metrics::{Metrics, BUCKETS};
use crate::state::Shared;

/// The content type of the answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Families under construction.
struct Families(Vec<MetricFamily>);

impl Families {
    fn family(&mut self, name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) {
        if metrics.is_empty() {
            return;
        }
        let mut f = MetricFamily::default();
        f.set_name(format!("nomyo_router_{name}"));
        f.set_help(help.to_string());
        f.set_field_type(kind);
        f.set_metric(metrics);
        self.0.push(f);
    }

    fn counter(&mut self, name: &str, help: &str, series: Vec<(Vec<(&str, String)>, f64)>) {
        let metrics = series
            .into_iter()
            .map(|(labels, v)| {
                let mut c = Counter::default();
                c.set_value(v);
                let mut m = metric(labels);
                m.set_counter(c);
                m
            })
            .collect();
        self.family(name, help, MetricType::COUNTER, metrics);
    }

    fn gauge(&mut self, name: &str, help: &str, series: Vec<(Vec<(&str, String)>, f64)>) {
        let metrics = series
            .into_iter()
            .map(|(labels, v)| {
                let mut g = Gauge::default();
                g.set_value(v);
                let mut m = metric(labels);
                m.set_gauge(g);
                m
            })
            .collect();
        self.family(name, help, MetricType::GAUGE, metrics);
    }
}

fn metric(labels: Vec<(&str, String)>) -> Metric {
    let mut m = Metric::default();
    m.set_label(
        labels
            .into_iter()
            .map(|(k, v)| {
                let mut l = LabelPair::default();
                l.set_name(k.to_string());
                l.set_value(v);
                l
            })
            .collect(),
    );
    m
}

fn histogram(route: &str, counts: &[u64], sum: f64) -> Metric {
    let mut h = Histogram::default();
    let mut cumulative = 0;
    let mut buckets = Vec::with_capacity(BUCKETS.len());
    for (bound, count) in BUCKETS.iter().zip(counts) {
        cumulative += count;
        let mut b = Bucket::default();
        b.set_upper_bound(*bound);
        b.set_cumulative_count(cumulative);
        buckets.push(b);
    }
    h.set_bucket(buckets);
    h.set_sample_count(counts.iter().sum());
    h.set_sample_sum(sum);
    let mut m = metric(vec![("route", route.to_string())]);
    m.set_histogram(h);
    m
}

/// The whole exposition.
pub fn render(shared: &Shared) -> String {
    let mut f = Families(Vec::new());
    f.gauge(
        "build_info",
        "The running build.",
        vec![(
            vec![("version", env!("CARGO_PKG_VERSION").to_string())],
            1.0,
        )],
    );
    if let Some(m) = &shared.metrics {
        // Traffic is counted by endpoint id: endpoints a reload removed keep their counters.
        let urls: Vec<String> = shared
            .routing()
            .urls()
            .iter()
            .take(m.endpoints())
            .map(|u| u.to_string())
            .collect();
        traffic(&mut f, m, &urls);
    }
    fleet(&mut f, shared);
    cache(&mut f, shared);
    tokens(&mut f, shared);
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&f.0, &mut out) {
        tracing::error!(error = %e, "metrics could not be encoded");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Requests, latencies and upstream attempts, from the shards.
fn traffic(f: &mut Families, m: &Metrics, urls: &[String]) {
    let mut requests = Vec::new();
    for (r, route) in ROUTE_NAMES.iter().enumerate() {
        for s in 0..=STATUSES.len() {
            for ep in 0..=urls.len() {
                let n = m.requests(r, s, ep.checked_sub(1));
                if n > 0 {
                    let endpoint = ep
                        .checked_sub(1)
                        .map_or_else(String::new, |e| urls[e].clone());
                    requests.push((
                        vec![
                            ("route", route.to_string()),
                            ("status", status_label(s)),
                            ("endpoint", endpoint),
                        ],
                        n as f64,
                    ));
                }
            }
        }
    }
    f.counter(
        "requests_total",
        "Requests answered, by route, status and the endpoint that answered (empty: the router).",
        requests,
    );
    type Read = fn(&Metrics, usize) -> (Vec<u64>, f64);
    let histograms: [(&str, &str, Read); 2] = [
        (
            "request_duration_seconds",
            "Time from the request's head to its answer's last byte.",
            Metrics::latency,
        ),
        (
            "time_to_first_byte_seconds",
            "Time from the request's head to its answer's head.",
            Metrics::time_to_first_byte,
        ),
    ];
    for (name, help, read) in histograms {
        let series: Vec<Metric> = ROUTE_NAMES
            .iter()
            .enumerate()
            .filter_map(|(r, route)| {
                let (counts, sum) = read(m, r);
                (counts.iter().any(|&c| c > 0)).then(|| histogram(route, &counts, sum))
            })
            .collect();
        f.family(name, help, MetricType::HISTOGRAM, series);
    }
    let attempts = urls
        .iter()
        .enumerate()
        .map(|(e, url)| {
            (
                vec![("endpoint", url.clone())],
                m.upstream_attempts(e) as f64,
            )
        })
        .collect();
    f.counter(
        "upstream_requests_total",
        "Attempts sent to each endpoint.",
        attempts,
    );
    let mut errors = Vec::new();
    for (e, url) in urls.iter().enumerate() {
        for (i, reason) in REASONS.iter().enumerate() {
            let n = m.upstream_errors(e, i);
            if n > 0 {
                errors.push((
                    vec![("endpoint", url.clone()), ("reason", reason.to_string())],
                    n as f64,
                ));
            }
        }
    }
    f.counter(
        "upstream_errors_total",
        "Upstream attempts that failed, by endpoint and reason.",
        errors,
    );
}

/// Endpoint health, loaded models, slots and queues, from the live state.
fn fleet(f: &mut Families, shared: &Shared) {
    let placement = shared.placement.load();
    let up = shared
        .endpoints
        .iter()
        .map(|e| {
            (
                vec![("endpoint", e.cfg.url.clone())],
                f64::from(u8::from(e.is_healthy())),
            )
        })
        .collect();
    f.gauge("endpoint_up", "1 while the endpoint is healthy.", up);
    let mut loaded = Vec::new();
    for (e, report) in placement.models.iter().enumerate() {
        let Some(ep) = shared.endpoints.get(e) else {
            continue;
        };
        for model in &report.loaded {
            loaded.push((
                vec![("endpoint", ep.cfg.url.clone()), ("model", model.clone())],
                1.0,
            ));
        }
    }
    f.gauge(
        "model_loaded",
        "Models loaded on each endpoint at its last poll.",
        loaded,
    );
    let (mut in_flight, mut limits, mut queued) = (Vec::new(), Vec::new(), Vec::new());
    for slot in &placement.slots {
        let labels = vec![
            ("endpoint", slot.endpoint.cfg.url.clone()),
            ("model", slot.model.to_string()),
        ];
        in_flight.push((labels.clone(), f64::from(slot.in_flight())));
        limits.push((labels.clone(), f64::from(slot.limit)));
        queued.push((labels, slot.queue.depth() as f64));
    }
    f.gauge(
        "in_flight",
        "Requests holding a slot, per endpoint and model.",
        in_flight,
    );
    f.gauge(
        "slot_limit",
        "Concurrent requests allowed per endpoint and model.",
        limits,
    );
    f.gauge(
        "queued",
        "Requests waiting for a slot, per endpoint and model.",
        queued,
    );
    f.gauge(
        "active_requests",
        "Requests being answered (all routes).",
        vec![(
            vec![],
            shared.active_requests.load(Ordering::Relaxed) as f64,
        )],
    );
    f.gauge(
        "usage_stream_watchers",
        "Clients connected to /api/usage-stream.",
        vec![(vec![], shared.feed.watchers() as f64)],
    );
}

fn cache(f: &mut Families, shared: &Shared) {
    let Some(cache) = &shared.cache else { return };
    let s = cache.stats.snapshot();
    let lookups = [
        ("hit_exact", s.exact_hits),
        ("hit_semantic", s.semantic_hits),
        ("miss", s.misses),
        ("bypass", s.bypasses),
    ]
    .into_iter()
    .map(|(result, n)| (vec![("result", result.to_string())], n as f64))
    .collect();
    f.counter(
        "cache_requests_total",
        "Inference requests by what the cache did (reset by /api/cache/invalidate).",
        lookups,
    );
    f.counter(
        "cache_errors_total",
        "Cache store failures: lookups that timed out, writes that failed or were dropped.",
        vec![(vec![], s.errors as f64)],
    );
    f.counter(
        "cache_stores_total",
        "Answers stored in the cache.",
        vec![(vec![], s.stores as f64)],
    );
}

fn tokens(f: &mut Families, shared: &Shared) {
    let Some(acc) = &shared.accounting else {
        return;
    };
    let totals = acc.totals.load();
    let mut series = Vec::new();
    for ((ep, model), (input, output)) in &totals.since_start {
        for (direction, n) in [("input", input), ("output", output)] {
            series.push((
                vec![
                    ("endpoint", ep.to_string()),
                    ("model", model.to_string()),
                    ("direction", direction.to_string()),
                ],
                *n as f64,
            ));
        }
    }
    f.counter(
        "tokens_total",
        "Tokens the endpoints reported since the router started: input (prompt) and output (completion).",
        series,
    );
    let (hits, input, output) = totals.cache_saved;
    f.counter(
        "cache_tokens_saved_total",
        "Tokens of answers served from the cache since the router started.",
        vec![
            (vec![("direction", "input".to_string())], input as f64),
            (vec![("direction", "output".to_string())], output as f64),
        ],
    );
    f.counter(
        "cache_answers_total",
        "Answers served from the cache since the router started.",
        vec![(vec![], hits as f64)],
    );
    let h = &acc.health;
    f.gauge(
        "accounting_db_up",
        "1 while the token database is writable.",
        vec![(vec![], f64::from(u8::from(h.db_ok.load(Ordering::Relaxed))))],
    );
    f.counter(
        "accounting_db_errors_total",
        "Failed opens, reads and writes of the token database.",
        vec![(vec![], h.db_errors.load(Ordering::Relaxed) as f64)],
    );
    f.gauge(
        "accounting_pending_records",
        "Answers counted but not yet in the token database.",
        vec![(vec![], h.pending.load(Ordering::Relaxed) as f64)],
    );
    f.counter(
        "accounting_dropped_records_total",
        "Answers not counted because the accounting thread fell behind.",
        vec![(vec![], h.dropped.load(Ordering::Relaxed) as f64)],
    );
}
