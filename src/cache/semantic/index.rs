//! One HNSW graph (hnsw_rs) per semantic scope. A graph's points are slot numbers of the vector
//! arena, not vectors: the distance function reads both vectors from the map, so the graph holds
//! only its links. hnsw_rs cannot delete a point: dead slots are filtered out while searching,
//! and a graph with more dead than live points is rebuilt from its live slots.

use std::collections::HashMap;
use std::sync::Arc;

use hnsw_rs::prelude::{Distance, Hnsw};

use super::vectors::{View, SCRATCH};

/// Links per point (hnsw_rs doubles it on the bottom layer).
const LINKS: usize = 16;
const BUILD_EF: usize = 100;
const SEARCH_EF: usize = 64;
const LAYERS: usize = 16;

/// 1 − cosine between two arena slots.
pub struct SlotDistance(Arc<View>);

impl Distance<u32> for SlotDistance {
    fn eval(&self, a: &[u32], b: &[u32]) -> f32 {
        match (a.first(), b.first()) {
            (Some(&a), Some(&b)) => (1.0 - self.0.dot(a, b)).max(0.0),
            _ => 1.0,
        }
    }
}

struct Graph {
    hnsw: Hnsw<'static, u32, SlotDistance>,
    slots: Vec<u32>,
    dead: usize,
}

impl Graph {
    fn new(view: &Arc<View>, expected: usize) -> Graph {
        let hnsw = Hnsw::new(
            LINKS,
            expected.max(64),
            LAYERS,
            BUILD_EF,
            SlotDistance(view.clone()),
        );
        Graph {
            hnsw,
            slots: Vec::new(),
            dead: 0,
        }
    }

    fn insert(&mut self, slot: u32) {
        self.hnsw.insert_slice((&[slot], slot as usize));
        self.slots.push(slot);
    }
}

pub struct Index {
    view: Arc<View>,
    graphs: HashMap<[u8; 16], Graph>,
}

impl Index {
    pub fn new(view: Arc<View>) -> Index {
        Index {
            view,
            graphs: HashMap::new(),
        }
    }

    pub fn insert(&mut self, scope: [u8; 16], slot: u32) {
        let view = &self.view;
        self.graphs
            .entry(scope)
            .or_insert_with(|| Graph::new(view, 64))
            .insert(slot);
    }

    /// The nearest `k` live slots of `scope` to the query in the scratch slot, nearest first.
    pub fn search(&self, scope: &[u8; 16], k: usize, live: &dyn Fn(u32) -> bool) -> Vec<u32> {
        let Some(graph) = self.graphs.get(scope) else {
            return Vec::new();
        };
        let filter = |id: &usize| live(*id as u32);
        graph
            .hnsw
            .search_filter(&[SCRATCH], k, SEARCH_EF.max(k), Some(&filter))
            .into_iter()
            .map(|n| n.d_id as u32)
            .collect()
    }

    /// Counts a dead point of `scope`; rebuilds the graph from `live` slots once most are dead.
    pub fn died(&mut self, scope: &[u8; 16], live: &dyn Fn(u32) -> bool) {
        let Some(graph) = self.graphs.get_mut(scope) else {
            return;
        };
        graph.dead += 1;
        if graph.dead * 2 < graph.slots.len() {
            return;
        }
        let keep: Vec<u32> = graph.slots.iter().copied().filter(|&s| live(s)).collect();
        if keep.is_empty() {
            self.graphs.remove(scope);
            return;
        }
        let mut fresh = Graph::new(&self.view, keep.len());
        for s in keep {
            fresh.insert(s);
        }
        self.graphs.insert(*scope, fresh);
    }

    pub fn clear(&mut self) {
        self.graphs.clear();
    }

    /// Points in every graph (live and not yet rebuilt away).
    pub fn points(&self) -> usize {
        self.graphs.values().map(|g| g.slots.len()).sum()
    }

    pub fn scopes(&self) -> usize {
        self.graphs.len()
    }
}
