use super::*;

fn s(
    cap: Capability,
    env: Environment,
    pull_by: Option<PullBy>,
    domain: Option<&str>,
    extra: &[(&str, &str)],
) -> Settings {
    Settings {
        capability: cap,
        environment: env,
        pull_by,
        domain: domain.map(String::from),
        extra: extra
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect(),
    }
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
        (s(Helpdesk, P, UT, None, &[]), false, vec![]),
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
        Purpose::Authorize,
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
    assert_eq!(st[0].cursor_field, "SystemModstamp");
    assert_eq!(st[3].cursor_field, "CreatedDate");
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
            .all(|x| x.cursor_field == "CreatedDate" && !x.emits_deletes)
    );
    assert_eq!(n.warnings.len(), 1);
    assert_eq!(n.warnings[0].field, "pull-by");
    assert!(
        n.warnings[0]
            .message
            .contains("deletions will not be pulled")
    );

    // Without a domain the login page picks the org: valid, with a warning that says so.
    let n = validate(
        &s(Capability::Crm, P, Some(PullBy::UpdatedTime), None, &[]),
        &host(false),
        Purpose::Configure,
    )
    .unwrap();
    let fields: Vec<_> = n.warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(fields, ["domain"]);
    assert!(n.warnings[0].message.contains("My Domain"));

    let n = validate(
        &s(
            Capability::ContentManagement,
            P,
            None,
            Some("acme.my.salesforce.com"),
            &[],
        ),
        &host(false),
        Purpose::Configure,
    )
    .unwrap();
    let st = n.streams();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].name, "Knowledge");
    assert_eq!(st[0].key_fields, ["KnowledgeArticleId", "Language"]);
    assert!(st[0].emits_deletes);
}

#[test]
fn authorize_does_not_need_pull_by_or_domain() {
    assert!(
        validate(
            &s(Capability::Crm, P, None, None, &[]),
            &host(false),
            Purpose::Authorize
        )
        .is_ok()
    );
}
