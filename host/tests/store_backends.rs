//! The store's promises, each checked on SQLite and on PostgreSQL with one test body
//! (`each_backend!`): opening and migrating. The table groups' own promises are in
//! `store_*.rs` beside this file.

use sluice::secrets::Cipher;
use sluice::store::{Store, migrations};
use sluice_test_support::PgCluster;
use sluice_test_support::each_backend;
use sluice_test_support::stores::Backend;

each_backend! {
    fn a_new_database_is_migrated_to_the_latest_schema(store) {
        let latest = match store.backend {
            Backend::Sqlite => migrations::MIGRATIONS.len(),
            Backend::Postgres => sluice::store::pg::MIGRATIONS.len(),
        };
        assert_eq!(store.schema_version().unwrap(), latest as i64);
    }

    fn reopening_a_database_keeps_its_schema(store) {
        let again = store.reopen();
        assert_eq!(again.schema_version().unwrap(), store.schema_version().unwrap());
    }
}

#[test]
fn hosts_opening_one_new_postgres_database_at_once_migrate_it_once() {
    let db = PgCluster::shared().create_database();
    let opened: Vec<Store> = std::thread::scope(|s| {
        let opening: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    Store::open_postgres(&db.url, Cipher::from_key(&[3u8; 32]), &Default::default())
                })
            })
            .collect();
        opening
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    for store in &opened {
        assert_eq!(
            store.schema_version().unwrap(),
            sluice::store::pg::MIGRATIONS.len() as i64
        );
    }
}

#[test]
fn a_bad_postgres_url_is_refused_naming_the_expected_form() {
    let err = Store::open_postgres(
        "postgres://[::1",
        Cipher::from_key(&[3u8; 32]),
        &Default::default(),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("postgres://user@host:port/db"),
        "{err}"
    );
}
