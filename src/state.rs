//! State shared by every worker: configuration, endpoint states, the placement snapshot, and the
//! counters of in-flight requests that shutdown waits for.
//!
//! A `Shared` is one configuration's state. A reload (`Shared::successor`) builds the next one and
//! publishes it; every request takes the current one when it begins and keeps it to its end, so
//! requests in flight finish on the settings they started with. What outlives a configuration —
//! the listeners' stop flag, the drain's count, the cache, accounting, metrics, the usage feed and
//! routing's registry — is shared by every `Shared` of the process.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::accounting::feed::Feed;
use crate::accounting::Accounting;
use crate::cache::response_cache::ResponseCache;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::routing::endpoint::EndpointState;
use crate::routing::placement::Placement;
use crate::routing::registry::Registry;

/// How often counted tokens are written to the database.
const ACCOUNTING_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Shared {
    pub config: Config,
    pub endpoints: Vec<Arc<EndpointState>>,
    pub placement: ArcSwap<Placement>,
    /// Set by SIGTERM: listeners stop accepting.
    pub stopping: Arc<AtomicBool>,
    /// Requests read and not yet answered to the last byte: the shutdown drain waits for them.
    pub active_requests: Arc<AtomicUsize>,
    /// The response cache, when `cache_enabled`.
    pub cache: Option<Arc<ResponseCache>>,
    /// Token accounting, unless `token_accounting: false`.
    pub accounting: Option<Arc<Accounting>>,
    /// The `/metrics` counters, unless `metrics: false`.
    pub metrics: Option<Arc<Metrics>>,
    /// The `/api/usage-stream` snapshot.
    pub feed: Arc<Feed>,
    lasting: Arc<Lasting>,
}

/// What every configuration of the process shares beyond the fields above.
struct Lasting {
    /// The configuration new requests take.
    current: ArcSwapOption<Shared>,
    routing: Mutex<Registry>,
    /// Reloads one at a time.
    reloading: Mutex<()>,
}

/// What a reload changed, for the log and `POST /api/config/reload`.
#[derive(Debug, Default, serde::Serialize)]
pub struct ReloadSummary {
    pub endpoints: usize,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    /// Settings the new file changes that only a restart applies.
    pub needs_restart: Vec<&'static str>,
}

