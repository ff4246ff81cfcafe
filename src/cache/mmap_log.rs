//! The `mmap` store: an append-only log file of cache records, read back at start by mapping it
//! and scanning it. A write appends a batch; an invalidation appends a tombstone; compaction
//! rewrites the live records into a fresh file and renames it over the log.
//!
//! On disk, each record is a 16-byte header and a payload:
//! - header: the magic `NRC1` (the format's version), the payload's length (u32 LE), the first
//!   8 bytes of the payload's BLAKE3 hash;
//! - payload: the kind (1 put, 2 invalidate all, 3 invalidate a model), the key (32 bytes),
//!   `expires_at_ms` (u64 LE), the model (u32 LE length, UTF-8 bytes), the value (u32 LE length,
//!   bytes). Tombstones carry a zero key, no expiry and an empty value.
//!
//! A damaged part (a torn tail after a crash, a flipped byte, garbage) is skipped and counted:
//! a record whose hash does not match is passed over by its length when that lands on the next
//! header or the end, and otherwise the scan searches for the next magic. The records before and
//! after the damage load. Opening cuts the file after its last whole record, so that appends
//! after a torn tail are not glued onto the torn bytes; a file in which nothing reads as this log
//! is moved aside instead, never cut.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::store::{self, Durable, Record, StoreError};

const MAGIC: [u8; 4] = *b"NRC1";
const HEADER: usize = 16;
/// Kind, key, expiry and the two length fields: a payload is at least this long.
const FIXED: usize = 1 + 32 + 8 + 4 + 4;

const PUT: u8 = 1;
const INVALIDATE_ALL: u8 = 2;
const INVALIDATE_MODEL: u8 = 3;

pub struct MmapLog {
    path: PathBuf,
    /// Opened for reading (the map) and appending, and locked: one router per file.
    file: File,
    file_bytes: u64,
    live_bytes: u64,
    /// Bytes of live records per model, so an invalidation by model can take them off
    /// `live_bytes` (approximate: a replaced record's bytes stay counted until the next load).
    model_bytes: HashMap<String, u64>,
}

/// One decoded record of the log.
#[derive(Debug, PartialEq)]
enum Entry<'a> {
    Put(RecordRef<'a>),
    InvalidateAll,
    InvalidateModel(&'a str),
}

/// A put record as it lies in the map: compaction copies it without holding a second copy of the
/// log's values in memory.
#[derive(Clone, Copy, Debug, PartialEq)]
struct RecordRef<'a> {
    key: [u8; 32],
    model: &'a str,
    expires_at_ms: u64,
    value: &'a [u8],
}

impl RecordRef<'_> {
    fn to_record(self) -> Record {
        Record {
            key: self.key,
            model: self.model.to_owned(),
            expires_at_ms: self.expires_at_ms,
            value: self.value.to_vec(),
        }
    }

    fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms != 0 && now_ms >= self.expires_at_ms
    }
}

/// What a scan of the log found: the payloads of the whole records, in order, how many damaged
/// stretches it passed over, and where the last whole record ends.
struct Scan<'a> {
    payloads: Vec<&'a [u8]>,
    skipped: usize,
    good_end: usize,
}

