//! What the router learned of one endpoint × model's context window (`proxy::context` uses it):
//! kept on its slot.

use std::sync::atomic::{AtomicU32, Ordering};

/// Bytes of request JSON per token, in thousandths, until an endpoint × model teaches a smaller
/// figure (about four characters a token in English text; JSON adds its own bytes).
pub const BYTES_PER_TOKEN: u32 = 4000;

/// What the router learned of one endpoint × model's context.
#[derive(Default)]
pub struct ContextFacts {
    /// Tokens one request can use; 0 until known.
    n_ctx: AtomicU32,
    /// Request bytes per token, in thousandths; 0: `BYTES_PER_TOKEN`.
    bytes_per_token: AtomicU32,
}

impl ContextFacts {
    pub fn n_ctx(&self) -> Option<u32> {
        Some(self.n_ctx.load(Ordering::Relaxed)).filter(|&n| n > 0)
    }

    pub fn learn_n_ctx(&self, n: u32) {
        self.n_ctx.store(n, Ordering::Relaxed);
    }

    pub fn bytes_per_token(&self) -> u32 {
        match self.bytes_per_token.load(Ordering::Relaxed) {
            0 => BYTES_PER_TOKEN,
            n => n,
        }
    }

    /// The server counted `tokens` for a request of `bytes`.
    pub fn learn_density(&self, bytes: usize, tokens: u64) {
        if let Some(per) = (bytes as u64 * 1000).checked_div(tokens) {
            let per = per.clamp(200, 8000) as u32;
            self.bytes_per_token.store(per, Ordering::Relaxed);
        }
    }

    /// A cut request still did not fit: its tokens are denser than estimated.
    pub fn denser(&self) {
        let next = (self.bytes_per_token() / 2).max(500);
        self.bytes_per_token.store(next, Ordering::Relaxed);
    }
}
