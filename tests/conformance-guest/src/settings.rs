//! The declared settings and their validation.

use sluice_connector_sdk::*;

/// The one capability.
pub const CAPABILITY: &str = "helpdesk";
/// The account's base URL.
pub const BASE_URL: &str = "base-url";
/// Users per provider page.
pub const PAGE_SIZE: &str = "page-size";
/// The provider's largest page.
const MAX_PAGE_SIZE: u32 = 100;

/// The settings this connector takes.
pub fn declared() -> Vec<Setting> {
    vec![
        Setting {
            name: BASE_URL.into(),
            label: "Zendesk URL".into(),
            help: "Your account's address, e.g. https://acme.zendesk.com.".into(),
            kind: SettingKind::Url,
            required: RequiredFor::All,
            default: None,
            group: "basic".into(),
            order: 1,
        },
        Setting {
            name: PAGE_SIZE.into(),
            label: "Page size".into(),
            help: "Users per request, 1 to 100.".into(),
            kind: SettingKind::Integer,
            required: RequiredFor::None,
            default: Some(MAX_PAGE_SIZE.to_string()),
            group: "advanced".into(),
            order: 1,
        },
    ]
}

/// Settings that passed validation.
pub struct Valid {
    /// The base URL, without path.
    pub base: url::Url,
    /// Users per provider page.
    pub page_size: u32,
}

impl Valid {
    /// The base URL without its trailing slash.
    pub fn base_text(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_string()
    }

    /// The settings in normal form.
    pub fn normalized(&self) -> Vec<(String, String)> {
        vec![
            (BASE_URL.into(), self.base_text()),
            (PAGE_SIZE.into(), self.page_size.to_string()),
        ]
    }
}

/// Checks every setting; each error names the setting it is about.
pub fn validate(settings: &Settings, context: &HostContext) -> Result<Valid, Vec<FieldError>> {
    let mut errors = Vec::new();
    if settings.capability != CAPABILITY {
        errors.push(FieldError::new(
            "capability",
            format!("this connector offers only {CAPABILITY}"),
        ));
    }
    for (name, _) in &settings.values {
        if name != BASE_URL && name != PAGE_SIZE {
            errors.push(FieldError::new(name, "this connector has no such setting"));
        }
    }
    let base =
        base_url(settings.value(BASE_URL), context).map_err(|m| FieldError::new(BASE_URL, m));
    let page_size = page_size(settings.value(PAGE_SIZE)).map_err(|m| FieldError::new(PAGE_SIZE, m));
    match (base, page_size) {
        (Ok(base), Ok(page_size)) if errors.is_empty() => Ok(Valid { base, page_size }),
        (base, page_size) => {
            errors.extend(base.err());
            errors.extend(page_size.err());
            Err(errors)
        }
    }
}

fn base_url(value: Option<&str>, context: &HostContext) -> Result<url::Url, String> {
    let text = value
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or("give your account's address, e.g. https://acme.zendesk.com")?;
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
        return Err("give only scheme, host and port, e.g. https://acme.zendesk.com".into());
    }
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback && context.allow_insecure_loopback => Ok(url),
        "http" => Err("plain http is refused; use https".into()),
        other => Err(format!("scheme {other} is not https")),
    }
}

fn page_size(value: Option<&str>) -> Result<u32, String> {
    let Some(text) = value else {
        return Ok(MAX_PAGE_SIZE);
    };
    match text.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        _ => Err(format!(
            "{text:?} is not a whole number from 1 to {MAX_PAGE_SIZE}"
        )),
    }
}
