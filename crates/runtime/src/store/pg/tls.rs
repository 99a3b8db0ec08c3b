//! TLS between a host and a PostgreSQL database: its own store, or a destination it
//! materializes into (`sluice-materialize`).
//!
//! Threat: someone on the network path between a host and a shared database reads what
//! crosses it (secrets are sealed before they are stored, but records, run history and the
//! database password are not), or poses as the database to collect them.
//!
//! Rule: the URL's `sslmode`, read as libpq reads it, decides, so that a URL works the same
//! in `psql` and here:
//! - `disable`: plaintext;
//! - `prefer` (the default, as libpq's): TLS when the server offers it, else plaintext; the
//!   server is not authenticated;
//! - `require`: TLS or no connection; the server is not authenticated (libpq's meaning);
//! - `verify-full`: TLS, the server's certificate chain checked against the web PKI roots and
//!   the operator's `--ca-file` roots, and its name against the URL's host.
//!
//! Unauthenticated TLS stops only passive eavesdroppers: reach a database across a network
//! with `verify-full`. `verify-ca` (a chain without the name) and `allow` are refused, naming
//! `verify-full`, rather than approximated.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::engine::roots::ExtraRoots;
use crate::store::StoreError;

/// How a connection is protected: the URL's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext.
    Disable,
    /// TLS when the server offers it, unauthenticated; plaintext otherwise.
    Prefer,
    /// TLS, unauthenticated.
    Require,
    /// TLS with the server's chain and name verified.
    VerifyFull,
}

impl TlsMode {
    fn parse(value: &str) -> Result<Self, StoreError> {
        match value {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-full" => Ok(Self::VerifyFull),
            other => Err(StoreError::UnsupportedSslMode(format!(
                "sslmode={other} is not supported; use disable, prefer, require or verify-full \
                 (verify-full checks the server's certificate and name)"
            ))),
        }
    }

    /// What tokio-postgres negotiates: whether TLS is tried and whether it is required.
    pub fn negotiation(self) -> SslMode {
        match self {
            Self::Disable => SslMode::Disable,
            Self::Prefer => SslMode::Prefer,
            Self::Require | Self::VerifyFull => SslMode::Require,
        }
    }
}

/// Takes `sslmode` out of `url` (tokio-postgres knows only some of libpq's values) and
/// returns the rest of the URL with the mode; `prefer` when the URL names none.
pub fn split_sslmode(url: &str) -> Result<(String, TlsMode), StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let mut parsed = url::Url::parse(url).map_err(|e| {
            StoreError::BadDatabaseUrl(format!("{e}; expected postgres://user@host:port/db"))
        })?;
        let pairs: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        let mode = pairs.iter().rev().find(|(k, _)| k == "sslmode");
        let mode = mode.map_or(Ok(TlsMode::Prefer), |(_, v)| TlsMode::parse(v))?;
        let rest: Vec<&(String, String)> = pairs.iter().filter(|(k, _)| k != "sslmode").collect();
        if rest.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(rest);
        }
        return Ok((parsed.into(), mode));
    }
    // The key=value form: `host=… dbname=… sslmode=…`.
    let mut mode = TlsMode::Prefer;
    let mut rest = Vec::new();
    for word in url.split_whitespace() {
        match word.strip_prefix("sslmode=") {
            Some(value) => mode = TlsMode::parse(value)?,
            None => rest.push(word),
        }
    }
    Ok((rest.join(" "), mode))
}

/// The TLS connector for `mode`: verifying against the web PKI roots and `roots` for
/// `verify-full`, accepting any certificate (its signatures still checked) otherwise.
pub fn connector(mode: TlsMode, roots: &ExtraRoots) -> MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions");
    let config = match mode {
        TlsMode::VerifyFull | TlsMode::Disable => builder
            .with_root_certificates(roots.root_store())
            .with_no_client_auth(),
        TlsMode::Prefer | TlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unauthenticated(provider)))
            .with_no_client_auth(),
    };
    MakeRustlsConnect::new(config)
}

/// libpq's `prefer` and `require`: any server certificate is accepted, so the connection is
/// encrypted but the server is not authenticated. The handshake's signatures are still
/// verified, so the session keys belong to whoever holds the certificate's key.
#[derive(Debug)]
struct Unauthenticated(Arc<CryptoProvider>);

impl ServerCertVerifier for Unauthenticated {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_taken_out_of_both_url_forms() {
        let (rest, mode) =
            split_sslmode("postgres://u:p%40ss@db.example:5433/app?sslmode=verify-full").unwrap();
        assert_eq!(rest, "postgres://u:p%40ss@db.example:5433/app");
        assert_eq!(mode, TlsMode::VerifyFull);
        let (rest, mode) =
            split_sslmode("postgres://u@h/app?application_name=x&sslmode=require").unwrap();
        assert_eq!(rest, "postgres://u@h/app?application_name=x");
        assert_eq!(mode, TlsMode::Require);
        assert_eq!(
            split_sslmode("postgres://u@h/app").unwrap().1,
            TlsMode::Prefer
        );
        let (rest, mode) = split_sslmode("host=h dbname=app sslmode=disable").unwrap();
        assert_eq!(
            (rest.as_str(), mode),
            ("host=h dbname=app", TlsMode::Disable)
        );
    }

    #[test]
    fn verify_ca_is_refused_naming_verify_full() {
        let err = split_sslmode("postgres://u@h/app?sslmode=verify-ca").unwrap_err();
        let said = err.to_string();
        assert!(
            said.contains("sslmode=verify-ca") && said.contains("verify-full"),
            "{said}"
        );
    }
}
