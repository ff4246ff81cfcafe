//! Configuration reload (SIGHUP, `POST /api/config/reload`): the configuration is read again from
//! where it came from at start (the same file, environment and flags); a file that does not load
//! or does not validate is refused with the reason and the running configuration stays. A loaded
//! one becomes current for new requests (`Shared::successor`); requests in flight finish on the
//! settings they started with.

use std::sync::{Arc, OnceLock};

use crate::config::load_config;
use crate::state::{ReloadSummary, Shared};

/// Where the configuration came from: the `--config` flag and the other flags' overrides.
pub struct ConfigSource {
    pub file: Option<String>,
    pub flags: Vec<(&'static str, String, &'static str)>,
}

static SOURCE: OnceLock<ConfigSource> = OnceLock::new();

/// Remembers where the configuration came from (once, at start).
pub fn remember_source(source: ConfigSource) {
    let _ = SOURCE.set(source);
}

/// Re-reads the configuration and makes it current. Blocking (it reads a file): call it off the
/// workers.
pub fn reload(shared: &Arc<Shared>) -> Result<ReloadSummary, String> {
    let outcome = load(shared);
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

fn load(shared: &Arc<Shared>) -> Result<ReloadSummary, String> {
    let source = SOURCE
        .get()
        .ok_or("this router was not started from a configuration that can be read again")?;
    let next = load_config(source.file.as_deref(), &source.flags).map_err(|e| e.to_string())?;
    for w in &next.warnings {
        tracing::warn!("{w}");
    }
    Ok(shared.successor(next))
}

/// Runs `reload` on a thread of its own and awaits it, so a worker never blocks on the file.
pub async fn reload_off_worker(shared: Arc<Shared>) -> Result<ReloadSummary, String> {
    let (tx, rx) = futures_channel::oneshot::channel();
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            let _ = tx.send(reload(&shared));
        })
        .map_err(|e| format!("cannot start the reload: {e}"))?;
    rx.await
        .unwrap_or_else(|_| Err("the reload stopped before it finished".to_string()))
}
