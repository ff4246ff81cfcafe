//! A compact HNSW graph (Malkov & Yashunin) over arena slots. hnsw_rs was the first choice and
//! measured 1.4 ms per search among 10,000 entries here (every visited neighbour goes through an
//! `Arc`, a lock and a hash set); this one keeps each point's links in plain vectors of `u32`, a
//! visited set stamped by generation, and reads vectors from the arena: a search among 100,000
//! entries is well under the 1 ms budget (bench/semantic.rs). It cannot delete: dead points are
//! walked through but not returned, and the index rebuilds a graph that is mostly dead.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Links per point above the bottom layer; twice as many on it.
const M: usize = 16;
const M0: usize = 2 * M;
const MAX_LEVEL: usize = 12;

/// A (distance, point) pair ordered by distance.
#[derive(Clone, Copy, PartialEq)]
struct Near(f32, u32);

impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

pub struct Graph {
    /// links[point][layer]: the neighbours of a point on each layer it is on.
    links: Vec<Vec<Vec<u32>>>,
    /// The arena slot of each point.
    slots: Vec<u32>,
    entry: Option<u32>,
    top: usize,
    visited: Vec<u32>,
    stamp: u32,
    seed: u64,
    build_ef: usize,
}

impl Graph {
    pub fn new(build_ef: usize) -> Graph {
        Graph {
            links: Vec::new(),
            slots: Vec::new(),
            entry: None,
            top: 0,
            visited: Vec::new(),
            stamp: 0,
            seed: 0x2545_f491_4f6c_dd1d,
            build_ef,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn slots(&self) -> &[u32] {
        &self.slots
    }

    /// Adds the vector in arena slot `slot`; `dist` is 1 − cosine between two slots.
    pub fn insert(&mut self, slot: u32, dist: &dyn Fn(u32, u32) -> f32) {
        let point = self.slots.len() as u32;
        let level = self.random_level();
        self.slots.push(slot);
        self.links.push(vec![Vec::new(); level + 1]);
        self.visited.push(0);
        let Some(mut entry) = self.entry else {
            self.entry = Some(point);
            self.top = level;
            return;
        };
        let d = |g: &Graph, p: u32| dist(slot, g.slots[p as usize]);
        for layer in (level + 1..=self.top).rev() {
            entry = self.greedy(entry, layer, &d);
        }
        for layer in (0..=level.min(self.top)).rev() {
            let found = self.search_layer(&[entry], self.build_ef, layer, &d);
            let max = if layer == 0 { M0 } else { M };
            let chosen = self.select(&found, M, dist);
            self.links[point as usize][layer] = chosen.clone();
            for n in chosen {
                self.link(n, point, layer, max, dist);
            }
            if let Some(best) = found.first() {
                entry = best.1;
            }
        }
        if level > self.top {
            self.top = level;
            self.entry = Some(point);
        }
    }

    /// The `k` nearest points to the vector `query_slot` for which `keep` holds, nearest first,
    /// as (slot, distance).
    pub fn search(
        &mut self,
        query_slot: u32,
        k: usize,
        ef: usize,
        dist: &dyn Fn(u32, u32) -> f32,
        keep: &dyn Fn(u32) -> bool,
    ) -> Vec<(u32, f32)> {
        let Some(mut entry) = self.entry else {
            return Vec::new();
        };
        let d = |g: &Graph, p: u32| dist(query_slot, g.slots[p as usize]);
        for layer in (1..=self.top).rev() {
            entry = self.greedy(entry, layer, &d);
        }
        self.search_layer(&[entry], ef.max(k), 0, &d)
            .into_iter()
            .map(|Near(dist, p)| (self.slots[p as usize], dist))
            .filter(|(slot, _)| keep(*slot))
            .take(k)
            .collect()
    }

    /// The graph as bytes: entry, top layer, then each point's slot and links per layer.
    pub fn dump(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.slots.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.entry.unwrap_or(u32::MAX).to_le_bytes());
        out.push(self.top as u8);
        for (slot, layers) in self.slots.iter().zip(&self.links) {
            out.extend_from_slice(&slot.to_le_bytes());
            out.push(layers.len() as u8);
            for links in layers {
                out.extend_from_slice(&(links.len() as u16).to_le_bytes());
                for l in links {
                    out.extend_from_slice(&l.to_le_bytes());
                }
            }
        }
    }

    /// A graph `dump` wrote, from the front of `bytes`; `None` if they do not make one.
    pub fn load(bytes: &mut &[u8], build_ef: usize) -> Option<Graph> {
        let n = take_u32(bytes)? as usize;
        let entry = take_u32(bytes)?;
        let top = usize::from(*take(bytes, 1)?.first()?);
        let mut g = Graph::new(build_ef);
        for _ in 0..n {
            g.slots.push(take_u32(bytes)?);
            let levels = usize::from(*take(bytes, 1)?.first()?);
            if levels == 0 || levels > MAX_LEVEL + 1 {
                return None;
            }
            let mut layers = Vec::with_capacity(levels);
            for _ in 0..levels {
                let count = u16::from_le_bytes(take(bytes, 2)?.try_into().ok()?) as usize;
                let links: Option<Vec<u32>> = (0..count).map(|_| take_u32(bytes)).collect();
                layers.push(links?);
            }
            g.links.push(layers);
        }
        // Every link must name a point that is on that layer.
        let sound = g.links.iter().all(|layers| {
            layers.iter().enumerate().all(|(layer, links)| {
                links
                    .iter()
                    .all(|&p| g.links.get(p as usize).is_some_and(|l| l.len() > layer))
            })
        });
        let entry_ok = match entry {
            u32::MAX => n == 0,
            e => g.links.get(e as usize).is_some_and(|l| l.len() == top + 1),
        };
        if !sound || !entry_ok {
            return None;
        }
        g.entry = (entry != u32::MAX).then_some(entry);
        g.top = top;
        g.visited = vec![0; n];
        Some(g)
    }

    fn random_level(&mut self) -> usize {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let u = ((self.seed >> 11) as f64 + 1.0) / (1u64 << 53) as f64;
        ((-u.ln() / (M as f64).ln()) as usize).min(MAX_LEVEL)
    }

    fn greedy(&self, mut at: u32, layer: usize, d: &dyn Fn(&Graph, u32) -> f32) -> u32 {
        let mut best = d(self, at);
        loop {
            let mut moved = false;
            for &n in &self.links[at as usize][layer] {
                let dn = d(self, n);
                if dn < best {
                    best = dn;
                    at = n;
                    moved = true;
                }
            }
            if !moved {
                return at;
            }
        }
    }

    /// The `ef` nearest points found from `entries` on `layer`, nearest first.
    fn search_layer(
        &mut self,
        entries: &[u32],
        ef: usize,
        layer: usize,
        d: &dyn Fn(&Graph, u32) -> f32,
    ) -> Vec<Near> {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.visited.iter_mut().for_each(|v| *v = 0);
            self.stamp = 1;
        }
        let stamp = self.stamp;
        let mut candidates = BinaryHeap::new(); // nearest first (reversed)
        let mut found = BinaryHeap::new(); // farthest first
        for &e in entries {
            self.visited[e as usize] = stamp;
            let de = d(self, e);
            candidates.push(std::cmp::Reverse(Near(de, e)));
            found.push(Near(de, e));
        }
        while let Some(std::cmp::Reverse(Near(dc, c))) = candidates.pop() {
            if found.len() >= ef && found.peek().is_some_and(|f: &Near| dc > f.0) {
                break;
            }
            for i in 0..self.links[c as usize].get(layer).map_or(0, Vec::len) {
                let n = self.links[c as usize][layer][i];
                if self.visited[n as usize] == stamp {
                    continue;
                }
                self.visited[n as usize] = stamp;
                let dn = d(self, n);
                if found.len() < ef || found.peek().is_some_and(|f| dn < f.0) {
                    candidates.push(std::cmp::Reverse(Near(dn, n)));
                    found.push(Near(dn, n));
                    if found.len() > ef {
                        found.pop();
                    }
                }
            }
        }
        found.into_sorted_vec()
    }

