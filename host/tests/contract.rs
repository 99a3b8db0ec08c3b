//! The foundation's contract test: the embedded Salesforce component loads in the real
//! wasmtime engine, targets `sluice:connector@0.1.0`, and its `configure` validates settings
//! and derives the OAuth plan.

use std::sync::Arc;

use sluice::engine::wit::types::{
    Capability, Configured, Environment, FieldError, HostContext, PullBy, Settings,
};
use sluice::engine::{CallContext, ConnectorEngine, EngineError, EngineLimits, LoadedConnector};

struct Fixture {
    engine: Arc<ConnectorEngine>,
    connector: LoadedConnector,
}

fn fixture() -> Fixture {
    let engine = ConnectorEngine::new(EngineLimits::default()).expect("engine");
    let connector = engine
        .load("salesforce", sluice::SALESFORCE_COMPONENT)
        .expect("the embedded component loads");
    Fixture { engine, connector }
}

fn host() -> HostContext {
    HostContext {
        allow_insecure_loopback: false,
        contract_version: "0.1.0".into(),
    }
}

fn settings(capability: Capability, environment: Environment, domain: Option<&str>) -> Settings {
    Settings {
        capability,
        environment,
        pull_by: Some(PullBy::UpdatedTime),
        domain: domain.map(Into::into),
        extra: vec![],
    }
}

async fn configure(f: &Fixture, s: &Settings) -> Result<Configured, Vec<FieldError>> {
    f.engine
        .configure(&f.connector, &CallContext::default(), s, &host())
        .await
        .expect("configure runs without trapping")
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

#[tokio::test]
async fn the_component_targets_contract_0_1_0() {
    let f = fixture();
    assert_eq!(f.connector.contract, "0.1.0");
    assert!(f.connector.label.starts_with("salesforce@"));
}

#[tokio::test]
async fn production_without_a_domain_uses_login_salesforce_com() {
    let f = fixture();
    let s = settings(Capability::Helpdesk, Environment::Production, None);
    let c = configure(&f, &s).await.expect("valid settings");
    assert_eq!(
        c.oauth.authorize_url,
        "https://login.salesforce.com/services/oauth2/authorize"
    );
    assert_eq!(
        c.oauth.token_url,
        "https://login.salesforce.com/services/oauth2/token"
    );
    assert_eq!(c.oauth.scopes, vec!["api", "refresh_token"]);
    assert!(c.oauth.pkce_required);
    let streams: Vec<&str> = c.streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        streams,
        ["Case", "CaseComment", "EmailMessage", "CaseHistory"]
    );
    let history = c.streams.iter().find(|s| s.name == "CaseHistory").unwrap();
    assert_eq!(history.cursor_field, "CreatedDate");
    let case = c.streams.iter().find(|s| s.name == "Case").unwrap();
    assert_eq!(case.cursor_field, "SystemModstamp");
    assert_eq!(case.key_fields, ["Id"]);
}

#[tokio::test]
async fn sandbox_without_a_domain_uses_test_salesforce_com() {
    let f = fixture();
    let s = settings(Capability::Crm, Environment::Sandbox, None);
    let c = configure(&f, &s).await.expect("valid settings");
    assert_eq!(
        c.oauth.authorize_url,
        "https://test.salesforce.com/services/oauth2/authorize"
    );
    assert_eq!(
        c.oauth.token_url,
        "https://test.salesforce.com/services/oauth2/token"
    );
}

#[tokio::test]
async fn a_my_domain_url_is_normalised_and_used_for_oauth() {
    let f = fixture();
    let s = settings(
        Capability::Helpdesk,
        Environment::Production,
        Some("acme.lightning.force.com/lightning/page/home"),
    );
    let c = configure(&f, &s).await.expect("valid settings");
    assert_eq!(
        c.oauth.authorize_url,
        "https://acme.my.salesforce.com/services/oauth2/authorize"
    );
    assert_eq!(
        c.oauth.token_url,
        "https://acme.my.salesforce.com/services/oauth2/token"
    );
    assert!(
        c.allowed_hosts
            .iter()
            .any(|h| h == "acme.my.salesforce.com")
    );
}

#[tokio::test]
async fn content_management_is_keyed_by_article_and_language() {
    let f = fixture();
    let mut s = settings(
        Capability::ContentManagement,
        Environment::Production,
        Some("https://acme.my.salesforce.com"),
    );
    s.pull_by = None;
    let c = configure(&f, &s).await.expect("valid settings");
    assert_eq!(c.streams.len(), 1);
    assert_eq!(c.streams[0].key_fields, ["KnowledgeArticleId", "Language"]);
}

