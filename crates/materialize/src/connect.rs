//! Connecting to the destination.
//!
//! Threat: the destination URL carries a password, and the rows carry the tenant's data. A
//! connection that quietly falls back to plaintext across a network exposes both.
//! Rule: this materializer speaks PostgreSQL without TLS, so it connects only where that
//! cannot cross a network unasked: a Unix socket or a loopback address, or any host when the
//! URL says `sslmode=disable` explicitly. `sslmode=require` (or stronger) is refused rather
//! than downgraded. The URL is never logged or printed.

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config, NoTls};

use crate::MaterializeError;

/// Parses `url` and checks it against the TLS rule above.
pub fn destination_config(url: &str) -> Result<Config, MaterializeError> {
    // The parser's message may quote the URL, password included: say only what to fix.
    let config: Config = url.parse().map_err(|_| {
        MaterializeError::BadUrl(
            "not a PostgreSQL connection URL (postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE)"
                .into(),
        )
    })?;
    if config.get_dbname().is_none() {
        return Err(MaterializeError::BadUrl(
            "name the database: postgres://USER@HOST/DATABASE".into(),
        ));
    }
    match config.get_ssl_mode() {
        SslMode::Disable => {}
        SslMode::Prefer if config.get_hosts().iter().all(is_local) => {}
        SslMode::Prefer => {
            return Err(MaterializeError::BadUrl(
                "TLS to PostgreSQL is not supported yet and the host is not loopback; add \
                 sslmode=disable to accept an unencrypted connection, or reach the server \
                 through a loopback tunnel"
                    .into(),
            ));
        }
        _ => {
            return Err(MaterializeError::BadUrl(
                "sslmode asks for TLS, which this materializer does not support yet; use \
                 sslmode=disable over loopback or a tunnel"
                    .into(),
            ));
        }
    }
    Ok(config)
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
pub async fn connect(config: &Config) -> Result<Client, MaterializeError> {
    let (client, connection) = config.connect(NoTls).await?;
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

    #[test]
    fn loopback_and_explicit_plaintext_are_accepted() {
        for url in [
            "postgres://u@127.0.0.1:5432/db",
            "postgres://u@localhost/db",
            "postgres://u@[::1]:5432/db",
            "postgres://u@db.example.com/db?sslmode=disable",
            "host=/run/postgresql dbname=db user=u",
        ] {
            destination_config(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn tls_or_a_silent_plaintext_downgrade_is_refused() {
        for (url, why) in [
            ("postgres://u@db.example.com/db", "not loopback"),
            (
                "postgres://u@127.0.0.1/db?sslmode=require",
                "does not support",
            ),
            ("postgres://u@127.0.0.1", "name the database"),
            ("mysql://u:secret@h/db", "not a PostgreSQL"),
        ] {
            let err = destination_config(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
            assert!(
                !err.contains("secret"),
                "the password is never echoed: {err}"
            );
        }
    }
}
