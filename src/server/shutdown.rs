//! The main thread's signals: SIGHUP reloads the configuration (telling systemd around it), SIGTERM
//! or SIGINT returns to start the shutdown.

use std::sync::Arc;

use sd_notify::NotifyState;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::state::Shared;

pub fn wait_for_signal(shared: &Arc<Shared>) {
    match Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(mut signals) => {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let mut reloading = vec![NotifyState::Reloading];
                    reloading.extend(NotifyState::monotonic_usec_now());
                    let _ = sd_notify::notify(&reloading);
                    let _ = crate::reload::reload(shared);
                    let _ = sd_notify::notify(&[NotifyState::Ready]);
                    continue;
                }
                tracing::info!(signal = sig, "signal received");
                return;
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers; running until killed");
            loop {
                std::thread::park();
            }
        }
    }
}
