//! Test Connection: one cheap probe of each thing that can be wrong.
//!
//! Probes run in order: identity (the token works on the instance, and whose it is),
//! `/limits` (the API is enabled and has budget), then one describe per object (each is
//! readable; for Content Management a `__kav` object exists). The first failing probe is the
//! report's failure.
//!
//! Nothing here calls the identity service: on real orgs the grant's identity URL is on the
//! login host (outside the hosts the connector may reach) and needs the `id` scope, which the
//! connector does not ask for. The org and user ids come from that URL's path, and the user
//! is read through the REST API on the instance, which the `api` scope allows.
//!
//! A probe can fail without failing the test: a warning. `/limits` refused for lack of "View
//! Setup and Configuration" (usage then comes from `Sforce-Limit-Info`), and an optional
//! object the org does not have (EmailMessage, Knowledge), which pulls skip, are warnings.
//! So is a Knowledge user without "View Archived Articles" (read from the user's own
//! `UserPermissionAccess`, which needs no setup permission): archived versions are then
//! invisible, and an article archived in Salesforce leaves the destination only at the next
//! reconciliation instead of the next pull.

use crate::client::Sf;
use crate::describe;
use crate::errors::{self, SfError};
use crate::settings::{self, Cap, Normalized, Purpose};
use crate::soql;
use sluice_connector_sdk::http::Host;
use sluice_connector_sdk::model::{ApiUsage, Failure, FailureKind, Probe, Session, TestReport};

fn probe(name: &str, failure: Option<Failure>, detail: impl Into<String>) -> Probe {
    Probe {
        name: name.into(),
        failure,
        detail: detail.into(),
    }
}

/// Records a failing probe as the report's failure.
fn fail(report: &mut TestReport, name: &str, f: Failure) {
    report.probes.push(probe(name, Some(f.clone()), ""));
    report.failure.get_or_insert(f);
}

/// Runs the connection test.
pub fn run(env: &mut dyn Host, session: &Session) -> TestReport {
    let mut report = TestReport::default();
    let n = match settings::validate(&session.settings, &session.host, Purpose::Run) {
        Ok(n) => n,
        Err(es) => {
            let msg: Vec<String> = es
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            fail(
                &mut report,
                "settings",
                Failure::new(FailureKind::Misconfigured, msg.join("; ")),
            );
            return report;
        }
    };
    // No budget guard here: the test must report usage even when the budget is spent.
    let instance = match crate::client::instance_url(session) {
        Ok(url) => url,
        Err(f) => {
            fail(&mut report, "grant", f);
            return report;
        }
    };
    let mut sf = Sf::new(env, instance, &n.api_version, None);
    if identity(&mut sf, session, &mut report).is_err() || limits(&mut sf, &n, &mut report).is_err()
    {
        return report;
    }
    objects(&mut sf, &n, &mut report);
    if report.api_usage.is_none() {
        report.api_usage = sf.usage;
    }
    report
}

/// The token-response field that holds the identity URL.
pub const IDENTITY_FIELD: &str = "id";

/// The org and user ids of an identity URL (`…/id/{orgId}/{userId}`), checked for shape.
pub fn identity_ids(url: &str) -> Option<(String, String)> {
    let path = url.split(['?', '#']).next()?;
    let mut parts = path.trim_end_matches('/').rsplit('/');
    let user = parts.next()?;
    let org = parts.next()?;
    let id_like = |s: &str, prefix: &str| {
        s.starts_with(prefix)
            && matches!(s.len(), 15 | 18)
            && s.bytes().all(|b| b.is_ascii_alphanumeric())
    };
    (parts.next() == Some("id") && id_like(org, "00D") && id_like(user, "005"))
        .then(|| (org.to_string(), user.to_string()))
}

