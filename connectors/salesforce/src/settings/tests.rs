use super::*;

/// The capabilities as the tables name them; `Other` is one the connector does not offer.
enum Capability {
    Helpdesk,
    Crm,
    ContentManagement,
    Other(String),
}

fn s(
    cap: Capability,
    env: Environment,
    pull_by: Option<PullBy>,
    domain: Option<&str>,
    extra: &[(&str, &str)],
) -> Settings {
    let capability = match cap {
        Capability::Helpdesk => "helpdesk".to_string(),
        Capability::Crm => "crm".into(),
        Capability::ContentManagement => "content-management".into(),
        Capability::Other(name) => name,
    };
    let mut settings = Settings::new(&capability).with(
        "environment",
        match env {
            Environment::Production => "production",
            Environment::Sandbox => "sandbox",
        },
    );
    if let Some(p) = pull_by {
        let value = match p {
            PullBy::CreatedTime => "created",
            PullBy::UpdatedTime => "updated",
        };
        settings = settings.with("pull-by", value);
    }
    if let Some(d) = domain {
        settings = settings.with("domain", d);
    }
    settings
        .values
        .extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
    settings
}

fn host(loopback: bool) -> HostContext {
    HostContext {
        allow_insecure_loopback: loopback,
        contract_version: "0.1.0".into(),
    }
}

const P: Environment = Environment::Production;
const SB: Environment = Environment::Sandbox;
const UT: Option<PullBy> = Some(PullBy::UpdatedTime);

/// Settings and the fields that must be in error (empty = valid).
#[test]
fn reconcile_intervals() {
    assert_eq!(parse_minutes("30m"), Some(Some(30)));
    assert_eq!(parse_minutes("12h"), Some(Some(720)));
    assert_eq!(parse_minutes(" 7D "), Some(Some(10_080)));
    assert_eq!(parse_minutes("off"), Some(None));
    assert_eq!(parse_minutes("366d"), None);
    assert_eq!(parse_minutes("5"), None);
    assert_eq!(parse_minutes("h"), None);
    assert_eq!(format_minutes(10_080), "7d");
    assert_eq!(format_minutes(720), "12h");
    assert_eq!(format_minutes(90), "90m");
}

