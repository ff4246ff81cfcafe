//! The server: one monoio runtime per worker thread, each with its own SO_REUSEPORT listener and its
//! own upstream pools; the discovery thread; SIGTERM handling with a bounded drain.

pub mod body_budget;
mod connection;
mod fd_limit;
mod idle;
pub mod listener;
pub mod shutdown;
pub mod worker;

use std::sync::Arc;

use crate::state::Shared;

/// Runs the router until SIGTERM/SIGINT; returns once in-flight requests drained (or the grace ran out).
pub fn run(shared: Arc<Shared>) -> std::io::Result<()> {
    let cfg = &shared.config;
    let workers = cfg.worker_count();
    let listeners = listener::bind_all(&cfg.host, cfg.port, workers, true)?;
    let port = listeners[0].local_addr()?.port();
    let driver = crate::rt::describe(cfg.io_driver);
    tracing::info!(host = %cfg.host, port, workers, driver, config = %cfg.source, endpoints = cfg.endpoints.len(), "nomyo-router starting");
    if let Some((before, now)) = fd_limit::raise() {
        let wanted = 2 * cfg.limits.max_connections as u64 + 256;
        tracing::info!(before, now, "open files limit");
        if now < wanted {
            tracing::warn!(
                limit = now,
                max_connections = cfg.limits.max_connections,
                "the open files limit is below two per client connection: lower limits.max_connections or raise the limit (ulimit -n, LimitNOFILE=)"
            );
        }
    }
    let discovery = crate::discovery::start(shared.clone())?;
    let mut stops = Vec::new();
    let mut handles = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let (stop_tx, stop_rx) = futures_channel::oneshot::channel::<()>();
        stops.push(stop_tx);
        let shared = shared.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || worker::run(i, l, shared, stop_rx))?,
        );
    }
    tracing::info!(port, "listening");
    // Under systemd (`Type=notify`): ready once every worker listens. Elsewhere a no-op.
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    shutdown::wait_for_signal(&shared);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    tracing::info!(
        in_flight = shared
            .active_requests
            .load(std::sync::atomic::Ordering::SeqCst),
        "shutting down: no new connections, draining in-flight requests"
    );
    shared
        .stopping
        .store(true, std::sync::atomic::Ordering::SeqCst);
    for s in stops {
        let _ = s.send(());
    }
    for h in handles {
        let _ = h.join();
    }
    drop(discovery);
    // The answers stored during the drain reach the cache's file (or Redis) before the exit.
    if let Some(cache) = &shared.cache {
        cache.flush(std::time::Duration::from_secs(5));
    }
    // Every token counted, the drain's included, reaches the database before the exit.
    if let Some(acc) = &shared.accounting {
        acc.flush_and_stop(std::time::Duration::from_secs(5));
    }
    tracing::info!("stopped");
    Ok(())
}
