//! Connecting to the destination.
//!
//! Threat: the destination URL carries a password, and the rows carry the tenant's data. A
//! connection that quietly falls back to plaintext across a network exposes both, and an
//! unauthenticated one hands them to whoever poses as the server.
//! Rule: the URL's `sslmode` decides as it does for the store
//! (`sluice_runtime::store::pg::tls`: `disable`, `prefer`, `require`, `verify-full` with the
//! web PKI and `--ca-file` roots), with one difference: `prefer`, libpq's default, may fall
//! back to plaintext, so it is accepted only where plaintext cannot cross a network (a Unix
//! socket or a loopback address). Elsewhere the URL must say what it wants: `verify-full`,
//! `require`, or `disable` to accept plaintext explicitly. The URL is never logged or printed.

use sluice_runtime::engine::roots::ExtraRoots;
use sluice_runtime::store::StoreError;
use sluice_runtime::store::pg::tls::{TlsMode, connector, split_sslmode};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::MaterializeError;

/// Where to connect and how the connection is protected.
pub struct Destination {
    config: Config,
    mode: TlsMode,
    tls: MakeRustlsConnect,
}

impl Destination {
    /// How the connection is protected: the URL's `sslmode`.
    pub fn tls_mode(&self) -> TlsMode {
        self.mode
    }
}

/// Parses `url` and checks it against the rule above; `roots` are trusted for `verify-full`
/// besides the web PKI.
pub fn destination(url: &str, roots: &ExtraRoots) -> Result<Destination, MaterializeError> {
    // The parsers' messages may quote the URL, password included: say only what to fix.
    const FORM: &str =
        "not a PostgreSQL connection URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)";
    let (rest, mode) = split_sslmode(url).map_err(|e| match e {
        StoreError::UnsupportedSslMode(why) => MaterializeError::BadUrl(why),
        _ => MaterializeError::BadUrl(FORM.into()),
    })?;
    let mut config: Config = rest
        .parse()
        .map_err(|_| MaterializeError::BadUrl(FORM.into()))?;
    if config.get_dbname().is_none() {
        return Err(MaterializeError::BadUrl(
            "name the database: postgres://USER@HOST/DATABASE".into(),
        ));
    }
    if mode == TlsMode::Prefer && !config.get_hosts().iter().all(is_local) {
        return Err(MaterializeError::BadUrl(
            "the host is not loopback, and without sslmode the connection may fall back to \
             plaintext: add sslmode=verify-full (TLS, the server's certificate checked; \
             --ca-file adds a private CA), sslmode=require (TLS, unchecked) or sslmode=disable \
             (plaintext)"
                .into(),
        ));
    }
    config.ssl_mode(mode.negotiation());
    Ok(Destination {
        config,
        mode,
        tls: connector(mode, roots),
    })
}

fn is_local(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(name) => {
            name == "localhost"
                || name
                    .trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

/// Connects, driving the connection on a task of its own.
pub async fn connect(destination: &Destination) -> Result<Client, MaterializeError> {
    let (client, connection) = destination.config.connect(destination.tls.clone()).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "the PostgreSQL connection ended");
        }
    });
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(url: &str) -> Result<Destination, MaterializeError> {
        destination(url, &ExtraRoots::default())
    }

    #[test]
    fn loopback_explicit_plaintext_and_tls_are_accepted() {
        for (url, mode) in [
            ("postgres://u@127.0.0.1:5432/db", TlsMode::Prefer),
            ("postgres://u@localhost/db", TlsMode::Prefer),
            ("postgres://u@[::1]:5432/db", TlsMode::Prefer),
            (
                "postgres://u@db.example.com/db?sslmode=disable",
                TlsMode::Disable,
            ),
            (
                "postgres://u@db.example.com/db?sslmode=require",
                TlsMode::Require,
            ),
            (
                "postgres://u:p@db.example.com/db?sslmode=verify-full",
                TlsMode::VerifyFull,
            ),
            ("host=/run/postgresql dbname=db user=u", TlsMode::Prefer),
        ] {
            let d = checked(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(d.tls_mode(), mode, "{url}");
        }
    }

    #[test]
    fn a_possible_plaintext_fallback_across_a_network_is_refused() {
        for (url, why) in [
            (
                "postgres://u:secret@db.example.com/db",
                "sslmode=verify-full",
            ),
            (
                "postgres://u:secret@db.example.com/db?sslmode=prefer",
                "not loopback",
            ),
            (
                "postgres://u:secret@127.0.0.1/db?sslmode=verify-ca",
                "verify-full",
            ),
            ("postgres://u:secret@127.0.0.1", "name the database"),
            ("mysql://u:secret@h/db", "not a PostgreSQL"),
        ] {
            let err = match checked(url) {
                Ok(_) => panic!("{url} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(err.contains(why), "{url}: {err}");
            assert!(
                !err.contains("secret"),
                "the password is never echoed: {err}"
            );
        }
    }
}
