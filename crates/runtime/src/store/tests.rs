use super::*;
use crate::engine::wit::types::{Operation, Row};

/// A fresh directory, removed when the returned guard drops.
fn temp_dir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("sluice-store-{tag}-"))
        .tempdir()
        .unwrap()
}

fn store(tag: &str) -> (Store, tempfile::TempDir) {
    let dir = temp_dir(tag);
    let store = Store::open(&dir.path().join(DB_FILE), Cipher::from_key(&[3u8; 32])).unwrap();
    (store, dir)
}

fn settings() -> IntegrationSettings {
    IntegrationSettings::new(
        "helpdesk",
        [
            ("environment", "production"),
            ("pull-by", "updated"),
            ("domain", "https://acme.my.salesforce.com"),
        ],
    )
}

fn add(store: &Store, name: &str, secret: Option<&str>) -> Integration {
    store
        .insert_integration(&NewIntegration {
            name: name.into(),
            connector: "salesforce".into(),
            settings: settings(),
            interval_s: 900,
            client_id: Some("client-id".into()),
            client_secret: secret.map(Secret::new),
        })
        .unwrap()
}

fn row(key: &str, op: Operation, json: &str) -> Row {
    Row {
        key: key.into(),
        op,
        cursor: "2024-01-01T00:00:00.000Z".into(),
        json: json.as_bytes().to_vec(),
    }
}

#[test]
fn migrations_are_versioned_and_idempotent() {
    let (store, dir) = store("migrate");
    assert_eq!(
        store.schema_version().unwrap(),
        migrations::MIGRATIONS.len() as i64
    );
    let mode: String = store
        .sqlite_conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    drop(store);
    let again = Store::open(&dir.path().join(DB_FILE), Cipher::from_key(&[3u8; 32])).unwrap();
    assert_eq!(
        again.schema_version().unwrap(),
        migrations::MIGRATIONS.len() as i64
    );
}

#[test]
fn a_new_database_gets_the_large_page_size_and_an_old_one_keeps_its_own() {
    let page_size = |conn: &Connection| -> i64 {
        conn.query_row("PRAGMA page_size", [], |r| r.get(0))
            .unwrap()
    };
    let (store, _dir) = store("pagesize");
    assert_eq!(page_size(&store.sqlite_conn()), i64::from(DB_PAGE_SIZE));
    drop(store);

    // A database created before the page size was set (4 KiB, already WAL) opens, migrates
    // and works as it is.
    let dir = temp_dir("pagesize-old");
    let path = dir.path().join(DB_FILE);
    {
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "page_size", 4096).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE old_marker (x INTEGER)")
            .unwrap();
    }
    let old = Store::open(&path, Cipher::from_key(&[3u8; 32])).unwrap();
    assert_eq!(page_size(&old.sqlite_conn()), 4096);
    assert_eq!(
        old.schema_version().unwrap(),
        migrations::MIGRATIONS.len() as i64
    );
    let integration = add(&old, "old", None);
    let run = old.start_run(&integration.id, "cli", false, "t").unwrap();
    old.commit_page(
        &integration.id,
        "Case",
        &run,
        &[row("a", Operation::Upsert, "{}")],
        Some("cp"),
        CheckpointState::Complete,
        1,
    )
    .unwrap();
    assert_eq!(
        old.checkpoint(&integration.id, "Case").unwrap().as_deref(),
        Some("cp")
    );
}

#[test]
fn reads_do_not_wait_for_a_page_commit_in_progress() {
    let (store, _dir) = store("concurrent");
    let i = add(&store, "a", None);
    let run = store.start_run(&i.id, "cli", false, "t").unwrap();
    store
        .commit_page(
            &i.id,
            "Case",
            &run,
            &[],
            Some("cp1"),
            CheckpointState::Partial,
            1,
        )
        .unwrap();
    // A page commit half done: its connection is taken and holds SQLite's write lock.
    let mut pages = store.sqlite_pages();
    let tx = pages
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    tx.execute(
        "UPDATE checkpoints SET checkpoint = 'cp2' WHERE integration_id = ?1",
        [&i.id],
    )
    .unwrap();
    // Meanwhile the other connection reads the last committed state without waiting.
    let started = std::time::Instant::now();
    assert_eq!(
        store.checkpoint(&i.id, "Case").unwrap().as_deref(),
        Some("cp1")
    );
    assert_eq!(store.integration(&i.id).unwrap().name, "a");
    assert!(started.elapsed() < Duration::from_secs(1));
    tx.commit().unwrap();
    drop(pages);
    assert_eq!(
        store.checkpoint(&i.id, "Case").unwrap().as_deref(),
        Some("cp2")
    );
}

