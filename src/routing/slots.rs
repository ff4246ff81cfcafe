//! Per endpoint×model slots on atomics, and the guard that owns one taken slot.
//! A released slot goes straight to the head of the model's wait queue when someone waits (FIFO
//! hand-off: the count never dips, so a newcomer cannot jump the line), else back to the pool.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use super::endpoint::EndpointState;
use super::queue::WaitQueue;

pub struct Slot {
    pub endpoint: Arc<EndpointState>,
    /// The model as the endpoint names it.
    pub model: Arc<str>,
    pub limit: u32,
    /// Shared with the slot of the same endpoint × model under an earlier configuration, so
    /// requests still running on the old settings count against the new limit.
    pub in_flight: Arc<AtomicU32>,
    /// Set when the endpoint answered for this model since the last placement poll: it is loaded.
    pub answered: AtomicBool,
    pub queue: Arc<WaitQueue>,
    /// A reload replaced this slot: its successor (same endpoint × model, new settings), or
    /// `retired` when the endpoint left the configuration. A released place then goes to the line
    /// through the successor, under its limit, or to nobody.
    successor: OnceLock<Arc<Slot>>,
    retired: AtomicBool,
    /// What was learned of the model's context window here.
    pub context: super::context::ContextFacts,
}

impl Slot {
    pub fn new(endpoint: Arc<EndpointState>, model: Arc<str>, queue: Arc<WaitQueue>) -> Self {
        Slot::counting_with(endpoint, model, queue, Arc::default())
    }

    /// A slot whose in-flight count is `in_flight` (taken over from the slot it replaces).
    pub fn counting_with(
        endpoint: Arc<EndpointState>,
        model: Arc<str>,
        queue: Arc<WaitQueue>,
        in_flight: Arc<AtomicU32>,
    ) -> Self {
        let limit = endpoint.cfg.max_concurrent.max(1);
        Slot {
            endpoint,
            model,
            limit,
            in_flight,
            answered: AtomicBool::new(false),
            queue,
            successor: OnceLock::new(),
            retired: AtomicBool::new(false),
            context: Default::default(),
        }
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Takes a slot if one is free.
    pub fn try_acquire(self: &Arc<Self>) -> Option<SlotGuard> {
        let mut cur = self.in_flight.load(Ordering::Relaxed);
        loop {
            if cur >= self.limit {
                return None;
            }
            match self.in_flight.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.taken()),
                Err(now) => cur = now,
            }
        }
    }

    /// Takes a slot even past the limit (`overflow` mode).
    pub fn force_acquire(self: &Arc<Self>) -> SlotGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.taken()
    }

    fn taken(self: &Arc<Self>) -> SlotGuard {
        self.endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        SlotGuard {
            slot: Some(self.clone()),
        }
    }

    /// This slot's successor (the one a reload built for the same endpoint × model).
    pub(super) fn succeed_by(&self, next: Arc<Slot>) {
        let _ = self.successor.set(next);
    }

    /// The endpoint left the configuration: this slot only drains.
    pub(super) fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
    }

    /// The slot a released place may be handed over as: this one, or the last of its successors;
    /// `None` when it must go back unhanded (its endpoint is gone or down: a waiter would refuse it
    /// and pass it on, round and round).
    fn heir(self: &Arc<Self>) -> Option<Arc<Slot>> {
        let mut slot = self.clone();
        while let Some(next) = slot.successor.get() {
            slot = next.clone();
        }
        (!slot.retired.load(Ordering::Relaxed) && slot.endpoint.is_healthy()).then_some(slot)
    }

    fn release(self: &Arc<Self>, hand_over: bool) {
        let heir = self.heir().filter(|_| hand_over);
        if let Some(heir) = &heir {
            // Hand the place, still counted, to the longest waiter, unless a reload lowered the
            // limit below what runs: then the count goes down instead.
            if heir.queue.has_waiters() && heir.in_flight() <= heir.limit {
                match heir.queue.hand_off(SlotGuard {
                    slot: Some(heir.clone()),
                }) {
                    Some(rejected) => rejected.forget(),
                    None => return,
                }
            }
        }
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        // A waiter may have queued between the check and the decrement; it re-checks after queueing,
        // and this re-check covers the other order.
        if let Some(heir) = heir {
            if heir.queue.has_waiters() {
                if let Some(guard) = heir.try_acquire() {
                    if let Some(unwanted) = heir.queue.hand_off(guard) {
                        drop(unwanted);
                    }
                }
            }
        }
    }
}

