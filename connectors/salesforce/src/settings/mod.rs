//! Validation and normalisation of an integration's settings, and what follows from them:
//! the OAuth plan, the allowed hosts and the streams.
//!
//! Every call (configure, authorize, test, pull) re-validates the settings from scratch, since
//! the connector keeps no state between calls.

pub mod declared;
mod domain;

pub use domain::{Domain, DomainKind, login_origin, parse_domain};

use crate::dt;
use declared::{DOMAIN, ENVIRONMENT, PULL_BY};
use sluice_connector_sdk::model::{
    FieldError, FieldWarning, HostContext, OAuthPlan, Settings, StreamInfo,
};

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

/// The default API version.
pub const DEFAULT_API_VERSION: &str = "62.0";
/// The default share of the daily API limit a pull may use, in percent.
pub const DEFAULT_BUDGET_PERCENT: u8 = 80;
/// The default backfill size above which Bulk API 2.0 is used.
pub const DEFAULT_BULK_THRESHOLD: u64 = 50_000;
/// The default number of rows asked of Bulk API 2.0 per results chunk (one API call each).
pub const DEFAULT_BULK_CHUNK_RECORDS: u32 = 50_000;
/// The most rows a results chunk may ask for: a chunk is one page, held whole in the
/// connector's memory and then the host's.
pub const MAX_BULK_CHUNK_RECORDS: u32 = 100_000;
/// The default lag behind server time, in seconds, for the window's upper bound.
pub const DEFAULT_LAG_SECONDS: u32 = 60;
/// The default overlap re-read below the last window's bound, in seconds.
pub const DEFAULT_OVERLAP_SECONDS: u32 = 300;
/// The default time between two Id reconciliations of a stream (a week), in minutes.
pub const DEFAULT_RECONCILE_MINUTES: u32 = 7 * 24 * 60;
/// The stream name of Content Management (the `__kav` object is found at pull time).
pub const KNOWLEDGE_STREAM: &str = "Knowledge";

const HELPDESK_OBJECTS: &[&str] = &["Case", "CaseComment", "EmailMessage", "CaseHistory"];
const CRM_OBJECTS: &[&str] = &["Account", "Contact", "Lead", "Opportunity", "User", "Task"];
const EXTRA_NAMES: &[&str] = &[
    "start-date",
    "objects",
    "api-budget-percent",
    "bulk-threshold",
    "bulk-chunk-records",
    "api-version",
    "lag-seconds",
    "overlap-seconds",
    "reconcile-every",
    "formula-refresh",
    "language",
];

/// A supported capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    /// Case and friends.
    Helpdesk,
    /// Accounts, contacts and so on.
    Crm,
    /// Published knowledge articles.
    Content,
}

impl Cap {
    /// The contract's name of the capability.
    pub fn as_str(self) -> &'static str {
        match self {
            Cap::Helpdesk => "helpdesk",
            Cap::Crm => "crm",
            Cap::Content => "content-management",
        }
    }
}

/// Validated settings in normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The capability.
    pub cap: Cap,
    /// Production or sandbox.
    pub environment: Environment,
    /// The pull mode (Content Management always pulls by update time).
    pub pull_by: PullBy,
    /// The domain, if given.
    pub domain: Option<Domain>,
    /// Earliest cursor value to pull, UTC millis; None = all history.
    pub start_millis: Option<i64>,
    /// The objects to pull, in pull order (Content: `Knowledge`).
    pub objects: Vec<String>,
    /// Share of the daily API limit a pull may use.
    pub budget_percent: u8,
    /// Backfills larger than this use Bulk 2.0; 0 disables Bulk.
    pub bulk_threshold: u64,
    /// Rows per Bulk API 2.0 results chunk (`maxRecords`), each delivered as one page.
    pub bulk_chunk_records: u32,
    /// API version, e.g. `62.0`.
    pub api_version: String,
    /// Lag behind server time for the window's upper bound, seconds.
    pub lag_seconds: u32,
    /// Overlap re-read below the last bound, seconds.
    pub overlap_seconds: u32,
    /// Minutes between Id reconciliations that find hard deletes the delete log no longer
    /// holds; None turns them off.
    pub reconcile_minutes: Option<u32>,
    /// Minutes between refreshes of formula fields, whose values change without moving the
    /// record's cursor; None (the default) turns them off.
    pub formula_refresh_minutes: Option<u32>,
    /// Knowledge language filter (Content only).
    pub language: Option<String>,
    /// Warnings to show.
    pub warnings: Vec<FieldWarning>,
}