impl MmapLog {
    /// Opens the log at `path`, creating it and its directory if missing, and cuts off a torn tail
    /// (a file in which nothing reads as a log is moved aside). Fails if another process holds it.
    pub fn open(path: &Path) -> Result<MmapLog, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = open_append(path, false)?;
        let len = file.metadata()?.len();
        let (whole, good_end, ours) = match map(&file)? {
            None => (0, 0, true),
            Some(m) => {
                let scan = scan(&m);
                (
                    scan.payloads.len(),
                    scan.good_end as u64,
                    m.starts_with(&MAGIC),
                )
            }
        };
        if whole == 0 && !ours {
            // Nothing in it reads as this log: perhaps another file by a wrong path. It is kept
            // aside, never cut or overwritten, and the log starts afresh.
            let aside = with_suffix(path, &format!(".unreadable-{}", store::now_ms()));
            std::fs::rename(path, &aside)?;
            tracing::warn!(
                path = %path.display(),
                moved_to = %aside.display(),
                "cache log: not a cache log, moved aside"
            );
            drop(file);
            file = open_append(path, false)?;
            return Ok(MmapLog::with(path, file, 0));
        }
        if good_end < len {
            tracing::warn!(
                path = %path.display(),
                bytes = len - good_end,
                "cache log: cut the damaged bytes after its last whole record"
            );
            file.set_len(good_end)?;
            file.sync_all()?;
        }
        Ok(MmapLog::with(path, file, good_end))
    }

    fn with(path: &Path, file: File, len: u64) -> MmapLog {
        MmapLog {
            path: path.to_path_buf(),
            file,
            file_bytes: len,
            // Until the first load, every record counts as live.
            live_bytes: len,
            model_bytes: HashMap::new(),
        }
    }

    /// The log file's size.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// About how many of the file's bytes hold live records (as of the last load or compaction,
    /// plus what was appended since): with `file_bytes`, tells when compaction is worth it.
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// The live records and how many damaged stretches were skipped.
    fn read_live(&self, now_ms: u64) -> Result<(Vec<Record>, usize), StoreError> {
        self.with_live(now_ms, |live, skipped| {
            (
                live.into_iter().map(RecordRef::to_record).collect(),
                skipped,
            )
        })
    }

    /// Calls `f` with the live records, in write order, as they lie in a map of the file, and
    /// how many damaged stretches were skipped.
    fn with_live<T>(
        &self,
        now_ms: u64,
        f: impl FnOnce(Vec<RecordRef<'_>>, usize) -> T,
    ) -> Result<T, StoreError> {
        let map = map(&self.file)?;
        let scan = scan(map.as_deref().unwrap_or(&[]));
        let mut skipped = scan.skipped;
        // The latest put of a key wins, at its own place in write order.
        let mut live: HashMap<[u8; 32], (usize, RecordRef<'_>)> = HashMap::new();
        for (seq, payload) in scan.payloads.iter().enumerate() {
            match decode(payload) {
                Some(Entry::Put(r)) => {
                    live.insert(r.key, (seq, r));
                }
                Some(Entry::InvalidateAll) => live.clear(),
                Some(Entry::InvalidateModel(m)) => live.retain(|_, (_, r)| r.model != m),
                // Whole and hashed right, but not a record this version can read.
                None => skipped += 1,
            }
        }
        let mut live: Vec<(usize, RecordRef<'_>)> = live
            .into_values()
            .filter(|(_, r)| !r.is_expired(now_ms))
            .collect();
        live.sort_unstable_by_key(|(seq, _)| *seq);
        Ok(f(live.into_iter().map(|(_, r)| r).collect(), skipped))
    }

    fn append(&mut self, buf: &[u8]) -> Result<(), StoreError> {
        if let Err(e) = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data())
        {
            // A part of the batch (a full disk) would sit in front of the next one: cut it off.
            let _ = self.file.set_len(self.file_bytes);
            return Err(e.into());
        }
        self.file_bytes += buf.len() as u64;
        Ok(())
    }

    /// Recounts `live_bytes` from the records now live (model, value length).
    fn recount<'a>(&mut self, live: impl Iterator<Item = (&'a str, usize)>) {
        self.model_bytes.clear();
        self.live_bytes = 0;
        for (model, value_len) in live {
            self.count(model, value_len);
        }
    }

    fn count(&mut self, model: &str, value_len: usize) {
        let n = encoded_len(model, value_len) as u64;
        self.live_bytes += n;
        match self.model_bytes.get_mut(model) {
            Some(b) => *b += n,
            None => {
                self.model_bytes.insert(model.to_owned(), n);
            }
        }
    }
}

impl Durable for MmapLog {
    fn load(&mut self, now_ms: u64) -> Result<Vec<Record>, StoreError> {
        let (live, skipped) = self.read_live(now_ms)?;
        if skipped > 0 {
            tracing::warn!(
                path = %self.path.display(),
                skipped,
                "cache log: damaged records skipped"
            );
        }
        self.recount(live.iter().map(|r| (r.model.as_str(), r.value.len())));
        Ok(live)
    }

    fn put(&mut self, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        for r in records {
            encode(PUT, &r.key, r.expires_at_ms, &r.model, &r.value, &mut buf)?;
        }
        self.append(&buf)?;
        for r in records {
            self.count(&r.model, r.value.len());
        }
        Ok(())
    }

