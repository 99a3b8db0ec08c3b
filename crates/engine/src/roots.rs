//! Root certificates the operator trusts besides the public web PKI.
//!
//! Threat: a CA the operator did not mean to trust (a stray file, a test CA) would let whoever
//! holds its key impersonate any provider to every connector and to the token client.
//! Rule: extra roots come only from the operator (a PEM file named on the command line or set in
//! the engine's configuration), are parsed as trust anchors up front, and a file that holds
//! anything else fails the start, naming the file. They add to the web PKI roots; they never
//! widen where a request may go, which stays [`super::policy`]'s decision.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Extra trusted roots (DER certificates), cheap to clone.
#[derive(Clone, Default)]
pub struct ExtraRoots(Arc<[CertificateDer<'static>]>);

/// Why a CA file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RootsError {
    /// The file could not be read.
    #[error("cannot read CA file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a PEM bundle of certificates.
    #[error("CA file {} is not a PEM certificate bundle: {reason}", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl ExtraRoots {
    /// Every `CERTIFICATE` section of the PEM file at `path`: at least one, each a usable trust
    /// anchor.
    pub fn from_pem_file(path: &Path) -> Result<Self, RootsError> {
        let pem = std::fs::read(path).map_err(|source| RootsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_pem(&pem).map_err(|reason| RootsError::NotPem {
            path: path.to_path_buf(),
            reason,
        })
    }

    /// Every `CERTIFICATE` section of `pem`: at least one, each a usable trust anchor.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let certs = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        if certs.is_empty() {
            return Err("it holds no CERTIFICATE section".into());
        }
        let mut store = rustls::RootCertStore::empty();
        for (n, cert) in certs.iter().enumerate() {
            store
                .add(cert.clone())
                .map_err(|e| format!("certificate {} is not a usable root: {e}", n + 1))?;
        }
        Ok(Self(certs.into()))
    }

    /// These roots and `other`'s.
    pub fn with(&self, other: &ExtraRoots) -> Self {
        Self(self.0.iter().chain(other.0.iter()).cloned().collect())
    }

    /// The certificates, DER.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.0
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The web PKI roots plus these, for a TLS client.
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut store = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        // Each was checked in `from_pem`.
        let (_added, _ignored) = store.add_parsable_certificates(self.0.iter().cloned());
        store
    }
}

impl std::fmt::Debug for ExtraRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExtraRoots({} certificates)", self.0.len())
    }
}
