//! Temporary data directories: removed when their guard drops, the test passed or failed,
//! unless `SLUICE_KEEP_TEST_DIRS=1` keeps them for a look afterwards. A failing test prints
//! where its directory is.

use std::ffi::OsStr;
use std::ops::Deref;
use std::path::Path;

use tempfile::TempDir;

/// Set to `1` to keep every test directory after the test.
pub const KEEP_ENV: &str = "SLUICE_KEEP_TEST_DIRS";

/// A fresh directory named `sluice-TAG-…`, removed on drop (see [`KEEP_ENV`]).
pub struct TestDir {
    dir: TempDir,
    kept: bool,
}

/// A fresh directory named `sluice-TAG-…` under the system temp dir.
pub fn temp_dir(tag: &str) -> TestDir {
    TestDir::new_in(&std::env::temp_dir(), tag)
}

impl TestDir {
    /// A fresh directory named `sluice-TAG-…` inside `parent` (created if missing).
    pub fn new_in(parent: &Path, tag: &str) -> Self {
        let kept = std::env::var(KEEP_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
        let dir = tempfile::Builder::new()
            .prefix(&format!("sluice-{tag}-"))
            .disable_cleanup(kept)
            .tempdir_in(parent)
            .unwrap_or_else(|e| panic!("creating a test dir in {}: {e}", parent.display()));
        Self { dir, kept }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Deref for TestDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl AsRef<OsStr> for TestDir {
    fn as_ref(&self) -> &OsStr {
        self.path().as_os_str()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let fate = if self.kept {
                "kept"
            } else {
                "removed; set SLUICE_KEEP_TEST_DIRS=1 to keep it"
            };
            eprintln!("test data dir: {} ({fate})", self.path().display());
        }
    }
}
