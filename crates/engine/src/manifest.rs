//! A component's static manifest: the hosts it needs and the methods its credentialed
//! requests use, declared in a `sluice:manifest` custom section.
//!
//! Threat: a connector that chooses its destinations at run time (in `configure`) can point
//! the host's credentials anywhere, and a hot-swapped version can quietly reach further than
//! the one the operator looked at. Rule: what a component may reach is read from its bytes at
//! install, before any of its code runs, shown to the operator and stored with the version.
//! A component without a manifest may reach nothing but the host's own extra origins. A new
//! version whose manifest reaches beyond the version it replaces needs the operator's
//! approval again ([`Manifest::beyond`] lists what is new).
//!
//! The section holds JSON:
//! `{"hosts": ["login.salesforce.com", "*.salesforce.com"], "credential-methods": ["GET"]}`.
//! A host pattern is a DNS name, or `*.` and a name of at least two labels, which matches
//! every name below it (not the name itself). Patterns are served over https on port 443 only:
//! plain http, other ports, IP literals and loopback names are never a manifest's to ask for.
//! `credential-methods` defaults to `GET`; a `HEAD` request counts as a `GET` (it reads the
//! same, without the body).
//!
//! `retry-statuses` lists the 4xx statuses the provider answers when a request should simply
//! be sent again later (Salesforce's 420, for one); the host retries them like 429 and 5xx, with
//! the same bounded backoff and only for idempotent methods. 401 cannot be listed: the host
//! answers it by refreshing the token once. Retry statuses reach nothing new, so a version that
//! adds some needs no new approval.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The custom section that carries the manifest.
pub const SECTION: &str = "sluice:manifest";

/// Largest manifest accepted, in bytes.
const MAX_MANIFEST_BYTES: usize = 64 << 10;

/// Why a manifest is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The component has more than one manifest section.
    #[error("the component has {0} `sluice:manifest` sections; it must have at most one")]
    Duplicate(usize),
    /// The section is larger than the cap.
    #[error(
        "the `sluice:manifest` section has {0} bytes, more than the {MAX_MANIFEST_BYTES} allowed"
    )]
    TooLarge(usize),
    /// The section is not the expected JSON.
    #[error("the `sluice:manifest` section is not a valid manifest: {0}")]
    Json(String),
    /// A host pattern is not acceptable.
    #[error("host pattern {pattern:?} is refused: {reason}")]
    Pattern {
        /// The pattern as written.
        pattern: String,
        /// Why.
        reason: &'static str,
    },
    /// The component's bytes could not be walked.
    #[error("the component cannot be read: {0}")]
    Binary(String),
}

/// A host pattern: one DNS name, or every name below a suffix (`*.salesforce.com`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum HostPattern {
    /// Every name that ends with `.` and this suffix.
    Below(String),
    /// Exactly this name.
    Exact(String),
}

impl HostPattern {
    /// Parses `name` or `*.suffix`; lower-cases it.
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let refuse = |reason| ManifestError::Pattern {
            pattern: text.to_string(),
            reason,
        };
        let lower = text.trim().to_ascii_lowercase();
        let (below, name) = match lower.strip_prefix("*.") {
            Some(suffix) => (true, suffix),
            None => (false, lower.as_str()),
        };
        let labels: Vec<&str> = name.split('.').collect();
        if !labels.iter().all(|l| valid_label(l)) {
            return Err(refuse(
                "use a DNS name (letters, digits, hyphens) or `*.` and a DNS name",
            ));
        }
        if labels.len() < 2 {
            return Err(refuse(
                "a pattern needs at least two labels (not a bare TLD)",
            ));
        }
        if labels
            .last()
            .is_some_and(|l| l.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(refuse("IP addresses are not host patterns"));
        }
        if labels.last() == Some(&"localhost") {
            return Err(refuse(
                "loopback names are approved by the host's operator, not by a manifest",
            ));
        }
        Ok(if below {
            Self::Below(name.to_string())
        } else {
            Self::Exact(name.to_string())
        })
    }

    /// Whether `host` (lower-case, no trailing dot) is matched.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            Self::Exact(name) => host == name,
            Self::Below(suffix) => host
                .strip_suffix(suffix.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
        }
    }

    /// Whether every name `other` matches is matched by `self`.
    pub fn covers(&self, other: &HostPattern) -> bool {
        match other {
            Self::Exact(name) => self.matches(name),
            Self::Below(suffix) => match self {
                Self::Exact(_) => false,
                Self::Below(mine) => suffix == mine || self.matches(suffix),
            },
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(name) => f.write_str(name),
            Self::Below(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

impl TryFrom<String> for HostPattern {
    type Error = ManifestError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<HostPattern> for String {
    fn from(pattern: HostPattern) -> Self {
        pattern.to_string()
    }
}

fn valid_label(label: &str) -> bool {
    (1..=63).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// An HTTP method a manifest can declare for credentialed requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum CredentialMethod {
    /// GET (and HEAD, which reads the same without the body).
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
    /// OPTIONS.
    Options,
}

impl CredentialMethod {
    /// The declared method `method` is, if it is one a manifest can declare.
    pub fn of(method: &http::Method) -> Option<Self> {
        Some(match *method {
            http::Method::GET | http::Method::HEAD => Self::Get,
            http::Method::POST => Self::Post,
            http::Method::PUT => Self::Put,
            http::Method::PATCH => Self::Patch,
            http::Method::DELETE => Self::Delete,
            http::Method::OPTIONS => Self::Options,
            _ => return None,
        })
    }
}

impl fmt::Display for CredentialMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
        })
    }
}

