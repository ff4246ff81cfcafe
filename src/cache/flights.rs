//! Coalescing (SPEC §6.5): concurrent identical misses make one upstream request. The first miss
//! for a key leads; the others follow, wait for the leader's answer and replay it. A leader that
//! ends without a storable answer (an error, an abort, a client gone) releases its followers with
//! nothing, and each then goes upstream itself. Workers are threads: the map is behind a lock held
//! for a hash-map operation, and answers travel over one-shot channels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_channel::oneshot;

use super::answer::Answer;

type Waiters = Vec<oneshot::Sender<Option<Arc<Answer>>>>;

#[derive(Default)]
pub struct Flights {
    map: Mutex<HashMap<[u8; 32], Waiters>>,
}

/// What a miss is in its key's flight.
pub enum Join {
    /// The first: it goes upstream, and hands its answer to the followers.
    Leader(Leader),
    /// Another leads: the answer comes over this channel (`None`, or a dropped sender: go upstream).
    Follower(oneshot::Receiver<Option<Arc<Answer>>>),
}

impl Flights {
    pub fn join(self: &Arc<Self>, key: [u8; 32]) -> Join {
        let mut map = self.lock();
        if let Some(waiters) = map.get_mut(&key) {
            let (tx, rx) = oneshot::channel();
            waiters.push(tx);
            return Join::Follower(rx);
        }
        map.insert(key, Vec::new());
        Join::Leader(Leader {
            flights: self.clone(),
            key,
            done: false,
        })
    }

    /// Keys with a request in flight.
    pub fn in_flight(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Waiters>> {
        // Every step under the lock leaves the map consistent, so a poisoned one is usable.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The leading request of a flight; dropping it without `land` releases the followers empty-handed.
pub struct Leader {
    flights: Arc<Flights>,
    key: [u8; 32],
    done: bool,
}

impl Leader {
    /// Ends the flight: every follower gets `answer`.
    pub fn land(mut self, answer: Option<Arc<Answer>>) {
        self.release(answer);
    }

    fn release(&mut self, answer: Option<Arc<Answer>>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let waiters = self.flights.lock().remove(&self.key).unwrap_or_default();
        // Sent outside the lock: a send wakes a task on another worker.
        for w in waiters {
            let _ = w.send(answer.clone());
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.release(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Arc<Answer> {
        Arc::new(Answer {
            content: "x".into(),
            ..Answer::default()
        })
    }

    #[test]
    fn followers_get_the_leaders_answer() {
        let f = Arc::new(Flights::default());
        let Join::Leader(leader) = f.join([1; 32]) else {
            panic!("first is the leader")
        };
        let Join::Follower(mut a) = f.join([1; 32]) else {
            panic!("second follows")
        };
        let Join::Follower(mut b) = f.join([1; 32]) else {
            panic!("third follows")
        };
        assert!(
            matches!(f.join([2; 32]), Join::Leader(_)),
            "another key leads"
        );
        leader.land(Some(answer()));
        assert_eq!(a.try_recv().unwrap().unwrap().unwrap().content, "x");
        assert!(b.try_recv().unwrap().unwrap().is_some());
        assert_eq!(f.in_flight(), 0);
        assert!(matches!(f.join([1; 32]), Join::Leader(_)), "a new flight");
    }

    #[test]
    fn a_dropped_leader_releases_its_followers_empty_handed() {
        let f = Arc::new(Flights::default());
        let leader = f.join([1; 32]);
        let Join::Follower(mut a) = f.join([1; 32]) else {
            panic!("follows")
        };
        drop(leader);
        assert_eq!(a.try_recv().unwrap(), Some(None));
        assert_eq!(f.in_flight(), 0);
    }
}
