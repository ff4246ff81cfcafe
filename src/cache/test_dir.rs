//! A directory of its own under the system's temp dir for one test of a file store, removed when
//! the test ends.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct TestDir(PathBuf);

impl TestDir {
    /// A fresh, empty directory; `name` shows which test left it if removal fails.
    pub fn new(name: &str) -> TestDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("nomyo-store-{name}-{}-{n}", std::process::id()));
        // A leftover of an earlier run with the same process id.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test dir");
        TestDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A record numbered `n` for `model`, for the stores' tests.
pub fn rec(n: u8, model: &str, expires_at_ms: u64) -> crate::cache::store::Record {
    crate::cache::store::Record {
        key: [n; 32],
        model: model.into(),
        expires_at_ms,
        value: format!("value {n}").into_bytes(),
    }
}
