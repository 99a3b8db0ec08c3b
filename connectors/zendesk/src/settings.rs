//! The settings the connector declares, and their validation.
//!
//! Threat: a setting chooses where the host sends the account's credentials. Rule: the account
//! is named by its Zendesk subdomain only, and the connector asks for exactly that one host
//! (`{subdomain}.zendesk.com`, over https); a plain-http loopback origin is accepted only when
//! the host allows insecure loopback (a local emulator). Every error names its setting.

use sluice_connector_sdk::model::{
    BasicPlan, CapabilityInfo, ChoiceOption, ConnectorInfo, CredentialKind, CredentialPlan,
    FieldError, HostContext, OAuthPlan, RequiredFor, Setting, SettingKind, Settings,
};

/// The setting naming the account: its subdomain, or the account's URL.
pub const SUBDOMAIN: &str = "subdomain";
/// The setting choosing OAuth or an API token.
pub const AUTH: &str = "auth";
/// The setting of the earliest change to pull.
pub const START_DATE: &str = "start-date";
/// The setting of the export page size.
pub const PAGE_SIZE: &str = "page-size";
/// The capability this connector offers.
pub const HELPDESK: &str = "helpdesk";

/// Zendesk's cap on an incremental export's `per_page`.
pub const MAX_EXPORT_PAGE: u32 = 1000;

/// How the connector authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// OAuth 2.0 authorization code with PKCE.
    OAuth,
    /// An API token sent as basic `{email}/token:{token}`.
    ApiToken,
}

/// Where the account's API is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// `https://{subdomain}.zendesk.com`.
    Zendesk(String),
    /// A plain-http loopback origin (`http://127.0.0.1:PORT`), for a local emulator.
    Loopback(url::Url),
}

impl Account {
    /// The API origin, without a trailing slash.
    pub fn base_url(&self) -> String {
        match self {
            Account::Zendesk(sub) => format!("https://{sub}.zendesk.com"),
            Account::Loopback(url) => url.origin().ascii_serialization(),
        }
    }

    /// The one host the connector calls.
    pub fn host(&self) -> String {
        match self {
            Account::Zendesk(sub) => format!("{sub}.zendesk.com"),
            Account::Loopback(url) => url
                .host_str()
                .unwrap_or_default()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
        }
    }

    /// The setting's normal form: the bare subdomain, or the loopback origin.
    fn normalized(&self) -> String {
        match self {
            Account::Zendesk(sub) => sub.clone(),
            Account::Loopback(_) => self.base_url(),
        }
    }
}

/// Valid settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Valid {
    /// The account.
    pub account: Account,
    /// How the connector authenticates.
    pub auth: Auth,
    /// The earliest change to pull, Unix seconds.
    pub start_time: i64,
    /// The export page size, 1..=1000.
    pub page_size: u32,
}

impl Valid {
    /// The credential plan for the chosen kind of authentication.
    pub fn credential_plan(&self) -> CredentialPlan {
        let base = self.account.base_url();
        match self.auth {
            Auth::OAuth => CredentialPlan::OAuth2(OAuthPlan {
                authorize_url: format!("{base}/oauth/authorizations/new"),
                token_url: format!("{base}/oauth/tokens"),
                revoke_url: None,
                scopes: vec!["read".into()],
                pkce_required: true,
                extra_authorize_params: Vec::new(),
                client_credentials_supported: false,
            }),
            Auth::ApiToken => CredentialPlan::Basic(BasicPlan {
                username_label: "Email address followed by /token".into(),
                password_label: "API token".into(),
                help: "Admin Center → Apps and integrations → Zendesk API → API tokens. Enter \
                       the agent's email address followed by /token (jdoe@example.com/token) \
                       as the user name and the token as the password."
                    .into(),
            }),
        }
    }

