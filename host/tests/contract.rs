//! The contract test: the embedded Salesforce component (`sluice:connector@0.2.0`) and the
//! Salesforce build of contract 0.1 kept as a fixture load side by side in one engine; both
//! validate settings and derive the OAuth plan, each by the rules of its contract.

use std::sync::Arc;

use sluice::engine::wit::types::{
    Configured, CredentialPlan, FieldError, Grant, HostContext, OauthPlan, RequiredFor, Session,
    Settings,
};
use sluice::engine::{CallContext, ConnectorEngine, EngineError, EngineLimits, LoadedConnector};

/// The Salesforce connector as built on contract 0.1 (before it moved to 0.2), with its
/// `sluice:manifest` section: a component nobody rebuilds, as a platform would still run.
const SALESFORCE_0_1: &[u8] = include_bytes!("../../tests/fixtures/salesforce-contract-0.1.wasm");

struct Fixture {
    engine: Arc<ConnectorEngine>,
    connectors: [LoadedConnector; 2],
}

fn fixture() -> Fixture {
    let engine = ConnectorEngine::new(EngineLimits::default()).expect("engine");
    let load = |name, wasm| engine.load(name, wasm).expect("the component loads");
    let connectors = [
        load("salesforce", sluice::SALESFORCE_COMPONENT),
        load("salesforce-0-1", SALESFORCE_0_1),
    ];
    Fixture { engine, connectors }
}

fn host() -> HostContext {
    HostContext {
        allow_insecure_loopback: false,
        contract_version: sluice::engine::wit::VERSION.into(),
    }
}

fn settings(capability: &str, environment: &str, domain: Option<&str>) -> Settings {
    let mut values = vec![
        ("environment".to_string(), environment.to_string()),
        ("pull-by".into(), "updated".into()),
    ];
    if let Some(d) = domain {
        values.push(("domain".into(), d.into()));
    }
    Settings {
        capability: capability.into(),
        values,
    }
}

fn without(mut s: Settings, name: &str) -> Settings {
    s.values.retain(|(n, _)| n != name);
    s
}

async fn configure(
    f: &Fixture,
    c: &LoadedConnector,
    s: &Settings,
) -> Result<Configured, Vec<FieldError>> {
    f.engine
        .configure(c, &CallContext::default(), s, &host())
        .await
        .expect("configure runs without trapping")
}

fn oauth(c: &Configured) -> &OauthPlan {
    match &c.credentials {
        CredentialPlan::Oauth2(plan) => plan,
        other => panic!("Salesforce asks for OAuth 2.0, not {other:?}"),
    }
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

const ACME: Option<&str> = Some("https://acme.my.salesforce.com");

#[tokio::test]
async fn both_contract_versions_load_side_by_side() {
    let f = fixture();
    let [new, old] = &f.connectors;
    assert_eq!((new.contract, old.contract), ("0.2.0", "0.1.0"));
    assert!(new.label.starts_with("salesforce@"));
    assert!(old.label.starts_with("salesforce-0-1@"));
}

#[tokio::test]
async fn without_a_domain_0_2_asks_for_one_and_0_1_uses_the_login_host() {
    let f = fixture();
    let [new, old] = &f.connectors;
    let s = settings("helpdesk", "production", None);
    let errors = configure(&f, new, &s)
        .await
        .expect_err("0.2 requires a domain");
    assert_eq!(fields(&errors), ["domain"]);
    for (environment, login) in [
        ("production", "https://login.salesforce.com"),
        ("sandbox", "https://test.salesforce.com"),
    ] {
        let s = settings("helpdesk", environment, None);
        let c = configure(&f, old, &s).await.expect("0.1 needs no domain");
        let plan = oauth(&c);
        assert_eq!(
            plan.authorize_url,
            format!("{login}/services/oauth2/authorize")
        );
        assert_eq!(plan.token_url, format!("{login}/services/oauth2/token"));
    }
}

#[tokio::test]
async fn both_versions_configure_the_same_streams_and_plan() {
    let f = fixture();
    let mut configured = Vec::new();
    for c in &f.connectors {
        let got = configure(&f, c, &settings("helpdesk", "production", ACME))
            .await
            .expect("valid settings");
        let plan = oauth(&got);
        assert_eq!(plan.scopes, vec!["api", "refresh_token"]);
        assert!(plan.pkce_required);
        let streams: Vec<&str> = got.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            streams,
            ["Case", "CaseComment", "EmailMessage", "CaseHistory"]
        );
        let history = got
            .streams
            .iter()
            .find(|s| s.name == "CaseHistory")
            .unwrap();
        assert_eq!(history.cursor_field.as_deref(), Some("CreatedDate"));
        let case = got.streams.iter().find(|s| s.name == "Case").unwrap();
        assert_eq!(case.cursor_field.as_deref(), Some("SystemModstamp"));
        assert_eq!(case.key_fields, ["Id"]);
        configured.push(got);
    }
    // The generated types have no `PartialEq`; their debug forms are complete.
    let same = |f: &dyn Fn(&Configured) -> String| f(&configured[0]) == f(&configured[1]);
    assert!(same(&|c| format!("{:?}", c.streams)));
    assert!(same(&|c| format!("{:?}", c.credentials)));
    assert_eq!(configured[0].allowed_hosts, configured[1].allowed_hosts);
}