#[test]
fn validation_table() {
    use Capability::*;
    let d = Some("acme.my.salesforce.com");
    let cases: Vec<(Settings, bool, Vec<&str>)> = vec![
        (s(Helpdesk, P, UT, d, &[]), false, vec![]),
        (s(Crm, P, Some(PullBy::CreatedTime), d, &[]), false, vec![]),
        (s(ContentManagement, P, None, d, &[]), false, vec![]),
        (s(Helpdesk, P, None, d, &[]), false, vec!["pull-by"]),
        (s(Helpdesk, P, UT, None, &[]), false, vec!["domain"]),
        (
            s(ContentManagement, P, None, None, &[]),
            false,
            vec!["domain"],
        ),
        (
            s(Other("billing".into()), P, UT, d, &[]),
            false,
            vec!["capability"],
        ),
        (
            s(Helpdesk, P, UT, d, &[("colour", "red")]),
            false,
            vec!["colour"],
        ),
        (
            s(Helpdesk, P, UT, d, &[("start-date", "2024-01-31")]),
            false,
            vec![],
        ),
        (
            s(
                Helpdesk,
                P,
                UT,
                d,
                &[("start-date", "2024-01-31T10:00:00+02:00")],
            ),
            false,
            vec![],
        ),
        (
            s(Helpdesk, P, UT, d, &[("start-date", "31/01/2024")]),
            false,
            vec!["start-date"],
        ),
        (
            s(Helpdesk, P, UT, d, &[("start-date", "2024-01-31T10:00:00")]),
            false,
            vec!["start-date"],
        ),
        (
            s(Helpdesk, P, UT, d, &[("objects", "case, casecomment")]),
            false,
            vec![],
        ),
        (
            s(Helpdesk, P, UT, d, &[("objects", "Case,Account")]),
            false,
            vec!["objects"],
        ),
        (
            s(Helpdesk, P, UT, d, &[("objects", " , ")]),
            false,
            vec!["objects"],
        ),
        (
            s(ContentManagement, P, None, d, &[("objects", "Case")]),
            false,
            vec!["objects"],
        ),
        (
            s(Crm, P, UT, d, &[("api-budget-percent", "0")]),
            false,
            vec!["api-budget-percent"],
        ),
        (
            s(Crm, P, UT, d, &[("reconcile-every", "12h")]),
            false,
            vec![],
        ),
        (
            s(Crm, P, UT, d, &[("reconcile-every", "off")]),
            false,
            vec![],
        ),
        (
            s(Crm, P, UT, d, &[("reconcile-every", "0m")]),
            false,
            vec!["reconcile-every"],
        ),
        (
            s(Crm, P, UT, d, &[("reconcile-every", "weekly")]),
            false,
            vec!["reconcile-every"],
        ),
        (
            s(Crm, P, UT, d, &[("formula-refresh", "1d")]),
            false,
            vec![],
        ),
        (
            s(Crm, P, UT, d, &[("formula-refresh", "daily")]),
            false,
            vec!["formula-refresh"],
        ),
        (
            s(ContentManagement, P, None, d, &[("formula-refresh", "1d")]),
            false,
            vec!["formula-refresh"],
        ),
        (
            s(Crm, P, UT, d, &[("api-budget-percent", "101")]),
            false,
            vec!["api-budget-percent"],
        ),
        (
            s(Crm, P, UT, d, &[("api-budget-percent", "50%")]),
            false,
            vec![],
        ),
        (
            s(Crm, P, UT, d, &[("bulk-threshold", "many")]),
            false,
            vec!["bulk-threshold"],
        ),
        (
            s(Crm, P, UT, d, &[("bulk-chunk-records", "0")]),
            false,
            vec!["bulk-chunk-records"],
        ),
        (
            s(Crm, P, UT, d, &[("bulk-chunk-records", "100001")]),
            false,
            vec!["bulk-chunk-records"],
        ),
        (
            s(Crm, P, UT, d, &[("bulk-chunk-records", "lots")]),
            false,
            vec!["bulk-chunk-records"],
        ),
        (
            s(Crm, P, UT, d, &[("bulk-chunk-records", "25_000")]),
            false,
            vec![],
        ),
        (s(Crm, P, UT, d, &[("api-version", "v61.0")]), false, vec![]),
        (
            s(Crm, P, UT, d, &[("api-version", "40.0")]),
            false,
            vec!["api-version"],
        ),
        (
            s(Crm, P, UT, d, &[("lag-seconds", "-1")]),
            false,
            vec!["lag-seconds"],
        ),
        (
            s(Crm, P, UT, Some("http://acme.my.salesforce.com"), &[]),
            false,
            vec!["domain"],
        ),
        (
            s(Crm, P, UT, Some("http://127.0.0.1:8080"), &[]),
            false,
            vec!["domain"],
        ),
        (
            s(Crm, P, UT, Some("http://127.0.0.1:8080"), &[]),
            true,
            vec![],
        ),
        (
            s(Crm, SB, UT, Some("http://localhost:9/x"), &[]),
            true,
            vec![],
        ),
        (
            s(Crm, P, UT, Some("acme--dev.sandbox.my.salesforce.com"), &[]),
            false,
            vec!["domain"],
        ),
        (
            s(Crm, SB, UT, Some("acme.my.salesforce.com"), &[]),
            false,
            vec!["domain"],
        ),
        (
            s(Crm, P, UT, Some("test.salesforce.com"), &[]),
            false,
            vec!["domain"],
        ),
        (
            s(Crm, SB, UT, Some("login.salesforce.com"), &[]),
            false,
            vec!["domain"],
        ),
        (
            s(Crm, P, UT, Some("not a domain!!"), &[]),
            false,
            vec!["domain"],
        ),
        (
            s(Crm, P, UT, Some("ftp://acme.my.salesforce.com"), &[]),
            false,
            vec!["domain"],
        ),
        (
            s(Crm, P, UT, Some("acme.my.salesforce.com.evil.com"), &[]),
            false,
            vec!["domain"],
        ),
        (
            s(
                Other("x".into()),
                P,
                None,
                Some("not a domain!!"),
                &[("bogus", "1")],
            ),
            false,
            vec!["capability", "domain", "bogus"],
        ),
    ];
    for (i, (settings, lb, want)) in cases.into_iter().enumerate() {
        let got = validate(&settings, &host(lb), Purpose::Configure);
        let fields: Vec<String> = match &got {
            Ok(_) => vec![],
            Err(es) => es.iter().map(|e| e.field.clone()).collect(),
        };
        assert_eq!(fields, want, "case {i}: {settings:?} -> {got:?}");
        if let Err(es) = got {
            assert!(es.iter().all(|e| !e.message.is_empty()), "case {i}");
        }
    }
}

#[test]
fn error_messages_say_how_to_fix() {
    let e = validate(
        &s(
            Capability::Crm,
            P,
            UT,
            Some("acme--dev.sandbox.my.salesforce.com"),
            &[],
        ),
        &host(false),
        Purpose::Configure,
    )
    .unwrap_err();
    assert!(
        e[0].message.contains("choose the sandbox environment"),
        "{e:?}"
    );
    let e = validate(
        &s(
            Capability::Other("billing".into()),
            P,
            UT,
            Some("acme.my.salesforce.com"),
            &[],
        ),
        &host(false),
        Purpose::Configure,
    )
    .unwrap_err();
    assert!(e[0].message.contains("helpdesk, crm, content-management"));
    let e = validate(
        &s(
            Capability::Helpdesk,
            P,
            UT,
            Some("acme.my.salesforce.com"),
            &[("objects", "Lead")],
        ),
        &host(false),
        Purpose::Configure,
    )
    .unwrap_err();
    assert!(
        e[0].message
            .contains("Case, CaseComment, EmailMessage, CaseHistory"),
        "{e:?}"
    );
}

