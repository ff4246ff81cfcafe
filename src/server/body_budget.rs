//! One budget for the large request bodies buffered at once over all connections. Bodies are read
//! whole before routing, up to `limits.max_body_bytes` each (64 MiB by default), so without it a few
//! hundred clients uploading at once could take the machine's memory. Bodies up to
//! `BODY_BUDGET_FROM` are not counted (their total is bounded by the connection cap), which keeps
//! the shared counter off the common request's path. A connection gives its share back when its
//! request is answered, or when it is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Bodies larger than this count against the budget.
pub const BODY_BUDGET_FROM: usize = 64 * 1024;

/// The process's budget.
pub static BODY_BUDGET: BodyBudget = BodyBudget {
    used: AtomicUsize::new(0),
};

#[derive(Default)]
pub struct BodyBudget {
    used: AtomicUsize,
}

impl BodyBudget {
    /// Makes `held` (what one body holds) cover a body of `len` bytes, counted only past
    /// `BODY_BUDGET_FROM`; false when the budget of `max` has no room for it.
    pub fn cover(&self, held: &mut usize, len: usize, max: usize) -> bool {
        if len <= BODY_BUDGET_FROM || len <= *held {
            return true;
        }
        let more = len - *held;
        let taken = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(more).filter(|total| *total <= max)
            })
            .is_ok();
        if taken {
            *held = len;
        }
        taken
    }

    /// Gives back what `held` holds.
    pub fn release(&self, held: &mut usize) {
        if *held > 0 {
            self.used.fetch_sub(*held, Ordering::AcqRel);
            *held = 0;
        }
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_bodies_share_one_budget_and_give_it_back() {
        let budget = BodyBudget::default();
        let max = 1 << 20;
        let (mut a, mut b) = (0, 0);
        assert!(
            budget.cover(&mut a, 1000, max),
            "small bodies are not counted"
        );
        assert_eq!(budget.used(), 0);
        assert!(budget.cover(&mut a, 600 << 10, max));
        assert!(
            !budget.cover(&mut b, 600 << 10, max),
            "no room for a second one"
        );
        assert_eq!(b, 0);
        assert!(budget.cover(&mut b, 300 << 10, max));
        assert!(
            budget.cover(&mut a, 500 << 10, max),
            "less than held takes nothing more"
        );
        budget.release(&mut a);
        assert_eq!((a, budget.used()), (0, 300 << 10));
        budget.release(&mut b);
        assert_eq!(budget.used(), 0);
    }
}