impl Normalized {
    /// The cursor field of `object` in this mode.
    pub fn cursor_field(&self, object: &str) -> &'static str {
        if self.pull_by == PullBy::CreatedTime || object == "CaseHistory" {
            "CreatedDate"
        } else {
            "SystemModstamp"
        }
    }

    /// Whether `object` emits delete rows in this mode.
    pub fn emits_deletes(&self, object: &str) -> bool {
        // Users are deactivated, never deleted; created-time mode pulls new records only.
        self.pull_by == PullBy::UpdatedTime && object != "User"
    }

    /// The streams in pull order.
    pub fn streams(&self) -> Vec<StreamInfo> {
        self.objects
            .iter()
            .map(|o| StreamInfo {
                name: o.clone(),
                key_fields: if self.cap == Cap::Content {
                    vec!["KnowledgeArticleId".into(), "Language".into()]
                } else {
                    vec!["Id".into()]
                },
                cursor_field: Some(self.cursor_field(o).into()),
                emits_deletes: self.emits_deletes(o),
            })
            .collect()
    }

    /// The OAuth plan: My Domain endpoints when known, else the login host of the environment.
    pub fn oauth_plan(&self) -> OAuthPlan {
        let origin = self.oauth_origin();
        let cc = self.domain.as_ref().is_some_and(Domain::serves_oauth);
        OAuthPlan {
            authorize_url: format!("{origin}/services/oauth2/authorize"),
            token_url: format!("{origin}/services/oauth2/token"),
            revoke_url: Some(format!("{origin}/services/oauth2/revoke")),
            scopes: vec!["api".into(), "refresh_token".into()],
            pkce_required: true,
            extra_authorize_params: Vec::new(),
            client_credentials_supported: cc,
        }
    }

    fn oauth_origin(&self) -> String {
        match &self.domain {
            Some(d) if d.serves_oauth() => d.origin(),
            _ => login_origin(self.environment).to_string(),
        }
    }

    /// Hosts the connector may call: the domain's host and the OAuth host.
    pub fn allowed_hosts(&self) -> Vec<String> {
        let mut hosts = Vec::new();
        if let Some(d) = &self.domain {
            hosts.push(
                d.host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            );
        }
        if !self.domain.as_ref().is_some_and(Domain::serves_oauth) {
            let login = login_origin(self.environment).trim_start_matches("https://");
            if !hosts.iter().any(|h| h == login) {
                hosts.push(login.to_string());
            }
        }
        hosts
    }

    /// The settings in effect as name/value pairs: each a declared setting with a value
    /// `configure` accepts again (the capability travels beside them, and an unset start date
    /// is left out, as it was given), so configuring them changes nothing.
    pub fn normalized_pairs(&self) -> Vec<(String, String)> {
        let mut v = vec![
            (
                "environment".into(),
                match self.environment {
                    Environment::Production => "production".into(),
                    Environment::Sandbox => "sandbox".into(),
                },
            ),
            (
                "pull-by".into(),
                match self.pull_by {
                    PullBy::CreatedTime => "created-time".into(),
                    PullBy::UpdatedTime => "updated-time".into(),
                },
            ),
        ];
        if let Some(d) = &self.domain {
            v.push(("domain".into(), d.origin()));
        }
        if let Some(start) = self.start_millis {
            v.push(("start-date".into(), dt::format_soql(start)));
        }
        if self.cap != Cap::Content {
            v.push(("objects".into(), self.objects.join(",")));
        }
        v.push(("api-budget-percent".into(), self.budget_percent.to_string()));
        v.push(("bulk-threshold".into(), self.bulk_threshold.to_string()));
        v.push((
            "bulk-chunk-records".into(),
            self.bulk_chunk_records.to_string(),
        ));
        v.push(("api-version".into(), self.api_version.clone()));
        v.push(("lag-seconds".into(), self.lag_seconds.to_string()));
        v.push(("overlap-seconds".into(), self.overlap_seconds.to_string()));
        v.push((
            "reconcile-every".into(),
            self.reconcile_minutes
                .map_or_else(|| "off".into(), format_minutes),
        ));
        if self.cap != Cap::Content {
            v.push((
                "formula-refresh".into(),
                self.formula_refresh_minutes
                    .map_or_else(|| "off".into(), format_minutes),
            ));
        }
        if let Some(l) = &self.language {
            v.push(("language".into(), l.clone()));
        }
        v
    }
}

