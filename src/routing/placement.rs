//! The placement snapshot: which endpoint advertises which model, where it is loaded, and the slot of
//! each endpoint×model. Built by discovery, read by workers through `ArcSwap` without locks.

use std::collections::HashMap;
use std::sync::Arc;

use super::names::{llama_short, strip_latest};
use super::slots::Slot;
use crate::config::EndpointKind;

/// One endpoint that can serve a model.
#[derive(Clone)]
pub struct Candidate {
    pub slot: Arc<Slot>,
    /// Loaded according to the last poll.
    pub loaded: bool,
}

impl Candidate {
    /// The endpoint's id (the same across reloads: a retry's skip list stays right).
    pub fn endpoint(&self) -> usize {
        self.slot.endpoint.id
    }

    /// Loaded by the last poll, or answered for this model since.
    pub fn is_loaded(&self) -> bool {
        self.loaded
            || self
                .slot
                .answered
                .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// What one endpoint reported in its last successful polls.
#[derive(Clone, Default, Debug)]
pub struct EndpointModels {
    pub advertised: Vec<String>,
    pub loaded: Vec<String>,
}

#[derive(Default)]
pub struct Placement {
    exact: HashMap<String, Vec<Candidate>>,
    latest: HashMap<String, Vec<Candidate>>,
    llama: HashMap<String, Vec<Candidate>>,
    /// Every slot, for /api/usage and the shutdown drain.
    pub slots: Vec<Arc<Slot>>,
    /// Per endpoint index, what it reported.
    pub models: Vec<EndpointModels>,
}

impl Placement {
    /// Builds the indexes from per-endpoint reports. `slot_for` returns the persistent slot of an endpoint×model.
    pub fn build(
        models: Vec<EndpointModels>,
        kinds: &[EndpointKind],
        slot_for: &mut dyn FnMut(usize, &str) -> Arc<Slot>,
    ) -> Placement {
        let mut p = Placement {
            models,
            ..Default::default()
        };
        for (ep, report) in p.models.clone().into_iter().enumerate() {
            let mut names = report.advertised.clone();
            for l in &report.loaded {
                if !names.contains(l) {
                    names.push(l.clone());
                }
            }
            for name in names {
                let loaded = report.loaded.iter().any(|l| l == &name);
                let slot = slot_for(ep, &name);
                p.slots.push(slot.clone());
                let cand = Candidate { slot, loaded };
                p.exact.entry(name.clone()).or_default().push(cand.clone());
                p.latest
                    .entry(strip_latest(&name).to_string())
                    .or_default()
                    .push(cand.clone());
                if kinds.get(ep) == Some(&EndpointKind::LlamaServer) {
                    p.llama
                        .entry(llama_short(&name).to_string())
                        .or_default()
                        .push(cand);
                }
            }
        }
        p
    }

    /// Candidates for a requested model: exact name, then `name`⇄`name:latest`, then llama-server short names.
    pub fn resolve(&self, model: &str) -> &[Candidate] {
        if let Some(c) = self.exact.get(model) {
            return c;
        }
        if let Some(c) = self.latest.get(strip_latest(model)) {
            return c;
        }
        self.llama
            .get(llama_short(model))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}
