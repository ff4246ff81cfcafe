//! The bounded FIFO of requests waiting for a slot of one model (SPEC §4.4). Only touched when every
//! candidate is full, so a mutex is fine here; the hot path reads one atomic (`has_waiters`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_channel::oneshot;

use super::slots::SlotGuard;

#[derive(Default)]
pub struct WaitQueue {
    waiters: Mutex<VecDeque<(u64, oneshot::Sender<SlotGuard>)>>,
    len: AtomicUsize,
    next_id: AtomicU64,
}

impl WaitQueue {
    pub fn has_waiters(&self) -> bool {
        self.len.load(Ordering::SeqCst) > 0
    }

    pub fn depth(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Joins the back of the line. The ticket leaves the line when dropped.
    pub fn enqueue(self: &Arc<Self>) -> (Ticket, oneshot::Receiver<SlotGuard>) {
        self.join(false)
    }

    /// Goes back to the head of the line (after turning down a slot it cannot use).
    pub fn enqueue_front(self: &Arc<Self>) -> (Ticket, oneshot::Receiver<SlotGuard>) {
        self.join(true)
    }

    fn join(self: &Arc<Self>, front: bool) -> (Ticket, oneshot::Receiver<SlotGuard>) {
        let (tx, rx) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut w = self.lock();
        if front {
            w.push_front((id, tx));
        } else {
            w.push_back((id, tx));
        }
        self.len.store(w.len(), Ordering::SeqCst);
        drop(w);
        (
            Ticket {
                queue: self.clone(),
                id,
            },
            rx,
        )
    }

    /// Gives `guard` to the longest waiter still waiting; returns it when nobody takes it.
    ///
    /// Each send happens with the line unlocked: a send to a waiter that just left fails and hands
    /// the guard back, and had the guard been dropped instead (or had it ever been), its release
    /// would come back here and lock the line again on this thread.
    pub fn hand_off(&self, mut guard: SlotGuard) -> Option<SlotGuard> {
        loop {
            let next = {
                let mut w = self.lock();
                let next = w.pop_front();
                self.len.store(w.len(), Ordering::SeqCst);
                next
            };
            let Some((_, tx)) = next else {
                return Some(guard);
            };
            match tx.send(guard) {
                Ok(()) => return None,
                Err(back) => guard = back,
            }
        }
    }

    fn remove(&self, id: u64) {
        let mut w = self.lock();
        if let Some(pos) = w.iter().position(|(i, _)| *i == id) {
            w.remove(pos);
        }
        self.len.store(w.len(), Ordering::SeqCst);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, oneshot::Sender<SlotGuard>)>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A place in line. Dropping it (timeout, client gone, served) takes it out of the line.
pub struct Ticket {
    queue: Arc<WaitQueue>,
    id: u64,
}

impl Ticket {
    /// Leaves the line and gives back any slot that was handed over meanwhile.
    pub fn cancel(self, mut rx: oneshot::Receiver<SlotGuard>) {
        drop(self);
        rx.close();
        if let Ok(Some(guard)) = rx.try_recv() {
            drop(guard);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.queue.remove(self.id);
    }
}
