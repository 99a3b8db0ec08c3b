//! The settings this connector declares, and their validation. One declaration serves both:
//! `describe` shows it (forms, `sluice connector about`, the README's table) and `configure`
//! checks every value against it, naming the setting in each error.

use sluice_connector_sdk::model::{
    CapabilityInfo, CredentialKind, FieldError, HostContext, RequiredFor, Setting, SettingKind,
    Settings,
};

/// The one capability this connector offers.
pub const CAPABILITY: &str = "crm";
/// What `describe` says the connector does.
pub const DESCRIPTION: &str = "Reads contacts from a SaaS API authorized with OAuth 2.0 \
                               (authorization code with PKCE), page by page with a cursor.";
/// The kinds of credentials it works with.
pub const CREDENTIAL_KINDS: &[CredentialKind] = &[CredentialKind::OAuth2AuthorizationCode];
/// The API's address when the user gives none.
pub const DEFAULT_BASE_URL: &str = "https://api.example.com";
/// The authorization server's address when the user gives none.
pub const DEFAULT_AUTH_URL: &str = "https://auth.example.com";
/// The most records the API returns per page.
pub const MAX_PAGE_SIZE: u32 = 100;

/// The capabilities integrations choose from.
pub fn capabilities() -> Vec<CapabilityInfo> {
    vec![CapabilityInfo {
        name: CAPABILITY.into(),
        label: "CRM".into(),
    }]
}

/// The settings the connector takes.
pub fn declared() -> Vec<Setting> {
    vec![
        Setting {
            name: "base-url".into(),
            label: "API base URL".into(),
            help: "Where the API answers (https; plain http only for a loopback test server)."
                .into(),
            kind: SettingKind::Url,
            required: RequiredFor::None,
            default: Some(DEFAULT_BASE_URL.into()),
            group: "basic".into(),
            order: 1,
        },
        Setting {
            name: "auth-url".into(),
            label: "Authorization server URL".into(),
            help: "Where /oauth/authorize, /oauth/token and /oauth/revoke live.".into(),
            kind: SettingKind::Url,
            required: RequiredFor::None,
            default: Some(DEFAULT_AUTH_URL.into()),
            group: "authentication".into(),
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

/// A URL setting in normal form (no trailing slash) and its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL without a trailing slash.
    pub url: String,
    /// Its host.
    pub host: String,
}

/// Settings that passed validation, in normal form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    /// The API.
    pub base: Endpoint,
    /// The authorization server.
    pub auth: Endpoint,
    /// Records per API call.
    pub page_size: u32,
}

impl Valid {
    /// The settings as name/value pairs in normal form.
    pub fn normalized(&self) -> Vec<(String, String)> {
        vec![
            ("base-url".into(), self.base.url.clone()),
            ("auth-url".into(), self.auth.url.clone()),
            ("page-size".into(), self.page_size.to_string()),
        ]
    }

    /// The hosts the connector and the host's OAuth flow call.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts = vec![self.base.host.clone()];
        if self.auth.host != self.base.host {
            hosts.push(self.auth.host.clone());
        }
        hosts
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
    let mut url = |name: &str, default: &str| {
        endpoint(name, settings.value(name).unwrap_or(default), host)
            .map_err(|e| errors.push(e))
            .ok()
    };
    let base = url("base-url", DEFAULT_BASE_URL);
    let auth = url("auth-url", DEFAULT_AUTH_URL);
    let page_size = page_size(settings.value("page-size"))
        .map_err(|e| errors.push(e))
        .ok();
    match (base, auth, page_size) {
        (Some(base), Some(auth), Some(page_size)) if errors.is_empty() => Ok(Valid {
            base,
            auth,
            page_size,
        }),
        _ => Err(errors),
    }
}

/// A URL setting: https, or plain http to loopback when the host allows it; no user name,
/// query or fragment.
fn endpoint(name: &str, raw: &str, host: &HostContext) -> Result<Endpoint, FieldError> {
    let error = |why: &str| FieldError::new(name, format!("`{raw}` {why}"));
    let url = url::Url::parse(raw.trim()).map_err(|e| error(&format!("is not a URL ({e})")))?;
    let host_name = url
        .host_str()
        .ok_or_else(|| error("has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let loopback = matches!(host_name.as_str(), "localhost" | "127.0.0.1" | "::1");
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
    Ok(Endpoint {
        url: url.as_str().trim_end_matches('/').to_string(),
        host: host_name,
    })
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
