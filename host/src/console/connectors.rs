//! The Connectors page: every installed version, which one serves and since when, installing
//! an uploaded component with the registry's verdict, and rollback to an earlier version.
//!
//! Threat: installing a connector puts new code between every integration and its provider;
//! a page that installs one is the console's most dangerous form (a forged post, an implicit
//! approval of new hosts, an oversized body).
//! Rule: uploads and activations are POSTs under the session and the CSRF check (an upload's
//! CSRF field is read before its file); the upload is capped at the admin API's component
//! limit; the component goes through the one install path the API uses (the registry's checks
//! and canary); hosts beyond the approved ones are installed only after the operator saw the
//! manifest and ticked its approval box for those exact bytes, held here, unchanged, for
//! [`PENDING_LIFETIME`]; a rollback is confirmed on its own page first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Extension, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use super::list::urlencode;
use super::page::{Shell, render, when};
use super::security::{CsrfToken, csrf_field_first};
use crate::admin::{AdminState, install_component};
use crate::engine::manifest::{Manifest, join};
use crate::engine::registry::{HostApproval, InstallReport, RegistryError, Stage};

/// How long an upload waits for the operator's approval of its hosts.
pub(crate) const PENDING_LIFETIME: Duration = Duration::from_secs(15 * 60);
/// How many uploads may wait for approval at once; the oldest goes first.
const MAX_PENDING: usize = 4;

/// Uploads whose manifest reaches beyond the approved hosts, waiting for the operator.
#[derive(Debug, Default)]
pub(crate) struct PendingUploads {
    uploads: Mutex<HashMap<String, Pending>>,
}

struct Pending {
    name: String,
    wasm: Arc<Vec<u8>>,
    made: Instant,
}

impl std::fmt::Debug for Pending {
    // The component's bytes (up to 64 MiB) stay out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("name", &self.name)
            .field("bytes", &self.wasm.len())
            .finish_non_exhaustive()
    }
}

impl PendingUploads {
    /// Keeps `wasm` for `name`; returns the id its approval form names.
    fn hold(&self, name: &str, wasm: Arc<Vec<u8>>) -> String {
        let mut uploads = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        uploads.retain(|_, p| p.made.elapsed() < PENDING_LIFETIME);
        while uploads.len() >= MAX_PENDING {
            let oldest = uploads
                .iter()
                .min_by_key(|(_, p)| p.made)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => uploads.remove(&k),
                None => break,
            };
        }
        let id = crate::secrets::random_token(32);
        let pending = Pending {
            name: name.to_string(),
            wasm,
            made: Instant::now(),
        };
        uploads.insert(id.clone(), pending);
        id
    }

    /// The upload `id` holds, taken out, if it has not expired.
    fn take(&self, id: &str) -> Option<(String, Arc<Vec<u8>>)> {
        let mut uploads = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        let pending = uploads.remove(id)?;
        (pending.made.elapsed() < PENDING_LIFETIME).then_some((pending.name, pending.wasm))
    }
}

/// One installed version as the page shows it.
pub(crate) struct VersionRow {
    version: u32,
    sha_short: String,
    sha256: String,
    installed: String,
    contract: String,
    hosts: String,
    methods: String,
    active_since: Option<String>,
}

/// One connector with its versions, newest first.
pub(crate) struct ConnectorGroup {
    name: String,
    title: Option<String>,
    versions: Vec<VersionRow>,
}

#[derive(Template)]
#[template(path = "connectors.html")]
struct ConnectorsPage {
    shell: Shell,
    groups: Vec<ConnectorGroup>,
    notice: Option<String>,
}

/// The query of the page: what was just activated.
#[derive(serde::Deserialize, Default)]
pub(crate) struct ConnectorsQuery {
    activated: Option<String>,
    version: Option<u32>,
}

/// `GET /connectors`.
pub(crate) async fn page(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Query(q): Query<ConnectorsQuery>,
) -> Response {
    let notice = match (q.activated, q.version) {
        (Some(name), Some(version)) => Some(format!(
            "{name} version {version} is active: it serves from the next page on. A pull \
             running now finishes its current page on the version that started it."
        )),
        _ => None,
    };
    render(&ConnectorsPage {
        shell: Shell::new("Connectors", csrf),
        groups: groups(&s).await,
        notice,
    })
}

