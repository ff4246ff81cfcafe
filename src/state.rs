//! State shared by every worker: configuration, endpoint states, the placement snapshot, and the
//! counters of in-flight requests that shutdown waits for.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::accounting::feed::Feed;
use crate::accounting::Accounting;
use crate::cache::response_cache::ResponseCache;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::routing::endpoint::EndpointState;
use crate::routing::placement::Placement;

/// How often counted tokens are written to the database.
const ACCOUNTING_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

pub struct Shared {
    pub config: Config,
    pub endpoints: Vec<Arc<EndpointState>>,
    pub placement: ArcSwap<Placement>,
    /// Set by SIGTERM: listeners stop accepting.
    pub stopping: AtomicBool,
    /// Requests read and not yet answered to the last byte: the shutdown drain waits for them.
    pub active_requests: AtomicUsize,
    /// The response cache, when `cache_enabled`.
    pub cache: Option<ResponseCache>,
    /// Token accounting, unless `token_accounting: false`.
    pub accounting: Option<Accounting>,
    /// The `/metrics` counters, unless `metrics: false`.
    pub metrics: Option<Metrics>,
    /// The `/api/usage-stream` snapshot.
    pub feed: Feed,
}

impl Shared {
    /// Opens the response cache's store too (loading its file: a store problem is logged, never
    /// fatal) and starts the embedding core when semantic matching is on (a model that cannot be
    /// loaded is fatal: the configuration asks for what the router cannot do).
    pub fn new(config: Config) -> Result<Arc<Shared>, String> {
        let cache = match config.cache.enabled {
            true => Some(ResponseCache::start(
                &config.cache,
                config.cpu_plan().embedding,
            )?),
            false => None,
        };
        let accounting = match config.token_accounting {
            true => Some(
                Accounting::start(config.db_path.clone().into(), ACCOUNTING_FLUSH)
                    .map_err(|e| format!("cannot start the accounting thread: {e}"))?,
            ),
            false => None,
        };
        let metrics = config
            .metrics
            .then(|| Metrics::new(config.worker_count(), config.endpoints.len()));
        let endpoints = config
            .endpoints
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, c)| Arc::new(EndpointState::new(i, c)))
            .collect();
        Ok(Arc::new(Shared {
            config,
            endpoints,
            placement: ArcSwap::from_pointee(Placement::default()),
            stopping: AtomicBool::new(false),
            active_requests: AtomicUsize::new(0),
            cache,
            accounting,
            metrics,
            feed: Feed::default(),
        }))
    }

    pub fn any_healthy(&self) -> bool {
        self.endpoints.iter().any(|e| e.is_healthy())
    }

    /// Counts a request as active until the returned guard drops (after its last byte was written).
    pub fn track_request(self: &Arc<Self>) -> ActiveRequest {
        self.active_requests.fetch_add(1, Ordering::SeqCst);
        ActiveRequest {
            shared: self.clone(),
        }
    }
}

pub struct ActiveRequest {
    shared: Arc<Shared>,
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.shared.active_requests.fetch_sub(1, Ordering::SeqCst);
    }
}