    /// Up to `m` of `found` (nearest first), skipping a point nearer to one already chosen than
    /// to the new point: links that spread out in every direction (the paper's heuristic).
    fn select(&self, found: &[Near], m: usize, dist: &dyn Fn(u32, u32) -> f32) -> Vec<u32> {
        let mut chosen: Vec<Near> = Vec::with_capacity(m);
        for &c in found {
            if chosen.len() >= m {
                break;
            }
            let slot = self.slots[c.1 as usize];
            if chosen
                .iter()
                .all(|r| dist(slot, self.slots[r.1 as usize]) > c.0)
            {
                chosen.push(c);
            }
        }
        chosen.into_iter().map(|n| n.1).collect()
    }

    fn link(
        &mut self,
        from: u32,
        to: u32,
        layer: usize,
        max: usize,
        dist: &dyn Fn(u32, u32) -> f32,
    ) {
        let list = &mut self.links[from as usize][layer];
        list.push(to);
        if list.len() <= max {
            return;
        }
        let at = self.slots[from as usize];
        let mut ranked: Vec<Near> = self.links[from as usize][layer]
            .iter()
            .map(|&n| Near(dist(at, self.slots[n as usize]), n))
            .collect();
        ranked.sort();
        let kept = self.select(&ranked, max, dist);
        self.links[from as usize][layer] = kept;
    }
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if bytes.len() < n {
        return None;
    }
    let (head, rest) = bytes.split_at(n);
    *bytes = rest;
    Some(head)
}

fn take_u32(bytes: &mut &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(take(bytes, 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_true_nearest_neighbours() {
        // Points on a line: the distance is how far apart their numbers are.
        let dist = |a: u32, b: u32| (a as f32 - b as f32).abs();
        let mut g = Graph::new(64);
        let slots: Vec<u32> = (1..2000).map(|i| (i * 7919) % 10007).collect();
        for &s in &slots {
            g.insert(s, &dist);
        }
        assert_eq!(g.len(), slots.len());
        let mut right = 0;
        for q in [5u32, 5000, 9999, 1234, 7777] {
            let got = g.search(q, 3, 32, &dist, &|_| true);
            let mut want: Vec<u32> = slots.clone();
            want.sort_by_key(|s| (s.abs_diff(q), *s));
            if got.first().map(|g| g.0) == Some(want[0]) {
                right += 1;
            }
        }
        assert!(right >= 4, "{right} of 5 nearest found");
        let odd_only = g.search(5000, 3, 32, &dist, &|s| s % 2 == 1);
        assert!(odd_only.iter().all(|(s, _)| s % 2 == 1));
        // Dumped and loaded, it answers the same; cut or bent bytes do not load.
        let mut bytes = Vec::new();
        g.dump(&mut bytes);
        let mut back = Graph::load(&mut bytes.as_slice(), 64).unwrap();
        assert_eq!(back.slots(), g.slots());
        assert_eq!(
            back.search(5000, 3, 32, &dist, &|_| true),
            g.search(5000, 3, 32, &dist, &|_| true)
        );
        assert!(Graph::load(&mut &bytes[..bytes.len() - 3], 64).is_none());
        let mut bent = bytes.clone();
        bent[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        let _ = Graph::load(&mut bent.as_slice(), 64); // any answer, never a panic
    }
}
