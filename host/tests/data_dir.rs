//! A new data directory opened by many at once: every open succeeds, the schema is created
//! once, and all of them use one key.
//! Run: `cargo test --release -p sluice --test data_dir`.

use std::sync::{Arc, Barrier};

use sluice::secrets::KEY_FILE;
use sluice::store::{DB_FILE, Store, migrations::MIGRATIONS};
use sluice_test_support::temp_dir;

#[test]
#[allow(unsafe_code)] // Clearing the environment; see the SAFETY comment.
fn concurrent_first_opens_all_succeed_and_share_one_key() {
    // The key must come from the data directory, as for a first start without it set.
    // SAFETY: this test binary runs this one test; no other thread reads the environment yet.
    unsafe { std::env::remove_var("SLUICE_SECRET_KEY") };
    const OPENS: usize = 60;
    for round in 0..3 {
        // A data directory that does not exist yet: the opens race to create it.
        let parent = temp_dir(&format!("first-open-{round}"));
        let dir = parent.join("data");
        let start = Arc::new(Barrier::new(OPENS));
        let opens: Vec<_> = (0..OPENS)
            .map(|_| {
                let (dir, start) = (dir.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    Store::open_dir(&dir)
                })
            })
            .collect();
        let stores: Vec<Store> = opens
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("round {round}: a first open failed: {e}"));
        let sealed = stores[0].cipher().seal("test/one-key", b"secret");
        for store in &stores {
            assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
            assert_eq!(
                store.cipher().open("test/one-key", &sealed).unwrap(),
                b"secret",
                "round {round}: two keys were made"
            );
        }
        // The published key is the one in use, and nothing else was left behind.
        let reopened = Store::open_dir(&dir).unwrap();
        assert_eq!(
            reopened.cipher().open("test/one-key", &sealed).unwrap(),
            b"secret"
        );
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with(DB_FILE))
            .collect();
        names.sort();
        assert_eq!(names, [KEY_FILE], "round {round}");
        drop((stores, reopened));
    }
}
