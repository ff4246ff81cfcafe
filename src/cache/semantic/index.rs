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
const DUMP_MAGIC: &[u8; 8] = b"NOMYOHG1";

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

    /// Writes every graph to `path` (through a temporary file, with a checksum).
    pub fn dump(&self, path: &std::path::Path) -> std::io::Result<()> {
        let mut out = DUMP_MAGIC.to_vec();
        out.extend_from_slice(&(self.scopes.len() as u32).to_le_bytes());
        for (scope, s) in &self.scopes {
            out.extend_from_slice(scope);
            s.graph.dump(&mut out);
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        let tmp = path.with_extension("hnsw.part");
        std::fs::write(&tmp, &out)?;
        std::fs::rename(tmp, path)
    }

    /// The graphs of a dump at `path` whose every point `valid` accepts (an entry of that scope
    /// still there); a scope with any other point, or a damaged file, is left to be rebuilt.
    pub fn load(
        &mut self,
        path: &std::path::Path,
        valid: &dyn Fn(&[u8; 16], u32) -> bool,
    ) -> usize {
        let Ok(bytes) = std::fs::read(path) else {
            return 0;
        };
        let Some((body, sum)) = bytes.split_at_checked(bytes.len().saturating_sub(32)) else {
            return 0;
        };
        if body.len() < DUMP_MAGIC.len() + 4
            || !body.starts_with(DUMP_MAGIC)
            || blake3::hash(body).as_bytes() != sum
        {
            return 0;
        }
        let mut rest = &body[DUMP_MAGIC.len()..];
        let Some(count) = rest
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
        else {
            return 0;
        };
        rest = &rest[4..];
        let mut loaded = 0;
        for _ in 0..count {
            let Some(scope) = rest.get(..16).and_then(|s| <[u8; 16]>::try_from(s).ok()) else {
                break;
            };
            rest = &rest[16..];
            let Some(graph) = Graph::load(&mut rest, BUILD_EF) else {
                break;
            };
            if graph.slots().iter().all(|&slot| valid(&scope, slot)) {
                loaded += graph.len();
                self.scopes.insert(scope, Scope { graph, dead: 0 });
            }
        }
        loaded
    }

    /// Every slot that is a point of some graph.
    pub fn covered(&self) -> std::collections::HashSet<u32> {
        self.scopes
            .values()
            .flat_map(|s| s.graph.slots().iter().copied())
            .collect()
    }

    pub fn clear(&mut self) {
        self.scopes.clear();
    }

    pub fn scopes(&self) -> usize {
        self.scopes.len()
    }
}
