//! Plain-Rust mirrors of the WIT contract's types (`sluice:connector/types`).
//!
//! A connector's logic works on these types so that it compiles and unit-tests on the native
//! target and can be driven natively by benchmarks. On wasm32 the SDK converts them to and
//! from the generated WIT bindings and adds nothing else.

/// The settings of one integration, as entered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// The capability the integration provides: one of the connector's capability names.
    pub capability: String,
    /// The other settings as name/value pairs.
    pub values: Vec<(String, String)>,
}

impl Settings {
    /// Settings for `capability`, with nothing else set.
    pub fn new(capability: &str) -> Self {
        Self {
            capability: capability.into(),
            values: Vec::new(),
        }
    }

    /// These settings with `name` set to `value` (replacing an earlier value).
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.values.retain(|(n, _)| n != name);
        self.values.push((name.into(), value.into()));
        self
    }

    /// The value of setting `name`, if set and not empty.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// A capability a connector offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityInfo {
    /// The name integrations use, e.g. `helpdesk`.
    pub name: String,
    /// What a person sees, e.g. `Helpdesk`.
    pub label: String,
}

/// One option of a choice setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChoiceOption {
    /// The stored value.
    pub value: String,
    /// What a person sees.
    pub label: String,
}

/// What kind of value a setting holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingKind {
    /// Free text.
    Text,
    /// A URL.
    Url,
    /// One of the options.
    Choice(Vec<ChoiceOption>),
    /// `true` or `false`.
    Boolean,
    /// A whole number.
    Integer,
    /// A duration such as `15m`.
    Duration,
    /// A date, `YYYY-MM-DD`.
    Date,
    /// A secret the host keeps; the connector never receives it.
    Secret,
}

/// Which capabilities require a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequiredFor {
    /// None: the setting is optional.
    None,
    /// Every capability.
    All,
    /// The named capabilities.
    Capabilities(Vec<String>),
}

impl RequiredFor {
    /// Whether a setting with this rule is required for `capability`.
    pub fn includes(&self, capability: &str) -> bool {
        match self {
            Self::None => false,
            Self::All => true,
            Self::Capabilities(names) => names.iter().any(|n| n == capability),
        }
    }
}

/// One setting a connector takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// Its name in settings and field errors.
    pub name: String,
    /// What a person sees.
    pub label: String,
    /// One or two sentences of help.
    pub help: String,
    /// The kind of value.
    pub kind: SettingKind,
    /// Which capabilities require it.
    pub required: RequiredFor,
    /// The value in effect when it is not given.
    pub default: Option<String>,
    /// Its form group, e.g. `basic`, `authentication` or `advanced`.
    pub group: String,
    /// Its position within the group.
    pub order: u32,
}

/// The kinds of credentials a connector can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// OAuth 2.0 authorization code with PKCE.
    OAuth2AuthorizationCode,
    /// OAuth 2.0 client credentials.
    OAuth2ClientCredentials,
    /// An API key in a header.
    ApiKey,
    /// HTTP basic.
    Basic,
    /// No credentials.
    None,
}

/// What a platform needs to show a connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorInfo {
    /// Its name, e.g. `zendesk`.
    pub name: String,
    /// What a person sees.
    pub title: String,
    /// Its own version.
    pub version: String,
    /// One paragraph.
    pub description: String,
    /// Where its documentation lives.
    pub documentation_url: Option<String>,
    /// The capabilities it offers.
    pub capabilities: Vec<CapabilityInfo>,
    /// The settings it takes.
    pub settings: Vec<Setting>,
    /// The kinds of credentials it can use.
    pub credential_kinds: Vec<CredentialKind>,
}

/// The account a grant belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    /// A stable id, never a secret.
    pub id: String,
    /// What a person sees.
    pub label: String,
}

/// A stream as `discover` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSchema {
    /// The stream's name.
    pub name: String,
    /// A JSON Schema of its records, as JSON text.
    pub json_schema: String,
    /// Fields forming a record's key.
    pub key_fields: Vec<String>,
    /// The field incremental pulls follow.
    pub cursor_field: Option<String>,
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

/// An API key the host sends in a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyPlan {
    /// The header, e.g. `Authorization`.
    pub header: String,
    /// Text before the key, e.g. `Bearer `.
    pub prefix: String,
    /// What the form calls the key.
    pub label: String,
    /// Where the user finds it.
    pub help: String,
}

/// HTTP basic credentials the host sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicPlan {
    /// What the form calls the user name.
    pub username_label: String,
    /// What the form calls the password.
    pub password_label: String,
    /// Where the user finds them.
    pub help: String,
}

/// How the host obtains and sends credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialPlan {
    /// OAuth 2.0, sent as a bearer token.
    OAuth2(OAuthPlan),
    /// A key in a header.
    ApiKey(ApiKeyPlan),
    /// HTTP basic.
    Basic(BasicPlan),
    /// No credentials.
    None,
}

/// One stream the connector pulls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    /// The stream's name, e.g. `Case`.
    pub name: String,
    /// Fields forming a record's key.
    pub key_fields: Vec<String>,
    /// The field incremental pulls follow, if any.
    pub cursor_field: Option<String>,
    /// Whether the stream emits delete records.
    pub emits_deletes: bool,
}

/// What the host needs once settings are valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    /// Hosts the connector may call.
    pub allowed_hosts: Vec<String>,
    /// How the host obtains and sends credentials.
    pub credentials: CredentialPlan,
    /// Streams in pull order.
    pub streams: Vec<StreamInfo>,
    /// Warnings about valid choices.
    pub warnings: Vec<FieldWarning>,
    /// Settings in normal form.
    pub normalized: Vec<(String, String)>,
}

/// The non-secret facts of the credentials.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Grant {
    /// The account's instance base URL, when the provider names one.
    pub instance_url: Option<String>,
    /// Other non-secret token-response fields.
    pub fields: Vec<(String, String)>,
    /// Issue time in ms since the epoch.
    pub issued_at_ms: Option<u64>,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

impl Grant {
    /// The value of the token-response field `name`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
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