#[test]
fn domain_normalisation() {
    let cases = [
        (
            "acme.my.salesforce.com",
            P,
            "https://acme.my.salesforce.com",
        ),
        (
            "https://acme.my.salesforce.com/",
            P,
            "https://acme.my.salesforce.com",
        ),
        (
            "HTTPS://Acme.My.Salesforce.com/lightning/page/home?x=1",
            P,
            "https://acme.my.salesforce.com",
        ),
        (
            "acme.lightning.force.com",
            P,
            "https://acme.my.salesforce.com",
        ),
        (
            "https://acme.lightning.force.com/lightning/o/Case/list",
            P,
            "https://acme.my.salesforce.com",
        ),
        (
            "acme--dev.sandbox.lightning.force.com",
            SB,
            "https://acme--dev.sandbox.my.salesforce.com",
        ),
        (
            "acme--dev.sandbox.my.salesforce.com",
            SB,
            "https://acme--dev.sandbox.my.salesforce.com",
        ),
        (
            "acme.my.salesforce-setup.com",
            P,
            "https://acme.my.salesforce.com",
        ),
        (
            "acme-dev-ed.develop.lightning.force.com",
            P,
            "https://acme-dev-ed.develop.my.salesforce.com",
        ),
        (
            "  na123.salesforce.com  ",
            P,
            "https://na123.salesforce.com",
        ),
        ("cs42.salesforce.com", SB, "https://cs42.salesforce.com"),
        ("login.salesforce.com", P, "https://login.salesforce.com"),
        ("test.salesforce.com", SB, "https://test.salesforce.com"),
        ("http://127.0.0.1:8080/", P, "http://127.0.0.1:8080"),
        ("http://[::1]:9000", SB, "http://[::1]:9000"),
        ("localhost:7000", P, "https://localhost:7000"),
    ];
    for (raw, env, want) in cases {
        let d = parse_domain(raw, env, &host(true)).unwrap_or_else(|e| panic!("{raw}: {e:?}"));
        assert_eq!(d.origin(), want, "{raw}");
    }
}

fn plan(env: Environment, domain: Option<&str>) -> (OAuthPlan, Vec<String>) {
    let n = validate(
        &s(Capability::Helpdesk, env, UT, domain, &[]),
        &host(true),
        Purpose::Run,
    )
    .unwrap();
    (n.oauth_plan(), n.allowed_hosts())
}

#[test]
fn endpoints_production_sandbox_mydomain_loopback() {
    let (p, hosts) = plan(P, None);
    assert_eq!(
        p.authorize_url,
        "https://login.salesforce.com/services/oauth2/authorize"
    );
    assert_eq!(
        p.token_url,
        "https://login.salesforce.com/services/oauth2/token"
    );
    assert_eq!(
        p.revoke_url.as_deref(),
        Some("https://login.salesforce.com/services/oauth2/revoke")
    );
    assert!(!p.client_credentials_supported);
    assert_eq!(hosts, vec!["login.salesforce.com"]);
    assert_eq!(p.scopes, vec!["api", "refresh_token"]);
    assert!(p.pkce_required);

    let (p, hosts) = plan(SB, None);
    assert_eq!(
        p.token_url,
        "https://test.salesforce.com/services/oauth2/token"
    );
    assert_eq!(hosts, vec!["test.salesforce.com"]);

    let (p, hosts) = plan(P, Some("acme.lightning.force.com"));
    assert_eq!(
        p.authorize_url,
        "https://acme.my.salesforce.com/services/oauth2/authorize"
    );
    assert_eq!(
        p.token_url,
        "https://acme.my.salesforce.com/services/oauth2/token"
    );
    assert!(p.client_credentials_supported);
    assert_eq!(hosts, vec!["acme.my.salesforce.com"]);

    let (p, _) = plan(SB, Some("acme--uat.sandbox.my.salesforce.com"));
    assert_eq!(
        p.token_url,
        "https://acme--uat.sandbox.my.salesforce.com/services/oauth2/token"
    );

    let (p, hosts) = plan(P, Some("na123.salesforce.com"));
    assert_eq!(
        p.token_url,
        "https://login.salesforce.com/services/oauth2/token"
    );
    assert!(!p.client_credentials_supported);
    assert_eq!(hosts, vec!["na123.salesforce.com", "login.salesforce.com"]);

    let (p, hosts) = plan(P, Some("http://127.0.0.1:8080"));
    assert_eq!(p.token_url, "http://127.0.0.1:8080/services/oauth2/token");
    assert_eq!(hosts, vec!["127.0.0.1"]);
}

