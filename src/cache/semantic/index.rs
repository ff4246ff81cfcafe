//! One HNSW graph (`hnsw::Graph`) per semantic scope. A graph's points are slot numbers of the
//! vector arena: the distance reads both vectors from the map, so a graph holds only its links.
//! Graphs cannot delete: dead slots are walked through but not returned, and a graph with more
//! dead than live points is rebuilt from its live slots.

use std::collections::HashMap;
use std::sync::Arc;

use super::hnsw::Graph;
use super::vectors::{View, SCRATCH};

const BUILD_EF: usize = 100;
const SEARCH_EF: usize = 128;

struct Scope {
    graph: Graph,
    dead: usize,
}

pub struct Index {
    view: Arc<View>,
    scopes: HashMap<[u8; 16], Scope>,
}

impl Index {
    pub fn new(view: Arc<View>) -> Index {
        Index {
            view,
            scopes: HashMap::new(),
        }
    }

    pub fn insert(&mut self, scope: [u8; 16], slot: u32) {
        let view = &self.view;
        let dist = |a: u32, b: u32| 1.0 - view.dot(a, b);
        self.scopes
            .entry(scope)
            .or_insert_with(|| Scope {
                graph: Graph::new(BUILD_EF),
                dead: 0,
            })
            .graph
            .insert(slot, &dist);
    }

    /// The nearest `k` live slots of `scope` to the query in the scratch slot, nearest first.
    pub fn search(&mut self, scope: &[u8; 16], k: usize, live: &dyn Fn(u32) -> bool) -> Vec<u32> {
        let Some(s) = self.scopes.get_mut(scope) else {
            return Vec::new();
        };
        let view = &self.view;
        let dist = |a: u32, b: u32| 1.0 - view.dot(a, b);
        s.graph
            .search(SCRATCH, k, SEARCH_EF, &dist, live)
            .into_iter()
            .map(|(slot, _)| slot)
            .collect()
    }

    /// Counts a dead point of `scope`; rebuilds the graph from `live` slots once most are dead.
    pub fn died(&mut self, scope: &[u8; 16], live: &dyn Fn(u32) -> bool) {
        let Some(s) = self.scopes.get_mut(scope) else {
            return;
        };
        s.dead += 1;
        if s.dead * 2 < s.graph.len() {
            return;
        }
        let mut keep: Vec<u32> = s
            .graph
            .slots()
            .iter()
            .copied()
            .filter(|&x| live(x))
            .collect();
        keep.sort_unstable();
        keep.dedup();
        self.scopes.remove(scope);
        for slot in keep {
            self.insert(*scope, slot);
        }
    }

    pub fn clear(&mut self) {
        self.scopes.clear();
    }

    /// Points in every graph (live and not yet rebuilt away).
    pub fn points(&self) -> usize {
        self.scopes.values().map(|s| s.graph.len()).sum()
    }

    pub fn scopes(&self) -> usize {
        self.scopes.len()
    }
}
