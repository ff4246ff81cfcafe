//! Waits for SIGTERM or SIGINT on the main thread.

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

pub fn wait_for_signal() {
    match Signals::new([SIGTERM, SIGINT]) {
        Ok(mut signals) => {
            if let Some(sig) = signals.forever().next() {
                tracing::info!(signal = sig, "signal received");
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
