//! The discovery thread (SPEC §4.1-4.2): polls every endpoint concurrently, off the request path,
//! for advertised models (every `models_interval`) and loaded models (every `loaded_interval`),
//! marks endpoints up or down, and publishes a new placement snapshot.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::FutureExt;
use serde_json::Value;

use crate::config::EndpointKind;
use crate::routing::endpoint::EndpointState;
use crate::routing::fetch::get_json;
use crate::state::Shared;

/// Polls the current configuration's endpoints; their reports are kept in routing's registry
/// (by endpoint id), so a reload keeps what is known of the endpoints it keeps.
/// How soon a reload's new endpoints are polled.
const RELOAD_CHECK: Duration = Duration::from_millis(100);

pub struct Discovery {
    shared: Arc<Shared>,
}

/// What one poll of one endpoint found: `None` fields were not asked this time.
struct PollResult {
    advertised: Option<Vec<String>>,
    loaded: Option<Vec<String>>,
}

fn names(v: &Value, list: &str) -> Vec<String> {
    v.get(list)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| {
            m.get("id")
                .or_else(|| m.get("name"))
                .or_else(|| m.get("model"))
                .and_then(Value::as_str)
        })
        .map(str::to_string)
        .collect()
}

async fn poll(
    ep: &EndpointState,
    want_models: bool,
    timeout: Duration,
) -> Result<PollResult, String> {
    match ep.kind() {
        EndpointKind::Ollama => {
            let loaded = names(
                &get_json(ep, &format!("{}/api/ps", ep.url.base_path), timeout).await?,
                "models",
            );
            let advertised = if want_models {
                Some(names(
                    &get_json(ep, &format!("{}/api/tags", ep.url.base_path), timeout).await?,
                    "models",
                ))
            } else {
                None
            };
            Ok(PollResult {
                advertised,
                loaded: Some(loaded),
            })
        }
        EndpointKind::LlamaServer => {
            let v = get_json(ep, &format!("{}/models", ep.openai_base()), timeout).await?;
            let all = names(&v, "data");
            let loaded = v
                .get("data")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|m| llama_is_loaded(m))
                .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
                .collect();
            Ok(PollResult {
                advertised: Some(all),
                loaded: Some(loaded),
            })
        }
        EndpointKind::OpenAi => {
            let v = get_json(ep, &format!("{}/models", ep.openai_base()), timeout).await?;
            Ok(PollResult {
                advertised: Some(names(&v, "data")),
                loaded: None,
            })
        }
    }
}

impl Discovery {
    pub fn new(shared: Arc<Shared>) -> Self {
        Discovery { shared }
    }

    /// Polls every endpoint once and publishes the result. `full` also asks for advertised models.
    pub async fn poll_once(&mut self, full: bool) {
        self.shared = self.shared.current();
        let timeout = self.shared.config.discovery.poll_timeout;
        let endpoints = self.shared.endpoints.clone();
        // Name lookups block: this thread does them for the workers (`http::resolve`), which only
        // read the answers. A failed lookup keeps the last good answer; a host that never resolved
        // fails its poll below with the reason. A slow resolver delays polls, never requests.
        for ep in endpoints.iter() {
            crate::http::resolve::refresh(&ep.url.host, ep.url.port);
        }
        let results = join_all(endpoints.iter().map(|ep| {
            // Remote OpenAI APIs have no load state: ask them only on full polls, or to probe them back.
            let skip = ep.kind() == EndpointKind::OpenAi && !full && ep.is_healthy();
            // An endpoint that was down, or never listed its models, lists them now: a backend that
            // comes up is usable at the next loaded poll, not the next full one.
            let want_models = full
                || !ep.is_healthy()
                || self
                    .shared
                    .routing()
                    .report(ep.id)
                    .is_none_or(|r| r.advertised.is_empty());
            async move {
                if skip {
                    None
                } else {
                    Some(poll(ep, want_models, timeout).await)
                }
            }
        }))
        .await;
        for (ep, result) in endpoints.iter().zip(results) {
            match result {
                None => {}
                Some(Ok(r)) => {
                    ep.mark_up();
                    let mut routing = self.shared.routing();
                    let report = routing.report_mut(ep.id);
                    if let Some(a) = r.advertised {
                        report.advertised = a;
                    }
                    if let Some(l) = r.loaded {
                        report.loaded = l;
                        routing.forget_answered(ep.id);
                    }
                }
                Some(Err(e)) => ep.mark_down(&e),
            }
        }
        // A reload during the poll published its own placement; the next round serves it.
        self.shared.publish_placement();
    }

    /// Polls forever on the configured intervals until the router stops.
    pub async fn run(mut self) {
        let d = self.shared.config.discovery.clone();
        let mut next_full = Instant::now() + d.models_interval;
        let mut next_poll = Instant::now() + d.loaded_interval;
        while !self.shared.stopping.load(Ordering::Relaxed) {
            let now = Instant::now();
            monoio::time::sleep(RELOAD_CHECK.min(next_poll.saturating_duration_since(now))).await;
            // A reload is polled at once, in full: the endpoints it adds become usable now.
            let reloaded = !self.shared.is_current();
            let now = Instant::now();
            if !reloaded && now < next_poll {
                continue;
            }
            let d = self.shared.current().config.discovery.clone();
            let full = reloaded || now >= next_full;
            if full {
                next_full = now + d.models_interval;
            }
            next_poll = now + d.loaded_interval;
            self.poll_contained(full).await;
        }
    }

    /// One poll round in which a panic (a bug meeting a backend's odd answer) is logged and
    /// survived: the next round polls again, so health and placement keep being updated.
    async fn poll_contained(&mut self, full: bool) {
        let round = AssertUnwindSafe(self.poll_once(full)).catch_unwind();
        if round.await.is_err() {
            tracing::error!("a discovery poll panicked; polling goes on");
        }
    }
}

/// Starts the discovery thread after one full poll, so the first request already sees placement.
pub fn start(shared: Arc<Shared>) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let driver = shared.config.io_driver;
    let handle = std::thread::Builder::new()
        .name("discovery".into())
        .spawn(move || {
            crate::rt::block_on(driver, async move {
                let mut discovery = Discovery::new(shared);
                discovery.poll_contained(true).await;
                let _ = ready_tx.send(());
                discovery.run().await;
            })
        })?;
    // The first poll is bounded by the name lookups and the poll timeout; wait 30 s at most.
    let _ = ready_rx.recv_timeout(Duration::from_secs(30));
    Ok(handle)
}
/// llama-server reports a model loaded when `status` is missing, `"loaded"`, or `{"value": "loaded"}`.
pub fn llama_is_loaded(m: &Value) -> bool {
    match m.get("status") {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s == "loaded",
        Some(o) => o.get("value").and_then(Value::as_str) == Some("loaded"),
    }
}
