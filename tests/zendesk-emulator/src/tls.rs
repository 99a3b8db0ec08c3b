//! HTTPS for the emulator: a throw-away certificate authority made at start, and a server
//! certificate it signs for the loopback names.
//!
//! Zendesk is only reachable over TLS, so a client measured against plain http skips the
//! handshake it pays on every new connection. The emulator mints its own CA rather than
//! shipping a key: nothing outside the process that started it can trust it, and the caller
//! hands the CA's PEM ([`ServerTls::ca_pem`]) to its client as the only extra trusted root.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// Why the TLS material could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("generating the emulator's TLS certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("configuring the emulator's TLS server: {0}")]
    Config(#[from] rustls::Error),
}

/// The TLS side of a running emulator.
#[derive(Clone)]
pub struct ServerTls {
    /// PEM of the CA that signed the server certificate: the root a client must trust.
    pub ca_pem: String,
    /// Accepts TLS on an accepted TCP stream.
    pub acceptor: TlsAcceptor,
}

/// Makes a CA and a server certificate for `127.0.0.1`, `localhost` and `listen_ip` (when it
/// names one address), and a TLS 1.2/1.3 server configuration offering HTTP/1.1.
pub fn server(listen_ip: IpAddr) -> Result<ServerTls, TlsError> {
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // A name of its own, so roots of several emulators can sit in one trust store.
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("zendesk-emulator throw-away CA {nonce:x}"),
    );
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate()?;
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_string()])?;
    let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
    if !listen_ip.is_unspecified() && !ips.contains(&listen_ip) {
        ips.push(listen_ip);
    }
    leaf_params
        .subject_alt_names
        .extend(ips.into_iter().map(SanType::IpAddress));
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf_params.is_ca = IsCa::ExplicitNoCa;
    leaf_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    // OpenSSL's strict verification (Python 3.13's default) wants the issuer's key named.
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf_cert = leaf_params.signed_by(&leaf_key, &issuer)?;

    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    // An explicit provider: the process may link several, and then rustls has no default.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServerTls {
        ca_pem: ca_cert.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    })
}