    fn invalidate(&mut self, model: Option<&str>) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        match model {
            None => encode(INVALIDATE_ALL, &[0; 32], 0, "", &[], &mut buf)?,
            Some(m) => encode(INVALIDATE_MODEL, &[0; 32], 0, m, &[], &mut buf)?,
        }
        self.append(&buf)?;
        match model {
            None => {
                self.model_bytes.clear();
                self.live_bytes = 0;
            }
            Some(m) => {
                let n = self.model_bytes.remove(m).unwrap_or(0);
                self.live_bytes = self.live_bytes.saturating_sub(n);
            }
        }
        Ok(())
    }

    fn compact(&mut self, now_ms: u64, keep: &dyn Fn(&[u8; 32]) -> bool) -> Result<(), StoreError> {
        let tmp = with_suffix(&self.path, ".compact");
        // A leftover of a compaction cut short by a crash: never renamed, so never the log.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let mut file = open_append(&tmp, true)?;
        // The kept records go from the old file's map to the new file a batch at a time: memory
        // holds the index of live records, not their values.
        let (written, skipped, counts) = self.with_live(now_ms, |live, skipped| {
            let mut buf = Vec::with_capacity(1 << 20);
            let mut written = 0u64;
            let mut counts = Vec::new();
            for r in live.into_iter().filter(|r| keep(&r.key)) {
                encode(PUT, &r.key, r.expires_at_ms, r.model, r.value, &mut buf)?;
                counts.push((r.model.to_owned(), r.value.len()));
                if buf.len() >= 1 << 20 {
                    file.write_all(&buf)?;
                    written += buf.len() as u64;
                    buf.clear();
                }
            }
            file.write_all(&buf)?;
            written += buf.len() as u64;
            Ok::<_, StoreError>((written, skipped, counts))
        })??;
        if skipped > 0 {
            tracing::warn!(
                path = %self.path.display(),
                skipped,
                "cache log: compaction dropped damaged records"
            );
        }
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        // The rename itself is durable only once the directory is.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        // The old handle (and its lock) goes with the old file, now unlinked.
        self.file = file;
        self.file_bytes = written;
        self.recount(counts.iter().map(|(m, n)| (m.as_str(), *n)));
        Ok(())
    }
}

/// `path` with `suffix` added to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Opens `path` for reading and appending (`fresh`: a file that must not exist yet), locked.
fn open_append(path: &Path, fresh: bool) -> Result<File, StoreError> {
    let mut opts = OpenOptions::new();
    opts.read(true).append(true);
    if fresh {
        opts.create_new(true);
    } else {
        opts.create(true);
    }
    let file = opts.open(path)?;
    // A second router appending to the same file would interleave records, and one that cut or
    // replaced it would pull the pages from under this one's map.
    file.try_lock().map_err(|e| {
        StoreError(format!(
            "cache log {} is in use by another process: {e}",
            path.display()
        ))
    })?;
    Ok(file)
}

/// Maps the whole file; `None` when it is empty (a zero-length map is not portable).
fn map(file: &File) -> Result<Option<Mmap>, StoreError> {
    if file.metadata()?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: the file is locked against other processes and only this store writes it, through
    // `&mut self`, never while a map is alive; appends only grow it, and the cut at open happens
    // after the map is dropped. Every read of the map is bounds-checked.
    let map = unsafe { Mmap::map(file)? };
    Ok(Some(map))
}

fn checksum(payload: &[u8]) -> [u8; 8] {
    let mut sum = [0; 8];
    sum.copy_from_slice(&blake3::hash(payload).as_bytes()[..8]);
    sum
}

fn encoded_len(model: &str, value_len: usize) -> usize {
    HEADER + FIXED + model.len() + value_len
}