fn read_only() -> BTreeSet<CredentialMethod> {
    [CredentialMethod::Get].into()
}

/// What a component declares it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Manifest {
    /// The hosts it may call, over https on port 443.
    #[serde(default)]
    pub hosts: BTreeSet<HostPattern>,
    /// The methods its requests that carry the integration's credentials may use.
    #[serde(default = "read_only")]
    pub credential_methods: BTreeSet<CredentialMethod>,
    /// Provider statuses, besides 429 and 5xx, that mean "send it again later".
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub retry_statuses: BTreeSet<RetryStatus>,
}

/// A 4xx status other than 401 that a provider uses for a transient refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct RetryStatus(u16);

impl RetryStatus {
    /// The status code.
    pub fn code(self) -> u16 {
        self.0
    }
}

impl TryFrom<u16> for RetryStatus {
    type Error = String;

    fn try_from(code: u16) -> Result<Self, String> {
        match code {
            401 => {
                Err("retry-statuses cannot list 401: the host refreshes the token on a 401".into())
            }
            400..=499 => Ok(Self(code)),
            _ => Err(format!(
                "retry-statuses lists {code}; only 4xx statuses may be listed (429 and 5xx are \
                 always retried)"
            )),
        }
    }
}

impl From<RetryStatus> for u16 {
    fn from(status: RetryStatus) -> u16 {
        status.0
    }
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            hosts: BTreeSet::new(),
            credential_methods: read_only(),
            retry_statuses: BTreeSet::new(),
        }
    }
}

/// What a manifest asks for beyond another one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Widening {
    /// Host patterns the other manifest does not cover.
    pub hosts: Vec<HostPattern>,
    /// Credentialed methods the other manifest does not declare.
    pub credential_methods: Vec<CredentialMethod>,
}

impl Widening {
    /// Whether nothing is new.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty() && self.credential_methods.is_empty()
    }
}

impl fmt::Display for Widening {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.hosts.is_empty() {
            parts.push(format!("hosts {}", join(&self.hosts)));
        }
        if !self.credential_methods.is_empty() {
            parts.push(format!(
                "credentialed methods {}",
                join(&self.credential_methods)
            ));
        }
        f.write_str(&parts.join(" and "))
    }
}

/// `items` separated by commas.
pub fn join<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items
        .into_iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Manifest {
    /// Parses the JSON of a manifest section.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(bytes.len()));
        }
        serde_json::from_slice(bytes).map_err(|e| ManifestError::Json(e.to_string()))
    }

    /// The manifest of a component: its `sluice:manifest` section at the top level, or the
    /// empty manifest when it has none.
    pub fn of_component(wasm: &[u8]) -> Result<Self, ManifestError> {
        let sections = top_level_sections(wasm, SECTION)?;
        match sections.as_slice() {
            [] => Ok(Self::default()),
            [one] => Self::from_json(one),
            many => Err(ManifestError::Duplicate(many.len())),
        }
    }

    /// The JSON a manifest section holds.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a manifest serializes")
    }

    /// Whether some pattern matches `host`.
    pub fn matches_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|p| p.matches(host))
    }

    /// What `self` asks for that `approved` does not cover.
    pub fn beyond(&self, approved: &Manifest) -> Widening {
        Widening {
            hosts: self
                .hosts
                .iter()
                .filter(|p| !approved.hosts.iter().any(|a| a.covers(p)))
                .cloned()
                .collect(),
            credential_methods: self
                .credential_methods
                .difference(&approved.credential_methods)
                .copied()
                .collect(),
        }
    }
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts = if self.hosts.is_empty() {
            "no hosts".to_string()
        } else {
            join(&self.hosts)
        };
        write!(
            f,
            "{hosts} (https); credentialed methods {}",
            join(&self.credential_methods)
        )
    }
}

