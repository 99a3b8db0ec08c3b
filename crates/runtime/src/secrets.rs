//! Secrets at rest: one AEAD key per data directory, and a string type that never prints.
//!
//! Threat: the database file is copied (backup, support bundle, stolen disk) or a log line or
//! error message is shared. Rule: tokens, client secrets and PKCE verifiers are stored only as
//! ChaCha20-Poly1305 ciphertext, bound (associated data) to their row and purpose so that a
//! ciphertext moved to another row does not decrypt; the key lives outside the database (a
//! file created with mode 0600, or `SLUICE_SECRET_KEY`); and [`Secret`]'s `Debug`/`Display`
//! show nothing.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

/// The environment variable that may carry the key (base64 of 32 bytes).
pub const KEY_ENV: &str = "SLUICE_SECRET_KEY";
/// The key file's name inside the data directory.
pub const KEY_FILE: &str = "secret.key";

const NONCE_LEN: usize = 12;
/// Version byte in front of every ciphertext, so the format can change later.
const FORMAT_V1: u8 = 1;

/// A secret string (token, client secret, verifier). `Debug` and `Display` are redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why secrets could not be set up or opened. Messages never contain secret material.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The key in the environment is malformed.
    #[error("{KEY_ENV} must be the base64 of 32 bytes")]
    BadEnvKey,
    /// The key file is malformed.
    #[error("key file {0} is not 32 bytes of base64; restore it from a backup")]
    BadKeyFile(PathBuf),
    /// The key file could not be read or created.
    #[error("key file {path}: {detail}")]
    KeyFileIo {
        /// The file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// A ciphertext did not decrypt: wrong key, or the row was tampered with.
    #[error("a stored secret ({0}) does not decrypt with this key (wrong key or tampered data)")]
    Decrypt(String),
}

/// The data directory's AEAD key.
#[derive(Clone)]
pub struct Cipher {
    aead: ChaCha20Poly1305,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cipher(<key redacted>)")
    }
}

impl Cipher {
    /// A cipher over raw key bytes.
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            aead: ChaCha20Poly1305::new(Key::from_slice(key)),
        }
    }

    /// The key from `SLUICE_SECRET_KEY` when set, else from `<data_dir>/secret.key`, which is
    /// created (mode 0600, never overwritten) when absent.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SecretError> {
        if let Ok(value) = std::env::var(KEY_ENV) {
            let key = decode_key(value.trim()).ok_or(SecretError::BadEnvKey)?;
            return Ok(Self::from_key(&key));
        }
        let path = data_dir.join(KEY_FILE);
        let io = |e: std::io::Error| SecretError::KeyFileIo {
            path: path.clone(),
            detail: e.to_string(),
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = decode_key(text.trim()).ok_or(SecretError::BadKeyFile(path.clone()))?;
                Ok(Self::from_key(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = ChaCha20Poly1305::generate_key(&mut OsRng);
                match publish_key_file(&path, B64.encode(key).as_bytes()) {
                    Ok(()) => Ok(Self::from_key(&key.into())),
                    // Another process published its key first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(data_dir)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypts `plain`, bound to `context` (e.g. `token/access/<integration>`).
    pub fn seal(&self, context: &str, plain: &[u8]) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: context.as_bytes(),
                },
            )
            // ChaCha20-Poly1305 fails only for messages of 256 GiB and more.
            .expect("AEAD encryption of a small secret cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Decrypts what [`Cipher::seal`] produced for the same `context`.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretError> {
        let fail = || SecretError::Decrypt(context_kind(context));
        if sealed.len() < 1 + NONCE_LEN || sealed[0] != FORMAT_V1 {
            return Err(fail());
        }
        let nonce = Nonce::from_slice(&sealed[1..1 + NONCE_LEN]);
        self.aead
            .decrypt(
                nonce,
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| fail())
    }

    /// [`Cipher::seal`] for a [`Secret`].
    pub fn seal_secret(&self, context: &str, secret: &Secret) -> Vec<u8> {
        self.seal(context, secret.expose().as_bytes())
    }

    /// [`Cipher::open`] into a [`Secret`].
    pub fn open_secret(&self, context: &str, sealed: &[u8]) -> Result<Secret, SecretError> {
        let plain = self.open(context, sealed)?;
        String::from_utf8(plain)
            .map(Secret)
            .map_err(|_| SecretError::Decrypt(context_kind(context)))
    }
}

/// The purpose part of a context, for error messages (no ids needed there).
/// Writes `contents` to a private temporary file and links it to `path`, which appears whole
/// or not at all: a concurrent reader never sees a partial key, and an existing key (a
/// concurrent winner's) is never replaced (`AlreadyExists`).
fn publish_key_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let temp = path.with_file_name(format!(".{name}.{}.tmp", random_token(6)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    linked
}

fn context_kind(context: &str) -> String {
    context
        .rsplit_once('/')
        .map_or(context, |(k, _)| k)
        .to_string()
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    B64.decode(text).ok()?.try_into().ok()
}

/// A random identifier of `bytes` random bytes, URL-safe base64 without padding.
pub fn random_token(bytes: usize) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use chacha20poly1305::aead::rand_core::RngCore;
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_context_binding() {
        let c = Cipher::from_key(&[7u8; 32]);
        let sealed = c.seal("token/access/i1", b"hello");
        assert_eq!(c.open("token/access/i1", &sealed).unwrap(), b"hello");
        assert!(c.open("token/access/i2", &sealed).is_err());
        let other = Cipher::from_key(&[8u8; 32]);
        assert!(other.open("token/access/i1", &sealed).is_err());
    }

    #[test]
    fn debug_redacts() {
        let s = Secret::new("super-secret-value");
        assert!(!format!("{s:?} {s}").contains("super-secret"));
        let c = Cipher::from_key(&[1u8; 32]);
        assert_eq!(format!("{c:?}"), "Cipher(<key redacted>)");
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_with_mode_0600_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        // SAFETY-free: the env var is only read; tests that set it live elsewhere.
        if std::env::var(KEY_ENV).is_ok() {
            return;
        }
        let temp = tempfile::Builder::new()
            .prefix("sluice-key-")
            .tempdir()
            .unwrap();
        let dir = temp.path();
        let a = Cipher::load_or_create(dir).unwrap();
        let mode = std::fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Cipher::load_or_create(dir).unwrap();
        let sealed = a.seal("x/y", b"v");
        assert_eq!(b.open("x/y", &sealed).unwrap(), b"v");
    }
}