#[test]
fn streams_per_capability_and_mode() {
    let n = validate(
        &s(
            Capability::Helpdesk,
            P,
            UT,
            Some("acme.my.salesforce.com"),
            &[],
        ),
        &host(false),
        Purpose::Configure,
    )
    .unwrap();
    let st = n.streams();
    let names: Vec<_> = st.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(
        names,
        ["Case", "CaseComment", "EmailMessage", "CaseHistory"]
    );
    assert_eq!(st[0].cursor_field.as_deref(), Some("SystemModstamp"));
    assert_eq!(st[3].cursor_field.as_deref(), Some("CreatedDate"));
    assert!(st.iter().all(|x| x.emits_deletes && x.key_fields == ["Id"]));
    assert!(n.warnings.is_empty());

    let n = validate(
        &s(
            Capability::Crm,
            P,
            Some(PullBy::CreatedTime),
            Some("acme.my.salesforce.com"),
            &[],
        ),
        &host(false),
        Purpose::Configure,
    )
    .unwrap();
    assert!(
        n.streams()
            .iter()
            .all(|x| x.cursor_field.as_deref() == Some("CreatedDate") && !x.emits_deletes)
    );
    assert_eq!(n.warnings.len(), 1);
    assert_eq!(n.warnings[0].field, "pull-by");
    assert!(
        n.warnings[0]
            .message
            .contains("deletions will not be pulled")
    );

    // Without a domain the login page would pick the org: a new integration must name one.
    let errors = validate(
        &s(Capability::Crm, P, Some(PullBy::UpdatedTime), None, &[]),
        &host(false),
        Purpose::Configure,
    )
    .unwrap_err();
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["domain"]);
    assert!(errors[0].message.contains("My Domain"));
}

#[test]
fn test_and_pull_need_no_pull_by_or_domain() {
    let bare = s(Capability::Crm, P, None, None, &[]);
    assert!(validate(&bare, &host(false), Purpose::Run).is_ok());
    let errors = validate(&bare, &host(false), Purpose::Configure).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["domain", "pull-by"]);
}

/// Every field error names a setting the connector declares (or `capability`), and every
/// setting `validate` reads is declared: a form generated from `describe` can show each error
/// next to its field.
#[test]
fn every_field_error_names_a_declared_setting() {
    let info = declared::describe();
    let declared: Vec<&str> = info.settings.iter().map(|s| s.name.as_str()).collect();
    for name in EXTRA_NAMES.iter().chain(&[ENVIRONMENT, PULL_BY, DOMAIN]) {
        assert!(declared.contains(name), "{name} is read but not declared");
    }
    let bad: Vec<(&str, &str)> = vec![
        ("environment", "staging"),
        ("pull-by", "sideways"),
        ("domain", "ftp://acme.example"),
        ("start-date", "yesterday"),
        ("objects", "Case,Banana"),
        ("api-budget-percent", "250"),
        ("bulk-threshold", "many"),
        ("api-version", "v1"),
        ("lag-seconds", "-1"),
        ("overlap-seconds", "lots"),
        ("reconcile-every", "sometimes"),
        ("formula-refresh", "often"),
        ("language", "en_US"),
    ];
    for (name, value) in bad {
        let settings = Settings::new("helpdesk")
            .with("environment", "production")
            .with("pull-by", "updated")
            .with("domain", "https://acme.my.salesforce.com")
            .with(name, value);
        let errors = validate(&settings, &host(false), Purpose::Configure)
            .expect_err(&format!("{name}={value} should be refused"));
        for e in errors {
            assert!(
                e.field == "capability" || declared.contains(&e.field.as_str()),
                "{name}={value}: the error names {}, which is not declared",
                e.field
            );
        }
    }
    // Required-for is data that matches `validate`: what Content Management does not require
    // is not required of it.
    let required = |cap: &str| -> Vec<&str> {
        info.settings
            .iter()
            .filter(|s| s.required.includes(cap))
            .map(|s| s.name.as_str())
            .collect()
    };
    assert_eq!(required("helpdesk"), ["environment", "pull-by", "domain"]);
    assert_eq!(required("crm"), ["environment", "pull-by", "domain"]);
    assert_eq!(required("content-management"), ["environment", "domain"]);
    let content = Settings::new("content-management")
        .with("environment", "production")
        .with("domain", "https://acme.my.salesforce.com");
    assert!(validate(&content, &host(false), Purpose::Configure).is_ok());
}
