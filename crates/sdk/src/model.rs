//! Plain-Rust mirrors of the WIT contract's types (`sluice:connector/types`).
//!
//! A connector's logic works on these types so that it compiles and unit-tests on the native
//! target and can be driven natively by benchmarks. On wasm32 the SDK converts them to and
//! from the generated WIT bindings and adds nothing else.

/// The business capability an integration provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Support cases and what hangs off them.
    Helpdesk,
    /// Accounts, contacts, leads, opportunities, users and activities.
    Crm,
    /// Published knowledge articles.
    ContentManagement,
    /// A capability this connector does not know.
    Other(String),
}

/// Which kind of org the integration connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// A production or Developer Edition org.
    Production,
    /// A sandbox org.
    Sandbox,
}

/// Which timestamp drives incremental pulls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullBy {
    /// New records only.
    CreatedTime,
    /// New and changed records, and deletions.
    UpdatedTime,
}

/// The settings of one integration, as entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The capability the integration provides.
    pub capability: Capability,
    /// Production or sandbox.
    pub environment: Environment,
    /// How incremental pulls select records.
    pub pull_by: Option<PullBy>,
    /// The domain URL as pasted.
    pub domain: Option<String>,
    /// Connector-specific name/value settings.
    pub extra: Vec<(String, String)>,
}

impl Settings {
    /// Settings for `capability` in a production org, with nothing else set.
    pub fn new(capability: Capability) -> Self {
        Self {
            capability,
            environment: Environment::Production,
            pull_by: None,
            domain: None,
            extra: Vec::new(),
        }
    }

    /// The value of the `extra` setting `name`, if set.
    pub fn extra(&self, name: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Facts about the host that change what the connector accepts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostContext {
    /// Whether plain-http loopback URLs are permitted.
    pub allow_insecure_loopback: bool,
    /// The contract version the host implements.
    pub contract_version: String,
}

/// A problem with one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The setting's name.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl FieldError {
    /// A field error for `field` with `message`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A warning about valid settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldWarning {
    /// The setting concerned.
    pub field: String,
    /// What the user should know.
    pub message: String,
}

/// The OAuth 2.0 plan the host runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthPlan {
    /// Where the user's browser is sent.
    pub authorize_url: String,
    /// Where codes and refresh tokens are redeemed.
    pub token_url: String,
    /// Where tokens are revoked.
    pub revoke_url: Option<String>,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// Whether PKCE S256 is required.
    pub pkce_required: bool,
    /// Extra authorization-request parameters.
    pub extra_authorize_params: Vec<(String, String)>,
    /// Whether the client-credentials grant works at `token_url`.
    pub client_credentials_supported: bool,
}

/// One stream the connector pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream's name, e.g. `Case`.
    pub name: String,
    /// Fields forming a record's key.
    pub key_fields: Vec<String>,
    /// The field incremental pulls follow.
    pub cursor_field: String,
    /// Whether the stream emits delete records.
    pub emits_deletes: bool,
}

/// What the host needs once settings are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    /// Hosts the connector may call.
    pub allowed_hosts: Vec<String>,
    /// The OAuth plan.
    pub oauth: OAuthPlan,
    /// Streams in pull order.
    pub streams: Vec<StreamInfo>,
    /// Warnings about valid choices.
    pub warnings: Vec<FieldWarning>,
    /// Settings in normal form.
    pub normalized: Vec<(String, String)>,
}

/// The non-secret parts of a token response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// The org's instance base URL.
    pub instance_url: String,
    /// The identity URL.
    pub identity_url: Option<String>,
    /// Issue time in ms since the epoch.
    pub issued_at_ms: Option<u64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

/// Context of a call that talks to the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The integration's settings.
    pub settings: Settings,
    /// Facts about the host.
    pub host: HostContext,
    /// Where to call.
    pub grant: Grant,
}

/// What kind of failure occurred, for the platform to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A person must log in again.
    ReauthorizationRequired,
    /// Missing permission or disabled API.
    PermissionDenied,
    /// The provider could not be reached.
    Unreachable,
    /// Settings wrong for this org.
    Misconfigured,
    /// The API budget is spent.
    RateLimited,
    /// Anything else.
    Unknown,
}

impl FailureKind {
    /// The contract's kebab-case name of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ReauthorizationRequired => "reauthorization-required",
            FailureKind::PermissionDenied => "permission-denied",
            FailureKind::Unreachable => "unreachable",
            FailureKind::Misconfigured => "misconfigured",
            FailureKind::RateLimited => "rate-limited",
            FailureKind::Unknown => "unknown",
        }
    }
}

/// A failure with a readable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The kind of failure.
    pub kind: FailureKind,
    /// What went wrong and what to do.
    pub message: String,
    /// When a retry may succeed, if known.
    pub retry_after_s: Option<u32>,
}

impl Failure {
    /// A failure of `kind` with `message` and no retry hint.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after_s: None,
        }
    }
}

/// API consumption as the provider reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiUsage {
    /// Calls used in the current period.
    pub used: u64,
    /// The period's limit.
    pub limit: u64,
}

/// One probe of a connection test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// What was probed.
    pub name: String,
    /// None when it passed.
    pub failure: Option<Failure>,
    /// What it found.
    pub detail: String,
}

/// The result of Test Connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TestReport {
    /// None when every probe passed.
    pub failure: Option<Failure>,
    /// The organisation.
    pub org: Option<String>,
    /// The user.
    pub user: Option<String>,
    /// API usage seen.
    pub api_usage: Option<ApiUsage>,
    /// Each probe in order.
    pub probes: Vec<Probe>,
}

/// What a row means for the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Insert or replace.
    Upsert,
    /// Delete (tombstone).
    Delete,
    /// Merge these fields into the live stored record.
    Merge,
}

/// One record of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Key fields joined by `/`.
    pub key: String,
    /// Upsert or delete.
    pub op: Operation,
    /// The cursor value.
    pub cursor: String,
    /// The record's JSON bytes.
    pub json: Vec<u8>,
}

/// A request for the next page of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// The stream's name.
    pub stream: String,
    /// The last committed checkpoint, or None to start over.
    pub checkpoint: Option<String>,
    /// Most records wanted in one page.
    pub max_records: u32,
}

/// How a stream stands after a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamStatus {
    /// More pages follow.
    Partial,
    /// Caught up as of the checkpoint.
    Complete,
    /// Not read, for the given reason; checkpoint unchanged.
    Skipped(String),
}

/// One bounded step of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// At most one batch of rows.
    pub rows: Vec<Row>,
    /// Where to resume after this page.
    pub checkpoint: Option<String>,
    /// How the stream stands.
    pub status: StreamStatus,
    /// Last reported API usage.
    pub api_usage: Option<ApiUsage>,
    /// Provider calls made for this page.
    pub api_calls: u32,
}

/// Log severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed.
    Trace,
    /// Diagnostic.
    Debug,
    /// Normal.
    Info,
    /// Worth attention.
    Warn,
    /// A failure.
    Error,
}
