//! What the CLI's `--json` and the admin API show, built once for both.

use std::sync::Arc;

use crate::app::{App, AppError, FieldIssue};
use crate::engine::wit::types::{Failure, TestReport};
use crate::runner::kind_label;
use crate::store::{
    Change, CheckpointState, FeedPage, Integration, RunRecord, StoredRecord, StreamCount,
    TokenHealth,
};

/// One row of `integration list`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ListRow {
    /// The integration.
    #[serde(flatten)]
    pub integration: Integration,
    /// Its latest run.
    pub last_run: Option<crate::store::RunRecord>,
    /// Its token health.
    pub token: Option<crate::store::TokenHealth>,
    /// The kind of credentials it holds (never their value); none before the first connect.
    pub credentials: Option<crate::store::CredentialKind>,
}

/// The rows of `integration list`, newest first.
pub fn list_rows(app: &Arc<App>) -> Result<Vec<ListRow>, AppError> {
    let mut rows = Vec::new();
    for integration in app.store.integrations()? {
        let last_run = app.runs(&integration.id, 1)?.into_iter().next();
        let token = app.store.token_health(&integration.id)?;
        let credentials = app.store.credential_kind(&integration.id)?;
        rows.push(ListRow {
            integration,
            last_run,
            token,
            credentials,
        });
    }
    Ok(rows)
}

/// One installed version of a connector, as `connector list` shows it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ConnectorRow {
    /// The connector's name.
    pub name: String,
    /// Its version number.
    pub version: u32,
    /// The sha256 of the component.
    pub sha256: String,
    /// The WIT contract it implements.
    pub contract: String,
    /// Whether this version serves its integrations.
    pub active: bool,
    /// When it was installed (ms since the epoch).
    pub installed_at_ms: i64,
    /// Since when it serves, when active.
    pub active_since_ms: Option<i64>,
    /// What a person calls it, from its `describe` (active versions only).
    pub title: Option<String>,
    /// The capabilities it offers, from its `describe` (active versions only).
    pub capabilities: Vec<String>,
}

/// Every installed version of every connector, with what the active ones declare. A
/// connector whose `describe` fails is still listed, without a declaration (logged).
pub async fn connector_rows(app: &Arc<App>) -> Vec<ConnectorRow> {
    let mut rows = Vec::new();
    for v in app.registry.list(None) {
        let declared = match v.active {
            true => match app.describe(&v.record.name).await {
                Ok(info) => Some(info),
                Err(e) => {
                    tracing::warn!(connector = %v.record.name, error = %e, "describe failed; listed without its declaration");
                    None
                }
            },
            false => None,
        };
        rows.push(ConnectorRow {
            installed_at_ms: crate::store::to_ms(v.record.installed_at),
            active_since_ms: v.active_since.map(crate::store::to_ms),
            title: declared.as_ref().map(|d| d.title.clone()),
            capabilities: declared
                .map(|d| d.capabilities.into_iter().map(|c| c.name).collect())
                .unwrap_or_default(),
            name: v.record.name,
            version: v.record.version,
            sha256: v.record.sha256,
            contract: v.record.contract,
            active: v.active,
        });
    }
    rows
}

/// A connector failure as the CLI's `--json` and the admin API show it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct FailureView {
    /// The failure kind, e.g. `permission-denied`.
    pub kind: &'static str,
    /// What went wrong and what to do.
    pub message: String,
    /// Seconds after which a retry may succeed, when the connector knows.
    pub retry_after_s: Option<u32>,
}

impl From<&Failure> for FailureView {
    fn from(f: &Failure) -> Self {
        Self {
            kind: kind_label(f.kind),
            message: f.message.clone(),
            retry_after_s: f.retry_after_s,
        }
    }
}

/// API usage as the provider reported it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct UsageView {
    /// Calls used in the provider's period.
    pub used: u64,
    /// The period's limit.
    pub limit: u64,
}

/// One probe of Test Connection.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ProbeView {
    /// What was probed.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// What it found.
    pub detail: String,
    /// Why it failed; a failed probe in a passing report is a warning.
    pub failure: Option<FailureView>,
}

/// The result of Test Connection.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TestView {
    /// Whether the connection works.
    pub ok: bool,
    /// The failure the platform should act on.
    pub failure: Option<FailureView>,
    /// The organisation.
    pub org: Option<String>,
    /// The user the credentials belong to.
    pub user: Option<String>,
    /// API usage seen during the test.
    pub api_usage: Option<UsageView>,
    /// Each probe, in the order run.
    pub probes: Vec<ProbeView>,
}

impl From<&TestReport> for TestView {
    fn from(r: &TestReport) -> Self {
        Self {
            ok: r.failure.is_none(),
            failure: r.failure.as_ref().map(FailureView::from),
            org: r.org.clone(),
            user: r.user.clone(),
            api_usage: r.api_usage.map(|u| UsageView {
                used: u.used,
                limit: u.limit,
            }),
            probes: r
                .probes
                .iter()
                .map(|p| ProbeView {
                    name: p.name.clone(),
                    ok: p.failure.is_none(),
                    detail: p.detail.clone(),
                    failure: p.failure.as_ref().map(FailureView::from),
                })
                .collect(),
        }
    }
}

