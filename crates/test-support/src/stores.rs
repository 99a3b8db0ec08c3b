//! A new, empty store on each backend, so one test body checks that SQLite and PostgreSQL
//! keep the same promises ([`each_backend!`](crate::each_backend)).

use sluice::secrets::Cipher;
use sluice::store::{DB_FILE, Store};

use crate::dirs::{TestDir, temp_dir};
use crate::postgres::{PgCluster, PgDatabase};

/// Which database a test store uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the test process's PostgreSQL cluster.
    Postgres,
}

/// A new store and what it lives in, removed when dropped.
pub struct TestStore {
    /// The store.
    pub store: Store,
    /// Its backend.
    pub backend: Backend,
    /// The run leases its runs hold, per integration (PostgreSQL).
    leases: std::sync::Mutex<std::collections::HashMap<String, sluice::store::Lease>>,
    // Declared after the store: the store closes before its database goes.
    _home: Home,
}

enum Home {
    Dir(TestDir),
    Database(PgDatabase),
}

impl TestStore {
    /// A new store on `backend`; `tag` names its directory or nothing.
    pub fn new(backend: Backend, tag: &str) -> Self {
        let cipher = Cipher::from_key(&[3u8; 32]);
        let (store, home) = match backend {
            Backend::Sqlite => {
                let dir = temp_dir(&format!("store-{tag}"));
                let store = Store::open(&dir.join(DB_FILE), cipher).expect("a SQLite store");
                (store, Home::Dir(dir))
            }
            Backend::Postgres => {
                let db = PgCluster::shared().create_database();
                let store = Store::open_postgres(&db.url, cipher, &Default::default())
                    .expect("a PostgreSQL store");
                (store, Home::Database(db))
            }
        };
        Self {
            store,
            backend,
            leases: Default::default(),
            _home: home,
        }
    }

    /// Starts a run of integration `id` that may commit pages: on PostgreSQL it starts it
    /// under the integration's lease, claimed once, as a host's runner does.
    pub fn start_run_as_runner(&self, id: &str, trigger: &str, version: &str) -> String {
        if self.backend == Backend::Sqlite {
            return self
                .store
                .start_run(id, trigger, false, version)
                .expect("the run starts");
        }
        let mut leases = self.leases.lock().unwrap();
        let lease = leases.entry(id.to_string()).or_insert_with(|| {
            self.store
                .claim_lease(id, "test-host", std::time::Duration::from_secs(600))
                .expect("the lease is claimed")
                .expect("the integration's lease is free")
        });
        self.store
            .start_leased_run(lease, trigger, false, version)
            .expect("the run starts under its lease")
    }

    /// Another handle on the same database, as a second host (or a restarted one) opens it.
    pub fn reopen(&self) -> Store {
        let cipher = Cipher::from_key(&[3u8; 32]);
        match &self._home {
            Home::Dir(dir) => Store::open(&dir.join(DB_FILE), cipher).expect("reopened"),
            Home::Database(db) => {
                Store::open_postgres(&db.url, cipher, &Default::default()).expect("reopened")
            }
        }
    }
}

impl TestStore {
    /// The PostgreSQL database's name, for [`PgCluster::psql`]; `None` on SQLite.
    pub fn database_name(&self) -> Option<&str> {
        match &self._home {
            Home::Dir(_) => None,
            Home::Database(db) => Some(&db.name),
        }
    }
}

impl std::ops::Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

/// Defines a test module per body with one test per backend, `NAME::sqlite` and
/// `NAME::postgres`, each given a new [`TestStore`]:
///
/// ```ignore
/// each_backend! {
///     fn a_token_survives_a_reopen(store) { ... }
/// }
/// ```
#[macro_export]
macro_rules! each_backend {
    ($(fn $name:ident($store:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[test]
                fn sqlite() {
                    let $store = $crate::stores::TestStore::new(
                        $crate::stores::Backend::Sqlite,
                        stringify!($name),
                    );
                    $body
                }

                #[test]
                fn postgres() {
                    let $store = $crate::stores::TestStore::new(
                        $crate::stores::Backend::Postgres,
                        stringify!($name),
                    );
                    $body
                }
            }
        )*
    };
}
