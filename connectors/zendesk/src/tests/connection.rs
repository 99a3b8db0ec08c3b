use serde_json::json;
use sluice_connector_sdk::Connector;
use sluice_connector_sdk::model::FailureKind;

use super::{answer, host_at, ok, session};
use crate::Zendesk;

#[test]
fn the_account_is_the_instance_and_names_the_user() {
    let mut host = host_at(0);
    host.on(
        "/api/v2/users/me.json",
        ok(json!({"user": {"id": 360000001, "email": "admin@x.example"}})),
    );
    let account = Zendesk::account(&mut host, &session(&[])).unwrap();
    assert_eq!(account.id, "127.0.0.1");
    assert_eq!(account.label, "127.0.0.1 (admin@x.example)");
}

#[test]
fn an_anonymous_users_me_is_reauthorization() {
    let mut host = host_at(0);
    host.on(
        "/api/v2/users/me.json",
        ok(json!({"user": {"id": null, "email": null}})),
    );
    let e = Zendesk::account(&mut host, &session(&[])).unwrap_err();
    assert_eq!(e.kind, FailureKind::ReauthorizationRequired);
}

#[test]
fn test_connection_probes_identity_tickets_and_users() {
    let mut host = host_at(0);
    host.on(
        "/api/v2/users/me.json",
        ok(json!({"user": {"id": 1, "email": "a@b.example"}})),
    );
    host.on(
        "/api/v2/tickets.json?page[size]=1",
        ok(json!({"tickets": [{"id": 1}]})),
    );
    host.on(
        "/api/v2/users.json?page[size]=1",
        answer(403, &[], json!({"error": "Forbidden", "description": "You are missing the following required scopes: read"})),
    );
    let report = Zendesk::test(&mut host, &session(&[]));
    let names: Vec<&str> = report.probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["identity", "tickets", "users"]);
    assert!(report.probes[1].failure.is_none());
    assert_eq!(report.failure.unwrap().kind, FailureKind::PermissionDenied);
    assert_eq!(report.user.as_deref(), Some("a@b.example"));
}

#[test]
fn discover_gives_a_schema_per_stream_with_its_keys() {
    let mut host = host_at(0);
    let schemas = Zendesk::discover(&mut host, &session(&[])).unwrap();
    let names: Vec<&str> = schemas.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["tickets", "ticket-comments", "users"]);
    for s in &schemas {
        let schema: serde_json::Value = serde_json::from_str(&s.json_schema).unwrap();
        for key in &s.key_fields {
            assert!(
                schema["properties"][key].is_object(),
                "{} lacks {key}",
                s.name
            );
            assert!(schema["required"].as_array().unwrap().contains(&json!(key)));
        }
    }
    assert!(host.requests.is_empty());
}