/// Owns one taken slot; dropping it releases the slot exactly once on every path.
pub struct SlotGuard {
    slot: Option<Arc<Slot>>,
}

impl SlotGuard {
    pub fn slot(&self) -> &Arc<Slot> {
        self.slot
            .as_ref()
            .expect("guard holds a slot until dropped")
    }

    pub fn endpoint(&self) -> &Arc<EndpointState> {
        &self.slot().endpoint
    }

    /// Gives up ownership without releasing (the count was moved elsewhere).
    pub(super) fn forget(mut self) {
        self.slot = None;
    }

    /// Releases the place without handing it to the line: for a waiter that cannot use the slot
    /// it was handed (the others re-check on their own timers), so that two such waiters never
    /// pass it between them forever.
    pub(super) fn release_unhanded(mut self) {
        if let Some(slot) = self.slot.take() {
            slot.release(false);
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.release(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EndpointConfig, EndpointKind};

    pub fn slot(limit: u32) -> Arc<Slot> {
        let cfg = EndpointConfig {
            url: "http://a:1".into(),
            kind: EndpointKind::Ollama,
            max_concurrent: limit,
            api_key: None,
            weight: 1,
        };
        let ep = Arc::new(EndpointState::new(0, 0, cfg));
        Arc::new(Slot::new(ep, "m".into(), Arc::new(WaitQueue::default())))
    }

    #[test]
    fn acquire_respects_limit_and_guard_releases() {
        let s = slot(2);
        let a = s.try_acquire().unwrap();
        let b = s.try_acquire().unwrap();
        assert!(s.try_acquire().is_none());
        assert_eq!(s.endpoint.in_flight.load(Ordering::Relaxed), 2);
        drop(a);
        assert_eq!(s.in_flight(), 1);
        drop(b);
        assert_eq!(
            (s.in_flight(), s.endpoint.in_flight.load(Ordering::Relaxed)),
            (0, 0)
        );
    }

    #[test]
    fn contended_acquire_never_exceeds_limit() {
        let s = slot(3);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        if let Some(g) = s.try_acquire() {
                            assert!(s.in_flight() <= 3);
                            drop(g);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(s.in_flight(), 0);
    }

    /// Releases, hand-offs and waiters that leave at any moment (their receiver dropped with or
    /// without a slot in it), from several threads at once: nothing deadlocks (a watchdog bounds
    /// the run) and every count returns to zero.
    #[test]
    fn hand_offs_racing_departing_waiters_settle_at_zero() {
        let s = slot(2);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let s = s.clone();
                let done = done_tx.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000u32 {
                        if let Some(g) = s.try_acquire() {
                            drop(g);
                            continue;
                        }
                        let (ticket, mut rx) = s.queue.enqueue();
                        match (i + t) % 3 {
                            // Leaves at once; a slot handed over meanwhile goes with the receiver.
                            0 => drop((ticket, rx)),
                            1 => {
                                drop(ticket);
                                if let Ok(Some(g)) = rx.try_recv() {
                                    drop(g);
                                }
                            }
                            _ => ticket.cancel(rx),
                        }
                    }
                    let _ = done.send(());
                })
            })
            .collect();
        drop(done_tx);
        for _ in 0..threads.len() {
            done_rx
                .recv_timeout(std::time::Duration::from_secs(60))
                .expect("a thread is stuck: hand-off deadlock");
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!((s.in_flight(), s.queue.depth()), (0, 0));
        assert_eq!(s.endpoint.in_flight.load(Ordering::Relaxed), 0);
    }
}