/// The installed connectors, each with its versions newest first.
async fn groups(s: &AdminState) -> Vec<ConnectorGroup> {
    let registry = s.app.registry();
    let mut groups: Vec<ConnectorGroup> = Vec::new();
    for row in crate::views::connector_rows(&s.app).await {
        let manifest = registry.manifest(&row.name, row.version);
        let version = VersionRow {
            version: row.version,
            sha_short: row.sha256.chars().take(12).collect(),
            installed: when(row.installed_at_ms),
            contract: row.contract,
            hosts: manifest.as_deref().map(hosts_of).unwrap_or_default(),
            methods: manifest
                .as_deref()
                .map(|m| join(&m.credential_methods))
                .unwrap_or_default(),
            active_since: row.active.then(|| row.active_since_ms.map(when)).flatten(),
            sha256: row.sha256,
        };
        match groups.iter_mut().find(|g| g.name == row.name) {
            Some(g) => {
                g.title = g.title.take().or(row.title);
                g.versions.insert(0, version);
            }
            None => groups.push(ConnectorGroup {
                name: row.name,
                title: row.title,
                versions: vec![version],
            }),
        }
    }
    groups
}

/// A manifest's hosts in words.
fn hosts_of(m: &Manifest) -> String {
    if m.hosts.is_empty() {
        "no host".into()
    } else {
        join(&m.hosts)
    }
}

/// The checks the registry runs at install, in their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Name,
    Component,
    Contract,
    Hosts,
    CanaryConfigure,
    CanaryTest,
    CanaryPull,
}

impl Check {
    const ALL: [Check; 7] = [
        Check::Name,
        Check::Component,
        Check::Contract,
        Check::Hosts,
        Check::CanaryConfigure,
        Check::CanaryTest,
        Check::CanaryPull,
    ];

    fn label(self) -> &'static str {
        match self {
            Check::Name => "Connector name",
            Check::Component => "A valid WASI 0.2 component",
            Check::Contract => "A contract this host supports, linking against the host",
            Check::Hosts => "Hosts and credentialed methods approved",
            Check::CanaryConfigure => "Canary: configure of each integration",
            Check::CanaryTest => "Canary: test of each connected integration",
            Check::CanaryPull => "Canary: one page of each connected integration",
        }
    }

    /// The check the registry's rejection `stage` names.
    fn of(stage: Stage) -> Check {
        match stage {
            Stage::Component => Check::Component,
            Stage::Contract => Check::Contract,
            Stage::CanaryConfigure => Check::CanaryConfigure,
            Stage::CanaryTest => Check::CanaryTest,
            Stage::CanaryPull => Check::CanaryPull,
        }
    }
}

/// How one check went.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Passed(String),
    Failed(String),
    NeedsApproval(String),
    NotRun,
}

/// One check as the verdict shows it.
pub(crate) struct CheckRow {
    id: &'static str,
    label: &'static str,
    state: &'static str,
    class: &'static str,
    detail: String,
}

impl CheckRow {
    fn of(check: Check, outcome: Outcome) -> Self {
        let (state, class, detail) = match outcome {
            Outcome::Passed(d) => ("passed", "ok", d),
            Outcome::Failed(d) => ("failed", "bad", d),
            Outcome::NeedsApproval(d) => ("needs your approval", "warn", d),
            Outcome::NotRun => ("not run", "warn", String::new()),
        };
        let id = match check {
            Check::Name => "check-name",
            Check::Component => "check-component",
            Check::Contract => "check-contract",
            Check::Hosts => "check-hosts",
            Check::CanaryConfigure => "check-canary-configure",
            Check::CanaryTest => "check-canary-test",
            Check::CanaryPull => "check-canary-pull",
        };
        Self {
            id,
            label: check.label(),
            state,
            class,
            detail,
        }
    }
}

/// The verdict of one install.
fn verdict(result: &Result<InstallReport, RegistryError>) -> Vec<CheckRow> {
    Check::ALL
        .iter()
        .map(|&check| CheckRow::of(check, outcome(check, result)))
        .collect()
}

/// How `check` went in `result`.
fn outcome(check: Check, result: &Result<InstallReport, RegistryError>) -> Outcome {
    let canary = |n: usize, what: &str| match n {
        0 => Outcome::Passed("no integration to run it for".into()),
        1 => Outcome::Passed(format!("{what} 1 integration")),
        n => Outcome::Passed(format!("{what} {n} integrations")),
    };
    match result {
        Ok(r) => match check {
            Check::Name => Outcome::Passed(r.name.clone()),
            Check::Component => Outcome::Passed(format!("sha256 {}", r.sha256)),
            Check::Contract => Outcome::Passed(String::new()),
            Check::Hosts => Outcome::Passed(format!("may reach {}", r.manifest)),
            Check::CanaryConfigure => canary(r.canary_configured, "configured"),
            Check::CanaryTest => canary(r.canary_tested, "tested"),
            Check::CanaryPull => canary(r.canary_pulled, "pulled a page for"),
        },
        Err(RegistryError::InvalidName(_)) if check == Check::Name => {
            Outcome::Failed(error_text(result))
        }
        Err(RegistryError::Rejected {
            stage,
            integration,
            reason,
            ..
        }) => {
            let failed = Check::of(*stage);
            if check == failed {
                Outcome::Failed(match integration {
                    Some(i) => format!("integration {i}: {reason}"),
                    None => reason.clone(),
                })
            } else if before(check, failed) {
                Outcome::Passed(String::new())
            } else {
                Outcome::NotRun
            }
        }
        Err(RegistryError::NotApproved {
            widening, approved, ..
        }) => match check {
            Check::Hosts => Outcome::NeedsApproval(format!(
                "it asks for {widening}, beyond what is approved for this connector \
                 ({approved})"
            )),
            c if before(c, Check::Hosts) => Outcome::Passed(String::new()),
            _ => Outcome::NotRun,
        },
        Err(_) => Outcome::NotRun,
    }
}