impl Shared {
    /// Opens the response cache's store too (loading its file: a store problem is logged, never
    /// fatal) and starts the embedding core when semantic matching is on (a model that cannot be
    /// loaded is fatal: the configuration asks for what the router cannot do).
    pub fn new(config: Config) -> Result<Arc<Shared>, String> {
        let cache = match config.cache.enabled {
            true => Some(Arc::new(ResponseCache::start(
                &config.cache,
                config.cpu_plan().embedding,
            )?)),
            false => None,
        };
        let accounting = match config.token_accounting {
            true => Some(Arc::new(
                Accounting::start(config.db_path.clone().into(), ACCOUNTING_FLUSH)
                    .map_err(|e| format!("cannot start the accounting thread: {e}"))?,
            )),
            false => None,
        };
        // Room for endpoints that reloads add; beyond it their traffic is not in /metrics.
        let metric_endpoints = config.endpoints.len() * 2 + 16;
        let metrics = config
            .metrics
            .then(|| Arc::new(Metrics::new(config.worker_count(), metric_endpoints)));
        let lasting = Arc::new(Lasting {
            current: ArcSwapOption::empty(),
            routing: Mutex::new(Registry::default()),
            reloading: Mutex::new(()),
        });
        let endpoints = {
            let mut routing = lock(&lasting.routing);
            config
                .endpoints
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, c)| Arc::new(EndpointState::new(i, routing.id_for(&c.url), c)))
                .collect()
        };
        let shared = Arc::new(Shared {
            config,
            endpoints,
            placement: ArcSwap::from_pointee(Placement::default()),
            stopping: Arc::default(),
            active_requests: Arc::default(),
            cache,
            accounting,
            metrics,
            feed: Arc::default(),
            lasting,
        });
        shared.lasting.current.store(Some(shared.clone()));
        Ok(shared)
    }

    /// The configuration new requests take (this one, until a reload).
    pub fn current(self: &Arc<Self>) -> Arc<Shared> {
        self.lasting
            .current
            .load_full()
            .unwrap_or_else(|| self.clone())
    }

    /// Whether a reload made another configuration current.
    pub fn is_current(self: &Arc<Self>) -> bool {
        let current = self.lasting.current.load();
        current.as_ref().is_none_or(|c| Arc::ptr_eq(c, self))
    }

    /// Routing's registry (discovery's reports, the slots, the endpoint ids).
    pub fn routing(&self) -> MutexGuard<'_, Registry> {
        lock(&self.lasting.routing)
    }

    /// Rebuilds this configuration's placement from the registry's reports and publishes it.
    pub fn publish_placement(&self) {
        let placement = self.routing().placement(&self.endpoints);
        self.placement.store(Arc::new(placement));
    }

    /// Makes `next` the configuration of new requests: endpoints with the same URL keep their
    /// health and in-flight counts (and, unchanged, their state), settings that only a restart
    /// changes keep their running values, and requests in flight go on with this configuration.
    pub fn successor(self: &Arc<Self>, mut next: Config) -> ReloadSummary {
        let _one_at_a_time = lock(&self.lasting.reloading);
        let running = self.current();
        let mut summary = ReloadSummary {
            needs_restart: crate::config::reload::keep_fixed(&mut next, &running.config),
            endpoints: next.endpoints.len(),
            ..ReloadSummary::default()
        };
        let endpoints: Vec<Arc<EndpointState>> = {
            let mut routing = running.routing();
            next.endpoints
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, c)| {
                    let id = routing.id_for(&c.url);
                    match running.endpoints.iter().find(|e| e.id == id) {
                        Some(old) if old.cfg == c && old.index == i => old.clone(),
                        Some(old) => {
                            if old.cfg != c {
                                summary.changed.push(c.url.clone());
                            }
                            Arc::new(old.successor(i, c))
                        }
                        None => {
                            summary.added.push(c.url.clone());
                            Arc::new(EndpointState::new(i, id, c))
                        }
                    }
                })
                .collect()
        };
        summary.removed = running
            .endpoints
            .iter()
            .filter(|old| !endpoints.iter().any(|e| e.id == old.id))
            .map(|old| old.cfg.url.clone())
            .collect();
        if let Some(m) = &running.metrics {
            if let Some(e) = endpoints.iter().find(|e| e.id >= m.endpoints()) {
                tracing::warn!(endpoint = %e.cfg.url, "more endpoints than /metrics has room for since the start: restart to count their traffic there");
            }
        }
        let shared = Arc::new(Shared {
            config: next,
            endpoints,
            placement: ArcSwap::from_pointee(Placement::default()),
            stopping: running.stopping.clone(),
            active_requests: running.active_requests.clone(),
            cache: running.cache.clone(),
            accounting: running.accounting.clone(),
            metrics: running.metrics.clone(),
            feed: running.feed.clone(),
            lasting: running.lasting.clone(),
        });
        // Placement first: the first request on the new configuration finds the models known.
        shared.publish_placement();
        shared.routing().retire_missing(&shared.endpoints);
        self.lasting.current.store(Some(shared));
        summary
    }

    pub fn any_healthy(&self) -> bool {
        self.endpoints.iter().any(|e| e.is_healthy())
    }

    /// Counts a request as active until the returned guard drops (after its last byte was written).
    pub fn track_request(self: &Arc<Self>) -> ActiveRequest {
        self.active_requests.fetch_add(1, Ordering::SeqCst);
        ActiveRequest {
            active: self.active_requests.clone(),
        }
    }
}

/// A poisoned lock only means a panic elsewhere held it; what it guards stays consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct ActiveRequest {
    active: Arc<AtomicUsize>,
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
    }
}