/// Parses `30m`, `12h`, `7d` or `off` (None inside Some) into minutes.
fn parse_minutes(value: &str) -> Option<Option<u32>> {
    let v = value.trim().to_ascii_lowercase();
    if v == "off" || v == "never" {
        return Some(None);
    }
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit())?);
    let n: u32 = num.parse().ok()?;
    let minutes = match unit.trim() {
        "m" | "min" | "minutes" => n,
        "h" | "hours" => n.checked_mul(60)?,
        "d" | "days" => n.checked_mul(24 * 60)?,
        _ => return None,
    };
    (1..=365 * 24 * 60)
        .contains(&minutes)
        .then_some(Some(minutes))
}

/// Writes minutes in the largest whole unit: `7d`, `12h`, `30m`.
fn format_minutes(m: u32) -> String {
    if m.is_multiple_of(24 * 60) {
        format!("{}d", m / (24 * 60))
    } else if m.is_multiple_of(60) {
        format!("{}h", m / 60)
    } else {
        format!("{m}m")
    }
}

/// What a validation is for: `configure` checks settings fully, with warnings; `test` and `pull`
/// need only what they use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Full validation, with warnings.
    Configure,
    /// What `test` and `pull` need: the host ran `configure` on the same settings first, so
    /// its requirements are not checked twice and no warning is repeated.
    Run,
}

