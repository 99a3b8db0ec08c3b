//! The compile cache: precompiled components (`.cwasm`) on disk.
//!
//! Threat: `Component::deserialize_file` maps the file as trusted machine code; a corrupt,
//! truncated, foreign or planted file would run unchecked inside the host process. Rule: the
//! host loads only artifacts it wrote itself. Each artifact is keyed by the sha256 of the wasm
//! and the engine's compatibility hash (so a wasmtime upgrade or a config change never reuses
//! an old file), and carries a sidecar `.mac`: a keyed BLAKE3 hash (BLAKE3's MAC mode), under a
//! key derived from a random key the host generated and keeps in the cache directory (mode
//! 0600, directory 0700), over the file's name and bytes. The file is read once, the MAC is
//! checked on those bytes, and exactly those bytes are deserialized (never the file again, which
//! could have been replaced in between); a missing or wrong MAC, or bytes wasmtime refuses, are
//! rebuilt from the wasm and never trusted. Residual risk: whoever can write the host's private cache directory can
//! also read its key; that is the host user.
//!
//! The MAC is computed over the whole artifact (~2 MB) at every load: keyed BLAKE3 does that
//! in ~0.3 ms where HMAC-SHA256 took ~1.05 ms, most of a cached load. Sidecars written by the
//! earlier HMAC-SHA256 scheme no longer verify; their artifacts are rebuilt once.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use super::hex;

const KEY_FILE: &str = "cache.key";
/// BLAKE3 key-derivation context of the MAC key (the key file holds the root key).
const MAC_CONTEXT: &str = "sluice 2026-11 compile-cache artifact MAC v2";

/// How a component was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded from a verified artifact.
    Hit,
    /// Compiled; no artifact existed.
    Miss,
    /// An artifact existed but failed verification; it was rebuilt. The reason says why.
    Rebuilt(String),
    /// Compiled, but the artifact could not be written (the reason says why).
    Uncached(String),
}

/// Why the cache could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("compile cache at {dir}: {source}")]
pub struct CacheError {
    /// The cache directory.
    pub dir: PathBuf,
    /// The I/O failure.
    #[source]
    pub source: std::io::Error,
}

/// A directory of host-written `.cwasm` artifacts.
pub struct CompileCache {
    dir: PathBuf,
    /// The MAC key, derived from the key file's.
    key: [u8; 32],
}

impl std::fmt::Debug for CompileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl CompileCache {
    /// Opens (creating if needed) the cache in `dir`, and its MAC key.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, CacheError> {
        let dir = dir.into();
        let err = |source| CacheError {
            dir: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(err)?;
        restrict(&dir, 0o700).map_err(err)?;
        let key_path = dir.join(KEY_FILE);
        let key = match std::fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                key
            }
            _ => {
                let key = random_key().map_err(err)?;
                write_atomic(&key_path, &key, 0o600).map_err(err)?;
                key
            }
        };
        Ok(Self {
            dir,
            key: blake3::derive_key(MAC_CONTEXT, &key),
        })
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The artifact path for `wasm` under `engine`.
    pub fn artifact_path(&self, engine: &Engine, wasm: &[u8]) -> PathBuf {
        self.artifact_path_of(engine, &hex(&Sha256::digest(wasm)))
    }

    /// The artifact path for the wasm whose sha256 (hex) is `wasm_sha`.
    fn artifact_path_of(&self, engine: &Engine, wasm_sha: &str) -> PathBuf {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = hex(&hasher.0.finalize());
        self.dir.join(format!("{wasm_sha}-{}.cwasm", &compat[..16]))
    }

    /// The component for `wasm`: from a verified artifact, or compiled (and cached).
    /// Compilation errors (an invalid component) are returned as is.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        self.load_or_compile_sha(engine, wasm, &hex(&Sha256::digest(wasm)))
    }

    /// [`CompileCache::load_or_compile`] for a caller that already has the sha256 (hex) of
    /// `wasm` (hashing 770 KB again costs ~0.4 ms).
    #[allow(unsafe_code)] // Loading a compiled artifact; each site says why it is sound.
    pub(crate) fn load_or_compile_sha(
        &self,
        engine: &Engine,
        wasm: &[u8],
        wasm_sha: &str,
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.artifact_path_of(engine, wasm_sha);
        let mac_path = mac_path(&path);
        let mut stale = None;
        if path.exists() {
            match self.read_verified(&path, &mac_path) {
                Ok(bytes) => {
                    // SAFETY: these bytes carry a valid MAC under the host's own key, so the host
                    // wrote them with `precompile_component`; the file's name binds them to this
                    // engine's compatibility hash (wasmtime re-checks that, too).
                    match unsafe { Component::deserialize(engine, &bytes) } {
                        Ok(component) => return Ok((component, CacheOutcome::Hit)),
                        Err(e) => stale = Some(format!("wasmtime refused the artifact: {e}")),
                    }
                }
                Err(reason) => stale = Some(reason),
            }
            tracing::warn!(artifact = %path.display(), reason = stale.as_deref().unwrap_or(""), "rebuilding compile-cache artifact");
            let _ = std::fs::remove_file(&mac_path);
            let _ = std::fs::remove_file(&path);
        }
        let bytes = engine.precompile_component(wasm)?;
        // SAFETY: `bytes` were produced just now by this engine's `precompile_component`.
        let component = unsafe { Component::deserialize(engine, &bytes)? };
        let outcome = match self.store(&path, &mac_path, &bytes) {
            Ok(()) => match stale {
                Some(reason) => CacheOutcome::Rebuilt(reason),
                None => CacheOutcome::Miss,
            },
            Err(e) => {
                tracing::warn!(artifact = %path.display(), error = %e, "could not write compile-cache artifact");
                CacheOutcome::Uncached(e.to_string())
            }
        };
        Ok((component, outcome))
    }

    /// The artifact's bytes, read once, if their MAC verifies.
    fn read_verified(&self, path: &Path, mac_path: &Path) -> Result<Vec<u8>, String> {
        let expected = std::fs::read_to_string(mac_path)
            .map_err(|e| format!("no MAC sidecar ({e}): not written by this host"))?;
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| format!("unreadable: {e}"))?;
        let actual = hex(&self.mac(path, &bytes));
        if !constant_time_eq(actual.as_bytes(), expected.trim().as_bytes()) {
            return Err("MAC mismatch: corrupt, or not written by this host".into());
        }
        Ok(bytes)
    }

    fn store(&self, path: &Path, mac_path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        write_atomic(path, bytes, 0o600)?;
        write_atomic(mac_path, hex(&self.mac(path, bytes)).as_bytes(), 0o600)
    }

    /// Keyed BLAKE3 over the file name (length-prefixed) and the bytes.
    fn mac(&self, path: &Path, bytes: &[u8]) -> [u8; 32] {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut mac = blake3::Hasher::new_keyed(&self.key);
        mac.update(&(name.len() as u64).to_le_bytes());
        mac.update(name.as_bytes());
        mac.update(bytes);
        mac.finalize().into()
    }
}

fn mac_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".mac");
    PathBuf::from(p)
}

/// Feeds `Hash` input into sha256, so the compatibility key is stable across processes.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_key() -> std::io::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
    Ok(key)
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place.
fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}-{seq}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    {
        let mut file = std::fs::File::create(&tmp)?;
        restrict(&tmp, mode)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}
