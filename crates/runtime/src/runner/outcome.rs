//! How a run and each of its streams ended, as recorded and shown.

use super::*;

/// A connector failure as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct FailureInfo {
    /// The failure kind, e.g. `rate-limited`.
    pub kind: String,
    /// The message.
    pub message: String,
    /// When a retry may succeed.
    pub retry_after_s: Option<u32>,
}

/// How one stream ended.
#[derive(Debug, Clone, Serialize)]
pub struct StreamOutcome {
    /// The stream.
    pub stream: String,
    /// How it ended.
    pub status: StreamResult,
    /// Rows committed in this run.
    pub records: u64,
    /// Pages committed in this run.
    pub pages: u32,
    /// Provider API calls made.
    pub api_calls: u64,
    /// Why it was skipped or failed.
    pub detail: Option<String>,
    /// The connector's failure, if any.
    pub failure: Option<FailureInfo>,
}

impl StreamOutcome {
    /// A stream the run has not pulled (yet).
    pub fn not_run(stream: &str) -> Self {
        Self {
            stream: stream.to_string(),
            status: StreamResult::NotRun,
            records: 0,
            pages: 0,
            api_calls: 0,
            detail: None,
            failure: None,
        }
    }
}

/// How one stream of a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamResult {
    /// Caught up.
    Complete,
    /// Not read, for the reason in the outcome's detail.
    Skipped,
    /// Stopped by a failure; what it committed is kept.
    Failed,
    /// Stopped by a shutdown; resumes from its checkpoint.
    Interrupted,
    /// The run ended before reaching it.
    NotRun,
}

impl StreamResult {
    /// The result as shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
            Self::NotRun => "not-run",
        }
    }
}

/// The overall result of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// Every stream completed (or was skipped on purpose).
    Succeeded,
    /// Some streams failed.
    Failed,
    /// Stopped by a shutdown; resumes from the checkpoints.
    Interrupted,
    /// Stopped because the API budget is spent.
    RateLimited,
    /// Stopped because the credentials are dead.
    NeedsReauthorization,
}

impl RunStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        RunState::from(self).as_str()
    }
}

impl From<RunStatus> for RunState {
    fn from(s: RunStatus) -> Self {
        match s {
            RunStatus::Succeeded => RunState::Succeeded,
            RunStatus::Failed => RunState::Failed,
            RunStatus::Interrupted => RunState::Interrupted,
            RunStatus::RateLimited => RunState::RateLimited,
            RunStatus::NeedsReauthorization => RunState::NeedsReauthorization,
        }
    }
}

/// The summary of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// The integration.
    pub integration_id: String,
    /// The connector version (label).
    pub connector_version: String,
    /// The result.
    pub status: RunStatus,
    /// Per stream.
    pub streams: Vec<StreamOutcome>,
    /// Rows committed.
    pub records: u64,
    /// Provider API calls.
    pub api_calls: u64,
    /// Wall time.
    pub elapsed_ms: u64,
    /// When rate-limited: how long to wait, if the connector knew.
    pub retry_after_s: Option<u32>,
}

/// The WIT name of a failure kind.
pub fn kind_label(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::ReauthorizationRequired => "reauthorization-required",
        FailureKind::PermissionDenied => "permission-denied",
        FailureKind::Unreachable => "unreachable",
        FailureKind::Misconfigured => "misconfigured",
        FailureKind::RateLimited => "rate-limited",
        FailureKind::Unknown => "unknown",
    }
}