/// Appends one record (header and payload) to `out`.
fn encode(
    kind: u8,
    key: &[u8; 32],
    expires_at_ms: u64,
    model: &str,
    value: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), StoreError> {
    let len = u32::try_from(FIXED + model.len() + value.len())
        .map_err(|_| StoreError("cache record larger than 4 GiB".into()))?;
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.push(kind);
    out.extend_from_slice(key);
    out.extend_from_slice(&expires_at_ms.to_le_bytes());
    // Both fit: their sum with FIXED does.
    out.extend_from_slice(&(model.len() as u32).to_le_bytes());
    out.extend_from_slice(model.as_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
    let sum = checksum(&out[start + HEADER..]);
    out[start + 8..start + HEADER].copy_from_slice(&sum);
    Ok(())
}

/// Frames the log into whole records whose hash matches, passing over damage.
fn scan(buf: &[u8]) -> Scan<'_> {
    let mut payloads = Vec::new();
    let mut skipped = 0;
    let mut good_end = 0;
    let mut pos = 0;
    // Inside a stretch of bytes no header could be read from: counted once, however long.
    let mut lost = false;
    while pos < buf.len() {
        let framed = buf.get(pos..pos + HEADER).filter(|h| h[..4] == MAGIC);
        let Some(header) = framed else {
            skipped += usize::from(!lost);
            lost = true;
            pos = find_magic(buf, pos + 1);
            continue;
        };
        let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        let start = pos + HEADER;
        let Some(payload) = start.checked_add(len).and_then(|end| buf.get(start..end)) else {
            // Torn at the end of the file, or a length that is garbage.
            skipped += usize::from(!lost);
            lost = true;
            pos = find_magic(buf, pos + 1);
            continue;
        };
        let end = start + len;
        lost = false;
        if checksum(payload) != header[8..HEADER] {
            skipped += 1;
            // A damaged payload under a sound length: the next header is right after it.
            let next_is_header = end == buf.len() || buf[end..].starts_with(&MAGIC);
            pos = if next_is_header {
                end
            } else {
                find_magic(buf, pos + 1)
            };
            continue;
        }
        payloads.push(payload);
        good_end = end;
        pos = end;
    }
    Scan {
        payloads,
        skipped,
        good_end,
    }
}

/// The offset of the next magic at or after `from`, or the end of `buf`.
fn find_magic(buf: &[u8], from: usize) -> usize {
    buf.get(from..)
        .and_then(|rest| rest.windows(MAGIC.len()).position(|w| w == MAGIC))
        .map_or(buf.len(), |i| from + i)
}

/// Decodes a payload; `None` if it is not a record this version writes.
fn decode(payload: &[u8]) -> Option<Entry<'_>> {
    let mut c = Cursor(payload);
    let kind = c.take(1)?[0];
    let key: [u8; 32] = c.take(32)?.try_into().ok()?;
    let expires_at_ms = u64::from_le_bytes(c.take(8)?.try_into().ok()?);
    let model_len = c.u32()? as usize;
    let model = std::str::from_utf8(c.take(model_len)?).ok()?;
    let value_len = c.u32()? as usize;
    let value = c.take(value_len)?;
    if !c.0.is_empty() {
        return None;
    }
    match kind {
        PUT => Some(Entry::Put(RecordRef {
            key,
            model,
            expires_at_ms,
            value,
        })),
        INVALIDATE_ALL => Some(Entry::InvalidateAll),
        INVALIDATE_MODEL => Some(Entry::InvalidateModel(model)),
        _ => None,
    }
}

