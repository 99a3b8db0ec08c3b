//! The data directory's lock files: per integration, one that a run holds and one that a token
//! refresh holds, so that processes sharing the data directory (`serve` beside a CLI command)
//! never run one integration twice or refresh one token twice.
//!
//! They are OS file locks, which the OS releases when the holder dies (SIGKILL included), so a
//! crash never leaves an integration locked. The files stay between uses; deleting an
//! integration removes its files.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// What a lock file guards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// A pull run of the integration.
    Run,
    /// A refresh of the integration's token.
    Token,
}

impl LockKind {
    const ALL: [LockKind; 2] = [LockKind::Run, LockKind::Token];

    fn suffix(self) -> &'static str {
        match self {
            LockKind::Run => "lock",
            LockKind::Token => "token.lock",
        }
    }
}

/// `<data dir>/locks`.
#[derive(Debug, Clone)]
pub struct LockDir {
    dir: PathBuf,
}

impl LockDir {
    /// The lock directory of a data directory.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("locks"),
        }
    }

    /// Opens (creating when needed, private to the user) the lock file of `integration`;
    /// locking it is the caller's choice (blocking or not).
    pub fn open(&self, integration: &str, kind: LockKind) -> io::Result<File> {
        let path = self.path(integration, kind)?;
        crate::private_fs::create_private_dir(&self.dir)?;
        crate::private_fs::open_private_file(&path)
    }

    /// Removes the lock files of a deleted integration.
    pub fn forget(&self, integration: &str) {
        for kind in LockKind::ALL {
            if let Ok(path) = self.path(integration, kind) {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// The file of `integration`'s `kind` lock; ids become file names, so only plain ones.
    fn path(&self, integration: &str, kind: LockKind) -> io::Result<PathBuf> {
        let plain = !integration.is_empty()
            && integration
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !plain {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{integration:?} is not an integration id"),
            ));
        }
        Ok(self.dir.join(format!("{integration}.{}", kind.suffix())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgetting_an_integration_removes_both_files() {
        let data = tempfile::tempdir().unwrap();
        let locks = LockDir::new(data.path());
        for kind in LockKind::ALL {
            locks.open("int_a", kind).unwrap().try_lock().unwrap();
        }
        locks.open("int_b", LockKind::Run).unwrap();
        locks.forget("int_a");
        let mut left: Vec<String> = std::fs::read_dir(data.path().join("locks"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["int_b.lock"]);
    }

    #[test]
    fn only_plain_ids_name_files() {
        let data = tempfile::tempdir().unwrap();
        let locks = LockDir::new(data.path());
        for bad in ["", "../x", "a/b", "a.b"] {
            let err = locks.open(bad, LockKind::Token).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad}");
        }
    }
}