    /// The settings in normal form.
    pub fn normalized(&self) -> Vec<(String, String)> {
        let auth = match self.auth {
            Auth::OAuth => "oauth",
            Auth::ApiToken => "api-token",
        };
        let mut pairs = vec![
            ("capability".into(), HELPDESK.into()),
            (SUBDOMAIN.into(), self.account.normalized()),
            (AUTH.into(), auth.into()),
        ];
        if self.start_time > 0 {
            pairs.push((START_DATE.into(), format_date(self.start_time)));
        }
        pairs.push((PAGE_SIZE.into(), self.page_size.to_string()));
        pairs
    }
}

/// The connector as a platform shows it.
pub fn describe() -> ConnectorInfo {
    ConnectorInfo {
        name: "zendesk".into(),
        title: "Zendesk Support".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Pulls Zendesk Support tickets, their comments and users incrementally \
                      through the cursor-based incremental export API, with deleted tickets \
                      and users as deletes."
            .into(),
        documentation_url: Some(
            "https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/"
                .into(),
        ),
        capabilities: vec![CapabilityInfo {
            name: HELPDESK.into(),
            label: "Helpdesk".into(),
        }],
        settings: declared(),
        credential_kinds: vec![CredentialKind::OAuth2AuthorizationCode, CredentialKind::Basic],
    }
}

fn setting(group: &str, order: u32, name: &str, label: &str, kind: SettingKind) -> Setting {
    Setting {
        name: name.into(),
        label: label.into(),
        help: String::new(),
        kind,
        required: RequiredFor::None,
        default: None,
        group: group.into(),
        order,
    }
}

fn declared() -> Vec<Setting> {
    let auth_choice = SettingKind::Choice(
        [("oauth", "OAuth"), ("api-token", "API token")]
            .into_iter()
            .map(|(value, label)| ChoiceOption {
                value: value.into(),
                label: label.into(),
            })
            .collect(),
    );
    vec![
        Setting {
            required: RequiredFor::All,
            help: "The account's subdomain: acme for https://acme.zendesk.com (the account's \
                   URL is accepted too)."
                .into(),
            ..setting(
                "basic",
                1,
                SUBDOMAIN,
                "Zendesk subdomain",
                SettingKind::Text,
            )
        },
        Setting {
            default: Some("oauth".into()),
            help: "OAuth (an OAuth client in Admin Center) or an API token. Zendesk stops \
                   accepting API tokens on 30 April 2027."
                .into(),
            ..setting("authentication", 1, AUTH, "Authentication", auth_choice)
        },
        Setting {
            help: "Pull tickets and users changed on or after this day (YYYY-MM-DD, UTC). \
                   Default: all history."
                .into(),
            ..setting("advanced", 1, START_DATE, "Start date", SettingKind::Date)
        },
        Setting {
            default: Some(MAX_EXPORT_PAGE.to_string()),
            help: "Records per incremental export request, 1 to 1000 (Zendesk's limit). The \
                   host's page cap lowers it further."
                .into(),
            ..setting(
                "advanced",
                2,
                PAGE_SIZE,
                "Export page size",
                SettingKind::Integer,
            )
        },
    ]
}

/// Validates `settings`; every error names its setting.
pub fn validate(settings: &Settings, host: &HostContext) -> Result<Valid, Vec<FieldError>> {
    let mut errors = Vec::new();
    if settings.capability != HELPDESK {
        errors.push(FieldError::new(
            "capability",
            format!(
                "`{}` is not a capability of this connector; use `{HELPDESK}`",
                settings.capability
            ),
        ));
    }
    let known = [SUBDOMAIN, AUTH, START_DATE, PAGE_SIZE];
    for (name, _) in &settings.values {
        // The normal form lists the capability among the settings.
        if !known.contains(&name.as_str()) && name != "capability" {
            errors.push(FieldError::new(
                name.clone(),
                format!("unknown setting; this connector takes {}", known.join(", ")),
            ));
        }
    }
    let account = collect(&mut errors, SUBDOMAIN, parse_account(settings, host));
    let auth = collect(&mut errors, AUTH, parse_auth(settings.value(AUTH)));
    let start_time = collect(
        &mut errors,
        START_DATE,
        parse_start(settings.value(START_DATE)),
    );
    let page_size = collect(
        &mut errors,
        PAGE_SIZE,
        parse_page_size(settings.value(PAGE_SIZE)),
    );
    match (account, auth, start_time, page_size) {
        (Some(account), Some(auth), Some(start_time), Some(page_size)) if errors.is_empty() => {
            Ok(Valid {
                account,
                auth,
                start_time,
                page_size,
            })
        }
        _ => Err(errors),
    }
}