#[tokio::test]
async fn a_my_domain_url_is_normalised_and_used_for_oauth() {
    let f = fixture();
    for c in &f.connectors {
        let s = settings(
            "helpdesk",
            "production",
            Some("acme.lightning.force.com/lightning/page/home"),
        );
        let got = configure(&f, c, &s).await.expect("valid settings");
        assert_eq!(
            oauth(&got).authorize_url,
            "https://acme.my.salesforce.com/services/oauth2/authorize"
        );
        assert!(
            got.allowed_hosts
                .iter()
                .any(|h| h == "acme.my.salesforce.com")
        );
    }
}

#[tokio::test]
async fn content_management_is_keyed_by_article_and_language() {
    let f = fixture();
    for c in &f.connectors {
        let s = without(
            settings("content-management", "production", ACME),
            "pull-by",
        );
        let got = configure(&f, c, &s).await.expect("valid settings");
        assert_eq!(got.streams.len(), 1);
        assert_eq!(
            got.streams[0].key_fields,
            ["KnowledgeArticleId", "Language"]
        );
    }
}

#[tokio::test]
async fn bad_settings_are_field_errors_naming_their_field() {
    let f = fixture();
    for c in &f.connectors {
        let cases = [
            (
                settings("helpdesk", "production", Some("not a domain at all")),
                vec!["domain"],
            ),
            (
                settings(
                    "helpdesk",
                    "production",
                    Some("http://acme.my.salesforce.com"),
                ),
                vec!["domain"],
            ),
            (
                without(settings("helpdesk", "production", ACME), "pull-by"),
                vec!["pull-by"],
            ),
            (settings("billing", "production", ACME), vec!["capability"]),
            (settings("helpdesk", "staging", ACME), vec!["environment"]),
            (
                without(settings("helpdesk", "production", ACME), "environment"),
                vec!["environment"],
            ),
        ];
        for (s, want) in cases {
            let errors = configure(&f, c, &s).await.expect_err("invalid settings");
            assert_eq!(fields(&errors), want, "{}: {s:?}", c.contract);
            assert!(!errors[0].message.is_empty());
        }
        // Every problem at once.
        let s = settings("billing", "production", Some("::::"));
        let errors = configure(&f, c, &s).await.expect_err("invalid settings");
        let got = fields(&errors);
        assert!(
            got.contains(&"capability") && got.contains(&"domain"),
            "{got:?}"
        );
    }
}

