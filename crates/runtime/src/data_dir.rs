//! The data directory's layout, in one place.
//!
//! | Path | What | Owner |
//! |---|---|---|
//! | `sluice.db` | integrations, sealed tokens, records, checkpoints, runs, versions | [`crate::store`] |
//! | `secret.key` | the key that seals tokens and client secrets | [`crate::secrets`] |
//! | `admin.token` | the admin API's bearer token | the `sluice` binary |
//! | `cache/` | compiled components | the engine's compile cache |
//! | `locks/` | one lock file per integration and kind | [`crate::locks`] |
//! | `connectors/` | `.wasm` files that `serve` installs when they appear | [`connectors_dir`] |

use std::io;
use std::path::{Path, PathBuf};

/// The compile cache's directory.
pub fn cache_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("cache")
}

/// The directory `serve` watches for connector files. A data directory made before the
/// component was called a connector everywhere has it as `plugins/`: it is renamed on first use,
/// so files dropped there keep being installed.
pub fn connectors_dir(data_dir: &Path) -> io::Result<PathBuf> {
    let dir = data_dir.join("connectors");
    let legacy = data_dir.join("plugins");
    if !dir.exists() && legacy.is_dir() {
        std::fs::rename(&legacy, &dir)?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_legacy_plugins_directory_becomes_the_connectors_directory() {
        let data = tempfile::tempdir().unwrap();
        std::fs::create_dir(data.path().join("plugins")).unwrap();
        std::fs::write(data.path().join("plugins/x.wasm"), b"\0asm").unwrap();
        let dir = connectors_dir(data.path()).unwrap();
        assert_eq!(dir, data.path().join("connectors"));
        assert!(dir.join("x.wasm").is_file());
        assert!(!data.path().join("plugins").exists());
    }
}