#[tokio::test]
async fn a_bad_domain_is_a_field_error_on_domain() {
    let f = fixture();
    let s = settings(
        Capability::Helpdesk,
        Environment::Production,
        Some("not a domain at all"),
    );
    let errors = configure(&f, &s).await.expect_err("invalid domain");
    assert_eq!(fields(&errors), ["domain"]);
    assert!(!errors[0].message.is_empty());
}

#[tokio::test]
async fn plain_http_is_refused_without_insecure_loopback() {
    let f = fixture();
    let s = settings(
        Capability::Helpdesk,
        Environment::Production,
        Some("http://acme.my.salesforce.com"),
    );
    let errors = configure(&f, &s).await.expect_err("http is not allowed");
    assert_eq!(fields(&errors), ["domain"]);
}

#[tokio::test]
async fn a_missing_pull_by_is_a_field_error_on_pull_by() {
    let f = fixture();
    let mut s = settings(Capability::Helpdesk, Environment::Production, None);
    s.pull_by = None;
    let errors = configure(&f, &s).await.expect_err("pull-by is required");
    assert_eq!(fields(&errors), ["pull-by"]);
}

#[tokio::test]
async fn an_unknown_capability_is_a_field_error_on_capability() {
    let f = fixture();
    let s = settings(
        Capability::Other("billing".into()),
        Environment::Production,
        None,
    );
    let errors = configure(&f, &s).await.expect_err("unknown capability");
    assert_eq!(fields(&errors), ["capability"]);
    assert!(
        errors[0].message.contains("billing"),
        "{}",
        errors[0].message
    );
}

#[tokio::test]
async fn every_error_is_reported_at_once() {
    let f = fixture();
    let mut s = settings(
        Capability::Other("billing".into()),
        Environment::Production,
        Some("::::"),
    );
    s.pull_by = None;
    let errors = configure(&f, &s).await.expect_err("invalid settings");
    let mut got = fields(&errors);
    got.sort();
    assert!(
        got.contains(&"capability") && got.contains(&"domain"),
        "{got:?}"
    );
}

#[tokio::test]
async fn bytes_that_are_not_a_component_are_rejected_with_a_reason() {
    let engine = ConnectorEngine::new(EngineLimits::default()).expect("engine");
    let err = engine
        .load("junk", b"not wasm")
        .expect_err("junk is rejected");
    assert!(matches!(err, EngineError::InvalidComponent { .. }), "{err}");
    assert!(err.to_string().contains("junk@"), "{err}");
}

/// The embedded component carries its manifest, and every host its `configure` declares and
/// every OAuth endpoint of its plan lies within it.
#[tokio::test]
async fn the_embedded_component_declares_the_hosts_it_calls() {
    use sluice::engine::manifest::CredentialMethod;
    use sluice::engine::outbound::OutboundPolicy;
    use sluice::engine::policy::EgressRules;
    let f = fixture();
    let manifest = f.connector.manifest.clone();
    assert!(manifest.matches_host("acme.my.salesforce.com"));
    assert!(!manifest.matches_host("attacker.example"));
    assert_eq!(
        manifest
            .credential_methods
            .iter()
            .copied()
            .collect::<Vec<_>>(),
        [
            CredentialMethod::Get,
            CredentialMethod::Post,
            CredentialMethod::Delete
        ]
    );
    let rules = EgressRules::new(manifest, Vec::new().into(), false);
    for (environment, domain) in [
        (Environment::Production, None),
        (Environment::Sandbox, None),
        (
            Environment::Production,
            Some("https://acme.my.salesforce.com"),
        ),
        (
            Environment::Sandbox,
            Some("https://acme--dev.sandbox.my.salesforce.com"),
        ),
        (
            Environment::Production,
            Some("https://na123.salesforce.com"),
        ),
    ] {
        let configured = configure(&f, &settings(Capability::Crm, environment, domain))
            .await
            .expect("valid settings");
        OutboundPolicy::for_integration(rules.clone(), &configured.allowed_hosts, None)
            .unwrap_or_else(|e| panic!("{domain:?}: {e}"));
        for url in [&configured.oauth.authorize_url, &configured.oauth.token_url] {
            rules
                .check_url(url)
                .unwrap_or_else(|e| panic!("{domain:?}: {e}"));
        }
    }
}