/// Validates and normalises settings; all problems are reported at once.
pub fn validate(
    settings: &Settings,
    host: &HostContext,
    purpose: Purpose,
) -> Result<Normalized, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();

    let cap = match settings.capability.as_str() {
        "helpdesk" => Some(Cap::Helpdesk),
        "crm" => Some(Cap::Crm),
        "content-management" => Some(Cap::Content),
        other => {
            errors.push(FieldError::new(
                "capability",
                format!(
                    "the Salesforce connector does not support the capability `{other}`; \
                     supported: helpdesk, crm, content-management"
                ),
            ));
            None
        }
    };
    let environment = match settings.value(ENVIRONMENT).map(str::trim) {
        Some("production") => Environment::Production,
        Some("sandbox") => Environment::Sandbox,
        given => {
            let message = match given {
                Some(other) => {
                    format!("`{other}` is not an environment: use production or sandbox")
                }
                None => "required: production or sandbox".into(),
            };
            errors.push(FieldError::new(ENVIRONMENT, message));
            Environment::Production
        }
    };
    let given_pull_by = match settings.value(PULL_BY).map(str::trim) {
        None => None,
        Some("created" | "created-time") => Some(PullBy::CreatedTime),
        Some("updated" | "updated-time") => Some(PullBy::UpdatedTime),
        Some(other) => {
            errors.push(FieldError::new(
                PULL_BY,
                format!("`{other}` is not a pull-by: use created or updated"),
            ));
            Some(PullBy::UpdatedTime)
        }
    };

    let domain = match settings.value(DOMAIN).map(str::trim) {
        // Without a My Domain the login page signs in to whatever org the browser is logged
        // into, so `configure` requires one. `test` and `pull` need none: the token response's
        // `instance_url` says where the data lives.
        None | Some("") => {
            if purpose == Purpose::Configure {
                errors.push(FieldError::new(
                    DOMAIN,
                    "required: the org's My Domain URL (Setup → My Domain, e.g. \
                     https://acme.my.salesforce.com), so that Connect signs in to this org and \
                     not to whichever org the browser is logged into",
                ));
            }
            None
        }
        Some(raw) => match parse_domain(raw, environment, host) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.push(e);
                None
            }
        },
    };

    let pull_by = match (cap, given_pull_by) {
        (Some(Cap::Content), given) => {
            if given.is_some() && purpose == Purpose::Configure {
                warnings.push(FieldWarning {
                    field: "pull-by".into(),
                    message: "pull-by is ignored for content-management: published articles are \
                              always pulled by SystemModstamp, including archived and republished \
                              ones"
                        .into(),
                });
            }
            PullBy::UpdatedTime
        }
        (_, Some(p)) => p,
        (_, None) => {
            if purpose == Purpose::Configure && cap.is_some() {
                errors.push(FieldError::new(
                    "pull-by",
                    "choose how records are pulled: updated-time (new and changed records and \
                     deletions) or created-time (new records only)",
                ));
            }
            PullBy::UpdatedTime
        }
    };
    if pull_by == PullBy::CreatedTime && purpose == Purpose::Configure {
        warnings.push(FieldWarning {
            field: "pull-by".into(),
            message: "created-time pulls new records only: changes to records already pulled \
                      and deletions will not be pulled; choose updated-time to get them"
                .into(),
        });
    }

    let mut n = Normalized {
        cap: cap.unwrap_or(Cap::Helpdesk),
        environment,
        pull_by,
        domain,
        start_millis: None,
        objects: Vec::new(),
        budget_percent: DEFAULT_BUDGET_PERCENT,
        bulk_threshold: DEFAULT_BULK_THRESHOLD,
        bulk_chunk_records: DEFAULT_BULK_CHUNK_RECORDS,
        api_version: DEFAULT_API_VERSION.into(),
        lag_seconds: DEFAULT_LAG_SECONDS,
        overlap_seconds: DEFAULT_OVERLAP_SECONDS,
        reconcile_minutes: Some(DEFAULT_RECONCILE_MINUTES),
        formula_refresh_minutes: None,
        language: None,
        warnings: Vec::new(),
    };
    let all_objects: &[&str] = match n.cap {
        Cap::Helpdesk => HELPDESK_OBJECTS,
        Cap::Crm => CRM_OBJECTS,
        Cap::Content => &[KNOWLEDGE_STREAM],
    };
    n.objects = all_objects.iter().map(|s| s.to_string()).collect();

    let mut seen_names: Vec<&str> = Vec::new();
    for (name, value) in &settings.values {
        let name = name.as_str();
        let value = value.trim();
        if seen_names.contains(&name) {
            errors.push(FieldError::new(
                name,
                format!("`{name}` is given more than once"),
            ));
            continue;
        }
        seen_names.push(name);
        match name {
            // Read above, by name.
            ENVIRONMENT | PULL_BY | DOMAIN => {}
            "start-date" => match parse_start_date(value) {
                Some(ms) => n.start_millis = Some(ms),
                None => errors.push(FieldError::new(
                    name,
                    format!(
                        "`{value}` is not a date: use YYYY-MM-DD (for example 2024-01-31) or an \
                         RFC 3339 time (2024-01-31T00:00:00Z); leave it empty for all history"
                    ),
                )),
            },
            "objects" if n.cap == Cap::Content => errors.push(FieldError::new(
                name,
                "objects does not apply to content-management, which pulls published knowledge \
                 articles only; remove it",
            )),
            "objects" => match parse_objects(value, all_objects) {
                Ok(list) => n.objects = list,
                Err(msg) => errors.push(FieldError::new(name, msg)),
            },
            "api-budget-percent" => match value.trim_end_matches('%').trim().parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => n.budget_percent = p,
                _ => errors.push(FieldError::new(
                    name,
                    format!(
                        "`{value}` is not a percentage from 1 to 100: the share of the org's \
                         daily API limit a pull may use"
                    ),
                )),
            },
            "bulk-threshold" => match value.replace('_', "").parse::<u64>() {
                Ok(t) => n.bulk_threshold = t,
                Err(_) => errors.push(FieldError::new(
                    name,
                    format!(
                        "`{value}` is not a record count: backfills larger than this use Bulk \
                         API 2.0 (0 turns Bulk off)"
                    ),
                )),
            },
            "bulk-chunk-records" => match value.replace('_', "").parse::<u32>() {
                Ok(c) if (1..=MAX_BULK_CHUNK_RECORDS).contains(&c) => n.bulk_chunk_records = c,
                _ => errors.push(FieldError::new(
                    name,
                    format!(
                        "`{value}` is not a record count from 1 to {MAX_BULK_CHUNK_RECORDS}: the \
                         rows asked of Bulk API 2.0 per results chunk (one API call and one \
                         page each)"
                    ),
                )),
            },
            "api-version" => match parse_api_version(value) {
                Some(v) => n.api_version = v,
                None => errors.push(FieldError::new(
                    name,
                    format!(
                        "`{value}` is not a supported API version: use a version such as 62.0 \
                         (47.0 or later)"
                    ),
                )),
            },
            "lag-seconds" | "overlap-seconds" => match value.parse::<u32>() {
                Ok(s) if s <= 86_400 => {
                    if name == "lag-seconds" {
                        n.lag_seconds = s;
                    } else {
                        n.overlap_seconds = s;
                    }
                }
                _ => errors.push(FieldError::new(
                    name,
                    format!("`{value}` is not a number of seconds from 0 to 86400"),
                )),
            },
            "reconcile-every" => match parse_minutes(value) {
                Some(m) => n.reconcile_minutes = m,
                None => errors.push(FieldError::new(
                    name,
                    format!(
                        "`{value}` is not an interval: use minutes, hours or days such as \
                         30m, 12h or 7d (at least 1m, at most 365d), or `off`"
                    ),
                )),
            },
            "formula-refresh" if n.cap != Cap::Content => match parse_minutes(value) {
                Some(m) => n.formula_refresh_minutes = m,
                None => errors.push(FieldError::new(
                    name,
                    format!(
                        "`{value}` is not an interval: use minutes, hours or days such as \
                         30m, 12h or 1d (at least 1m, at most 365d), or `off`"
                    ),
                )),
            },
            "language" if n.cap == Cap::Content => {
                if !value.is_empty()
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                {
                    n.language = Some(value.to_string());
                } else {
                    errors.push(FieldError::new(
                        name,
                        format!("`{value}` is not a Salesforce language code such as en_US"),
                    ));
                }
            }
            "language" => errors.push(FieldError::new(
                name,
                "language applies to content-management only; remove it",
            )),
            "formula-refresh" => errors.push(FieldError::new(
                name,
                "formula-refresh applies to helpdesk and crm; Knowledge articles are read \
                 whole on every publish, so remove it",
            )),
            _ => errors.push(FieldError::new(
                name,
                format!(
                    "unknown setting `{name}`; the Salesforce connector accepts: {}",
                    EXTRA_NAMES.join(", ")
                ),
            )),
        }
    }
    if errors.is_empty() {
        n.warnings = warnings;
        Ok(n)
    } else {
        Err(errors)
    }
}