/// Identity: the token works on the instance (a data call, so the host refreshes a dead
/// access token), and who it belongs to.
fn identity(sf: &mut Sf, session: &Session, report: &mut TestReport) -> Result<(), ()> {
    let ids = session.grant.field(IDENTITY_FIELD).and_then(identity_ids);
    let Some((org, user)) = ids else {
        // No user to read: the resource list proves the token and the API.
        let url = sf.data_url("/");
        return match sf.get(&url, &[]) {
            Ok(_) => {
                report.probes.push(probe(
                    "identity",
                    None,
                    "token accepted; the grant names no user",
                ));
                Ok(())
            }
            Err(e) => {
                fail(report, "identity", errors::classify(&e, None));
                Err(())
            }
        };
    };
    let url = sf.data_url(&format!("/sobjects/User/{user}?fields=Id,Username,Name"));
    match sf.get(&url, &[]) {
        Ok(r) => {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
            report.user = s("Username").or(s("Name")).or(Some(user.clone()));
            report.org = Some(org.clone());
            report.probes.push(probe(
                "identity",
                None,
                format!(
                    "user {} in org {org}",
                    report.user.as_deref().unwrap_or(&user)
                ),
            ));
            Ok(())
        }
        Err(e) => {
            fail(report, "identity", errors::classify(&e, Some("User")));
            Err(())
        }
    }
}

/// Whether `/limits` was refused only for lack of "View Setup and Configuration": a 403
/// that is neither the API being off nor the daily limit.
fn limits_not_permitted(e: &SfError) -> bool {
    e.status == 403
        && e.preset.is_none()
        && !matches!(
            e.code.as_str(),
            "API_DISABLED_FOR_ORG" | "API_CURRENTLY_DISABLED" | "REQUEST_LIMIT_EXCEEDED"
        )
}

/// Limits: the API is enabled and budget remains.
fn limits(sf: &mut Sf, n: &Normalized, report: &mut TestReport) -> Result<(), ()> {
    let url = sf.data_url("/limits");
    let (usage, warning) = match sf.get(&url, &[]) {
        Ok(r) => {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let daily = v.get("DailyApiRequests");
            let field = |k: &str| daily.and_then(|d| d.get(k)).and_then(|x| x.as_u64());
            let usage = match (field("Max"), field("Remaining")) {
                (Some(m), Some(r)) => Some(ApiUsage {
                    used: m.saturating_sub(r),
                    limit: m,
                }),
                _ => sf.usage,
            };
            (usage, None)
        }
        Err(e) if limits_not_permitted(&e) => {
            let warning = Failure::new(
                FailureKind::PermissionDenied,
                format!(
                    "the user cannot read /limits ({}: {}): it needs \"View Setup and \
                     Configuration\"; pulls work without it, and API usage is taken from the \
                     Sforce-Limit-Info header instead",
                    e.code, e.message
                ),
            );
            (sf.usage, Some(warning))
        }
        Err(e) => {
            fail(report, "limits", errors::classify(&e, None));
            return Err(());
        }
    };
    report.api_usage = usage;
    let over_budget = usage.and_then(|u| {
        crate::limits::check(
            &crate::limits::LimitInfo {
                api: Some(u),
                per_app: Vec::new(),
            },
            n.budget_percent,
        )
        .err()
    });
    if let Some(f) = over_budget {
        fail(report, "limits", f);
        return Err(());
    }
    let detail = match usage {
        Some(u) => format!("{} of {} daily API requests used", u.used, u.limit),
        None => "API enabled".into(),
    };
    report.probes.push(probe("limits", warning, detail));
    Ok(())
}

/// Objects: each is readable; Knowledge needs a `__kav` object. An optional object the org
/// does not have is a warning, as its stream is skipped.
fn objects(sf: &mut Sf, n: &Normalized, report: &mut TestReport) {
    let mut objects: Vec<(String, String)> =
        n.objects.iter().map(|o| (o.clone(), o.clone())).collect();
    if n.cap == Cap::Content {
        let url = sf.data_url("/sobjects/");
        match sf.get(&url, &[]).map(|r| describe::find_kav(&r.body)) {
            Ok(Some(k)) => objects = vec![("Knowledge".into(), k)],
            Ok(None) => {
                let warning = Failure::new(
                    FailureKind::PermissionDenied,
                    "Knowledge is unavailable: no __kav object is visible; enable Lightning \
                     Knowledge and give the user the Knowledge User license and View Articles \
                     permission. The stream is skipped until then",
                );
                report.probes.push(probe(
                    "object:Knowledge",
                    Some(warning),
                    "unavailable: the stream is skipped",
                ));
                return;
            }
            Err(e) => {
                fail(
                    report,
                    "object:Knowledge",
                    errors::classify(&e, Some("Knowledge")),
                );
                return;
            }
        }
    }
    for (stream, object) in objects {
        if !object_probe(sf, n, report, &stream, &object) {
            break;
        }
    }
    if n.cap == Cap::Content && report.failure.is_none() {
        archived_articles(sf, report);
    }
}

