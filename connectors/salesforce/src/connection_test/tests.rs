use super::*;
use crate::settings::{Cap, PullBy};
use crate::testenv::{FakeHost, resp, session};

const USER: &str = r#"{"attributes":{"type":"User"},"Id":"005000000000001AAA","Username":"admin@acme.example","Name":"Admin"}"#;
const USER_PATH: &str = "/sobjects/User/005000000000001AAA?fields=";
const LIMITS: &str = r#"{"DailyApiRequests":{"Max":15000,"Remaining":14980,"Dataloader Bulk":{"Max":0,"Remaining":0}}}"#;
const NOT_FOUND: &str =
    r#"[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]"#;

fn describe(name: &str, cursor: &str) -> String {
    format!(
        r#"{{"name":"{name}","fields":[{{"name":"Id","type":"id"}},{{"name":"{cursor}","type":"datetime"}}]}}"#
    )
}

/// A Helpdesk org where every probe passes, except the objects in `missing`.
fn helpdesk_env(limits: (u16, &str), missing: &[&str]) -> FakeHost {
    let mut env = FakeHost::default();
    env.on(USER_PATH, resp(200, USER))
        .on("/limits", resp(limits.0, limits.1));
    for (o, cursor) in [
        ("Case", "SystemModstamp"),
        ("CaseComment", "SystemModstamp"),
        ("EmailMessage", "SystemModstamp"),
        ("CaseHistory", "CreatedDate"),
    ] {
        let reply = if missing.contains(&o) {
            resp(404, NOT_FOUND)
        } else {
            resp(200, &describe(o, cursor))
        };
        env.on(&format!("/sobjects/{o}/describe/"), reply);
    }
    env
}

fn helpdesk() -> Session {
    session(Cap::Helpdesk, Some(PullBy::UpdatedTime), &[])
}

#[test]
fn all_probes_pass_without_the_identity_service() {
    let mut env = helpdesk_env((200, LIMITS), &[]);
    let r = run(&mut env, &helpdesk());
    assert_eq!(r.failure, None, "{r:?}");
    assert_eq!(r.user.as_deref(), Some("admin@acme.example"));
    assert_eq!(r.org.as_deref(), Some("00D000000000001AAA"));
    assert_eq!(
        r.api_usage,
        Some(ApiUsage {
            used: 20,
            limit: 15000
        })
    );
    let names: Vec<_> = r.probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "identity",
            "limits",
            "object:Case",
            "object:CaseComment",
            "object:EmailMessage",
            "object:CaseHistory"
        ]
    );
    assert!(r.probes.iter().all(|p| p.failure.is_none()));
    assert_eq!(
        r.probes[5].detail,
        "CaseHistory: cursor CreatedDate, 2 fields"
    );
    // Every call went to the instance: the login host's identity URL is never asked.
    assert!(
        env.urls()
            .iter()
            .all(|u| u.starts_with("https://acme.my.salesforce.com/services/data/")),
        "{:?}",
        env.urls()
    );
}

#[test]
fn identity_ids_come_from_the_url_path() {
    assert_eq!(
        identity_ids("https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA"),
        Some(("00D000000000001AAA".into(), "005000000000001AAA".into()))
    );
    assert_eq!(
        identity_ids("https://test.salesforce.com/id/00D000000000001/005000000000001?x=1"),
        Some(("00D000000000001".into(), "005000000000001".into()))
    );
    for bad in [
        "https://login.salesforce.com/id/005000000000001AAA/00D000000000001AAA",
        "https://login.salesforce.com/x/00D000000000001AAA/005000000000001AAA",
        "https://login.salesforce.com/id/00D0000000000/005000000000001AAA",
        "https://login.salesforce.com/id/00D000000000001AAA/005000000000001AA%",
        "",
    ] {
        assert_eq!(identity_ids(bad), None, "{bad}");
    }
}

#[test]
fn a_grant_without_identity_url_is_tested_on_the_resource_list() {
    let mut s = helpdesk();
    s.grant.fields.clear();
    let mut env = helpdesk_env((200, LIMITS), &[]);
    env.routes.remove(0);
    env.on("/services/data/v62.0/", resp(200, "{}"));
    let r = run(&mut env, &s);
    assert_eq!(r.failure, None, "{r:?}");
    assert_eq!(r.user, None);
    assert_eq!(
        r.probes[0].detail,
        "token accepted; the grant names no user"
    );
}

#[test]
fn failures_are_classified() {
    let s = helpdesk();
    let mut env = FakeHost::default();
    env.on(
        USER_PATH,
        resp(
            401,
            r#"[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]"#,
        ),
    );
    let r = run(&mut env, &s);
    assert_eq!(
        r.failure.unwrap().kind,
        FailureKind::ReauthorizationRequired
    );
    assert_eq!(env.requests.len(), 1);

    let mut env = helpdesk_env(
        (
            403,
            r#"[{"message":"The REST API is not enabled for this Organization.","errorCode":"API_DISABLED_FOR_ORG"}]"#,
        ),
        &[],
    );
    assert_eq!(
        run(&mut env, &s).failure.unwrap().kind,
        FailureKind::PermissionDenied
    );

    // A required object that is missing is the user's missing read access, named.
    let mut env = helpdesk_env((200, LIMITS), &["Case"]);
    let r = run(&mut env, &s);
    let f = r.failure.unwrap();
    assert_eq!(f.kind, FailureKind::PermissionDenied);
    assert!(f.message.contains("Case"), "{}", f.message);
    assert_eq!(r.probes.len(), 6);
}

