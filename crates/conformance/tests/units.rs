//! The conformance checker's pure parts: key matching, the in-memory store, the integration
//! file, and the report's text and JUnit forms.

use sluice_conformance::pulls::key_matches;
use sluice_conformance::store::{Records, apply, difference};
use sluice_conformance::{Check, CheckResult, Integration, Outcome, Report, to_junit};
use sluice_engine::wit::types::{Operation, Row};

fn row(key: &str, op: Operation, json: &str) -> Row {
    Row {
        key: key.into(),
        op,
        cursor: String::new(),
        json: json.as_bytes().to_vec(),
    }
}

#[test]
fn keys_are_their_key_fields_joined_by_slash() {
    let fields = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let comment = r#"{"ticket_id":7,"id":"900000001"}"#;
    let upsert = row("7/900000001", Operation::Upsert, comment);
    assert_eq!(key_matches(&upsert, &fields(&["ticket_id", "id"])), Ok(()));
    let swapped = row("900000001/7", Operation::Upsert, comment);
    let error = key_matches(&swapped, &fields(&["ticket_id", "id"])).unwrap_err();
    assert!(error.contains("\"7/900000001\""), "{error}");
    let missing = key_matches(&upsert, &fields(&["Id"])).unwrap_err();
    assert!(missing.contains("no key field Id"), "{missing}");
    let not_json = key_matches(&row("1", Operation::Upsert, "<xml/>"), &fields(&["id"]));
    assert!(not_json.unwrap_err().contains("not JSON"));
}

#[test]
fn the_store_applies_upserts_deletes_and_merges_in_order() {
    let mut records = Records::new();
    apply(
        &mut records,
        &[
            row("1", Operation::Upsert, r#"{"id":1,"a":1,"b":1}"#),
            row("2", Operation::Upsert, r#"{"id":2}"#),
            row("1", Operation::Merge, r#"{"b":2}"#),
            // A merge never creates a record.
            row("3", Operation::Merge, r#"{"b":2}"#),
            row("2", Operation::Delete, r#"{"deleted":true}"#),
        ],
    );
    assert_eq!(records.keys().collect::<Vec<_>>(), ["1"]);
    let merged: serde_json::Value = serde_json::from_slice(&records["1"]).unwrap();
    assert_eq!(merged, serde_json::json!({"id":1,"a":1,"b":2}));
}

#[test]
fn differences_name_missing_extra_and_changed_keys() {
    let mut expected = Records::new();
    expected.insert("1".into(), b"a".to_vec());
    expected.insert("2".into(), b"b".to_vec());
    assert_eq!(difference(&expected, &expected), None);
    let mut actual = Records::new();
    actual.insert("2".into(), b"changed".to_vec());
    actual.insert("9".into(), b"x".to_vec());
    let diff = difference(&expected, &actual).unwrap();
    assert_eq!(
        diff,
        "1 missing (first: 1), 1 extra (first: 9), 1 different (first: 2)"
    );
}

#[test]
fn the_integration_file_keeps_secrets_out() {
    let ok = Integration::from_json(
        r#"{"capability":"helpdesk","values":{"base-url":"https://a.zendesk.com"},
            "grant":{"instance_url":"https://a.zendesk.com","issued_at":"1700000000000","scope":"read write"}}"#,
    )
    .unwrap();
    let grant = ok.grant();
    assert_eq!(grant.instance_url.as_deref(), Some("https://a.zendesk.com"));
    assert_eq!(grant.issued_at_ms, Some(1_700_000_000_000));
    assert_eq!(grant.scopes, ["read", "write"]);
    let secret =
        Integration::from_json(r#"{"capability":"helpdesk","grant":{"access_token":"s3cret"}}"#)
            .unwrap_err()
            .to_string();
    assert!(
        secret.contains("access_token") && !secret.contains("s3cret"),
        "{secret}"
    );
    let unknown = Integration::from_json(r#"{"capability":"x","token":"t"}"#).unwrap_err();
    assert!(unknown.to_string().contains("token"), "{unknown}");
}

#[test]
fn the_report_prints_one_line_per_check_and_junit_escapes_messages() {
    let report = Report {
        connector: "demo 1.0".into(),
        results: vec![
            CheckResult {
                check: Check::Imports,
                outcome: Outcome::Pass("fine".into()),
            },
            CheckResult {
                check: Check::KeysMatchKeyFields,
                outcome: Outcome::Fail("key \"a<b\" & more".into()),
            },
            CheckResult {
                check: Check::PreviousVersion,
                outcome: Outcome::Skip("no --previous version given".into()),
            },
        ],
    };
    let text = report.to_string();
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(text.contains("FAIL keys-match-key-fields"), "{text}");
    assert!(text.ends_with("1 passed, 1 failed, 1 skipped"), "{text}");
    assert!(!report.passed());
    assert_eq!(report.failed(), [Check::KeysMatchKeyFields]);
    let xml = to_junit(&report);
    assert!(xml.contains(r#"failures="1""#), "{xml}");
    assert!(xml.contains("key &quot;a&lt;b&quot; &amp; more"), "{xml}");
}