/// The unread rest of a payload.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_dir::{rec, TestDir};
    use proptest::prelude::*;
    use proptest::sample::Index;

    fn reopen_load(path: &Path) -> Vec<Record> {
        MmapLog::open(path).unwrap().load(0).unwrap()
    }

    /// Writes `records`, one batch each, and returns the file's bytes and where each record starts.
    fn written(path: &Path, records: &[Record]) -> (Vec<u8>, Vec<usize>) {
        let mut log = MmapLog::open(path).unwrap();
        let mut starts = Vec::new();
        for r in records {
            starts.push(log.file_bytes() as usize);
            log.put(std::slice::from_ref(r)).unwrap();
        }
        (std::fs::read(path).unwrap(), starts)
    }

    #[test]
    fn put_and_load_round_trip_across_reopen() {
        let dir = TestDir::new("mmap-round-trip");
        let path = dir.join("sub/dir/cache.log");
        let (a, b, c) = (rec(1, "m", 0), rec(2, "n", 0), rec(3, "m", 0));
        let mut log = MmapLog::open(&path).unwrap();
        assert_eq!(log.load(0).unwrap(), vec![]);
        log.put(&[a.clone(), b.clone()]).unwrap();
        log.put(std::slice::from_ref(&c)).unwrap();
        assert_eq!(log.load(0).unwrap(), vec![a.clone(), b.clone(), c.clone()]);
        drop(log);
        assert_eq!(reopen_load(&path), vec![a, b, c]);
    }

    #[test]
    fn the_latest_put_of_a_key_wins_at_its_own_place() {
        let dir = TestDir::new("mmap-latest");
        let path = dir.join("cache.log");
        let a1 = rec(1, "m", 0);
        let b = rec(2, "m", 0);
        let a2 = Record {
            value: b"newer".to_vec(),
            ..rec(1, "m", 0)
        };
        MmapLog::open(&path)
            .unwrap()
            .put(&[a1, b.clone(), a2.clone()])
            .unwrap();
        assert_eq!(reopen_load(&path), vec![b, a2]);
    }

    #[test]
    fn invalidations_survive_reopen() {
        let dir = TestDir::new("mmap-invalidate");
        let path = dir.join("cache.log");
        let mut log = MmapLog::open(&path).unwrap();
        log.put(&[rec(1, "a", 0), rec(2, "b", 0), rec(3, "a", 0)])
            .unwrap();
        log.invalidate(Some("a")).unwrap();
        log.put(&[rec(4, "a", 0)]).unwrap();
        drop(log);
        assert_eq!(reopen_load(&path), vec![rec(2, "b", 0), rec(4, "a", 0)]);

        let mut log = MmapLog::open(&path).unwrap();
        log.invalidate(None).unwrap();
        assert_eq!(log.live_bytes(), 0);
        log.put(&[rec(5, "b", 0)]).unwrap();
        drop(log);
        assert_eq!(reopen_load(&path), vec![rec(5, "b", 0)]);
    }

    #[test]
    fn expired_records_are_not_loaded() {
        let dir = TestDir::new("mmap-expired");
        let path = dir.join("cache.log");
        let (a, b, c) = (rec(1, "m", 100), rec(2, "m", 0), rec(3, "m", 200));
        MmapLog::open(&path)
            .unwrap()
            .put(&[a.clone(), b.clone(), c.clone()])
            .unwrap();
        let mut log = MmapLog::open(&path).unwrap();
        assert_eq!(log.load(99).unwrap(), vec![a, b.clone(), c.clone()]);
        assert_eq!(log.load(100).unwrap(), vec![b.clone(), c]);
        assert_eq!(log.load(200).unwrap(), vec![b]);
    }

    #[test]
    fn compaction_drops_expired_and_unkept_records_and_shrinks_the_file() {
        let dir = TestDir::new("mmap-compact");
        let path = dir.join("cache.log");
        let mut log = MmapLog::open(&path).unwrap();
        let records: Vec<Record> = (0..20).map(|n| rec(n, "m", 0)).collect();
        log.put(&records).unwrap();
        // Replaced, expired, invalidated: all dead weight in the file.
        log.put(&[rec(0, "m", 0), rec(1, "m", 50), rec(2, "gone", 0)])
            .unwrap();
        log.invalidate(Some("gone")).unwrap();
        let before = log.file_bytes();
        assert_eq!(before, std::fs::metadata(&path).unwrap().len());

        log.compact(60, &|k| k[0] % 2 == 0).unwrap();
        let mut want: Vec<Record> = (4..20).step_by(2).map(|n| rec(n, "m", 0)).collect();
        want.push(rec(0, "m", 0));
        let after = log.file_bytes();
        assert_eq!(after, std::fs::metadata(&path).unwrap().len());
        assert!(after < before / 2, "{after} of {before}");
        assert_eq!(after, log.live_bytes());
        assert!(!with_suffix(&path, ".compact").exists());

        log.put(&[rec(30, "m", 0)]).unwrap();
        assert_eq!(log.load(60).unwrap().last(), Some(&rec(30, "m", 0)));
        drop(log);
        want.push(rec(30, "m", 0));
        assert_eq!(reopen_load(&path), want);
    }

    #[test]
    fn a_torn_last_record_is_cut_and_later_appends_load() {
        let dir = TestDir::new("mmap-torn");
        let (a, b, c, d) = (
            rec(1, "m", 0),
            rec(2, "m", 0),
            rec(3, "m", 0),
            rec(4, "m", 0),
        );
        let (bytes, starts) = written(&dir.join("whole.log"), &[a.clone(), b.clone(), c]);
        let last = starts[2];
        for cut in last + 1..bytes.len() {
            assert_eq!(scan(&bytes[..cut]).skipped, 1, "cut at {cut}");
            let path = dir.join(&format!("cut-{cut}.log"));
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let mut log = MmapLog::open(&path).unwrap();
            assert_eq!(log.file_bytes(), last as u64, "cut at {cut}");
            assert_eq!(
                log.load(0).unwrap(),
                vec![a.clone(), b.clone()],
                "cut at {cut}"
            );
            log.put(std::slice::from_ref(&d)).unwrap();
            drop(log);
            let want = vec![a.clone(), b.clone(), d.clone()];
            assert_eq!(reopen_load(&path), want, "cut at {cut}");
        }
    }

    #[test]
    fn a_flipped_byte_skips_only_its_record() {
        let dir = TestDir::new("mmap-flip");
        let (a, b, c) = (rec(1, "m", 0), rec(2, "m", 0), rec(3, "m", 0));
        let (bytes, starts) = written(&dir.join("whole.log"), &[a.clone(), b, c.clone()]);
        // Every byte of the middle record: magic, length, checksum, payload.
        for at in starts[1]..starts[2] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x5a;
            let path = dir.join(&format!("flip-{at}.log"));
            std::fs::write(&path, &damaged).unwrap();
            let log = MmapLog::open(&path).unwrap();
            assert_eq!(log.file_bytes(), bytes.len() as u64, "flip at {at}");
            let (live, skipped) = log.read_live(0).unwrap();
            assert_eq!(live, vec![a.clone(), c.clone()], "flip at {at}");
            assert_eq!(skipped, 1, "flip at {at}");
        }
    }

    #[test]
    fn a_model_that_is_not_utf8_makes_its_record_bad() {
        let dir = TestDir::new("mmap-utf8");
        let path = dir.join("cache.log");
        let mut bytes = Vec::new();
        encode(PUT, &[1; 32], 0, "m", b"one", &mut bytes).unwrap();
        let bad = bytes.len();
        encode(PUT, &[2; 32], 0, "\u{e9}", b"two", &mut bytes).unwrap();
        encode(PUT, &[3; 32], 0, "m", b"three", &mut bytes).unwrap();
        // Cut the two-byte `é` in half, then make the checksum right again.
        let payload = bad + HEADER;
        bytes[payload + 1 + 32 + 8 + 4 + 1] = b'x';
        let sum = checksum(&bytes[payload..payload + FIXED + 2 + 3]);
        bytes[bad + 8..bad + HEADER].copy_from_slice(&sum);
        std::fs::write(&path, &bytes).unwrap();
        let (live, skipped) = MmapLog::open(&path).unwrap().read_live(0).unwrap();
        let keys: Vec<u8> = live.iter().map(|r| r.key[0]).collect();
        assert_eq!((keys, skipped), (vec![1, 3], 1));
    }

    #[test]
    fn garbage_between_records_is_passed_over() {
        let dir = TestDir::new("mmap-garbage");
        let (a, b, c) = (rec(1, "m", 0), rec(2, "m", 0), rec(3, "m", 0));
        let (bytes, starts) = written(&dir.join("whole.log"), &[a.clone(), b.clone(), c.clone()]);
        let junk = b"#### not a record header, 37 bytes ##";

        // Before the first record, and between the first two.
        for at in [0, starts[1]] {
            let mut damaged = bytes.clone();
            damaged.splice(at..at, junk.iter().copied());
            let path = dir.join(&format!("junk-{at}.log"));
            std::fs::write(&path, &damaged).unwrap();
            let (live, skipped) = MmapLog::open(&path).unwrap().read_live(0).unwrap();
            assert_eq!(live, vec![a.clone(), b.clone(), c.clone()], "junk at {at}");
            assert_eq!(skipped, 1, "junk at {at}");
        }

        // The middle record's header overwritten; then its length pointing past the end.
        let mut damaged = bytes.clone();
        damaged[starts[1]..starts[1] + HEADER].copy_from_slice(&junk[..HEADER]);
        let mut far = bytes.clone();
        far[starts[1] + 4..starts[1] + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        for (name, damaged) in [("header", damaged), ("length", far)] {
            let path = dir.join(&format!("{name}.log"));
            std::fs::write(&path, &damaged).unwrap();
            let (live, skipped) = MmapLog::open(&path).unwrap().read_live(0).unwrap();
            assert_eq!(live, vec![a.clone(), c.clone()], "{name}");
            assert_eq!(skipped, 1, "{name}");
        }
    }

    #[test]
    fn an_empty_file_loads_empty() {
        let dir = TestDir::new("mmap-empty");
        let path = dir.join("cache.log");
        std::fs::write(&path, b"").unwrap();
        let mut log = MmapLog::open(&path).unwrap();
        assert_eq!(log.load(0).unwrap(), vec![]);
        assert_eq!(log.file_bytes(), 0);
    }

    #[test]
    fn a_file_of_random_bytes_loads_empty_and_is_moved_aside() {
        let dir = TestDir::new("mmap-random");
        let path = dir.join("cache.log");
        let mut rng = fastrand::Rng::with_seed(7);
        let random: Vec<u8> = (0..4096).map(|_| rng.u8(..)).collect();
        std::fs::write(&path, &random).unwrap();

        let mut log = MmapLog::open(&path).unwrap();
        assert_eq!(log.load(0).unwrap(), vec![]);
        log.put(&[rec(1, "m", 0)]).unwrap();
        drop(log);
        assert_eq!(reopen_load(&path), vec![rec(1, "m", 0)]);

        let aside: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("cache.log.unreadable-"))
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read(&aside[0]).unwrap(), random, "kept as it was");
    }

    #[test]
    fn a_second_open_of_the_same_file_fails() {
        let dir = TestDir::new("mmap-lock");
        let path = dir.join("cache.log");
        let first = MmapLog::open(&path).unwrap();
        assert!(MmapLog::open(&path).is_err());
        drop(first);
        assert!(MmapLog::open(&path).is_ok());
    }

    /// Arbitrary bytes, half of them behind the magic so the scan reads them as a header.
    fn log_bytes() -> impl Strategy<Value = Vec<u8>> {
        let raw = prop::collection::vec(any::<u8>(), 0..1024);
        (raw, any::<bool>()).prop_map(|(mut bytes, magic)| {
            if magic {
                bytes.splice(0..0, MAGIC);
            }
            bytes
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in log_bytes()) {
            let dir = TestDir::new("mmap-prop-bytes");
            let path = dir.join("cache.log");
            std::fs::write(&path, &bytes).unwrap();
            let mut log = MmapLog::open(&path).unwrap();
            let _ = log.load(0).unwrap();
            for payload in scan(&bytes).payloads {
                let _ = decode(payload);
            }
        }

        /// Damage loses records but never invents or reorders one, and appends made after it load.
        #[test]
        fn damage_only_loses_records(
            count in 1u8..8,
            flips in prop::collection::vec((any::<Index>(), 1u8..=255), 0..4),
            cut in prop::option::of(any::<Index>()),
        ) {
            let dir = TestDir::new("mmap-prop-damage");
            let path = dir.join("cache.log");
            let records: Vec<Record> = (0..count).map(|n| rec(n, "m", 0)).collect();
            let (mut bytes, _) = written(&path, &records);
            for (at, x) in flips {
                let at = at.index(bytes.len());
                bytes[at] ^= x;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len()));
            }
            std::fs::write(&path, &bytes).unwrap();
            let mut log = MmapLog::open(&path).unwrap();
            let live = log.load(0).unwrap();
            let mut rest = records.iter();
            for r in &live {
                prop_assert!(rest.any(|w| w == r), "{:?} invented or out of order", r.key[0]);
            }
            let new = rec(200, "m", 0);
            log.put(std::slice::from_ref(&new)).unwrap();
            drop(log);
            let mut want = live;
            want.push(new);
            prop_assert_eq!(reopen_load(&path), want);
        }
    }
}
