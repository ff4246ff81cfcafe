//! The vectors of the semantic entries, in a memory-mapped file (or an anonymous map for the
//! memory backend), not on the heap: slot `id` holds the entry's question-and-history vector and
//! its history vector, each as 384 signed bytes and a scale (a unit vector's parts are small, so
//! one byte each keeps the cosine to about ±0.002; the guard and the threshold use the f32
//! query against these). Slot 0 is scratch space for the query being searched.
//!
//! Only the embedding core touches it, one call at a time; the HNSW graphs reach it through a
//! `View`, which reads the map's current address (the map moves when it grows).

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Arc;

use memmap2::MmapMut;

use super::DIMS;

const MAGIC: &[u8; 8] = b"NOMYOVA1";
const HEADER: usize = 64;
/// mixed vector, its scale, history vector, its scale (0: no history).
const SLOT: usize = DIMS + 4 + DIMS + 4;
pub const SCRATCH: u32 = 0;

/// A unit vector in one byte per part.
#[derive(Clone, Copy)]
pub struct Quantized {
    pub parts: [i8; DIMS],
    pub scale: f32,
}

impl Quantized {
    pub fn new(v: &[f32; DIMS]) -> Quantized {
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        let scale = if max > 0.0 { max / 127.0 } else { 0.0 };
        let mut parts = [0i8; DIMS];
        if scale > 0.0 {
            for (p, x) in parts.iter_mut().zip(v) {
                *p = (x / scale).round().clamp(-127.0, 127.0) as i8;
            }
        }
        Quantized { parts, scale }
    }

    /// The cosine between `query` and this stored vector, as a lookup computes it.
    pub fn cosine(&self, query: &[f32; DIMS]) -> f32 {
        query
            .iter()
            .zip(self.parts)
            .map(|(x, p)| x * f32::from(p))
            .sum::<f32>()
            * self.scale
    }
}

/// What the graphs read the vectors through.
#[derive(Default)]
pub struct View {
    base: AtomicPtr<u8>,
    slots: AtomicUsize,
}

impl View {
    /// The cosine of two stored mixed vectors.
    pub fn dot(&self, a: u32, b: u32) -> f32 {
        match (self.slot(a), self.slot(b)) {
            (Some(a), Some(b)) => dot_i8(
                &a[..DIMS],
                &a[DIMS..DIMS + 4],
                &b[..DIMS],
                &b[DIMS..DIMS + 4],
            ),
            _ => 0.0,
        }
    }

    fn slot(&self, id: u32) -> Option<&[u8]> {
        let id = id as usize;
        if id >= self.slots.load(Ordering::Acquire) {
            return None;
        }
        let base = self.base.load(Ordering::Acquire);
        // SAFETY: `base` points at a live map of at least `slots` slots after the header: the
        // arena publishes a new map (and its size) before it drops the old one, and only the
        // embedding core, which is the only caller, ever does either.
        Some(unsafe { std::slice::from_raw_parts(base.add(HEADER + id * SLOT), SLOT) })
    }
}

fn dot_i8(a: &[u8], a_scale: &[u8], b: &[u8], b_scale: &[u8]) -> f32 {
    // Sixteen lanes side by side, so the compiler keeps them in vector registers.
    let mut lanes = [0i32; 16];
    for (x, y) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
        for i in 0..16 {
            lanes[i] += i32::from(x[i] as i8) * i32::from(y[i] as i8);
        }
    }
    lanes.iter().sum::<i32>() as f32 * scale(a_scale) * scale(b_scale)
}

fn scale(bytes: &[u8]) -> f32 {
    f32::from_le_bytes(bytes.try_into().unwrap_or([0; 4]))
}

pub struct Arena {
    map: MmapMut,
    file: Option<File>,
    view: Arc<View>,
}

impl Arena {
    /// An arena in the file at `path` (created if missing; a file of another format is started
    /// over: the entries that point into it then fail their checksums and are dropped), or in
    /// anonymous memory.
    pub fn open(path: Option<&Path>) -> std::io::Result<Arena> {
        let (map, file) = match path {
            None => (MmapMut::map_anon(HEADER + 64 * SLOT)?, None),
            Some(path) => {
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(path)?;
                let mut head = [0u8; 8];
                let fresh = {
                    use std::io::Read;
                    let mut f = &file;
                    f.read_exact(&mut head).is_err() || &head != MAGIC
                };
                let least = (HEADER + 64 * SLOT) as u64;
                if fresh {
                    file.set_len(0)?;
                }
                if fresh || file.metadata()?.len() < least {
                    file.set_len(least)?;
                }
                // SAFETY: the file is this router's own (the entry log's lock keeps a second
                // router out of the same cache files); nothing else truncates it while mapped.
                let mut map = unsafe { MmapMut::map_mut(&file)? };
                if fresh {
                    map[..8].copy_from_slice(MAGIC);
                }
                (map, Some(file))
            }
        };
        let mut arena = Arena {
            map,
            file,
            view: Arc::default(),
        };
        arena.map[..8].copy_from_slice(MAGIC);
        arena.publish();
        Ok(arena)
    }

    pub fn view(&self) -> Arc<View> {
        self.view.clone()
    }

    fn capacity(&self) -> usize {
        (self.map.len() - HEADER) / SLOT
    }

    fn publish(&mut self) {
        self.view.slots.store(self.capacity(), Ordering::Release);
        self.view
            .base
            .store(self.map.as_mut_ptr(), Ordering::Release);
    }

