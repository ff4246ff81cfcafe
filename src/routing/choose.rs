//! Endpoint choice (SPEC §4.3) and waiting for a slot when all are full (§4.4).

use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::placement::Candidate;
use super::slots::{Slot, SlotGuard};
use crate::config::{QueueConfig, SaturationMode};

thread_local! {
    /// Rotates ties so that no endpoint is a fixed favourite.
    static ROTOR: Cell<usize> = const { Cell::new(0) };
}

fn rotor() -> usize {
    ROTOR.with(|r| {
        let v = r.get().wrapping_add(1);
        r.set(v);
        v
    })
}

/// Why no slot could be had.
#[derive(Debug, PartialEq, Eq)]
pub enum Saturated {
    /// `reject` mode, or the queue is at `max_queue`: 429.
    Rejected,
    QueueFull,
    /// Waited `queue_timeout`: 503.
    TimedOut,
    /// No healthy candidate.
    NoneHealthy,
}

/// Takes the best free slot: loaded with fewest in-flight on the model, else free with the least total
/// in-flight on the endpoint. `skip` lists endpoints that already failed this request. No allocation:
/// one scan picks the best, and a lost race for that slot scans again.
pub fn try_choose(cands: &[Candidate], skip: &[usize]) -> Option<SlotGuard> {
    let start = rotor();
    let n = cands.len();
    for _ in 0..4 {
        let mut best: Option<(&Candidate, (u8, u32))> = None;
        for i in 0..n {
            let c = &cands[(start + i) % n];
            let slot = &c.slot;
            if !slot.endpoint.is_healthy()
                || skip.contains(&c.endpoint())
                || slot.in_flight() >= slot.limit
            {
                continue;
            }
            // Tier 1 ranks by the model's in-flight, tier 2 by the endpoint's total; ties keep the
            // rotated order, so no endpoint is a fixed favourite.
            let key = if c.is_loaded() {
                (0, slot.in_flight())
            } else {
                (
                    1,
                    slot.endpoint
                        .in_flight
                        .load(std::sync::atomic::Ordering::Relaxed),
                )
            };
            if best.is_none_or(|(_, k)| key < k) {
                best = Some((c, key));
            }
        }
        let (c, _) = best?;
        if let Some(g) = c.slot.try_acquire() {
            return Some(g);
        }
    }
    None
}

/// The least busy usable candidate, for `overflow`.
fn least_busy<'a>(cands: &'a [Candidate], skip: &[usize]) -> Option<&'a Arc<Slot>> {
    let start = rotor();
    let n = cands.len();
    (0..n)
        .map(|i| &cands[(start + i) % n])
        .filter(|c| c.slot.endpoint.is_healthy() && !skip.contains(&c.endpoint()))
        .min_by_key(|c| c.slot.in_flight())
        .map(|c| &c.slot)
}

/// Gets a slot for one of `cands`, waiting in line when all are full and the mode says so.
pub async fn acquire(
    cands: &[Candidate],
    skip: &[usize],
    queue: &QueueConfig,
) -> Result<SlotGuard, Saturated> {
    if let Some(g) = try_choose(cands, skip) {
        return Ok(g);
    }
    let Some(first) = least_busy(cands, skip) else {
        return Err(Saturated::NoneHealthy);
    };
    match queue.mode {
        SaturationMode::Reject => return Err(Saturated::Rejected),
        SaturationMode::Overflow => return Ok(first.force_acquire()),
        SaturationMode::Queue => {}
    }
    if first.queue.depth() >= queue.max_queue {
        return Err(Saturated::QueueFull);
    }
    // Boxed: waiting in line is the rare path, and its timer would otherwise sit (with its 128-byte
    // alignment) in every request's future.
    Box::pin(wait_in_line(cands, skip, first, queue.queue_timeout)).await
}

/// Joins `first`'s line and waits for a slot handed over, or for `timeout`.
async fn wait_in_line(
    cands: &[Candidate],
    skip: &[usize],
    first: &Arc<Slot>,
    timeout: Duration,
) -> Result<SlotGuard, Saturated> {
    let wait_queue = first.queue.clone();
    let (mut ticket, mut rx) = wait_queue.enqueue();
    // A slot may have freed between the first try and joining the line.
    if let Some(g) = try_choose(cands, skip) {
        ticket.cancel(rx);
        return Ok(g);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let now = Instant::now();
        if now >= deadline {
            ticket.cancel(rx);
            return Err(Saturated::TimedOut);
        }
        // The periodic re-check covers slots whose release wakes another model's line (name aliases).
        let step = (deadline - now).min(Duration::from_millis(500));
        match monoio::time::timeout(step, &mut rx).await {
            Ok(Ok(guard)) => {
                if usable(&guard, cands, skip) {
                    drop(ticket);
                    return Ok(guard);
                }
                // A slot on an endpoint this request cannot use (down, or already failed it): give
                // it back and keep our place at the head of the line.
                guard.release_unhanded();
                drop(ticket);
                (ticket, rx) = wait_queue.enqueue_front();
                if let Some(g) = try_choose(cands, skip) {
                    ticket.cancel(rx);
                    return Ok(g);
                }
            }
            Ok(Err(_)) => {
                ticket.cancel(rx);
                return Err(Saturated::TimedOut);
            }
            Err(_) => {
                if !cands
                    .iter()
                    .any(|c| c.slot.endpoint.is_healthy() && !skip.contains(&c.endpoint()))
                {
                    ticket.cancel(rx);
                    return Err(Saturated::NoneHealthy);
                }
                if let Some(g) = try_choose(cands, skip) {
                    ticket.cancel(rx);
                    return Ok(g);
                }
            }
        }
    }
}

/// Whether a handed-over slot is one this request may use.
fn usable(guard: &SlotGuard, cands: &[Candidate], skip: &[usize]) -> bool {
    let ep = guard.endpoint();
    // The same endpoint × model across a reload shares its count: a request queued before the
    // reload takes its successor's place.
    ep.is_healthy()
        && !skip.contains(&ep.id)
        && cands
            .iter()
            .any(|c| Arc::ptr_eq(&c.slot.in_flight, &guard.slot().in_flight))
}