fn parse_start_date(value: &str) -> Option<i64> {
    if value.len() == 10 {
        return dt::parse_millis(value);
    }
    // RFC 3339 requires an offset; Salesforce's own `+0000` form is accepted too.
    let b = value.as_bytes();
    let has_offset = value.ends_with('Z')
        || value.ends_with('z')
        || (b.len() > 6 && matches!(b[b.len() - 5], b'+' | b'-'))
        || (b.len() > 6 && matches!(b[b.len() - 6], b'+' | b'-'));
    if !has_offset {
        return None;
    }
    dt::parse_millis(value)
}

fn parse_objects(value: &str, allowed: &[&str]) -> Result<Vec<String>, String> {
    let mut chosen: Vec<&str> = Vec::new();
    let mut unknown = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match allowed.iter().find(|a| a.eq_ignore_ascii_case(part)) {
            Some(a) => {
                if !chosen.contains(a) {
                    chosen.push(a);
                }
            }
            None => unknown.push(part.to_string()),
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "unknown object(s) {}; this capability's objects are: {}",
            unknown
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", "),
            allowed.join(", ")
        ));
    }
    if chosen.is_empty() {
        return Err(format!(
            "list at least one object, separated by commas, from: {}",
            allowed.join(", ")
        ));
    }
    // Keep the capability's pull order whatever order the user typed.
    Ok(allowed
        .iter()
        .filter(|a| chosen.contains(a))
        .map(|a| a.to_string())
        .collect())
}

fn parse_api_version(value: &str) -> Option<String> {
    let v = value.trim_start_matches(['v', 'V']);
    let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
    if minor != "0" || major.is_empty() || major.len() > 3 {
        return None;
    }
    let m: u32 = major.parse().ok()?;
    // Bulk API 2.0 query jobs and `/updated` `latestDateCovered` need 47.0 or later.
    (47..=999).contains(&m).then(|| format!("{m}.0"))
}

#[cfg(test)]
mod tests;
