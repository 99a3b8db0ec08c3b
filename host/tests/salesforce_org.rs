//! Real-org behaviours the connector and host must survive (identity, permissions, absent
//! objects, approvals, orgs, deactivation), end to end: the host (real wasmtime sandbox, the
//! connector under test) against the in-process emulator with the behaviour switched on.
//! Tests about data end by comparing the stored records with the emulator's ground truth
//! (`/__emulator/records/{object}`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Value, json};
use sf_emulator::{Dataset, Emulator, EmulatorConfig};
use sluice::app::{App, AppError, IntegrationInput};
use sluice::engine::credentials::CredentialError;
use sluice::engine::wit::types::{FailureKind, Probe, TestReport};
use sluice::runner::{PullOptions, RunStatus, RunSummary, StreamResult};
use sluice::store::{IntegrationState, RunState};
use sluice_test_support::runtime::{
    connect, control, emulator_app, salesforce_settings, settings, stats,
};

async fn emulator(dataset: Dataset) -> Emulator {
    Emulator::start(EmulatorConfig {
        auto_approve: true,
        dataset,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

/// An integration of `capability` on the emulator's instance as its My Domain.
async fn integration(app: &App, emu: &Emulator, capability: &str, objects: Option<&str>) -> String {
    let content = capability == "content-management";
    let input = IntegrationInput {
        name: Some(format!("org {capability}")),
        capability: Some(capability.into()),
        settings: salesforce_settings(
            &emu.url,
            &[
                ("pull-by", if content { "" } else { "updated" }),
                ("objects", objects.unwrap_or_default()),
            ],
        ),
        client_id: Some(emu.client_id.clone()),
        client_secret: Some(emu.client_secret.clone()),
        ..IntegrationInput::default()
    };
    let id = app
        .add_integration(input)
        .await
        .expect("added")
        .integration
        .id;
    connect(app, &id).await;
    id
}

fn count(stats: &Value, key: &str) -> u64 {
    stats[key].as_u64().unwrap_or(0)
}

async fn pull(app: &Arc<App>, id: &str) -> RunSummary {
    sluice::runner::run_pull(app, id, PullOptions::default())
        .await
        .expect("pull runs")
}

/// The live rows of `object` (Id → SystemModstamp or CreatedDate) and the deleted Ids.
async fn truth(emu: &Emulator, object: &str) -> (BTreeMap<String, String>, BTreeSet<String>) {
    let (mut live, mut gone) = (BTreeMap::new(), BTreeSet::new());
    let mut seen = 0;
    loop {
        let page = control(
            emu,
            "GET",
            &format!("records/{object}?offset={seen}&limit=2000"),
            None,
        )
        .await;
        let rows = page["records"].as_array().unwrap().clone();
        seen += rows.len();
        for r in &rows {
            let flag = |k: &str| r[k].as_bool().unwrap_or(false);
            let id = r["Id"].as_str().unwrap().to_string();
            if flag("_deleted") || flag("_purged") {
                gone.insert(id);
            } else if flag("_visible") {
                live.insert(id, cursor_of(r));
            }
        }
        if rows.is_empty() || seen >= page["totalSize"].as_u64().unwrap() as usize {
            return (live, gone);
        }
    }
}

fn cursor_of(v: &Value) -> String {
    v.get("SystemModstamp")
        .or_else(|| v.get("CreatedDate"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The stored records of `stream` equal the emulator's ground truth: the same live keys
/// with the same cursor values, and tombstones only for deleted rows.
async fn assert_equal(app: &App, emu: &Emulator, id: &str, stream: &str) -> usize {
    let (live, gone) = truth(emu, stream).await;
    let mut stored = BTreeMap::new();
    let mut tombstones = BTreeSet::new();
    app.store()
        .for_each_record(id, Some(stream), true, |r| {
            if r.deleted {
                tombstones.insert(r.key);
            } else {
                let v: Value = serde_json::from_slice(&r.json).unwrap();
                assert!(stored.insert(r.key, cursor_of(&v)).is_none(), "duplicate");
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        stored, live,
        "{stream}: stored records differ from the ground truth"
    );
    assert!(
        tombstones.is_subset(&gone),
        "{stream}: tombstones for live rows"
    );
    live.len()
}

fn stream<'a>(s: &'a RunSummary, name: &str) -> &'a sluice::runner::StreamOutcome {
    s.streams
        .iter()
        .find(|o| o.stream == name)
        .expect("stream ran")
}

// Section 1: identity on the login host, a user without "View Setup and Configuration",
// absent and unreadable objects.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_connection_reads_the_user_on_the_instance_not_the_identity_service() {
    let emu = emulator(Dataset::Demo).await;
    let (app, _dir) = emulator_app("org", &emu.url).await;
    let id = integration(&app, &emu, "helpdesk", Some("Case")).await;
    let tokens = app.store().tokens(&id).unwrap().unwrap();
    let identity = tokens.provider_fields["id"].clone();
    assert!(
        identity.starts_with(&format!("{}/id/00D", emu.login_url)),
        "the grant's identity URL is on the login host, as on real orgs: {identity}"
    );
    let report = app.test(&id).await.unwrap();
    assert!(report.failure.is_none(), "{report:?}");
    assert_eq!(report.user.as_deref(), Some(emu.username.as_str()));
    let org = report.org.clone().unwrap();
    assert!(
        identity.contains(&format!("/id/{org}/")),
        "{org} from {identity}"
    );
    assert!(
        report.probes.iter().all(|p| p.failure.is_none()),
        "{report:?}"
    );
    let by_endpoint = &stats(&emu).await["by_endpoint"];
    assert!(
        by_endpoint.get("oauth.identity").is_none(),
        "the identity service was called: {by_endpoint}"
    );
    // The token has no `id` scope: the identity service refuses it, as Salesforce does.
    let refused = reqwest::Client::new()
        .get(&identity)
        .bearer_auth(tokens.access.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let s = pull(&app, &id).await;
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert!(assert_equal(&app, &emu, &id, "Case").await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_without_view_setup_is_a_warning_with_usage_from_the_header() {
    let emu = emulator(Dataset::Demo).await;
    let (app, _dir) = emulator_app("org", &emu.url).await;
    let id = integration(&app, &emu, "helpdesk", Some("Case")).await;
    settings(&emu, json!({"view_setup_permission": false})).await;
    let report = app.test(&id).await.unwrap();
    assert!(report.failure.is_none(), "{report:?}");
    let limits = report.probes.iter().find(|p| p.name == "limits").unwrap();
    let warning = limits
        .failure
        .as_ref()
        .expect("a warning on the limits probe");
    assert_eq!(warning.kind, FailureKind::PermissionDenied);
    assert!(
        warning.message.contains("View Setup and Configuration"),
        "{warning:?}"
    );
    let usage = report.api_usage.expect("usage from Sforce-Limit-Info");
    assert_eq!(usage.limit, 100_000);
    assert!(usage.used > 0);
    let s = pull(&app, &id).await;
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert!(assert_equal(&app, &emu, &id, "Case").await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_optional_objects_are_unavailable_in_test_and_pull() {
    let emu = emulator(Dataset::Demo).await;
    let (app, _dir) = emulator_app("org", &emu.url).await;
    settings(
        &emu,
        json!({"absent_objects": ["EmailMessage", "Knowledge__kav"]}),
    )
    .await;
    let helpdesk = integration(&app, &emu, "helpdesk", None).await;
    let report = app.test(&helpdesk).await.unwrap();
    assert!(report.failure.is_none(), "{report:?}");
    let email = report
        .probes
        .iter()
        .find(|p| p.name == "object:EmailMessage")
        .unwrap();
    assert!(email.detail.starts_with("unavailable"), "{email:?}");
    assert!(
        email
            .failure
            .as_ref()
            .unwrap()
            .message
            .contains("EmailMessage")
    );

    let s = pull(&app, &helpdesk).await;
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert_eq!(
        stream(&s, "EmailMessage").status,
        StreamResult::Skipped,
        "{s:?}"
    );
    for object in ["Case", "CaseComment", "CaseHistory"] {
        assert!(
            assert_equal(&app, &emu, &helpdesk, object).await > 0,
            "{object}"
        );
    }

    let knowledge = integration(&app, &emu, "content-management", None).await;
    let report = app.test(&knowledge).await.unwrap();
    assert!(report.failure.is_none(), "{report:?}");
    let probe = report.probes.last().unwrap();
    assert_eq!(probe.name, "object:Knowledge");
    assert!(probe.failure.is_some(), "{probe:?}");
    let s = pull(&app, &knowledge).await;
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert_eq!(
        stream(&s, "Knowledge").status,
        StreamResult::Skipped,
        "{s:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_required_object_is_permission_denied_naming_it() {
    let emu = emulator(Dataset::Demo).await;
    let (app, _dir) = emulator_app("org", &emu.url).await;
    let id = integration(&app, &emu, "helpdesk", None).await;
    settings(&emu, json!({"unreadable_objects": ["CaseComment"]})).await;
    let report = app.test(&id).await.unwrap();
    let failure = report.failure.expect("the test fails");
    assert_eq!(failure.kind, FailureKind::PermissionDenied, "{failure:?}");
    assert!(failure.message.contains("CaseComment"), "{failure:?}");
}

/// Pull agrees with Test Connection: a required object the user cannot read fails its
/// stream (and the run) as permission-denied, naming the object and the access to grant,
/// while an absent optional object is still a skipped stream with its reason, and the
/// other streams pull to the ground truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_required_object_fails_its_stream_and_the_others_pull() {
    let emu = emulator(Dataset::Demo).await;
    let (app, _dir) = emulator_app("org", &emu.url).await;
    let id = integration(&app, &emu, "helpdesk", None).await;
    settings(
        &emu,
        json!({"unreadable_objects": ["CaseComment"], "absent_objects": ["EmailMessage"]}),
    )
    .await;
    let s = pull(&app, &id).await;
    assert_eq!(s.status, RunStatus::Failed, "{s:?}");
    let comments = stream(&s, "CaseComment");
    assert_eq!(comments.status, StreamResult::Failed, "{comments:?}");
    let failure = comments.failure.as_ref().expect("a connector failure");
    assert_eq!(failure.kind, "permission-denied", "{failure:?}");
    assert!(
        failure.message.contains("CaseComment") && failure.message.contains("grant Read access"),
        "{failure:?}"
    );
    let email = stream(&s, "EmailMessage");
    assert_eq!(email.status, StreamResult::Skipped, "{email:?}");
    let reason = email.detail.as_deref().unwrap_or_default();
    assert!(
        reason.contains("EmailMessage") && reason.contains("Email-to-Case"),
        "{reason}"
    );
    // The platform sees the failure on the stored run.
    let run = app.store().runs(&id, 1).unwrap().remove(0);
    assert_eq!(run.status, RunState::Failed, "{run:?}");
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains("CaseComment") && e.contains("permission-denied")),
        "{run:?}"
    );
    // Streams before and after the failing one pulled everything.
    for object in ["Case", "CaseHistory"] {
        assert_eq!(stream(&s, object).status, StreamResult::Complete, "{s:?}");
        assert!(assert_equal(&app, &emu, &id, object).await > 0, "{object}");
    }
    let mut stored_comments = 0;
    app.store()
        .for_each_record(&id, Some("CaseComment"), true, |_| {
            stored_comments += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(
        stored_comments, 0,
        "nothing was read from an unreadable object"
    );
}

/// The Knowledge probe of Test Connection for "View Archived Articles".
fn archived_probe(report: &TestReport) -> &Probe {
    report
        .probes
        .iter()
        .find(|p| p.name == "permission:ViewArchivedArticles")
        .unwrap_or_else(|| panic!("no archived-articles probe: {report:?}"))
}

/// Test Connection reads the user's own "View Archived Articles" permission: with it the
/// probe passes; without it (archived versions invisible, as on a real org) it warns, naming
/// the permission, and the test and the pull still succeed; where `UserPermissionAccess`
/// cannot be read it warns too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_warns_when_archived_versions_are_not_visible() {
    let emu = emulator(Dataset::Demo).await;
    let (app, _dir) = emulator_app("org", &emu.url).await;
    let id = integration(&app, &emu, "content-management", None).await;
    let report = app.test(&id).await.unwrap();
    assert!(report.failure.is_none(), "{report:?}");
    assert!(archived_probe(&report).failure.is_none(), "{report:?}");

    settings(&emu, json!({"knowledge_archived_visible": false})).await;
    let report = app.test(&id).await.unwrap();
    assert!(
        report.failure.is_none(),
        "a warning, not a failure: {report:?}"
    );
    let warning = archived_probe(&report)
        .failure
        .as_ref()
        .expect("a warning on the archived-articles probe");
    assert_eq!(warning.kind, FailureKind::PermissionDenied, "{warning:?}");
    assert!(
        warning.message.contains("View Archived Articles") && warning.message.contains("grant"),
        "{warning:?}"
    );
    let s = pull(&app, &id).await;
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert!(stream(&s, "Knowledge").records > 0, "{s:?}");

    settings(&emu, json!({"absent_objects": ["UserPermissionAccess"]})).await;
    let report = app.test(&id).await.unwrap();
    assert!(report.failure.is_none(), "{report:?}");
    let warning = archived_probe(&report).failure.as_ref().expect("a warning");
    assert!(
        warning.message.contains("could not check") && warning.message.contains("INVALID_TYPE"),
        "{warning:?}"
    );
}

// Section 4: approvals, orgs and deactivation.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerate_and_delete_revoke_the_superseded_refresh_token() {
    let emu = emulator(Dataset::Demo).await;
    let (app, _dir) = emulator_app("org", &emu.url).await;
    let other = integration(&app, &emu, "helpdesk", Some("Case")).await;
    let id = integration(&app, &emu, "helpdesk", Some("Case")).await;
    assert_eq!(count(&stats(&emu).await, "active_refresh_tokens"), 2);
    // Re-generating many times never holds more than one approval per integration, so the
    // other integration's approval is never the oldest one Salesforce drops.
    for _ in 0..6 {
        connect(&app, &id).await;
        assert_eq!(count(&stats(&emu).await, "active_refresh_tokens"), 2);
    }
    app.tokens()
        .health_check(&other)
        .await
        .expect("the other integration still works");
    let s = pull(&app, &id).await;
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert!(assert_equal(&app, &emu, &id, "Case").await > 0);
    let locks = app.config().data_dir.join("locks");
    let lock_files = |id: &str| {
        std::fs::read_dir(&locks)
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with(&format!("{id}."))
            })
            .count()
    };
    app.tokens().health_check(&id).await.expect("a refresh");
    assert_eq!(lock_files(&id), 2, "a run lock and a token lock");
    app.delete_integration(&id).await.unwrap();
    assert_eq!(
        lock_files(&id),
        0,
        "deleting removes the integration's lock files"
    );
    assert_eq!(count(&stats(&emu).await, "active_refresh_tokens"), 1);
    let s = pull(&app, &other).await;
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert!(assert_equal(&app, &emu, &other, "Case").await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_from_another_org_is_refused_and_revoked() {
    let emu = emulator(Dataset::Demo).await;
    let (app, _dir) = emulator_app("org", &emu.url).await;
    let id = integration(&app, &emu, "helpdesk", Some("Case")).await;
    let before = app.store().tokens(&id).unwrap().unwrap();
    settings(&emu, json!({"browser_org": "second"})).await;
    let start = app
        .begin_authorization(&id, sluice_test_support::runtime::REDIRECT)
        .await
        .unwrap();
    let callback = sluice_test_support::runtime::approve(start.url.as_str()).await;
    let err = app.complete_authorization(callback).await.unwrap_err();
    let AppError::OtherAccount(message) = &err else {
        panic!("expected a conflict, got {err:?}");
    };
    // The identity URL ends `/id/{orgId}/{userId}`; the org's 15-character id names it.
    let identity = &before.provider_fields["id"];
    let first_org = &identity.rsplit('/').nth(1).unwrap()[..15];
    assert!(message.contains(first_org), "{message}");
    assert!(message.contains("belongs to account"), "{message}");
    let after = app.store().tokens(&id).unwrap().unwrap();
    assert_eq!(after.access.expose(), before.access.expose(), "tokens kept");
    assert_eq!(
        count(&stats(&emu).await, "active_refresh_tokens"),
        1,
        "the other org's new grant was revoked"
    );
    settings(&emu, json!({"browser_org": "primary"})).await;
    let s = pull(&app, &id).await;
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert!(assert_equal(&app, &emu, &id, "Case").await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inactive_user_and_org_are_final_without_a_retry_loop() {
    let emu = emulator(Dataset::Demo).await;
    let (app, _dir) = emulator_app("org", &emu.url).await;
    for setting in ["inactive_user", "inactive_org"] {
        let id = integration(&app, &emu, "helpdesk", Some("Case")).await;
        settings(&emu, json!({setting: true})).await;
        let failures = count(&stats(&emu).await, "refresh_failures");
        // The scheduler's health check is the refresh nobody waits for: it must not keep
        // asking Salesforce about a deactivated user or org.
        let err = app.tokens().health_check(&id).await.unwrap_err();
        assert!(
            matches!(&err, CredentialError::ReauthorizationRequired(m) if m.contains(setting)),
            "{setting}: {err:?}"
        );
        let integration = app.store().integration(&id).unwrap();
        assert_eq!(integration.state, IntegrationState::NeedsReauthorization);
        assert!(app.tokens().health_check(&id).await.is_err());
        assert!(matches!(
            sluice::runner::run_pull(&app, &id, PullOptions::default()).await,
            Err(AppError::NotConnected(_))
        ));
        assert_eq!(
            count(&stats(&emu).await, "refresh_failures") - failures,
            1,
            "{setting}: one refused refresh, then no token request"
        );
        settings(&emu, json!({setting: false})).await;
        // Re-connecting resumes, and the data equals the ground truth.
        connect(&app, &id).await;
        let s = pull(&app, &id).await;
        assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
        assert!(assert_equal(&app, &emu, &id, "Case").await > 0);
    }
}

// A pull whose session dies meets the provider's final answer in the host's refresh: the
// integration's reason stays the provider's (`inactive_user`), not the connector's "session
// refused", so an admin reads why the login is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_keeps_the_providers_reason_for_a_new_login() {
    let emu = emulator(Dataset::Demo).await;
    let (app, _dir) = emulator_app("org", &emu.url).await;
    let id = integration(&app, &emu, "helpdesk", Some("Case")).await;
    settings(&emu, json!({"inactive_user": true})).await;
    control(&emu, "POST", "tokens/expire", None).await;
    let s = pull(&app, &id).await;
    assert_eq!(s.status, RunStatus::NeedsReauthorization, "{s:?}");
    let integration = app.store().integration(&id).unwrap();
    assert_eq!(integration.state, IntegrationState::NeedsReauthorization);
    let reason = integration.state_reason.unwrap_or_default();
    assert!(reason.contains("inactive_user"), "{reason}");
}

// Section 5: on the wire.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connector_asks_for_gzip_and_the_host_inflates_it() {
    let emu = emulator(Dataset::Demo).await;
    let (app, _dir) = emulator_app("org", &emu.url).await;
    let id = integration(&app, &emu, "helpdesk", Some("Case,CaseComment")).await;
    let s = pull(&app, &id).await;
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert!(
        count(&stats(&emu).await, "compressed_responses") > 0,
        "the connector asked for gzip"
    );
    assert!(assert_equal(&app, &emu, &id, "Case").await > 0);
    assert!(assert_equal(&app, &emu, &id, "CaseComment").await > 0);
}

/// `len` zero bytes, gzip-compressed and base64-encoded for a fault's `body_base64`.
fn gzip_zeros_base64(len: usize) -> String {
    use base64::Engine;
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..len / chunk.len() {
        e.write_all(&chunk).unwrap();
    }
    base64::engine::general_purpose::STANDARD.encode(e.finish().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_is_refused_with_a_clear_error_and_loses_nothing() {
    let emu = emulator(Dataset::Demo).await;
    let (app, _dir) = emulator_app("org", &emu.url).await;
    let id = integration(&app, &emu, "helpdesk", Some("Case")).await;
    // 80 MiB of zeros inflate past the host's 64 MiB response cap from about 80 KB.
    let bomb = gzip_zeros_base64(80 << 20);
    assert!(bomb.len() < 1 << 20);
    control(
        &emu,
        "POST",
        "faults",
        Some(
            json!({"path_prefix": "/services/data/v62.0/query", "status": 200, "count": 1000,
            "body_base64": bomb, "headers": {"Content-Encoding": "gzip"}}),
        ),
    )
    .await;
    let s = pull(&app, &id).await;
    assert_eq!(s.status, RunStatus::Failed, "{s:?}");
    let case = stream(&s, "Case");
    let message = case
        .failure
        .as_ref()
        .map(|f| f.message.clone())
        .unwrap_or_default();
    assert!(
        message.contains("larger than the host's response size cap"),
        "{case:?}"
    );
    control(&emu, "DELETE", "faults", None).await;
    let s = pull(&app, &id).await;
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert!(assert_equal(&app, &emu, &id, "Case").await > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_with_retry_after_and_per_app_usage_headers() {
    let emu = emulator(Dataset::Demo).await;
    let (app, _dir) = emulator_app("org", &emu.url).await;
    let id = integration(&app, &emu, "helpdesk", Some("Case")).await;
    // A 503 with Retry-After is retried by the host; the pull completes.
    control(
        &emu,
        "POST",
        "faults",
        Some(
            json!({"path_prefix": "/services/data/v62.0/query", "status": 503, "count": 1,
            "body": "<html>busy</html>", "content_type": "text/html",
            "headers": {"Retry-After": "1"}}),
        ),
    )
    .await;
    let s = pull(&app, &id).await;
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert!(
        control(&emu, "GET", "faults", None).await["faults"]
            .as_array()
            .is_some_and(Vec::is_empty)
    );
    assert!(assert_equal(&app, &emu, &id, "Case").await > 0);
    // The connected app's own daily usage over the budget stops the pull, rate-limited.
    let other = integration(&app, &emu, "helpdesk", Some("Case")).await;
    control(
        &emu,
        "POST",
        "faults",
        Some(json!({"path_prefix": "/services/data/v62.0/sobjects/Case/describe", "count": 1000,
            "headers": {"Sforce-Limit-Info": "api-usage=10/100000; per-app-api-usage=990/1000(appName=Sluice)"}})),
    )
    .await;
    let s = pull(&app, &other).await;
    assert_eq!(s.status, RunStatus::RateLimited, "{s:?}");
    let message = stream(&s, "Case").failure.as_ref().unwrap().message.clone();
    assert!(message.contains("Sluice"), "{message}");
    control(&emu, "DELETE", "faults", None).await;
    let s = pull(&app, &other).await;
    assert_eq!(s.status, RunStatus::Succeeded, "{s:?}");
    assert!(assert_equal(&app, &emu, &other, "Case").await > 0);
}