/// The contents of every custom section named `name` at the top level of a component or
/// module (sections of nested modules and components are not the component's own).
fn top_level_sections<'a>(wasm: &'a [u8], name: &str) -> Result<Vec<&'a [u8]>, ManifestError> {
    use wasmparser::{Parser, Payload};
    let mut depth = 0usize;
    let mut found = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| ManifestError::Binary(e.to_string()))? {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::CustomSection(section) if depth == 1 && section.name() == name => {
                found.push(section.data());
            }
            _ => {}
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::parse(s).unwrap()
    }

    #[test]
    fn patterns_match_names_below_them_only() {
        let sf = p("*.Salesforce.com");
        assert!(sf.matches("acme.my.salesforce.com"));
        assert!(sf.matches("login.salesforce.com"));
        assert!(!sf.matches("salesforce.com"));
        assert!(!sf.matches("evilsalesforce.com"));
        assert!(!sf.matches("salesforce.com.evil.example"));
        assert!(p("login.salesforce.com").matches("login.salesforce.com"));
        assert!(!p("login.salesforce.com").matches("x.login.salesforce.com"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in [
            "*",
            "*.com",
            "com",
            "10.0.0.1",
            "localhost",
            "a.localhost",
            "*.*.x.com",
            "a b.com",
            "-a.com",
            "",
            "x.com:8080",
            "user@x.com",
        ] {
            assert!(HostPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn coverage_and_widening() {
        let approved = Manifest {
            hosts: [p("*.salesforce.com")].into(),
            ..Manifest::default()
        };
        let narrower = Manifest {
            hosts: [p("login.salesforce.com"), p("*.my.salesforce.com")].into(),
            ..Manifest::default()
        };
        assert!(narrower.beyond(&approved).is_empty());
        let wider = Manifest {
            hosts: [p("*.salesforce.com"), p("attacker.example")].into(),
            credential_methods: [CredentialMethod::Get, CredentialMethod::Delete].into(),
            retry_statuses: [RetryStatus(420)].into(),
        };
        let widening = wider.beyond(&approved);
        assert_eq!(widening.hosts, vec![p("attacker.example")]);
        assert_eq!(widening.credential_methods, vec![CredentialMethod::Delete]);
        assert!(!p("a.x.com").covers(&p("*.x.com")));
        assert!(p("*.x.com").covers(&p("*.a.x.com")));
    }

    #[test]
    fn json_defaults_and_unknown_fields() {
        let m = Manifest::from_json(br#"{"hosts":["*.salesforce.com"]}"#).unwrap();
        assert_eq!(m.credential_methods, read_only());
        assert!(Manifest::from_json(br#"{"hosts":[],"host":[]}"#).is_err());
        assert!(Manifest::from_json(br#"{"hosts":["*"]}"#).is_err());
        let round = Manifest::from_json(m.to_json().as_bytes()).unwrap();
        assert_eq!(round, m);
    }

    #[test]
    fn retry_statuses_are_4xx_other_than_401() {
        let m = Manifest::from_json(br#"{"retry-statuses":[420, 409]}"#).unwrap();
        let codes: Vec<u16> = m.retry_statuses.iter().map(|s| s.code()).collect();
        assert_eq!(codes, vec![409, 420]);
        assert!(
            m.to_json().contains(r#""retry-statuses":[409,420]"#),
            "{}",
            m.to_json()
        );
        for bad in [401, 200, 302, 500, 999] {
            let json = format!(r#"{{"retry-statuses":[{bad}]}}"#);
            let err = Manifest::from_json(json.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(&bad.to_string()), "{err}");
        }
        assert!(!Manifest::default().to_json().contains("retry"));
    }
}
