//! The settings this connector declares, and their validation. One declaration serves both:
//! `describe` shows it (forms, `sluice connector about`, the README's table) and `configure`
//! checks every value against it, naming the setting in each error.

use sluice_connector_sdk::model::{
    CapabilityInfo, CredentialKind, FieldError, HostContext, RequiredFor, Setting, SettingKind,
    Settings,
};

/// The one capability this connector offers.
pub const CAPABILITY: &str = "records";
/// What `describe` says the connector does.
pub const DESCRIPTION: &str =
    "Reads items and users from a REST/JSON API that takes an API key in the X-Api-Key header.";
/// The kinds of credentials it works with.
pub const CREDENTIAL_KINDS: &[CredentialKind] = &[CredentialKind::ApiKey];
/// The API's address when the user gives none.
pub const DEFAULT_BASE_URL: &str = "https://api.example.com";
/// The most records the API returns per page.
pub const MAX_PAGE_SIZE: u32 = 100;

/// The capabilities integrations choose from.
pub fn capabilities() -> Vec<CapabilityInfo> {
    vec![CapabilityInfo {
        name: CAPABILITY.into(),
        label: "Records".into(),
    }]
}

/// The settings the connector takes.
pub fn declared() -> Vec<Setting> {
    vec![
        Setting {
            name: "base-url".into(),
            label: "API base URL".into(),
            help: "Where the API answers, e.g. https://api.example.com (https; plain http only \
                   for a loopback test server)."
                .into(),
            kind: SettingKind::Url,
            required: RequiredFor::None,
            default: Some(DEFAULT_BASE_URL.into()),
            group: "basic".into(),
            order: 1,
        },
        Setting {
            name: "page-size".into(),
            label: "Page size".into(),
            help: format!("Records asked for per API call, 1 to {MAX_PAGE_SIZE}."),
            kind: SettingKind::Integer,
            required: RequiredFor::None,
            default: Some(MAX_PAGE_SIZE.to_string()),
            group: "advanced".into(),
            order: 1,
        },
    ]
}

/// Settings that passed validation, in normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    /// The base URL without a trailing slash, e.g. `https://api.example.com`.
    pub base_url: String,
    /// Its host, the only one the connector calls.
    pub host: String,
    /// Records per API call.
    pub page_size: u32,
}

impl Valid {
    /// The settings as name/value pairs in normal form.
    pub fn normalized(&self) -> Vec<(String, String)> {
        vec![
            ("base-url".into(), self.base_url.clone()),
            ("page-size".into(), self.page_size.to_string()),
        ]
    }
}

/// Checks `settings`; every error names the setting it is about.
pub fn validate(settings: &Settings, host: &HostContext) -> Result<Valid, Vec<FieldError>> {
    let mut errors = Vec::new();
    if settings.capability != CAPABILITY {
        errors.push(FieldError::new(
            "capability",
            format!(
                "`{}` is not a capability of this connector; use `{CAPABILITY}`",
                settings.capability
            ),
        ));
    }
    let known: Vec<String> = declared().into_iter().map(|s| s.name).collect();
    for (name, _) in &settings.values {
        if !known.contains(name) {
            errors.push(FieldError::new(
                name.as_str(),
                format!("unknown setting; this connector takes {}", known.join(", ")),
            ));
        }
    }
    let base = settings.value("base-url").unwrap_or(DEFAULT_BASE_URL);
    let base_url = base_url(base, host).map_err(|e| errors.push(e)).ok();
    let page_size = page_size(settings.value("page-size"))
        .map_err(|e| errors.push(e))
        .ok();
    match (base_url, page_size) {
        (Some((base_url, host)), Some(page_size)) if errors.is_empty() => Ok(Valid {
            base_url,
            host,
            page_size,
        }),
        _ => Err(errors),
    }
}

/// The base URL in normal form and its host: https, or plain http to loopback when the host
/// allows it; no user name, query or fragment.
fn base_url(raw: &str, host: &HostContext) -> Result<(String, String), FieldError> {
    let error = |why: &str| FieldError::new("base-url", format!("`{raw}` {why}"));
    let url = url::Url::parse(raw.trim()).map_err(|e| error(&format!("is not a URL ({e})")))?;
    let name = url
        .host_str()
        .ok_or_else(|| error("has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let loopback = matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1");
    match url.scheme() {
        "https" => {}
        "http" if loopback && host.allow_insecure_loopback => {}
        "http" if loopback => {
            return Err(error(
                "uses plain http, which this host allows only when insecure loopback is \
                 enabled; use https",
            ));
        }
        _ => return Err(error("must start with https://")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(error("must not contain a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(error("must not have a query or fragment"));
    }
    let normal = url.as_str().trim_end_matches('/').to_string();
    Ok((normal, name))
}

fn page_size(raw: Option<&str>) -> Result<u32, FieldError> {
    let Some(raw) = raw else {
        return Ok(MAX_PAGE_SIZE);
    };
    match raw.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        _ => Err(FieldError::new(
            "page-size",
            format!("`{raw}` is not a whole number from 1 to {MAX_PAGE_SIZE}"),
        )),
    }
}
