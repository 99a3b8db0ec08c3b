//! The store's promises about integrations, client secrets, entered credentials, tokens,
//! token health and pending OAuth states, each checked on SQLite and on PostgreSQL with one
//! test body (`each_backend!`).

use std::sync::Barrier;
use std::time::Duration;

use sluice::oauth::ProviderFields;
use sluice::secrets::Secret;
use sluice::store::{
    CredentialKind, EnteredCredentials, EnteredKind, GrantFlow, Integration, IntegrationSettings,
    IntegrationState, NewIntegration, RefreshStored, Store, StoreError, TokenHealthState, TokenSet,
    now_ms,
};
use sluice_test_support::PgCluster;
use sluice_test_support::each_backend;
use sluice_test_support::stores::TestStore;

fn settings() -> IntegrationSettings {
    IntegrationSettings::new(
        "helpdesk",
        [
            ("environment", "production"),
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

fn grant(access: &str, refresh: Option<&str>) -> TokenSet {
    TokenSet {
        flow: GrantFlow::AuthorizationCode,
        access: Secret::new(access),
        refresh: refresh.map(Secret::new),
        token_url: "https://login.salesforce.com/services/oauth2/token".into(),
        revoke_url: None,
        instance_url: Some("https://acme.my.salesforce.com".into()),
        provider_fields: [("id".to_string(), "https://i/id/1".to_string())].into(),
        scopes: vec!["api".into(), "refresh_token".into()],
        obtained_at_ms: now_ms(),
        generation: 0,
    }
}

fn basic(password: &str) -> EnteredCredentials {
    EnteredCredentials {
        kind: EnteredKind::Basic,
        username: Some("agent".into()),
        secret: Secret::new(password),
        stored_at_ms: 7,
    }
}

fn issued_at(ms: &str) -> ProviderFields {
    [("issued_at".to_string(), ms.to_string())].into()
}

fn unknown<T: std::fmt::Debug>(answer: Result<T, StoreError>) -> bool {
    matches!(answer, Err(StoreError::UnknownIntegration(id)) if id == "int_nope")
}

/// Runs `sql` on the test store's database behind the store's back; returns the first
/// column of each row as text (SQLite through its own connection, PostgreSQL through psql).
fn raw(store: &TestStore, sql: &str) -> Vec<String> {
    match store.database_name() {
        Some(db) => PgCluster::shared()
            .psql(db, sql)
            .lines()
            .map(String::from)
            .collect(),
        None => {
            let conn = rusqlite::Connection::open(store.path().unwrap()).unwrap();
            let mut stmt = conn.prepare(sql).unwrap();
            let rows = stmt
                .query_map([], |r| {
                    Ok(match r.get_ref(0)? {
                        rusqlite::types::ValueRef::Null => String::new(),
                        rusqlite::types::ValueRef::Integer(i) => i.to_string(),
                        rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                        other => format!("{other:?}"),
                    })
                })
                .unwrap();
            rows.map(Result::unwrap).collect()
        }
    }
}

/// Every byte the database holds for the credential tables, as text: the SQLite file (its WAL
/// folded in first), or every row of PostgreSQL's tables with byte columns both as hex (how
/// PostgreSQL prints them) and as their bytes.
fn database_contents(store: &TestStore) -> String {
    match store.database_name() {
        Some(db) => {
            let mut text = String::new();
            for table in [
                "integrations",
                "tokens",
                "oauth_states",
                "entered_credentials",
            ] {
                text += &PgCluster::shared().psql(db, &format!("SELECT t::text FROM {table} t"));
            }
            for (table, column) in [
                ("integrations", "client_secret"),
                ("tokens", "access_token"),
                ("tokens", "refresh_token"),
                ("oauth_states", "verifier"),
                ("entered_credentials", "secret"),
            ] {
                text += &PgCluster::shared().psql(
                    db,
                    &format!("SELECT encode({column}, 'escape') FROM {table}"),
                );
            }
            text
        }
        None => {
            let path = store.path().unwrap();
            rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                .unwrap();
            String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
        }
    }
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

each_backend! {
    fn integrations_list_newest_first_with_their_settings(store) {
        let a = add(&store, "a", None);
        let b = add(&store, "b", Some("s3cr3t"));
        let c = add(&store, "c", None);
        let listed: Vec<_> = store.integrations().unwrap().into_iter().map(|i| i.id).collect();
        assert_eq!(listed, [c.id.clone(), b.id.clone(), a.id.clone()]);
        // A second host sees the same list in the same order.
        let again: Vec<_> = store.reopen().integrations().unwrap().into_iter().map(|i| i.id).collect();
        assert_eq!(again, listed);
        let read = store.integration(&b.id).unwrap();
        assert_eq!(read.settings, settings());
        assert_eq!((read.name.as_str(), read.connector.as_str()), ("b", "salesforce"));
        assert_eq!((read.interval_s, read.client_id.as_deref()), (900, Some("client-id")));
        assert_eq!(read.state, IntegrationState::PendingAuthorization);
        assert_eq!(read.state_reason, None);
        assert!(read.has_client_secret && !a.has_client_secret);
        assert_eq!(read.created_at_ms, read.updated_at_ms);
        assert_eq!(store.client_secret(&b.id).unwrap().unwrap().expose(), "s3cr3t");
        assert!(store.client_secret(&a.id).unwrap().is_none());
        assert!(unknown(store.integration("int_nope")));
        assert!(unknown(store.client_secret("int_nope")));
    }

    fn pausing_keeps_since_when_until_resumed(store) {
        let i = add(&store, "a", None);
        assert_eq!(i.paused_at_ms, None);
        let since = store.set_paused(&i.id, true).unwrap().paused_at_ms.expect("paused");
        std::thread::sleep(Duration::from_millis(5));
        let again = store.reopen().set_paused(&i.id, true).unwrap();
        assert_eq!(again.paused_at_ms, Some(since), "pausing again keeps the first time");
        assert_eq!(store.integration(&i.id).unwrap().paused_at_ms, Some(since));
        assert_eq!(store.set_paused(&i.id, false).unwrap().paused_at_ms, None);
        assert_eq!(store.integration(&i.id).unwrap().paused_at_ms, None);
        assert!(unknown(store.set_paused("int_nope", true)));
    }

    fn updating_an_integration_keeps_replaces_or_removes_its_secret(store) {
        let i = add(&store, "a", Some("first"));
        let mut changed = settings();
        changed.set("environment", "sandbox");
        let kept = store
            .update_integration(&i.id, "renamed", &changed, 60, Some("other-client"), None)
            .unwrap();
        assert_eq!((kept.name.as_str(), kept.interval_s), ("renamed", 60));
        assert_eq!(kept.settings.get("environment"), Some("sandbox"));
        assert_eq!(kept.client_id.as_deref(), Some("other-client"));
        assert_eq!(store.client_secret(&i.id).unwrap().unwrap().expose(), "first");
        let second = Secret::new("second");
        store
            .update_integration(&i.id, "renamed", &changed, 60, None, Some(Some(&second)))
            .unwrap();
        assert_eq!(store.client_secret(&i.id).unwrap().unwrap().expose(), "second");
        let removed = store
            .update_integration(&i.id, "renamed", &changed, 60, None, Some(None))
            .unwrap();
        assert!(!removed.has_client_secret && removed.client_id.is_none());
        assert!(store.client_secret(&i.id).unwrap().is_none());
        assert!(unknown(store.update_integration(
            "int_nope", "x", &changed, 60, None, Some(Some(&second))
        )));
    }

    fn an_integration_state_is_stored_as_its_text(store) {
        let i = add(&store, "a", None);
        store
            .set_state(&i.id, IntegrationState::NeedsReauthorization, Some("invalid_grant"))
            .unwrap();
        let read = store.reopen().integration(&i.id).unwrap();
        assert_eq!(read.state, IntegrationState::NeedsReauthorization);
        assert_eq!(read.state_reason.as_deref(), Some("invalid_grant"));
        let stored = raw(&store, &format!("SELECT state FROM integrations WHERE id = '{}'", i.id));
        assert_eq!(stored, ["needs-reauthorization"]);
        store.set_state(&i.id, IntegrationState::Active, None).unwrap();
        assert_eq!(store.integration(&i.id).unwrap().state_reason, None);
        assert!(unknown(store.set_state("int_nope", IntegrationState::Active, None)));
        // A state this version does not know is a corrupt value, named.
        raw(&store, &format!("UPDATE integrations SET state = 'paused' WHERE id = '{}'", i.id));
        assert!(matches!(
            store.integration(&i.id),
            Err(StoreError::Corrupt(m)) if m.contains("paused")
        ));
    }

    fn deleting_an_integration_removes_everything_that_references_it(store) {
        // One connected by OAuth and one by entered credentials, each deleted and kept.
        let [gone_oauth, gone_entered, kept_oauth, kept_entered] =
            ["gone-oauth", "gone-entered", "kept-oauth", "kept-entered"].map(|n| add(&store, n, Some("s")));
        for i in [&gone_oauth, &kept_oauth] {
            store.put_grant(&i.id, &grant("a1", Some("r1"))).unwrap();
        }
        for i in [&gone_entered, &kept_entered] {
            store.put_entered(&i.id, &basic("pw")).unwrap();
        }
        for i in [&gone_oauth, &gone_entered, &kept_oauth, &kept_entered] {
            let state = format!("state-{}", i.name);
            store.put_oauth_state(&state, &i.id, &Secret::new("v"), "http://x/cb", "https://t").unwrap();
            raw(&store, &format!(
                "INSERT INTO checkpoints (integration_id, stream, checkpoint, status,
                     updated_at_ms) VALUES ('{}', 'Case', 'c1', 'partial', 1)",
                i.id
            ));
        }
        store.delete_integration(&gone_oauth.id).unwrap();
        store.reopen().delete_integration(&gone_entered.id).unwrap();
        assert!(unknown(store.delete_integration("int_nope")));
        assert!(matches!(
            store.integration(&gone_oauth.id),
            Err(StoreError::UnknownIntegration(_))
        ));
        let listed: Vec<_> = store.integrations().unwrap().into_iter().map(|i| i.id).collect();
        assert_eq!(listed, [kept_entered.id.clone(), kept_oauth.id.clone()]);
        let gone = format!("'{}', '{}'", gone_oauth.id, gone_entered.id);
        for (table, kept) in [("tokens", 1), ("entered_credentials", 1), ("oauth_states", 2), ("checkpoints", 2)] {
            let count = |filter: &str| raw(&store, &format!("SELECT COUNT(*) FROM {table} {filter}"));
            assert_eq!(count(&format!("WHERE integration_id IN ({gone})")), ["0"], "{table} of the deleted");
            assert_eq!(count(""), [kept.to_string()], "{table} of the others");
        }
    }

    fn a_rotated_refresh_token_is_stored_with_the_new_access_token(store) {
        let i = add(&store, "a", None);
        store.put_grant(&i.id, &grant("a1", Some("r1"))).unwrap();
        let g1 = store.tokens(&i.id).unwrap().unwrap().generation;
        let RefreshStored::Stored(g2) = store
            .put_refreshed(&i.id, g1, &Secret::new("a2"), None, &issued_at("5"))
            .unwrap()
        else {
            panic!("a refresh of the stored generation is stored");
        };
        let t = store.tokens(&i.id).unwrap().unwrap();
        assert_eq!((t.access.expose(), t.refresh.as_ref().unwrap().expose()), ("a2", "r1"));
        assert!(g2 > g1);
        assert_eq!(t.generation, g2);
        let refreshed = store
            .put_refreshed(
                &i.id,
                g2,
                &Secret::new("a3"),
                Some(&Secret::new("r2")),
                &[
                    ("issued_at".to_string(), "6".to_string()),
                    ("instance_url".to_string(), "https://j".to_string()),
                ]
                .into(),
            )
            .unwrap();
        assert!(matches!(refreshed, RefreshStored::Stored(g3) if g3 > g2));
        let t = store.reopen().tokens(&i.id).unwrap().unwrap();
        assert_eq!((t.access.expose(), t.refresh.as_ref().unwrap().expose()), ("a3", "r2"));
        // A refresh's fields replace those of the same name and keep the others.
        assert_eq!(t.instance_url.as_deref(), Some("https://j"));
        assert_eq!(t.provider_fields["issued_at"], "6");
        assert_eq!(t.provider_fields["id"], "https://i/id/1");
        assert_eq!(t.scopes, ["api", "refresh_token"]);
        assert!(unknown(store.put_refreshed("int_nope", 1, &Secret::new("a"), None, &issued_at("1"))));
    }

    fn of_two_hosts_refreshing_one_generation_exactly_one_stores(store) {
        let i = add(&store, "a", None);
        store.put_grant(&i.id, &grant("a0", Some("r0"))).unwrap();
        let hosts = [store.reopen(), store.reopen()];
        for round in 0..20 {
            let read = hosts[0].tokens(&i.id).unwrap().unwrap().generation;
            let start = Barrier::new(hosts.len());
            let answers: Vec<RefreshStored> = std::thread::scope(|s| {
                let refreshing: Vec<_> = hosts
                    .iter()
                    .enumerate()
                    .map(|(n, host)| {
                        let (id, start) = (&i.id, &start);
                        s.spawn(move || {
                            let access = Secret::new(format!("a{round}-host{n}"));
                            let refresh = Secret::new(format!("r{round}-host{n}"));
                            start.wait();
                            host.put_refreshed(id, read, &access, Some(&refresh), &issued_at("1"))
                                .unwrap()
                        })
                    })
                    .collect();
                refreshing.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let winners: Vec<usize> = answers
                .iter()
                .enumerate()
                .filter(|(_, a)| matches!(a, RefreshStored::Stored(_)))
                .map(|(n, _)| n)
                .collect();
            assert_eq!(winners.len(), 1, "round {round}: {answers:?}");
            let winner = winners[0];
            // The loser is told the generation the winner stored, and re-reads its tokens.
            for answer in &answers {
                assert!(matches!(
                    answer,
                    RefreshStored::Stored(g) | RefreshStored::Superseded(g) if *g == read + 1
                ));
            }
            let stored = hosts[1 - winner].tokens(&i.id).unwrap().unwrap();
            assert_eq!(stored.access.expose(), format!("a{round}-host{winner}"));
            assert_eq!(stored.refresh.unwrap().expose(), format!("r{round}-host{winner}"));
            assert_eq!(stored.generation, read + 1);
        }
    }

    fn a_refresh_of_tokens_a_new_grant_replaced_is_not_stored(store) {
        let i = add(&store, "a", None);
        store.put_grant(&i.id, &grant("old-access", Some("old-refresh"))).unwrap();
        let read = store.tokens(&i.id).unwrap().unwrap().generation;
        // A person connects again while a refresh of the old grant is under way.
        store.reopen().put_grant(&i.id, &grant("new-access", Some("new-refresh"))).unwrap();
        let answer = store
            .put_refreshed(&i.id, read, &Secret::new("refreshed-old"), Some(&Secret::new("r")), &issued_at("1"))
            .unwrap();
        assert_eq!(answer, RefreshStored::Superseded(read + 1));
        let t = store.tokens(&i.id).unwrap().unwrap();
        assert_eq!((t.access.expose(), t.refresh.unwrap().expose()), ("new-access", "new-refresh"));
    }

    fn oauth_states_are_single_use_and_expire(store) {
        let i = add(&store, "a", None);
        store
            .put_oauth_state(
                "s1",
                &i.id,
                &Secret::new("v1"),
                "http://127.0.0.1:9/oauth/callback",
                "https://login.salesforce.com/services/oauth2/token",
            )
            .unwrap();
        let hour = Duration::from_secs(3600);
        // Taken by the host the callback reached, which need not be the one that started it.
        let got = store.reopen().take_oauth_state("s1", hour).unwrap().unwrap();
        assert_eq!(
            got.token_url.as_deref(),
            Some("https://login.salesforce.com/services/oauth2/token"),
            "the plan's token endpoint is bound to the state"
        );
        assert_eq!((got.integration_id.as_str(), got.verifier.expose()), (i.id.as_str(), "v1"));
        assert_eq!(got.redirect_uri, "http://127.0.0.1:9/oauth/callback");
        assert!(store.take_oauth_state("s1", hour).unwrap().is_none());
        store.put_oauth_state("s2", &i.id, &Secret::new("v2"), "x", "y").unwrap();
        std::thread::sleep(Duration::from_millis(5));
        assert!(store.take_oauth_state("s2", Duration::ZERO).unwrap().is_none());
        assert_eq!(raw(&store, "SELECT COUNT(*) FROM oauth_states"), ["0"], "expired states are deleted");
        assert!(store.put_oauth_state("s3", "int_nope", &Secret::new("v"), "x", "y").is_err());
    }

    fn entered_credentials_and_a_grant_replace_each_other(store) {
        let i = add(&store, "a", None);
        assert_eq!(store.credential_kind(&i.id).unwrap(), None);
        assert!(store.entered(&i.id).unwrap().is_none());
        store.put_grant(&i.id, &grant("old-access", None)).unwrap();
        assert_eq!(store.credential_kind(&i.id).unwrap(), Some(CredentialKind::Oauth2AuthorizationCode));
        store.set_state(&i.id, IntegrationState::NeedsReauthorization, Some("dead")).unwrap();
        store.put_entered(&i.id, &basic("pw-1")).unwrap();
        assert!(store.tokens(&i.id).unwrap().is_none(), "the OAuth grant is replaced");
        assert_eq!(store.credential_kind(&i.id).unwrap(), Some(CredentialKind::Basic));
        let read = store.reopen().entered(&i.id).unwrap().unwrap();
        assert_eq!((read.kind, read.secret.expose()), (EnteredKind::Basic, "pw-1"));
        assert_eq!((read.username.as_deref(), read.stored_at_ms), (Some("agent"), 7));
        let state = store.integration(&i.id).unwrap();
        assert_eq!((state.state, state.state_reason), (IntegrationState::Active, None));
        // Entered again: replaced in place.
        let key = EnteredCredentials {
            kind: EnteredKind::ApiKey,
            username: None,
            secret: Secret::new("key-2"),
            stored_at_ms: 8,
        };
        store.put_entered(&i.id, &key).unwrap();
        assert_eq!(store.credential_kind(&i.id).unwrap(), Some(CredentialKind::ApiKey));
        let read = store.entered(&i.id).unwrap().unwrap();
        assert_eq!((read.username, read.secret.expose()), (None, "key-2"));
        let mut client = grant("cc-access", None);
        client.flow = GrantFlow::ClientCredentials;
        store.put_grant(&i.id, &client).unwrap();
        assert!(store.entered(&i.id).unwrap().is_none(), "the entered credentials are replaced");
        assert_eq!(store.credential_kind(&i.id).unwrap(), Some(CredentialKind::Oauth2ClientCredentials));
    }

    fn credentials_for_an_unknown_integration_are_refused_naming_it(store) {
        assert!(unknown(store.put_entered("int_nope", &basic("pw"))));
        assert!(unknown(store.put_grant("int_nope", &grant("a", None))));
    }

    fn token_health_is_checked_and_unchecked_after_an_old_grant(store) {
        let i = add(&store, "a", None);
        assert!(store.token_health(&i.id).unwrap().is_none());
        let before = now_ms();
        store.put_grant(&i.id, &grant("a", Some("r"))).unwrap();
        let health = store.token_health(&i.id).unwrap().unwrap();
        assert_eq!(health.health, TokenHealthState::Ok);
        assert_eq!(health.checked_at_ms, Some(health.obtained_at_ms));
        store.set_token_health(&i.id, TokenHealthState::Dead).unwrap();
        let health = store.reopen().token_health(&i.id).unwrap().unwrap();
        assert_eq!(health.health, TokenHealthState::Dead);
        assert!(health.checked_at_ms.unwrap() >= before);
        assert_eq!(
            raw(&store, &format!("SELECT health FROM tokens WHERE integration_id = '{}'", i.id)),
            ["dead"]
        );
        // Tokens stored before health was kept read as unchecked.
        raw(&store, "UPDATE tokens SET health = NULL, health_checked_ms = NULL");
        let health = store.token_health(&i.id).unwrap().unwrap();
        assert_eq!((health.health, health.checked_at_ms), (TokenHealthState::Unchecked, None));
        // Recording health of an integration without tokens changes nothing.
        store.set_token_health("int_nope", TokenHealthState::Ok).unwrap();
    }

    fn no_secret_reaches_the_database_in_clear(store) {
        let client_secret = "CLIENT-SECRET-7f3a9b2c41d8e6";
        let access = "00Dx0000000BV7z!ACCESS-TOKEN-9c8b7a6d5e4f";
        let refresh = "5Aep861REFRESH-TOKEN-1a2b3c4d5e6f";
        let rotated = "5Aep861ROTATED-REFRESH-TOKEN-8e7d6c5b";
        let verifier = "PKCE-VERIFIER-0a1b2c3d4e5f6a7b8c9d";
        let password = "BASIC-PASSWORD-4c1d9e2f7a";
        let i = add(&store, "a", Some(client_secret));
        store.put_grant(&i.id, &grant(access, Some(refresh))).unwrap();
        let read = store.tokens(&i.id).unwrap().unwrap().generation;
        store
            .put_refreshed(&i.id, read, &Secret::new("ACCESS-AFTER-REFRESH-31d2"), Some(&Secret::new(rotated)), &issued_at("1"))
            .unwrap();
        store
            .put_oauth_state("state-1", &i.id, &Secret::new(verifier), "http://127.0.0.1:1/cb", "https://t")
            .unwrap();
        let j = add(&store, "b", None);
        store.put_entered(&j.id, &basic(password)).unwrap();
        let contents = database_contents(&store);
        // The search can find clear text: the user name and the token endpoint are not secret.
        assert!(contents.contains("agent") && contents.contains("login.salesforce.com"));
        for secret in [client_secret, access, refresh, rotated, verifier, password, "ACCESS-AFTER-REFRESH-31d2"] {
            assert!(!contents.contains(secret), "found {secret} in clear in the database");
            assert!(!contents.contains(&hex(secret)), "found {secret} hex-encoded in the database");
        }
        // And a sealed value moved to another integration's row does not open.
        raw(&store, &format!(
            "UPDATE integrations SET client_secret = (SELECT client_secret FROM integrations
             WHERE id = '{}') WHERE id = '{}'",
            i.id, j.id
        ));
        assert!(matches!(store.client_secret(&j.id), Err(StoreError::Secret(_))));
        raw(&store, &format!(
            "UPDATE entered_credentials SET integration_id = '{}' WHERE integration_id = '{}'",
            i.id, j.id
        ));
        assert!(matches!(store.entered(&i.id), Err(StoreError::Secret(_))));
    }
}

/// On PostgreSQL a refresh is single-flight across hosts: a second host waits for the first
/// one's refresh lock, and then reads the tokens the first one stored. (On SQLite the lock
/// holds nothing in the database: processes sharing the file share its directory's lock.)
#[test]
fn a_second_host_waits_for_the_first_ones_refresh_on_postgres() {
    use sluice::store::pg::wait;
    use std::sync::atomic::{AtomicBool, Ordering};

    let store = TestStore::new(
        sluice_test_support::stores::Backend::Postgres,
        "refresh-lock",
    );
    let db = store.database_name().unwrap().to_string();
    let i = add(&store, "a", None);
    let other = add(&store, "b", None);
    store.put_grant(&i.id, &grant("a0", Some("r0"))).unwrap();
    let second_host = store.reopen();
    let first = wait(store.lock_refresh(&i.id)).unwrap();
    // Another integration's refresh does not wait.
    drop(wait(second_host.lock_refresh(&other.id)).unwrap());
    let second_got_it = AtomicBool::new(false);
    let waiting_locks = || {
        PgCluster::shared().psql(
            &db,
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
    };
    std::thread::scope(|s| {
        let second = s.spawn(|| {
            let _held = wait(second_host.lock_refresh(&i.id)).unwrap();
            second_got_it.store(true, Ordering::SeqCst);
            second_host.tokens(&i.id).unwrap().unwrap()
        });
        while waiting_locks().trim() != "1" {
            assert!(!second.is_finished(), "the second host did not wait");
            std::thread::yield_now();
        }
        assert!(!second_got_it.load(Ordering::SeqCst));
        // The holder's own writes go through while it holds the lock.
        let read = store.tokens(&i.id).unwrap().unwrap().generation;
        let stored = store
            .put_refreshed(
                &i.id,
                read,
                &Secret::new("a1"),
                Some(&Secret::new("r1")),
                &issued_at("1"),
            )
            .unwrap();
        assert_eq!(stored, RefreshStored::Stored(read + 1));
        store.set_token_health(&i.id, TokenHealthState::Ok).unwrap();
        drop(first);
        let seen = second.join().unwrap();
        assert_eq!(
            (seen.access.expose(), seen.refresh.unwrap().expose()),
            ("a1", "r1")
        );
    });
    assert!(second_got_it.load(Ordering::SeqCst));
    assert_eq!(waiting_locks().trim(), "0");
}