/// One stream's checkpoint.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CheckpointView {
    /// The stream.
    pub stream: String,
    /// The connector's checkpoint (opaque).
    pub checkpoint: Option<String>,
    /// How the stream stood after its last page.
    pub status: CheckpointState,
}

/// An integration with everything `integration show` and `GET /api/integrations/{id}` show.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct IntegrationView {
    /// The stored integration.
    pub integration: Integration,
    /// Warnings from `configure`.
    pub warnings: Vec<FieldIssue>,
    /// The settings in normal form.
    #[schema(value_type = Vec<SettingPair>)]
    pub normalized: Vec<(String, String)>,
    /// The streams it pulls.
    pub streams: Vec<String>,
    /// The latest runs, newest first.
    pub runs: Vec<RunRecord>,
    /// Each stream's checkpoint.
    pub checkpoints: Vec<CheckpointView>,
    /// Stored records per stream.
    pub records: Vec<StreamCount>,
    /// The token's health; none before the first connect.
    pub token: Option<TokenHealth>,
    /// The kind of credentials it holds (never their value); none before the first connect.
    pub credentials: Option<crate::store::CredentialKind>,
}

/// A setting as a `[name, value]` pair, the way the views show settings in normal form.
#[derive(utoipa::ToSchema)]
#[schema(as = SettingPair)]
#[allow(dead_code)]
pub struct SettingPair(String, String);

/// Runs `integration show` and the API's show list.
pub const SHOWN_RUNS: usize = 5;

/// The integration `id` as shown.
pub async fn integration_view(app: &Arc<App>, id: &str) -> Result<IntegrationView, AppError> {
    let v = app.show_integration(id).await?;
    let checkpoints = app
        .store
        .checkpoints(id)?
        .into_iter()
        .map(|(stream, checkpoint, status)| CheckpointView {
            stream,
            checkpoint,
            status,
        })
        .collect();
    Ok(IntegrationView {
        runs: app.runs(id, SHOWN_RUNS)?,
        checkpoints,
        records: app.store.record_counts(id)?,
        token: app.store.token_health(id)?,
        credentials: app.store.credential_kind(id)?,
        integration: v.integration,
        warnings: v.warnings,
        normalized: v.normalized,
        streams: v.streams,
    })
}

/// One stored record, as `records` exports it and the API lists it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RecordView {
    /// Its stream.
    pub stream: String,
    /// Its key within the stream.
    pub key: String,
    /// Its version, bumped by every change.
    pub version: i64,
    /// Whether it is a tombstone.
    pub deleted: bool,
    /// Its cursor value.
    pub cursor: String,
    /// The record as the connector gave it; bytes that are not JSON are shown as their text,
    /// so an export never drops what was stored.
    pub record: serde_json::Value,
    /// The change-feed sequence number of its latest change.
    pub seq: i64,
}

/// Stored JSON as a value; bytes that are not JSON become their text.
pub fn stored_json(json: &[u8]) -> serde_json::Value {
    serde_json::from_slice(json)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(json).into_owned()))
}

impl From<StoredRecord> for RecordView {
    fn from(r: StoredRecord) -> Self {
        Self {
            record: stored_json(&r.json),
            stream: r.stream,
            key: r.key,
            version: r.version,
            deleted: r.deleted,
            cursor: r.cursor,
            seq: r.seq,
        }
    }
}

/// What a change did to its record.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// The record's first version.
    Insert,
    /// A later version of the record (a tombstone brought back included).
    Update,
    /// The record was deleted: `record` is what the delete row carried.
    Delete,
}

/// One change of the feed, as `changes` prints it and the API lists it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ChangeView {
    /// Its sequence number; as text, the cursor that resumes after it.
    pub seq: i64,
    /// Its stream.
    pub stream: String,
    /// Its record's key within the stream.
    pub key: String,
    /// What it did.
    pub op: ChangeOp,
    /// The record's version after it.
    pub version: i64,
    /// The record's cursor value.
    pub cursor: String,
    /// The record as the provider sent it (merged fields applied); bytes that are not JSON are
    /// shown as their text.
    pub record: serde_json::Value,
    /// The run that committed it.
    pub run_id: Option<String>,
    /// When its page was committed (ms since the epoch).
    pub committed_at_ms: i64,
}

impl From<Change> for ChangeView {
    fn from(c: Change) -> Self {
        let r = c.record;
        let op = match (r.deleted, r.version) {
            (true, _) => ChangeOp::Delete,
            (false, 1) => ChangeOp::Insert,
            (false, _) => ChangeOp::Update,
        };
        Self {
            seq: c.seq,
            record: stored_json(&r.json),
            stream: r.stream,
            key: r.key,
            op,
            version: r.version,
            cursor: r.cursor,
            run_id: c.run_id,
            committed_at_ms: c.committed_at_ms,
        }
    }
}

/// A page of the change feed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ChangesView {
    /// The changes after the cursor, oldest first; each key at most once.
    pub changes: Vec<ChangeView>,
    /// The cursor to ask with next (`after`): the last change's, or the feed's head when
    /// nothing is left.
    pub next_cursor: String,
    /// Whether more changes are waiting after `next_cursor` already.
    pub more: bool,
}

impl From<FeedPage> for ChangesView {
    fn from(p: FeedPage) -> Self {
        Self {
            changes: p.changes.into_iter().map(ChangeView::from).collect(),
            next_cursor: p.next.to_string(),
            more: p.more,
        }
    }
}
