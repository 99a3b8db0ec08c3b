//! TLS to a shared database (`store/pg/tls.rs`), against a cluster serving a certificate for
//! `localhost` signed by a throwaway CA: `verify-full` connects only when the CA is trusted
//! (`--ca-file`) and the URL names the certificate's host; `require` encrypts without
//! verifying; `disable` stays plaintext. Whether a connection is encrypted is read from the
//! server's own `pg_stat_ssl`.

mod support;

use std::sync::OnceLock;

use sluice::engine::roots::ExtraRoots;
use sluice::secrets::Cipher;
use sluice::store::{Store, StoreError};
use support::PgCluster;
use support::binary::sluice_command;
use support::dirs::temp_dir;

/// The TLS cluster of this test process and its CA's PEM.
fn tls_cluster() -> &'static (PgCluster, String) {
    static CLUSTER: OnceLock<(PgCluster, String)> = OnceLock::new();
    CLUSTER.get_or_init(PgCluster::start_tls)
}

fn url(host: &str, database: &str, sslmode: &str) -> String {
    let port = tls_cluster().0.port();
    format!("postgres://postgres@{host}:{port}/{database}?sslmode={sslmode}")
}

fn trusted_ca() -> ExtraRoots {
    ExtraRoots::from_pem(tls_cluster().1.as_bytes()).unwrap()
}

fn open(url: &str, roots: &ExtraRoots) -> Result<Store, StoreError> {
    Store::open_postgres(url, Cipher::from_key(&[5u8; 32]), roots)
}

/// Why opening `url` trusting `roots` is refused; a store that opens fails the test.
fn refused(url: &str, roots: &ExtraRoots) -> String {
    match open(url, roots) {
        Ok(_) => panic!("{url} opened: it must be refused"),
        Err(e) => e.to_string(),
    }
}

/// The open connections to `database`, encrypted and not, as the server counts them.
fn connections(database: &str) -> (usize, usize) {
    let counted = tls_cluster().0.psql(
        "postgres",
        &format!(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
             FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = '{database}'"
        ),
    );
    let (tls, plain) = counted.trim().split_once('|').unwrap();
    (tls.parse().unwrap(), plain.parse().unwrap())
}

#[test]
fn verify_full_connects_over_tls_when_the_ca_is_trusted() {
    let db = tls_cluster().0.create_database();
    let store = open(&url("localhost", &db.name, "verify-full"), &trusted_ca()).unwrap();
    store.integrations().unwrap();
    let (tls, plain) = connections(&db.name);
    assert!(tls > 0 && plain == 0, "{tls} encrypted, {plain} plaintext");
}

#[test]
fn verify_full_refuses_a_server_whose_ca_is_not_trusted() {
    let db = tls_cluster().0.create_database();
    let said = refused(
        &url("localhost", &db.name, "verify-full"),
        &ExtraRoots::default(),
    );
    assert!(said.contains("certificate"), "{said}");
}

#[test]
fn verify_full_refuses_a_certificate_for_another_name() {
    let db = tls_cluster().0.create_database();
    // The certificate names `localhost`, not the address.
    let said = refused(&url("127.0.0.1", &db.name, "verify-full"), &trusted_ca());
    assert!(said.contains("certificate"), "{said}");
}

#[test]
fn require_encrypts_without_verifying_and_disable_stays_plaintext() {
    let db = tls_cluster().0.create_database();
    let encrypted = open(
        &url("127.0.0.1", &db.name, "require"),
        &ExtraRoots::default(),
    )
    .unwrap();
    encrypted.integrations().unwrap();
    assert_eq!(
        connections(&db.name).1,
        0,
        "require: no plaintext connection"
    );
    drop(encrypted);

    let other = tls_cluster().0.create_database();
    let plain = open(&url("127.0.0.1", &other.name, "disable"), &trusted_ca()).unwrap();
    plain.integrations().unwrap();
    let (tls, plaintext) = connections(&other.name);
    assert!(
        tls == 0 && plaintext > 0,
        "{tls} encrypted, {plaintext} plaintext"
    );
}

#[test]
fn the_cli_trusts_the_database_ca_it_is_given() {
    let db = tls_cluster().0.create_database();
    let dir = temp_dir("pg-tls-cli");
    let ca = dir.join("db-ca.pem");
    std::fs::write(&ca, &tls_cluster().1).unwrap();
    let database = url("localhost", &db.name, "verify-full");
    let refused = sluice_command(&dir)
        .args(["--database", &database, "integration", "list"])
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "an untrusted database is refused"
    );
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("certificate"), "{said}");

    let trusted = sluice_command(&dir)
        .args(["--database", &database, "--ca-file"])
        .arg(&ca)
        .args(["integration", "list"])
        .output()
        .unwrap();
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
}
