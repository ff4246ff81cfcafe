//! Configuration reload (SIGHUP, `POST /api/config/reload`): the configuration is read again from
//! where it came from at start (the same file, environment and flags); a file that does not load or
//! does not validate is refused with the reason and the running configuration stays. A loaded one
//! becomes current for new requests (`Shared::successor`); requests in flight finish on the
//! settings they started with.
//!
//! Reloads run one at a time on a thread of their own, never on a worker or on the thread that
//! waits for SIGTERM: a file that blocks its reader (a FIFO, a stalled network mount) holds up the
//! next reload, never the shutdown or a request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::config::{load_config, Config};
use crate::state::{ReloadSummary, Shared};

/// Where the configuration came from: the `--config` flag and the other flags' overrides.
pub struct ConfigSource {
    pub file: Option<String>,
    pub flags: Vec<(&'static str, String, &'static str)>,
}

static SOURCE: OnceLock<ConfigSource> = OnceLock::new();
/// A reload is running.
static BUSY: AtomicBool = AtomicBool::new(false);
/// Errors quote the values they refuse: a reason longer than this is cut (a 100 MB value must not
/// become a 100 MB answer and log line).
const MAX_REASON: usize = 2048;

/// Remembers where the configuration came from (once, at start).
pub fn remember_source(source: ConfigSource) {
    let _ = SOURCE.set(source);
}

/// Re-reads the configuration and makes it current; logs the outcome. Blocking (it reads a file).
fn reload(shared: &Arc<Shared>) -> Result<ReloadSummary, String> {
    let outcome = read().and_then(|next| {
        let running = shared.current();
        refuse_suspicious(&next, &running.config)?;
        Ok(shared.successor(next))
    });
    match &outcome {
        Ok(s) => {
            tracing::info!(
                endpoints = s.endpoints,
                added = ?s.added,
                removed = ?s.removed,
                changed = ?s.changed,
                "configuration reloaded"
            );
            if !s.needs_restart.is_empty() {
                tracing::warn!(settings = ?s.needs_restart, "the new configuration changes settings that only a restart applies: they keep their running values");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "configuration reload refused: the running configuration stays");
        }
    }
    outcome
}

fn read() -> Result<Config, String> {
    let source = SOURCE
        .get()
        .ok_or("this router was not started from a configuration that can be read again")?;
    let path =
        crate::config::load::resolve_path(source.file.as_deref(), &|n| std::env::var(n).ok());
    if let Some(path) = &path {
        // A FIFO or a device would block the reader or never end.
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => return Err(format!("'{path}' is not a regular file")),
            _ => {}
        }
    }
    let next =
        load_config(source.file.as_deref(), &source.flags).map_err(|e| cut(e.to_string()))?;
    for w in &next.warnings {
        tracing::warn!("{}", cut(w.clone()));
    }
    Ok(next)
}

/// What a running router should not take from a reload: no endpoints at all is what an empty or
/// half-written file gives. Dropping the router key is allowed, and said loudly.
fn refuse_suspicious(next: &Config, running: &Config) -> Result<(), String> {
    if next.endpoints.is_empty() {
        return Err(
            "the new configuration has no endpoints (an empty or half-written file?)".to_string(),
        );
    }
    if running.router_api_key.is_some() && next.router_api_key.is_none() {
        tracing::warn!("the reloaded configuration has no router key: every route is now open");
    }
    Ok(())
}

fn cut(mut reason: String) -> String {
    if reason.len() > MAX_REASON {
        let mut end = MAX_REASON;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push_str("… (cut)");
    }
    reason
}

/// Runs a reload on a thread of its own and awaits it (`POST /api/config/reload`). `Err(None)`: a
/// reload is already running.
pub async fn reload_off_worker(shared: Arc<Shared>) -> Result<ReloadSummary, Option<String>> {
    if BUSY.swap(true, Ordering::AcqRel) {
        return Err(None);
    }
    let (tx, rx) = futures_channel::oneshot::channel();
    let started = std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            let outcome = reload(&shared);
            BUSY.store(false, Ordering::Release);
            let _ = tx.send(outcome);
        });
    if let Err(e) = started {
        BUSY.store(false, Ordering::Release);
        return Err(Some(format!("cannot start the reload: {e}")));
    }
    match rx.await {
        Ok(outcome) => outcome.map_err(Some),
        Err(_) => Err(Some("the reload stopped before it finished".to_string())),
    }
}

/// The thread that reloads on SIGHUP (sent through `tx`), telling systemd around each reload.
/// Signals that arrive during a reload are one more reload after it.
pub fn start_signal_reloader(shared: Arc<Shared>) -> std::io::Result<std::sync::mpsc::Sender<()>> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            while rx.recv().is_ok() {
                while rx.try_recv().is_ok() {}
                while BUSY.swap(true, Ordering::AcqRel) {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                let mut reloading = vec![sd_notify::NotifyState::Reloading];
                reloading.extend(sd_notify::NotifyState::monotonic_usec_now());
                let _ = sd_notify::notify(&reloading);
                let _ = reload(&shared);
                BUSY.store(false, Ordering::Release);
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
            }
        })?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reasons_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_REASON);
        let cut = cut(long);
        assert!(cut.len() <= MAX_REASON + "… (cut)".len());
        assert!(cut.ends_with("… (cut)"));
        assert_eq!(super::cut("short".into()), "short");
    }
}