/// Whether `a` runs before `b`. The registry checks hosts after the contract and before the
/// canary.
fn before(a: Check, b: Check) -> bool {
    let at = |c| Check::ALL.iter().position(|x| *x == c).unwrap_or(0);
    at(a) < at(b)
}

fn error_text(result: &Result<InstallReport, RegistryError>) -> String {
    result
        .as_ref()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

/// What the operator is asked to approve.
pub(crate) struct Approval {
    pending: String,
    hosts: String,
    methods: String,
}

#[derive(Template)]
#[template(path = "connector_verdict.html")]
struct VerdictPage {
    shell: Shell,
    name: String,
    installed: bool,
    headline: String,
    checks: Vec<CheckRow>,
    approval: Option<Approval>,
}

/// `POST /connectors/upload` (multipart: `csrf` first, then `name` and `component`).
pub(crate) async fn upload(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    mut form: Multipart,
) -> Response {
    if let Err(refused) = csrf_field_first(&mut form, &csrf).await {
        return refused;
    }
    let (name, wasm) = match read_upload(&mut form).await {
        Ok(parts) => parts,
        Err(resp) => return resp,
    };
    let wasm = Arc::new(wasm);
    let result = install_component(&s.app, &name, &wasm, HostApproval::Covered).await;
    // The registry read the manifest to refuse it, so it parses; were it not to, nothing is
    // offered for approval rather than a manifest shown wrong.
    let approval = match &result {
        Err(RegistryError::NotApproved { .. }) => {
            Manifest::of_component(&wasm).ok().map(|manifest| Approval {
                pending: s.console.uploads.hold(&name, wasm.clone()),
                hosts: hosts_of(&manifest),
                methods: join(&manifest.credential_methods),
            })
        }
        _ => None,
    };
    verdict_page(csrf, &name, &result, approval)
}

/// The connector's name and the component's bytes of an upload whose CSRF field was read.
async fn read_upload(form: &mut Multipart) -> Result<(String, Vec<u8>), Response> {
    let unreadable = |e: axum::extract::multipart::MultipartError| {
        (
            e.status(),
            format!("the upload could not be read: {}", e.body_text()),
        )
            .into_response()
    };
    let (mut name, mut wasm) = (None, None);
    while let Some(field) = form.next_field().await.map_err(unreadable)? {
        match field.name() {
            Some("name") => name = Some(field.text().await.map_err(unreadable)?),
            Some("component") => wasm = Some(field.bytes().await.map_err(unreadable)?.to_vec()),
            _ => {}
        }
    }
    let name = name.map(|n| n.trim().to_string()).unwrap_or_default();
    match wasm {
        Some(w) if !w.is_empty() => Ok((name, w)),
        _ => Err((
            StatusCode::BAD_REQUEST,
            "choose a component file (.wasm) to upload",
        )
            .into_response()),
    }
}

/// The form approving a held upload's hosts.
#[derive(serde::Deserialize)]
pub(crate) struct ApproveForm {
    pending: String,
    #[serde(default)]
    approve: Option<String>,
}

/// `POST /connectors/approve`: installs a held upload, its manifest approved by the box.
pub(crate) async fn approve(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    axum::Form(form): axum::Form<ApproveForm>,
) -> Response {
    if form.approve.as_deref() != Some("yes") {
        return (
            StatusCode::BAD_REQUEST,
            "nothing was installed: tick the box approving the hosts, or upload again",
        )
            .into_response();
    }
    let Some((name, wasm)) = s.console.uploads.take(&form.pending) else {
        return (
            StatusCode::GONE,
            "that upload is no longer held (it was installed, replaced by newer uploads or \
             waited over 15 minutes): upload the component again",
        )
            .into_response();
    };
    let result = install_component(&s.app, &name, &wasm, HostApproval::Approved).await;
    verdict_page(csrf, &name, &result, None)
}

/// The verdict of installing `name`.
fn verdict_page(
    csrf: CsrfToken,
    name: &str,
    result: &Result<InstallReport, RegistryError>,
    approval: Option<Approval>,
) -> Response {
    let headline = match result {
        Ok(r) if r.existing => format!(
            "Installed: these bytes were already {name} version {}, which is active now.",
            r.version
        ),
        Ok(r) => format!("Installed: {name} version {} is active now.", r.version),
        Err(RegistryError::NotApproved { .. }) => format!(
            "Not installed yet: this component for {name} reaches hosts or methods not \
             approved. Nothing changed. Review them below."
        ),
        // The reason is long (a trap carries its backtrace): the failed check shows it.
        Err(RegistryError::Rejected { stage, .. }) => format!(
            "Refused: nothing changed. It failed the {stage} check; the checks below say why."
        ),
        Err(e) => format!("Refused: nothing changed. {e}"),
    };
    let status = match result {
        Ok(_) => StatusCode::CREATED,
        Err(RegistryError::NotApproved { .. }) => StatusCode::OK,
        Err(RegistryError::Store(_) | RegistryError::Io(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        Err(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let page = VerdictPage {
        shell: Shell::new(&format!("Install {name}"), csrf),
        name: name.to_string(),
        installed: result.is_ok(),
        headline,
        checks: verdict(result),
        approval,
    };
    (status, render(&page)).into_response()
}

#[derive(Template)]
#[template(path = "connector_activate.html")]
struct ActivatePage {
    shell: Shell,
    name: String,
    version: u32,
    active: Option<u32>,
}

/// The version a rollback names.
#[derive(serde::Deserialize)]
pub(crate) struct VersionForm {
    version: u32,
}

/// `GET /connectors/{name}/activate?version=N`: asks to confirm; changes nothing.
pub(crate) async fn confirm_activate(
    State(s): State<AdminState>,
    Extension(csrf): Extension<CsrfToken>,
    Path(name): Path<String>,
    Query(q): Query<VersionForm>,
) -> Response {
    let versions = s.app.registry().list(Some(&name));
    if !versions.iter().any(|v| v.record.version == q.version) {
        return (
            StatusCode::NOT_FOUND,
            format!("{name} has no version {}", q.version),
        )
            .into_response();
    }
    let active = versions.iter().find(|v| v.active).map(|v| v.record.version);
    render(&ActivatePage {
        shell: Shell::new(&format!("Activate {name} version {}", q.version), csrf),
        name,
        version: q.version,
        active,
    })
}

/// `POST /connectors/{name}/activate`: makes `version` serve from the next page on.
pub(crate) async fn activate(
    State(s): State<AdminState>,
    Path(name): Path<String>,
    axum::Form(form): axum::Form<VersionForm>,
) -> Response {
    match s.app.registry().activate(&name, form.version) {
        Ok(()) => Redirect::to(&format!(
            "/connectors?activated={}&version={}",
            urlencode(&name),
            form.version
        ))
        .into_response(),
        Err(e @ (RegistryError::UnknownConnector(_) | RegistryError::UnknownVersion { .. })) => {
            (StatusCode::NOT_FOUND, e.to_string()).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Sluice could not activate it: {e}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(stage: Stage) -> Result<InstallReport, RegistryError> {
        Err(RegistryError::Rejected {
            connector: "x".into(),
            sha256: "ab".into(),
            stage,
            integration: Some("i1".into()),
            reason: "it trapped".into(),
        })
    }

    #[test]
    fn a_rejection_fails_its_check_passes_the_earlier_ones_and_runs_no_later_one() {
        let result = rejected(Stage::CanaryTest);
        let states: Vec<Outcome> = Check::ALL.iter().map(|&c| outcome(c, &result)).collect();
        assert_eq!(states[0], Outcome::Passed(String::new()));
        assert_eq!(states[3], Outcome::Passed(String::new()), "hosts");
        assert_eq!(states[4], Outcome::Passed(String::new()), "configure");
        assert_eq!(
            states[5],
            Outcome::Failed("integration i1: it trapped".into())
        );
        assert_eq!(states[6], Outcome::NotRun);
        let early = rejected(Stage::Component);
        assert!(matches!(
            outcome(Check::Component, &early),
            Outcome::Failed(_)
        ));
        assert_eq!(outcome(Check::Hosts, &early), Outcome::NotRun);
    }

    #[test]
    fn an_invalid_name_fails_the_name_check_only() {
        let result = Err(RegistryError::InvalidName("Bad Name".into()));
        assert!(matches!(outcome(Check::Name, &result), Outcome::Failed(_)));
        assert_eq!(outcome(Check::Component, &result), Outcome::NotRun);
    }
}