#[test]
fn integrations_list_newest_first_and_delete_cascades() {
    let (store, _dir) = store("crud");
    let a = add(&store, "a", None);
    let b = add(&store, "b", Some("s3cr3t"));
    let ids: Vec<_> = store
        .integrations()
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(ids, [b.id.clone(), a.id.clone()]);
    assert_eq!(b.state, IntegrationState::PendingAuthorization);
    assert!(b.has_client_secret && !a.has_client_secret);
    assert_eq!(
        store.client_secret(&b.id).unwrap().unwrap().expose(),
        "s3cr3t"
    );
    let run = store
        .start_run(&b.id, "cli", false, "salesforce@x")
        .unwrap();
    store
        .commit_page(
            &b.id,
            "Case",
            &run,
            &[row("1", Operation::Upsert, "{}")],
            Some("c1"),
            CheckpointState::Partial,
            1,
        )
        .unwrap();
    store.delete_integration(&b.id).unwrap();
    assert!(matches!(
        store.integration(&b.id),
        Err(StoreError::UnknownIntegration(_))
    ));
    let left: i64 = store
        .sqlite_conn()
        .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    assert!(matches!(
        store.delete_integration("int_nope"),
        Err(StoreError::UnknownIntegration(_))
    ));
}

#[test]
fn a_failed_page_commit_leaves_neither_rows_nor_checkpoint() {
    let (store, _dir) = store("atomic");
    let i = add(&store, "a", None);
    let run = store
        .start_run(&i.id, "cli", false, "salesforce@x")
        .unwrap();
    store
        .commit_page(
            &i.id,
            "Case",
            &run,
            &[row("A", Operation::Upsert, "{}")],
            Some("cp1"),
            CheckpointState::Partial,
            1,
        )
        .unwrap();
    // Make the checkpoint write fail after the rows were written inside the transaction (a
    // schema trigger: page commits run on a connection of their own, which a TEMP trigger of
    // this one would not reach).
    store
        .sqlite_conn()
        .execute_batch(
            "CREATE TRIGGER fail_cp BEFORE UPDATE ON checkpoints
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
        )
        .unwrap();
    let page = [
        row("A", Operation::Upsert, r#"{"v":2}"#),
        row("B", Operation::Upsert, "{}"),
    ];
    let err = store
        .commit_page(
            &i.id,
            "Case",
            &run,
            &page,
            Some("cp2"),
            CheckpointState::Partial,
            1,
        )
        .unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    let mut keys = Vec::new();
    store
        .for_each_record(&i.id, None, true, |r| {
            keys.push((r.key, r.version));
            Ok(())
        })
        .unwrap();
    assert_eq!(keys, [("A".to_string(), 1)]);
    assert_eq!(
        store.checkpoint(&i.id, "Case").unwrap().as_deref(),
        Some("cp1")
    );
    assert_eq!(store.runs(&i.id, 1).unwrap()[0].records, 1);
}

#[test]
fn the_database_file_never_holds_a_secret_in_clear() {
    let (store, dir) = store("clear");
    let client_secret = "CLIENT-SECRET-7f3a9b2c41d8e6";
    let access = "00Dx0000000BV7z!ACCESS-TOKEN-9c8b7a6d5e4f";
    let refresh = "5Aep861REFRESH-TOKEN-1a2b3c4d5e6f";
    let verifier = "PKCE-VERIFIER-0a1b2c3d4e5f6a7b8c9d";
    let i = add(&store, "a", Some(client_secret));
    let tokens = TokenSet {
        flow: GrantFlow::AuthorizationCode,
        access: Secret::new(access),
        refresh: Some(Secret::new(refresh)),
        token_url: "https://login.salesforce.com/services/oauth2/token".into(),
        revoke_url: None,
        instance_url: Some("https://acme.my.salesforce.com".into()),
        provider_fields: [("issued_at".to_string(), "1".to_string())].into(),
        scopes: vec!["api".into(), "refresh_token".into()],
        obtained_at_ms: now_ms(),
        generation: 0,
    };
    store.put_grant(&i.id, &tokens).unwrap();
    store
        .put_oauth_state(
            "state-1",
            &i.id,
            &Secret::new(verifier),
            "http://127.0.0.1:1/cb",
            "https://login.salesforce.com/services/oauth2/token",
        )
        .unwrap();
    let read = store.tokens(&i.id).unwrap().unwrap();
    assert_eq!(read.access.expose(), access);
    assert_eq!(read.refresh.unwrap().expose(), refresh);
    assert_eq!(
        store.integration(&i.id).unwrap().state,
        IntegrationState::Active
    );
    // Look at the WAL too, then fold it into the main file and look again.
    let mut bytes = Vec::new();
    for name in [DB_FILE, "sluice.db-wal"] {
        if let Ok(b) = std::fs::read(dir.path().join(name)) {
            bytes.extend(b);
        }
    }
    store
        .sqlite_conn()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    bytes.extend(std::fs::read(dir.path().join(DB_FILE)).unwrap());
    for secret in [client_secret, access, refresh, verifier] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "found a secret in clear in the database files"
        );
    }
    // And a sealed value moved to another integration's row does not open.
    let j = add(&store, "b", None);
    store
        .sqlite_conn()
        .execute(
            "UPDATE integrations SET client_secret = (SELECT client_secret FROM integrations
             WHERE id = ?1) WHERE id = ?2",
            [&i.id, &j.id],
        )
        .unwrap();
    assert!(matches!(
        store.client_secret(&j.id),
        Err(StoreError::Secret(_))
    ));
}

