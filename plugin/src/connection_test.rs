//! Test Connection: one cheap probe of each thing that can be wrong.
//!
//! Probes run in order: identity (the token works), `/limits` (the API is enabled and has
//! budget), then one describe per object (each is readable; for Content Management a `__kav`
//! object exists). The first failing probe is the report's failure.

use crate::client::Sf;
use crate::describe;
use crate::errors;
use crate::http::Env;
use crate::model::{ApiUsage, Failure, FailureKind, Probe, Session, TestReport};
use crate::settings::{self, Cap, Purpose};

fn probe(name: &str, failure: Option<Failure>, detail: impl Into<String>) -> Probe {
    Probe {
        name: name.into(),
        failure,
        detail: detail.into(),
    }
}

/// Runs the connection test.
pub fn run(env: &mut dyn Env, session: &Session) -> TestReport {
    let mut report = TestReport::default();
    let n = match settings::validate(&session.settings, &session.host, Purpose::Configure) {
        Ok(n) => n,
        Err(es) => {
            let msg: Vec<String> = es
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            let f = Failure::new(FailureKind::Misconfigured, msg.join("; "));
            report.probes.push(probe("settings", Some(f.clone()), ""));
            report.failure = Some(f);
            return report;
        }
    };
    // No budget guard here: the test must report usage even when the budget is spent.
    let mut sf = Sf::new(env, &session.grant.instance_url, &n.api_version, None);

    // Identity: the token works, and who it belongs to.
    let id_url = session
        .grant
        .identity_url
        .clone()
        .unwrap_or_else(|| format!("{}/services/oauth2/userinfo", sf.base));
    let mut ident = sf.get(&id_url, &[]);
    // The identity URL answers a dead access token with 403 `Bad_OAuth_Token`, on which the
    // host does not refresh; a data call answers 401 `INVALID_SESSION_ID`, on which it does
    // (once). So probe the data API, then ask identity again with the refreshed token.
    if let Err(e) = &ident
        && e.status == 403
        && (e.code.contains("BAD_OAUTH_TOKEN") || e.message.contains("Bad_OAuth_Token"))
    {
        let url = sf.data_url("/limits");
        ident = match sf.get(&url, &[]) {
            Ok(_) => sf.get(&id_url, &[]),
            Err(e) => Err(e),
        };
    }
    match ident {
        Ok(r) => {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
            report.user = s("username")
                .or(s("preferred_username"))
                .or(s("display_name"));
            report.org = s("organization_id");
            report.probes.push(probe(
                "identity",
                None,
                format!(
                    "user {} in org {}",
                    report.user.as_deref().unwrap_or("?"),
                    report.org.as_deref().unwrap_or("?")
                ),
            ));
        }
        Err(e) => {
            let f = errors::classify(&e, None);
            report.probes.push(probe("identity", Some(f.clone()), ""));
            report.failure = Some(f);
            return report;
        }
    }

    // Limits: the API is enabled and budget remains.
    let url = sf.data_url("/limits");
    match sf.get(&url, &[]) {
        Ok(r) => {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let daily = v.get("DailyApiRequests");
            let max = daily.and_then(|d| d.get("Max")).and_then(|x| x.as_u64());
            let rem = daily
                .and_then(|d| d.get("Remaining"))
                .and_then(|x| x.as_u64());
            let usage = match (max, rem) {
                (Some(m), Some(r)) => Some(ApiUsage {
                    used: m.saturating_sub(r),
                    limit: m,
                }),
                _ => sf.usage,
            };
            report.api_usage = usage;
            let failure = usage.and_then(|u| {
                crate::limits::check(
                    &crate::limits::LimitInfo {
                        api: Some(u),
                        per_app: Vec::new(),
                    },
                    n.budget_percent,
                )
                .err()
            });
            let detail = match usage {
                Some(u) => format!("{} of {} daily API requests used", u.used, u.limit),
                None => "API enabled".into(),
            };
            report.probes.push(probe("limits", failure.clone(), detail));
            if let Some(f) = failure {
                report.failure = Some(f);
                return report;
            }
        }
        Err(e) => {
            let f = errors::classify(&e, None);
            report.probes.push(probe("limits", Some(f.clone()), ""));
            report.failure = Some(f);
            return report;
        }
    }

    // Objects: each is readable; Knowledge needs a `__kav` object.
    let mut objects: Vec<(String, String)> =
        n.objects.iter().map(|o| (o.clone(), o.clone())).collect();
    if n.cap == Cap::Content {
        let url = sf.data_url("/sobjects/");
        let kav = match sf.get(&url, &[]) {
            Ok(r) => describe::find_kav(&r.body),
            Err(e) => {
                let f = errors::classify(&e, Some("Knowledge"));
                report
                    .probes
                    .push(probe("object:Knowledge", Some(f.clone()), ""));
                report.failure = Some(f);
                return report;
            }
        };
        match kav {
            Some(k) => objects = vec![("Knowledge".into(), k)],
            None => {
                let f = Failure::new(
                    FailureKind::PermissionDenied,
                    "Knowledge: no __kav object is visible; enable Lightning Knowledge and give the \
                     user the Knowledge User license and View Articles permission",
                );
                report
                    .probes
                    .push(probe("object:Knowledge", Some(f.clone()), ""));
                report.failure = Some(f);
                return report;
            }
        }
    }
    for (stream, object) in objects {
        let name = format!("object:{stream}");
        let url = sf.data_url(&format!("/sobjects/{object}/describe/"));
        let cursor = n.cursor_field(&stream);
        match sf.get(&url, &[]) {
            Ok(r) => match describe::parse(&r.body, None) {
                Ok(d) if d.has(cursor) => report.probes.push(probe(
                    &name,
                    None,
                    format!("{object}: cursor {cursor}, {} fields", d.fields.len()),
                )),
                Ok(_) => {
                    let f = Failure::new(
                        FailureKind::Misconfigured,
                        format!("{object} has no {cursor} field visible to the user"),
                    );
                    report.probes.push(probe(&name, Some(f.clone()), ""));
                    report.failure.get_or_insert(f);
                }
                Err(e) => {
                    let f = Failure::new(FailureKind::Unknown, e);
                    report.probes.push(probe(&name, Some(f.clone()), ""));
                    report.failure.get_or_insert(f);
                }
            },
            Err(e) => {
                let f = errors::classify(&e, Some(&object));
                let stop = matches!(
                    f.kind,
                    FailureKind::ReauthorizationRequired
                        | FailureKind::Unreachable
                        | FailureKind::RateLimited
                );
                report.probes.push(probe(&name, Some(f.clone()), ""));
                report.failure.get_or_insert(f);
                if stop {
                    break;
                }
            }
        }
    }
    if report.api_usage.is_none() {
        report.api_usage = sf.usage;
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Capability, PullBy};
    use crate::testenv::{FakeEnv, resp, session};

    const IDENTITY: &str = r#"{"id":"https://login.salesforce.com/id/00D000000000001AAA/005000000000001AAA","organization_id":"00D000000000001AAA","user_id":"005000000000001AAA","username":"admin@acme.example"}"#;
    const LIMITS: &str = r#"{"DailyApiRequests":{"Max":15000,"Remaining":14980,"Dataloader Bulk":{"Max":0,"Remaining":0}}}"#;

    fn describe(name: &str, cursor: &str) -> String {
        format!(
            r#"{{"name":"{name}","fields":[{{"name":"Id","type":"id"}},{{"name":"{cursor}","type":"datetime"}}]}}"#
        )
    }

    #[test]
    fn all_probes_pass() {
        let s = session(Capability::Helpdesk, Some(PullBy::UpdatedTime), &[]);
        let mut env = FakeEnv::default();
        env.on("/id/00D", resp(200, IDENTITY))
            .on("/limits", resp(200, LIMITS));
        for o in ["Case", "CaseComment", "EmailMessage"] {
            env.on(
                &format!("/sobjects/{o}/describe/"),
                resp(200, &describe(o, "SystemModstamp")),
            );
        }
        env.on(
            "/sobjects/CaseHistory/describe/",
            resp(200, &describe("CaseHistory", "CreatedDate")),
        );
        let r = run(&mut env, &s);
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
        assert_eq!(
            r.probes[5].detail,
            "CaseHistory: cursor CreatedDate, 2 fields"
        );
    }

    #[test]
    fn failures_are_classified() {
        let s = session(Capability::Helpdesk, Some(PullBy::UpdatedTime), &[]);
        let mut env = FakeEnv::default();
        env.on(
            "/id/00D",
            resp(
                400,
                r#"{"error":"invalid_grant","error_description":"expired access/refresh token"}"#,
            ),
        );
        let r = run(&mut env, &s);
        assert_eq!(
            r.failure.unwrap().kind,
            FailureKind::ReauthorizationRequired
        );
        assert_eq!(env.requests.len(), 1);

        let mut env = FakeEnv::default();
        env.on("/id/00D", resp(200, IDENTITY)).on(
            "/limits",
            resp(403, r#"[{"message":"The REST API is not enabled for this Organization.","errorCode":"API_DISABLED_FOR_ORG"}]"#),
        );
        assert_eq!(
            run(&mut env, &s).failure.unwrap().kind,
            FailureKind::PermissionDenied
        );

        let mut env = FakeEnv::default();
        env.on("/id/00D", resp(200, IDENTITY))
            .on("/limits", resp(200, LIMITS));
        env.on(
            "/sobjects/Case/describe/",
            resp(200, &describe("Case", "SystemModstamp")),
        );
        env.on(
            "/sobjects/CaseComment/describe/",
            resp(200, &describe("CaseComment", "SystemModstamp")),
        );
        env.on(
            "/sobjects/EmailMessage/describe/",
            resp(
                404,
                r#"[{"errorCode":"NOT_FOUND","message":"The requested resource does not exist"}]"#,
            ),
        );
        env.on(
            "/sobjects/CaseHistory/describe/",
            resp(200, &describe("CaseHistory", "CreatedDate")),
        );
        let r = run(&mut env, &s);
        let f = r.failure.unwrap();
        assert_eq!(f.kind, FailureKind::PermissionDenied);
        assert!(f.message.contains("EmailMessage"), "{}", f.message);
        assert_eq!(r.probes.len(), 6);
    }

    #[test]
    fn knowledge_needs_a_kav_object() {
        let s = session(Capability::ContentManagement, None, &[]);
        let mut env = FakeEnv::default();
        env.on("/id/00D", resp(200, IDENTITY))
            .on("/limits", resp(200, LIMITS))
            .on(
                "/sobjects/",
                resp(200, r#"{"sobjects":[{"name":"Account"}]}"#),
            );
        let r = run(&mut env, &s);
        assert_eq!(r.failure.unwrap().kind, FailureKind::PermissionDenied);
        assert_eq!(r.probes.last().unwrap().name, "object:Knowledge");
    }
}
