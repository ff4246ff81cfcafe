//! What routing keeps across configurations: each endpoint's number for the process's life (by
//! URL), its last model reports, and the slot and wait queue of every endpoint × model. A reload
//! builds new endpoint states; the slots built for them take over the in-flight counts of the
//! slots they replace, so requests still running on the old settings count against the new limits
//! and free their place for requests queued under the new ones.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::endpoint::EndpointState;
use super::names::{llama_short, strip_latest};
use super::placement::{EndpointModels, Placement};
use super::queue::WaitQueue;
use super::slots::Slot;
use crate::config::EndpointKind;

#[derive(Default)]
pub struct Registry {
    /// Endpoint URLs by id.
    urls: Vec<Arc<str>>,
    /// Last reports, by endpoint id.
    reports: HashMap<usize, EndpointModels>,
    /// By endpoint id and model name.
    slots: HashMap<(usize, String), Arc<Slot>>,
    /// By the model's name without `:latest` (llama-server: its short name).
    queues: HashMap<String, Arc<WaitQueue>>,
}

impl Registry {
    /// The id of the endpoint at `url`: the one it had, or the next.
    pub fn id_for(&mut self, url: &str) -> usize {
        if let Some(id) = self.urls.iter().position(|u| &**u == url) {
            return id;
        }
        self.urls.push(url.into());
        self.urls.len() - 1
    }

    /// Every endpoint URL ever configured, by id.
    pub fn urls(&self) -> &[Arc<str>] {
        &self.urls
    }

    pub fn report(&self, id: usize) -> Option<&EndpointModels> {
        self.reports.get(&id)
    }

    pub fn report_mut(&mut self, id: usize) -> &mut EndpointModels {
        self.reports.entry(id).or_default()
    }

    /// A fresh load report replaces what answers implied since the last one.
    pub fn forget_answered(&self, id: usize) {
        for ((ep, _), slot) in &self.slots {
            if *ep == id {
                slot.answered.store(false, Ordering::Relaxed);
            }
        }
    }

    /// Marks the slots of endpoints that are not in `endpoints` (a reload removed them): they drain.
    pub fn retire_missing(&self, endpoints: &[Arc<EndpointState>]) {
        for ((id, _), slot) in &self.slots {
            if !endpoints.iter().any(|e| e.id == *id) {
                slot.retire();
            }
        }
    }

    /// Slots of endpoints that a reload removed and that still serve requests begun before it.
    pub fn draining(&self, endpoints: &[Arc<EndpointState>]) -> Vec<Arc<Slot>> {
        self.slots
            .iter()
            .filter(|((id, _), slot)| {
                slot.in_flight() > 0 && !endpoints.iter().any(|e| e.id == *id)
            })
            .map(|(_, slot)| slot.clone())
            .collect()
    }

    /// The placement of `endpoints` (one configuration's states) from the last reports.
    pub fn placement(&mut self, endpoints: &[Arc<EndpointState>]) -> Placement {
        let kinds: Vec<EndpointKind> = endpoints.iter().map(|e| e.kind()).collect();
        let models = endpoints
            .iter()
            .map(|e| self.reports.get(&e.id).cloned().unwrap_or_default())
            .collect();
        let (slots, queues) = (&mut self.slots, &mut self.queues);
        let mut slot_for = |ep: usize, name: &str| {
            let state = &endpoints[ep];
            let key = (state.id, name.to_string());
            if let Some(slot) = slots.get(&key) {
                if Arc::ptr_eq(&slot.endpoint, state) {
                    return slot.clone();
                }
            }
            let queue_key = if kinds[ep] == EndpointKind::LlamaServer {
                llama_short(name)
            } else {
                strip_latest(name)
            };
            let queue = queues.entry(queue_key.to_string()).or_default().clone();
            let old = slots.get(&key);
            let in_flight = old.map(|s| s.in_flight.clone()).unwrap_or_default();
            let slot = Arc::new(Slot::counting_with(
                state.clone(),
                name.into(),
                queue,
                in_flight,
            ));
            if let Some(old) = old {
                old.succeed_by(slot.clone());
            }
            slots.insert(key, slot.clone());
            slot
        };
        Placement::build(models, &kinds, &mut slot_for)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EndpointConfig;

    fn state(index: usize, id: usize, limit: u32) -> Arc<EndpointState> {
        Arc::new(EndpointState::new(
            index,
            id,
            EndpointConfig {
                url: format!("http://e{id}:1"),
                kind: EndpointKind::Ollama,
                max_concurrent: limit,
                api_key: None,
                weight: 1,
            },
        ))
    }

    #[test]
    fn ids_follow_urls() {
        let mut r = Registry::default();
        assert_eq!((r.id_for("http://a:1"), r.id_for("http://b:1")), (0, 1));
        assert_eq!(r.id_for("http://a:1"), 0);
        assert_eq!(r.urls().len(), 2);
    }

    #[test]
    fn a_new_limit_counts_the_requests_running_on_the_old_one() {
        let mut r = Registry::default();
        r.report_mut(0).advertised = vec!["m".into()];
        let old = state(0, 0, 2);
        let before = r.placement(std::slice::from_ref(&old));
        let held = before.resolve("m")[0].slot.try_acquire().unwrap();
        let second = before.resolve("m")[0].slot.try_acquire().unwrap();
        // The endpoint now allows one: the two old requests hold it until both end.
        let new = Arc::new(old.successor(
            0,
            EndpointConfig {
                max_concurrent: 1,
                ..old.cfg.clone()
            },
        ));
        let after = r.placement(std::slice::from_ref(&new));
        let slot = after.resolve("m")[0].slot.clone();
        assert_eq!((slot.limit, slot.in_flight()), (1, 2));
        assert!(slot.try_acquire().is_none());
        drop(held);
        assert!(slot.try_acquire().is_none());
        drop(second);
        let taken = slot
            .try_acquire()
            .expect("free once the old requests ended");
        assert_eq!(new.in_flight.load(Ordering::Relaxed), 1);
        drop(taken);
        // An unchanged endpoint keeps its slot object.
        let again = r.placement(&[new]);
        assert!(Arc::ptr_eq(&again.resolve("m")[0].slot, &slot));
    }
}