/// The probe reading the user's "View Archived Articles" permission.
const ARCHIVED_PROBE: &str = "permission:ViewArchivedArticles";

/// What a user without "View Archived Articles" loses, and how to fix it.
const ARCHIVED_CONSEQUENCE: &str = "archived Knowledge article versions are not visible, so an \
    article archived in Salesforce is not removed from the destination by the next pull, only \
    by the periodic reconciliation (setting reconcile-every); grant \"View Archived \
    Articles\" to the integration user in its profile or a permission set";

/// Whether the user has "View Archived Articles", from its own session's
/// `UserPermissionAccess` row. Every outcome but `true` is a warning, never a failure: pulls
/// still read the published versions.
fn archived_articles(sf: &mut Sf, report: &mut TestReport) {
    let query = "SELECT PermissionsViewArchivedArticles FROM UserPermissionAccess";
    let url = soql::query_url(&sf.base, &sf.version, false, query);
    let warning = match sf.get(&url, &[]) {
        Ok(r) => match permission_of(&r.body, "PermissionsViewArchivedArticles") {
            Some(true) => {
                report.probes.push(probe(
                    ARCHIVED_PROBE,
                    None,
                    "the user has \"View Archived Articles\": archived versions are visible",
                ));
                return;
            }
            Some(false) => Failure::new(
                FailureKind::PermissionDenied,
                format!("the user lacks \"View Archived Articles\": {ARCHIVED_CONSEQUENCE}"),
            ),
            None => Failure::new(
                FailureKind::Unknown,
                format!(
                    "UserPermissionAccess did not say whether the user has \"View Archived \
                     Articles\"; without it, {ARCHIVED_CONSEQUENCE}"
                ),
            ),
        },
        Err(e) => {
            let kind = errors::classify(&e, Some("UserPermissionAccess")).kind;
            let code = if e.code.is_empty() {
                format!("HTTP {}", e.status)
            } else {
                e.code.clone()
            };
            Failure::new(
                kind,
                format!(
                    "could not check \"View Archived Articles\" ({code}: {}; \
                     UserPermissionAccess needs API version 41.0 or later); without it, \
                     {ARCHIVED_CONSEQUENCE}",
                    e.message
                ),
            )
        }
    };
    report.probes.push(probe(
        ARCHIVED_PROBE,
        Some(warning),
        "archived article versions may not be visible",
    ));
}

/// The checkbox `field` of the first record of a query page, if it is there.
fn permission_of(body: &[u8], field: &str) -> Option<bool> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("records")?.get(0)?.get(field)?.as_bool()
}

/// Describes one object; false when the failure ends the test (nothing else can work).
fn object_probe(
    sf: &mut Sf,
    n: &Normalized,
    report: &mut TestReport,
    stream: &str,
    object: &str,
) -> bool {
    let name = format!("object:{stream}");
    let url = sf.data_url(&format!("/sobjects/{object}/describe/"));
    let cursor = n.cursor_field(stream);
    match sf.get(&url, &[]) {
        Ok(r) => match describe::parse(&r.body, None) {
            Ok(d) if d.has(cursor) => report.probes.push(probe(
                &name,
                None,
                format!("{object}: cursor {cursor}, {} fields", d.fields.len()),
            )),
            Ok(_) => fail(
                report,
                &name,
                Failure::new(
                    FailureKind::Misconfigured,
                    format!("{object} has no {cursor} field visible to the user"),
                ),
            ),
            Err(e) => fail(report, &name, Failure::new(FailureKind::Unknown, e)),
        },
        Err(e) if describe::is_missing(&e) && describe::is_optional(object) => {
            let warning = Failure::new(
                FailureKind::PermissionDenied,
                format!(
                    "{object} is unavailable: {}, or the user cannot read it. The stream is \
                     skipped until it is available",
                    describe::optional_reason(object)
                ),
            );
            report.probes.push(probe(
                &name,
                Some(warning),
                "unavailable: the stream is skipped",
            ));
        }
        Err(e) => {
            let f = errors::classify(&e, Some(object));
            let stop = matches!(
                f.kind,
                FailureKind::ReauthorizationRequired
                    | FailureKind::Unreachable
                    | FailureKind::RateLimited
            );
            fail(report, &name, f);
            return !stop;
        }
    }
    true
}

#[cfg(test)]
mod tests;