    /// Writes slot `id`, growing the map when needed; returns the slot's checksum.
    pub fn write(
        &mut self,
        id: u32,
        mixed: &Quantized,
        history: Option<&Quantized>,
    ) -> std::io::Result<[u8; 8]> {
        let id = id as usize;
        if id >= self.capacity() {
            self.grow(id + 1)?;
        }
        let slot = &mut self.map[HEADER + id * SLOT..HEADER + (id + 1) * SLOT];
        let (m, rest) = slot.split_at_mut(DIMS);
        for (o, p) in m.iter_mut().zip(mixed.parts) {
            *o = p as u8;
        }
        rest[..4].copy_from_slice(&mixed.scale.to_le_bytes());
        let (h, hs) = rest[4..].split_at_mut(DIMS);
        let none = Quantized {
            parts: [0; DIMS],
            scale: 0.0,
        };
        let history = history.unwrap_or(&none);
        for (o, p) in h.iter_mut().zip(history.parts) {
            *o = p as u8;
        }
        hs.copy_from_slice(&history.scale.to_le_bytes());
        Ok(checksum(slot))
    }

    /// The checksum of slot `id` as it is now (to check an entry against its vectors at load).
    pub fn checksum(&self, id: u32) -> Option<[u8; 8]> {
        self.view.slot(id).map(checksum)
    }

    /// The cosine between `query` and slot `id`'s mixed vector, and between `history` and its
    /// history vector (`None` when either has none).
    pub fn similarity(
        &self,
        id: u32,
        query: &[f32; DIMS],
        history: Option<&[f32; DIMS]>,
    ) -> Option<(f32, Option<f32>)> {
        let slot = self.view.slot(id)?;
        let mixed = dot_f32(query, &slot[..DIMS], scale(&slot[DIMS..DIMS + 4]));
        let h_scale = scale(&slot[SLOT - 4..]);
        let hist = match history {
            Some(h) if h_scale > 0.0 => Some(dot_f32(h, &slot[DIMS + 4..SLOT - 4], h_scale)),
            _ => None,
        };
        Some((mixed, hist))
    }

    /// Whether slot `id` was written with a history vector.
    pub fn has_history(&self, id: u32) -> bool {
        self.view
            .slot(id)
            .is_some_and(|s| scale(&s[SLOT - 4..]) > 0.0)
    }

    fn grow(&mut self, slots: usize) -> std::io::Result<()> {
        let slots = slots.max(self.capacity() * 2);
        let len = HEADER + slots * SLOT;
        let mut map = match &self.file {
            Some(file) => {
                file.set_len(len as u64)?;
                // SAFETY: as in `open`.
                unsafe { MmapMut::map_mut(file)? }
            }
            None => {
                let mut map = MmapMut::map_anon(len)?;
                map[..self.map.len()].copy_from_slice(&self.map);
                map
            }
        };
        std::mem::swap(&mut self.map, &mut map);
        self.publish();
        drop(map);
        Ok(())
    }

    /// Pushes written slots to the file (at shutdown and after a batch of inserts).
    pub fn flush(&self) {
        if self.file.is_some() {
            let _ = self.map.flush_async();
        }
    }
}

fn dot_f32(q: &[f32; DIMS], parts: &[u8], scale: f32) -> f32 {
    q.iter()
        .zip(parts)
        .map(|(x, &p)| x * f32::from(p as i8))
        .sum::<f32>()
        * scale
}

fn checksum(slot: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&blake3::hash(slot).as_bytes()[..8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u32) -> [f32; DIMS] {
        let mut v = [0f32; DIMS];
        let mut x = seed.wrapping_mul(2654435761) | 1;
        for p in v.iter_mut() {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            *p = (x % 2001) as f32 / 1000.0 - 1.0;
        }
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }

    #[test]
    fn one_byte_per_part_keeps_the_cosine() {
        let mut arena = Arena::open(None).unwrap();
        let (a, b) = (unit(1), unit(2));
        arena.write(1, &Quantized::new(&a), None).unwrap();
        arena
            .write(500, &Quantized::new(&b), Some(&Quantized::new(&a)))
            .unwrap();
        let exact: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        let (q, h) = arena.similarity(500, &a, Some(&a)).unwrap();
        assert!((q - exact).abs() < 0.005, "{q} vs {exact}");
        assert!((h.unwrap() - 1.0).abs() < 0.005);
        assert!((arena.view().dot(1, 500) - exact).abs() < 0.005);
        assert!(!arena.has_history(1) && arena.has_history(500));
        assert_eq!(arena.similarity(1, &a, Some(&a)).unwrap().1, None);
    }

    #[test]
    fn a_file_arena_keeps_its_slots_across_opens() {
        let dir = crate::cache::test_dir::TestDir::new("arena");
        let path = dir.path().join("v");
        let sum = {
            let mut arena = Arena::open(Some(&path)).unwrap();
            let sum = arena.write(3000, &Quantized::new(&unit(7)), None).unwrap();
            arena.flush();
            sum
        };
        let arena = Arena::open(Some(&path)).unwrap();
        assert_eq!(arena.checksum(3000), Some(sum));
        std::fs::write(&path, b"something else entirely").unwrap();
        let arena = Arena::open(Some(&path)).unwrap();
        assert_ne!(arena.checksum(3000), Some(sum));
    }
}