#[test]
fn limits_without_view_setup_is_a_warning_with_usage_from_the_header() {
    let mut env = helpdesk_env(
        (
            403,
            r#"[{"message":"insufficient access rights","errorCode":"INSUFFICIENT_ACCESS"}]"#,
        ),
        &[],
    );
    let r = run(&mut env, &helpdesk());
    assert_eq!(r.failure, None, "{r:?}");
    let limits = &r.probes[1];
    assert_eq!(limits.name, "limits");
    let warning = limits.failure.as_ref().expect("a warning");
    assert_eq!(warning.kind, FailureKind::PermissionDenied);
    assert!(warning.message.contains("View Setup and Configuration"));
    // `resp` sends `Sforce-Limit-Info: api-usage=10/1000`.
    assert_eq!(
        r.api_usage,
        Some(ApiUsage {
            used: 10,
            limit: 1000
        })
    );
}

#[test]
fn an_absent_optional_object_is_a_warning() {
    let mut env = helpdesk_env((200, LIMITS), &["EmailMessage"]);
    let r = run(&mut env, &helpdesk());
    assert_eq!(r.failure, None, "{r:?}");
    let p = &r.probes[4];
    assert_eq!(p.name, "object:EmailMessage");
    assert!(p.detail.starts_with("unavailable"), "{}", p.detail);
    assert!(
        p.failure
            .as_ref()
            .unwrap()
            .message
            .contains("Email-to-Case"),
        "{p:?}"
    );
}

/// A Content Management org with Knowledge, where `UserPermissionAccess` answers
/// `permissions`.
fn knowledge_env(permissions: (u16, &str)) -> FakeHost {
    let mut env = FakeHost::default();
    env.on(USER_PATH, resp(200, USER))
        .on("/limits", resp(200, LIMITS))
        .on(
            "/sobjects/",
            resp(200, r#"{"sobjects":[{"name":"Knowledge__kav"}]}"#),
        )
        .on(
            "/sobjects/Knowledge__kav/describe/",
            resp(200, &describe("Knowledge__kav", "SystemModstamp")),
        )
        .on("UserPermissionAccess", resp(permissions.0, permissions.1));
    env
}

fn archived_probe(r: &TestReport) -> &Probe {
    let p = r.probes.last().unwrap();
    assert_eq!(p.name, "permission:ViewArchivedArticles", "{r:?}");
    p
}

fn permission_page(has: bool) -> String {
    format!(
        r#"{{"totalSize":1,"done":true,"records":[{{"attributes":{{"type":"UserPermissionAccess"}},"PermissionsViewArchivedArticles":{has}}}]}}"#
    )
}

#[test]
fn knowledge_checks_view_archived_articles_without_failing() {
    let s = session(Cap::Content, None, &[]);
    let mut env = knowledge_env((200, &permission_page(true)));
    let r = run(&mut env, &s);
    assert_eq!(r.failure, None, "{r:?}");
    assert_eq!(archived_probe(&r).failure, None, "{r:?}");
    assert!(
        env.urls().iter().any(|u| u.contains(
            "query?q=SELECT%20PermissionsViewArchivedArticles%20FROM%20UserPermissionAccess"
        )),
        "{:?}",
        env.urls()
    );

    let mut env = knowledge_env((200, &permission_page(false)));
    let r = run(&mut env, &s);
    assert_eq!(r.failure, None, "a warning, not a failure: {r:?}");
    let w = archived_probe(&r).failure.clone().expect("a warning");
    assert_eq!(w.kind, FailureKind::PermissionDenied);
    assert!(
        w.message.contains("View Archived Articles") && w.message.contains("archived"),
        "{}",
        w.message
    );

    // An org or API version without UserPermissionAccess: a warning too.
    let mut env = knowledge_env((
        400,
        r#"[{"errorCode":"INVALID_TYPE","message":"sObject type 'UserPermissionAccess' is not supported."}]"#,
    ));
    let r = run(&mut env, &s);
    assert_eq!(r.failure, None, "{r:?}");
    let w = archived_probe(&r).failure.clone().expect("a warning");
    assert!(
        w.message.contains("INVALID_TYPE") && w.message.contains("View Archived Articles"),
        "{}",
        w.message
    );
}

#[test]
fn knowledge_without_a_kav_object_is_unavailable() {
    let s = session(Cap::Content, None, &[]);
    let mut env = FakeHost::default();
    env.on(USER_PATH, resp(200, USER))
        .on("/limits", resp(200, LIMITS))
        .on(
            "/sobjects/",
            resp(200, r#"{"sobjects":[{"name":"Account"}]}"#),
        );
    let r = run(&mut env, &s);
    assert_eq!(r.failure, None, "{r:?}");
    let p = r.probes.last().unwrap();
    assert_eq!(p.name, "object:Knowledge");
    assert_eq!(
        p.failure.as_ref().unwrap().kind,
        FailureKind::PermissionDenied
    );
}