#[tokio::test]
async fn describe_declares_the_setup_flows_settings() {
    let f = fixture();
    let [new, old] = &f.connectors;
    let ctx = CallContext::default();
    let info = f.engine.describe(new, &ctx).await.unwrap();
    assert_eq!(info.name, "salesforce");
    let caps: Vec<&str> = info.capabilities.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(caps, ["helpdesk", "crm", "content-management"]);
    let required = |cap: &str| -> Vec<&str> {
        let includes = |r: &RequiredFor| match r {
            RequiredFor::None => false,
            RequiredFor::All => true,
            RequiredFor::Capabilities(names) => names.iter().any(|n| n == cap),
        };
        info.settings
            .iter()
            .filter(|s| includes(&s.required))
            .map(|s| s.name.as_str())
            .collect()
    };
    assert_eq!(required("helpdesk"), ["environment", "pull-by", "domain"]);
    assert_eq!(required("content-management"), ["environment", "domain"]);
    // A 0.1 component declares nothing: the host answers with the settings 0.1 types.
    let old_info = f.engine.describe(old, &ctx).await.unwrap();
    let names: Vec<&str> = old_info.settings.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["environment", "pull-by", "domain"]);
}

#[tokio::test]
async fn the_account_is_the_org_of_the_identity_url_in_both_versions() {
    let f = fixture();
    let session = |identity: Option<&str>| Session {
        settings: settings("helpdesk", "production", ACME),
        host: host(),
        grant: Grant {
            instance_url: ACME.map(String::from),
            fields: identity
                .map(|i| vec![("id".to_string(), i.to_string())])
                .unwrap_or_default(),
            issued_at_ms: None,
            scopes: vec![],
        },
    };
    let identity = "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA";
    for c in &f.connectors {
        let ctx = CallContext::default();
        let account = f
            .engine
            .account(c, &ctx, &session(Some(identity)))
            .await
            .unwrap()
            .expect("an org");
        assert_eq!(account.id, "00D000000000001", "{}", c.contract);
        let none = f.engine.account(c, &ctx, &session(None)).await.unwrap();
        assert!(none.is_err(), "{}: {none:?}", c.contract);
    }
    // Contract 0.1 has no schemas.
    let err = f
        .engine
        .discover(
            &f.connectors[1],
            &CallContext::default(),
            &session(Some(identity)),
        )
        .await
        .expect_err("0.1 has no discover");
    assert!(
        matches!(
            err,
            EngineError::NotInContract {
                call: "discover",
                ..
            }
        ),
        "{err}"
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

/// Both components carry their manifest, and every host their `configure` declares and every
/// OAuth endpoint of their plan lies within it.
#[tokio::test]
async fn the_components_declare_the_hosts_they_call() {
    use sluice::engine::manifest::CredentialMethod;
    use sluice::engine::outbound::OutboundPolicy;
    use sluice::engine::policy::EgressRules;
    let f = fixture();
    for c in &f.connectors {
        let manifest = c.manifest.clone();
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
        let mut cases = vec![
            ("production", ACME),
            (
                "sandbox",
                Some("https://acme--dev.sandbox.my.salesforce.com"),
            ),
            ("production", Some("https://na123.salesforce.com")),
        ];
        if c.contract == "0.1.0" {
            cases.extend([("production", None), ("sandbox", None)]);
        }
        for (environment, domain) in cases {
            let configured = configure(&f, c, &settings("crm", environment, domain))
                .await
                .expect("valid settings");
            OutboundPolicy::for_integration(rules.clone(), &configured.allowed_hosts, None)
                .unwrap_or_else(|e| panic!("{domain:?}: {e}"));
            let plan = oauth(&configured);
            for url in [&plan.authorize_url, &plan.token_url] {
                rules
                    .check_url(url)
                    .unwrap_or_else(|e| panic!("{domain:?}: {e}"));
            }
        }
    }
}
