//! The live usage feed's shared snapshot (`/api/usage-stream`, built by `api::usage`): one SSE
//! event rebuilt at most every `TICK` by whichever watcher finds it stale, with a version that moves
//! only when the event changed, so each watcher sends only changes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;

/// How often the snapshot may be rebuilt, and how often a watcher looks.
pub const TICK: Duration = Duration::from_millis(250);
/// A comment line this long after the last event keeps proxies and clients from timing out.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// The event every watcher sends.
pub struct Snapshot {
    pub version: u64,
    built: Instant,
    pub event: Bytes,
}

/// The watchers' shared snapshot and their count.
pub struct Feed {
    current: ArcSwap<Snapshot>,
    building: AtomicBool,
    watchers: AtomicUsize,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            current: ArcSwap::from_pointee(Snapshot {
                version: 0,
                built: Instant::now() - 2 * TICK,
                event: Bytes::new(),
            }),
            building: AtomicBool::new(false),
            watchers: AtomicUsize::new(0),
        }
    }
}

impl Feed {
    pub fn watchers(&self) -> usize {
        self.watchers.load(Ordering::Relaxed)
    }

    pub fn watch(&self) {
        self.watchers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unwatch(&self) {
        self.watchers.fetch_sub(1, Ordering::Relaxed);
    }

    /// The current snapshot, rebuilt with `build` first when older than a tick (by one caller at
    /// a time; the others take the one there is).
    pub fn snapshot(&self, build: impl FnOnce() -> Vec<u8>) -> Arc<Snapshot> {
        let cur = self.current.load_full();
        if cur.built.elapsed() < TICK || self.building.swap(true, Ordering::Acquire) {
            return cur;
        }
        let event = build();
        let changed = event != cur.event;
        let next = Arc::new(Snapshot {
            version: cur.version + u64::from(changed),
            built: Instant::now(),
            event: if changed {
                Bytes::from(event)
            } else {
                cur.event.clone()
            },
        });
        self.current.store(next.clone());
        self.building.store(false, Ordering::Release);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_moves_only_with_the_event() {
        let feed = Feed::default();
        let a = feed.snapshot(|| b"a".to_vec());
        // Fresh: not rebuilt.
        let again = feed.snapshot(|| unreachable!("fresh"));
        assert_eq!(again.version, a.version);
        std::thread::sleep(TICK);
        assert_eq!(feed.snapshot(|| b"a".to_vec()).version, a.version);
        std::thread::sleep(TICK);
        let b = feed.snapshot(|| b"b".to_vec());
        assert_eq!(b.version, a.version + 1);
        assert_eq!(&b.event[..], b"b");
    }
}
