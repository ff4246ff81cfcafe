//! The main thread's signals: SIGHUP asks the reload thread for a reload (`crate::reload`), SIGTERM
//! or SIGINT returns to start the shutdown — even while a reload is stuck on its file.

use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::state::Shared;

pub fn wait_for_signal(shared: &Arc<Shared>) {
    let reloads = match crate::reload::start_signal_reloader(shared.clone()) {
        Ok(tx) => Some(tx),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the reload thread: SIGHUP will not reload");
            None
        }
    };
    match Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(mut signals) => {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    tracing::info!("SIGHUP: reloading the configuration");
                    if let Some(tx) = &reloads {
                        let _ = tx.send(());
                    }
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