#[test]
fn an_unwritable_data_dir_is_a_clear_error() {
    let dir = temp_dir("ro");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open_dir(&file.join("data")).unwrap_err();
    assert!(matches!(err, StoreError::DataDir { .. }), "{err}");
}

/// A database file migrated to schema `version` only, holding `rows` (SQL), as an older host
/// left it; with the directory that holds it.
fn database_at_schema(version: usize, rows: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = temp_dir(&format!("schema-{version}"));
    let path = dir.path().join(DB_FILE);
    let conn = Connection::open(&path).unwrap();
    for sql in &migrations::MIGRATIONS[..version] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", version as i64)
        .unwrap();
    conn.execute_batch(rows).unwrap();
    (dir, path)
}

#[test]
fn a_schema_3_database_keeps_its_connector_names_and_grant_fields() {
    let (dir, path) = database_at_schema(
        3,
        "INSERT INTO integrations VALUES ('int_1', 1, 'old', 'salesforce',
             '{\"capability\":\"crm\",\"environment\":\"production\"}', 900, NULL,
             NULL, 'active', NULL, 0, 0);
         INSERT INTO tokens VALUES ('int_1', 'authorization-code', x'00', NULL, 'https://t',
             'https://acme.my.salesforce.com',
             'https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SvMvAAK',
             1700000000000, 'api', 0, 1, 'ok', 0);
         INSERT INTO plugin_versions VALUES ('salesforce', 1, 'abc', '0.1.0', 0, 0, x'00',
             NULL);",
    );
    let store = Store::open(&path, Cipher::from_key(&[3u8; 32])).unwrap();
    assert_eq!(store.integration("int_1").unwrap().connector, "salesforce");
    let fields: String = store
        .sqlite_conn()
        .query_row(
            "SELECT provider_fields FROM tokens WHERE integration_id = 'int_1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let fields: crate::oauth::ProviderFields = serde_json::from_str(&fields).unwrap();
    assert_eq!(fields["instance_url"], "https://acme.my.salesforce.com");
    assert_eq!(
        fields["id"],
        "https://login.salesforce.com/id/00Dxx0000001gPLEAY/005xx000001SvMvAAK"
    );
    assert_eq!(fields["issued_at"], "1700000000000");
    let versions: i64 = store
        .sqlite_conn()
        .query_row("SELECT COUNT(*) FROM connector_versions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions, 1);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_schema_5_database_keeps_every_setting_under_its_declared_name() {
    let (dir, path) = database_at_schema(
        5,
        r#"INSERT INTO integrations VALUES ('int_1', 1, 'full', 'salesforce',
             '{"capability":"helpdesk","environment":"sandbox","pull_by":"created",
               "domain":"https://acme.my.salesforce.com",
               "extra":[["objects","Case,CaseComment"],["start-date","2024-01-01"]]}',
             900, NULL, NULL, 'active', NULL, 0, 0);
           INSERT INTO integrations VALUES ('int_2', 2, 'sparse', 'salesforce',
             '{"capability":"content-management","environment":"","pull_by":null,
               "domain":null,"extra":[]}',
             900, NULL, NULL, 'active', NULL, 0, 0);"#,
    );
    let store = Store::open(&path, Cipher::from_key(&[3u8; 32])).unwrap();
    let full = store.integration("int_1").unwrap().settings;
    assert_eq!(full.capability, "helpdesk");
    let values: Vec<(&str, &str)> = full
        .values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        values,
        [
            ("domain", "https://acme.my.salesforce.com"),
            ("environment", "sandbox"),
            ("objects", "Case,CaseComment"),
            ("pull-by", "created"),
            ("start-date", "2024-01-01"),
        ]
    );
    let sparse = store.integration("int_2").unwrap().settings;
    assert_eq!(sparse.capability, "content-management");
    assert!(sparse.values.is_empty(), "{:?}", sparse.values);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn parallel_streams_commit_pages_of_one_run_without_busy_errors() {
    const STREAMS: usize = 4;
    const PAGES: usize = 20;
    const ROWS: usize = 50;
    let (store, _dir) = store("parallel");
    let store = Arc::new(store);
    let i = add(&store, "a", None);
    let run = store.start_run(&i.id, "cli", false, "t").unwrap();
    let json = format!(r#"{{"pad":"{}"}}"#, "x".repeat(400));
    std::thread::scope(|scope| {
        let committers: Vec<_> = (0..STREAMS)
            .map(|s| {
                let (store, id, run, json) = (&store, &i.id, &run, &json);
                scope.spawn(move || {
                    let stream = format!("S{s}");
                    for p in 0..PAGES {
                        let rows: Vec<Row> = (0..ROWS)
                            .map(|r| row(&format!("{p}-{r}"), Operation::Upsert, json))
                            .collect();
                        let checkpoint = format!("{stream}-{p}");
                        store
                            .commit_page_served_by(
                                id,
                                &stream,
                                run,
                                &rows,
                                Some(&checkpoint),
                                CheckpointState::Partial,
                                1,
                                7,
                            )
                            .unwrap_or_else(|e| panic!("{stream} page {p}: {e}"));
                    }
                })
            })
            .collect();
        // Meanwhile the shared connection writes too (the integration's state, as a token
        // refresh or the scheduler would): SQLite's write lock is contended across connections.
        while !committers.iter().all(|c| c.is_finished()) {
            store
                .set_state(&i.id, IntegrationState::Active, None)
                .expect("a write on the shared connection");
        }
        committers.into_iter().for_each(|c| c.join().unwrap());
    });
    for s in 0..STREAMS {
        let stream = format!("S{s}");
        let expected = format!("{stream}-{}", PAGES - 1);
        assert_eq!(
            store.checkpoint(&i.id, &stream).unwrap(),
            Some(expected),
            "{stream}'s checkpoint is its last page's"
        );
    }
    let counts = store.record_counts(&i.id).unwrap();
    assert_eq!(counts.len(), STREAMS);
    assert!(
        counts.iter().all(|c| c.live == (PAGES * ROWS) as i64),
        "{counts:?}"
    );
    let recorded = &store.runs(&i.id, 1).unwrap()[0];
    assert_eq!(recorded.records, (STREAMS * PAGES * ROWS) as i64);
    assert_eq!(recorded.api_calls, (STREAMS * PAGES) as i64);
    let seqs: Vec<u32> = store
        .run_pages(&run)
        .unwrap()
        .iter()
        .map(|p| p.seq)
        .collect();
    let expected: Vec<u32> = (1..=(STREAMS * PAGES) as u32).collect();
    assert_eq!(seqs, expected, "every page has its own place in the run");
}

#[test]
fn a_schema_6_database_keeps_its_tokens_and_takes_grants_without_an_instance_url() {
    let (dir, path) = database_at_schema(
        6,
        "INSERT INTO integrations VALUES ('int_1', 1, 'old', 'salesforce',
             '{\"capability\":\"crm\",\"values\":{}}', 900, NULL, NULL, 'active', NULL, 0, 0);
         INSERT INTO tokens (integration_id, flow, access_token, refresh_token, token_url,
             instance_url, scopes, obtained_at_ms, generation, health, health_checked_ms,
             provider_fields)
         VALUES ('int_1', 'authorization-code', x'00', NULL, 'https://t',
             'https://acme.my.salesforce.com', 'api', 5, 3, 'ok', 0, '{}');",
    );
    let store = Store::open(&path, Cipher::from_key(&[3u8; 32])).unwrap();
    let (instance, generation): (Option<String>, i64) = store
        .sqlite_conn()
        .query_row(
            "SELECT instance_url, generation FROM tokens WHERE integration_id = 'int_1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(instance.as_deref(), Some("https://acme.my.salesforce.com"));
    assert_eq!(generation, 3);
    assert_eq!(
        store.credential_kind("int_1").unwrap(),
        Some(CredentialKind::Oauth2AuthorizationCode)
    );
    // A grant whose provider names no instance (Zendesk's) is stored and read back.
    let tokens = TokenSet {
        flow: GrantFlow::ClientCredentials,
        access: Secret::new("a"),
        refresh: None,
        token_url: "https://t".into(),
        revoke_url: None,
        instance_url: None,
        provider_fields: Default::default(),
        scopes: Vec::new(),
        obtained_at_ms: now_ms(),
        generation: 0,
    };
    store.put_grant("int_1", &tokens).unwrap();
    assert_eq!(store.tokens("int_1").unwrap().unwrap().instance_url, None);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_schema_7_database_keeps_its_tokens_and_stores_where_a_grant_is_revoked() {
    let (dir, path) = database_at_schema(
        7,
        "INSERT INTO integrations VALUES ('int_1', 1, 'old', 'salesforce',
             '{\"capability\":\"crm\",\"values\":{}}', 900, NULL, NULL, 'active', NULL, 0, 0);
         INSERT INTO tokens (integration_id, flow, access_token, refresh_token, token_url,
             instance_url, scopes, obtained_at_ms, generation, health, health_checked_ms,
             provider_fields)
         VALUES ('int_1', 'authorization-code', x'00', NULL, 'https://t', NULL, 'api', 5, 3,
             'ok', 0, '{}');",
    );
    let store = Store::open(&path, Cipher::from_key(&[3u8; 32])).unwrap();
    let (revoke_url, generation): (Option<String>, i64) = store
        .sqlite_conn()
        .query_row(
            "SELECT revoke_url, generation FROM tokens WHERE integration_id = 'int_1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(revoke_url, None, "an older grant names no revoke URL");
    assert_eq!(generation, 3);
    let tokens = TokenSet {
        flow: GrantFlow::ClientCredentials,
        access: Secret::new("a"),
        refresh: None,
        token_url: "https://t".into(),
        revoke_url: Some("https://t/revoke".into()),
        instance_url: None,
        provider_fields: Default::default(),
        scopes: Vec::new(),
        obtained_at_ms: now_ms(),
        generation: 0,
    };
    store.put_grant("int_1", &tokens).unwrap();
    let stored = store.tokens("int_1").unwrap().unwrap();
    assert_eq!(stored.revoke_url.as_deref(), Some("https://t/revoke"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn entered_credentials_are_sealed_and_replace_tokens() {
    let (store, dir) = store("entered");
    let password = "BASIC-PASSWORD-4c1d9e2f7a";
    let i = add(&store, "a", None);
    store
        .put_grant(
            &i.id,
            &TokenSet {
                flow: GrantFlow::AuthorizationCode,
                access: Secret::new("old-access"),
                refresh: None,
                token_url: "https://t".into(),
                revoke_url: None,
                instance_url: None,
                provider_fields: Default::default(),
                scopes: Vec::new(),
                obtained_at_ms: now_ms(),
                generation: 0,
            },
        )
        .unwrap();
    store
        .put_entered(
            &i.id,
            &EnteredCredentials {
                kind: EnteredKind::Basic,
                username: Some("agent".into()),
                secret: Secret::new(password),
                stored_at_ms: 7,
            },
        )
        .unwrap();
    assert!(
        store.tokens(&i.id).unwrap().is_none(),
        "the OAuth grant is replaced"
    );
    assert_eq!(
        store.credential_kind(&i.id).unwrap(),
        Some(CredentialKind::Basic)
    );
    let read = store.entered(&i.id).unwrap().unwrap();
    assert_eq!(read.secret.expose(), password);
    assert_eq!(read.username.as_deref(), Some("agent"));
    store
        .sqlite_conn()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    let bytes = std::fs::read(dir.path().join(DB_FILE)).unwrap();
    assert!(
        !bytes
            .windows(password.len())
            .any(|w| w == password.as_bytes())
    );
    assert!(
        bytes.windows(5).any(|w| w == b"agent"),
        "the search can find clear text"
    );
    // A sealed secret moved to another integration's row does not open.
    let j = add(&store, "b", None);
    store
        .sqlite_conn()
        .execute(
            "INSERT INTO entered_credentials SELECT ?2, kind, username, secret, stored_at_ms
             FROM entered_credentials WHERE integration_id = ?1",
            [&i.id, &j.id],
        )
        .unwrap();
    assert!(matches!(store.entered(&j.id), Err(StoreError::Secret(_))));
}