fn collect<T>(errors: &mut Vec<FieldError>, field: &str, r: Result<T, String>) -> Option<T> {
    r.map_err(|message| errors.push(FieldError::new(field, message)))
        .ok()
}

fn parse_auth(value: Option<&str>) -> Result<Auth, String> {
    match value.map(str::trim) {
        None | Some("oauth") => Ok(Auth::OAuth),
        Some("api-token") => Ok(Auth::ApiToken),
        Some(other) => Err(format!(
            "`{other}` is not an option; use oauth or api-token"
        )),
    }
}

fn parse_start(value: Option<&str>) -> Result<i64, String> {
    let Some(text) = value.map(str::trim) else {
        return Ok(0);
    };
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(text, &format)
        .map_err(|_| format!("`{text}` is not a date; use YYYY-MM-DD"))?;
    Ok(date.midnight().assume_utc().unix_timestamp())
}

fn format_date(unix_s: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::OffsetDateTime::from_unix_timestamp(unix_s)
        .ok()
        .and_then(|t| t.date().format(&format).ok())
        .unwrap_or_default()
}

fn parse_page_size(value: Option<&str>) -> Result<u32, String> {
    let Some(text) = value.map(str::trim) else {
        return Ok(MAX_EXPORT_PAGE);
    };
    match text.parse::<u32>() {
        Ok(n) if (1..=MAX_EXPORT_PAGE).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{text}` is not a page size; use a whole number from 1 to {MAX_EXPORT_PAGE}"
        )),
    }
}

fn parse_account(settings: &Settings, host: &HostContext) -> Result<Account, String> {
    let Some(raw) = settings.value(SUBDOMAIN).map(str::trim) else {
        return Err("required: the account's subdomain, e.g. acme for acme.zendesk.com".into());
    };
    if raw.contains("://") {
        return account_of_url(raw, host);
    }
    let sub = raw
        .strip_suffix(".zendesk.com")
        .unwrap_or(raw)
        .to_ascii_lowercase();
    check_subdomain(&sub, raw)
}

fn check_subdomain(sub: &str, raw: &str) -> Result<Account, String> {
    let label_ok = !sub.is_empty()
        && sub.len() <= 63
        && sub
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !sub.starts_with('-')
        && !sub.ends_with('-');
    if label_ok {
        Ok(Account::Zendesk(sub.to_string()))
    } else {
        Err(format!(
            "`{raw}` is not a Zendesk subdomain: use the part before .zendesk.com (letters, \
             digits and hyphens)"
        ))
    }
}

fn account_of_url(raw: &str, host: &HostContext) -> Result<Account, String> {
    let url = url::Url::parse(raw).map_err(|e| format!("`{raw}` is not a URL: {e}"))?;
    let name = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let loopback = matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]");
    if loopback && url.scheme() == "http" {
        return if host.allow_insecure_loopback {
            Ok(Account::Loopback(url))
        } else {
            Err(format!(
                "`{raw}` uses plain http, which this host allows only for loopback test \
                 servers when insecure loopback is enabled; use https://SUBDOMAIN.zendesk.com"
            ))
        };
    }
    if url.scheme() != "https" {
        return Err(format!("`{raw}` must use https"));
    }
    if url.port().is_some() || !matches!(url.path(), "" | "/") {
        return Err(format!(
            "`{raw}` must be the account's address only, https://SUBDOMAIN.zendesk.com"
        ));
    }
    match name.strip_suffix(".zendesk.com") {
        Some(sub) => check_subdomain(sub, raw),
        None => Err(format!(
            "`{raw}` is not a Zendesk address; use https://SUBDOMAIN.zendesk.com"
        )),
    }
}
