use sluice_connector_sdk::Connector;
use sluice_connector_sdk::model::{CredentialPlan, HostContext, RequiredFor, Settings};

use crate::Zendesk;

fn context(loopback: bool) -> HostContext {
    HostContext {
        allow_insecure_loopback: loopback,
        contract_version: "0.2.0".into(),
    }
}

fn fields(settings: &Settings, loopback: bool) -> Vec<String> {
    Zendesk::configure(settings, &context(loopback))
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect()
}

#[test]
fn describe_declares_every_setting_with_label_help_group_and_order() {
    let info = Zendesk::describe();
    assert_eq!(
        (info.name.as_str(), info.title.as_str()),
        ("zendesk", "Zendesk Support")
    );
    assert_eq!(info.capabilities[0].name, "helpdesk");
    let names: Vec<&str> = info.settings.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["subdomain", "auth", "start-date", "page-size"]);
    for s in &info.settings {
        assert!(
            !s.label.is_empty() && !s.help.is_empty() && !s.group.is_empty(),
            "{s:?}"
        );
        assert!(s.order >= 1);
    }
    assert_eq!(info.settings[0].required, RequiredFor::All);
}

#[test]
fn a_subdomain_in_any_spelling_gives_exactly_its_host() {
    for raw in [
        "acme",
        "ACME",
        "acme.zendesk.com",
        "https://acme.zendesk.com",
        "https://acme.zendesk.com/",
    ] {
        let settings = Settings::new("helpdesk").with("subdomain", raw);
        let c = Zendesk::configure(&settings, &context(false)).unwrap();
        assert_eq!(c.allowed_hosts, ["acme.zendesk.com"], "{raw}");
        assert!(
            c.normalized.contains(&("subdomain".into(), "acme".into())),
            "{raw}"
        );
    }
}

#[test]
fn the_oauth_plan_uses_pkce_and_the_read_scope_on_the_account() {
    let settings = Settings::new("helpdesk").with("subdomain", "acme");
    let c = Zendesk::configure(&settings, &context(false)).unwrap();
    let CredentialPlan::OAuth2(plan) = c.credentials else {
        panic!("OAuth by default: {:?}", c.credentials)
    };
    assert_eq!(
        plan.authorize_url,
        "https://acme.zendesk.com/oauth/authorizations/new"
    );
    assert_eq!(plan.token_url, "https://acme.zendesk.com/oauth/tokens");
    assert_eq!(plan.scopes, ["read"]);
    assert!(plan.pkce_required);
    let names: Vec<&str> = c.streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["tickets", "ticket-comments", "users"]);
    assert_eq!(c.streams[1].key_fields, ["ticket_id", "id"]);
}

#[test]
fn an_api_token_is_basic_with_the_email_slash_token_label() {
    let settings = Settings::new("helpdesk")
        .with("subdomain", "acme")
        .with("auth", "api-token");
    let c = Zendesk::configure(&settings, &context(false)).unwrap();
    let CredentialPlan::Basic(plan) = c.credentials else {
        panic!("basic: {:?}", c.credentials)
    };
    assert_eq!(plan.username_label, "Email address followed by /token");
}

#[test]
fn every_bad_setting_is_named() {
    let bad = Settings::new("crm")
        .with("subdomain", "not a host!")
        .with("auth", "password")
        .with("start-date", "yesterday")
        .with("page-size", "5000")
        .with("colour", "blue");
    let mut got = fields(&bad, false);
    got.sort();
    assert_eq!(
        got,
        [
            "auth",
            "capability",
            "colour",
            "page-size",
            "start-date",
            "subdomain"
        ]
    );
    assert_eq!(fields(&Settings::new("helpdesk"), false), ["subdomain"]);
}

#[test]
fn hosts_other_than_zendesk_and_plain_http_are_refused() {
    for raw in [
        "https://evil.example.com",
        "https://acme.zendesk.com.evil.example",
        "http://acme.zendesk.com",
        "https://acme.zendesk.com:8443",
        "https://acme.zendesk.com/api",
    ] {
        let settings = Settings::new("helpdesk").with("subdomain", raw);
        assert_eq!(fields(&settings, true), ["subdomain"], "{raw}");
    }
    let loopback = Settings::new("helpdesk").with("subdomain", "http://127.0.0.1:7777");
    assert_eq!(fields(&loopback, false), ["subdomain"]);
    let c = Zendesk::configure(&loopback, &context(true)).unwrap();
    assert_eq!(c.allowed_hosts, ["127.0.0.1"]);
}

#[test]
fn configure_is_idempotent_on_its_normal_form() {
    let settings = Settings::new("helpdesk")
        .with("subdomain", "https://Acme.zendesk.com/")
        .with("start-date", "2024-02-29")
        .with("page-size", "250");
    let first = Zendesk::configure(&settings, &context(false)).unwrap();
    let mut again = Settings::new("helpdesk");
    for (k, v) in &first.normalized {
        again = again.with(k, v);
    }
    let second = Zendesk::configure(&again, &context(false)).unwrap();
    assert_eq!(first, second);
    assert!(
        first
            .normalized
            .contains(&("start-date".into(), "2024-02-29".into()))
    );
}
