//! The org's domain URL as the user pasted it (My Domain, Lightning, Setup or instance URL,
//! login hosts, loopback for tests): what kind of host it names, its normal form, and the login
//! origin of an environment. They decide the OAuth endpoints and the hosts the connector calls.

use super::Environment;
use sluice_connector_sdk::model::{FieldError, HostContext};

/// What kind of host the domain names, which decides OAuth endpoints and environment checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomainKind {
    /// `x.my.salesforce.com` and Developer Edition / Trailhead My Domains.
    MyDomainProduction,
    /// `x--y.sandbox.my.salesforce.com` or a scratch org.
    MyDomainSandbox,
    /// `login.salesforce.com`.
    LoginProduction,
    /// `test.salesforce.com`.
    LoginSandbox,
    /// A classic instance host such as `na123.salesforce.com` (`cs…` is a sandbox).
    Instance {
        /// Whether the instance is a sandbox instance.
        sandbox: bool,
    },
    /// A loopback origin (emulator, tests).
    Loopback,
}

/// A normalised domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// `https` or (loopback only) `http`.
    pub scheme: String,
    /// Lower-case host (IPv6 in brackets).
    pub host: String,
    /// Explicit port, if any.
    pub port: Option<u16>,
    /// What the host is.
    pub kind: DomainKind,
}

impl Domain {
    /// The origin, e.g. `https://acme.my.salesforce.com`.
    pub fn origin(&self) -> String {
        match self.port {
            Some(p) => format!("{}://{}:{}", self.scheme, self.host, p),
            None => format!("{}://{}", self.scheme, self.host),
        }
    }

    /// Whether OAuth endpoints (and the client-credentials grant) live on this host.
    pub fn serves_oauth(&self) -> bool {
        matches!(
            self.kind,
            DomainKind::MyDomainProduction | DomainKind::MyDomainSandbox | DomainKind::Loopback
        )
    }
}

/// The login origin of an environment.
pub fn login_origin(env: Environment) -> &'static str {
    match env {
        Environment::Production => "https://login.salesforce.com",
        Environment::Sandbox => "https://test.salesforce.com",
    }
}

fn domain_error(raw: &str, why: &str) -> FieldError {
    FieldError::new(
        "domain",
        format!(
            "`{raw}` {why}; enter the org's My Domain URL, for example \
             https://acme.my.salesforce.com (Setup > My Domain shows it)"
        ),
    )
}

/// Parses and normalises a pasted domain and checks it against the environment.
pub fn parse_domain(raw: &str, env: Environment, host: &HostContext) -> Result<Domain, FieldError> {
    let raw = raw.trim();
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let url = url::Url::parse(&with_scheme)
        .map_err(|_| domain_error(raw, "is not a URL or host name"))?;
    let scheme = url.scheme().to_string();
    if scheme != "https" && scheme != "http" {
        return Err(domain_error(raw, "must use https"));
    }
    let host_str = url
        .host_str()
        .ok_or_else(|| domain_error(raw, "has no host name"))?
        .to_ascii_lowercase();
    if !url.username().is_empty() || url.password().is_some() {
        return Err(domain_error(
            raw,
            "must not contain a user name or password",
        ));
    }
    let loopback = matches!(host_str.as_str(), "localhost" | "127.0.0.1" | "[::1]");
    if loopback {
        if scheme == "http" && !host.allow_insecure_loopback {
            return Err(FieldError::new(
                "domain",
                format!(
                    "`{raw}` uses plain http, which this host allows only for loopback test \
                     servers when insecure loopback is enabled; use https"
                ),
            ));
        }
        return Ok(Domain {
            scheme,
            host: host_str,
            port: url.port(),
            kind: DomainKind::Loopback,
        });
    }
    if scheme == "http" {
        return Err(FieldError::new(
            "domain",
            format!("`{raw}` uses plain http; Salesforce requires https, so use https://"),
        ));
    }
    if url.port().is_some() {
        return Err(domain_error(raw, "must not carry a port"));
    }
    let (host_norm, kind) = classify_host(&host_str).ok_or_else(|| {
        domain_error(
            raw,
            "is not a Salesforce domain (expected …my.salesforce.com)",
        )
    })?;
    let is_sandbox = matches!(
        kind,
        DomainKind::MyDomainSandbox
            | DomainKind::LoginSandbox
            | DomainKind::Instance { sandbox: true }
    );
    match (env, is_sandbox) {
        (Environment::Production, true) => Err(FieldError::new(
            "domain",
            format!(
                "`{host_norm}` is a sandbox domain but the environment is production: choose the \
                 sandbox environment, or enter the production org's My Domain (for example \
                 https://acme.my.salesforce.com)"
            ),
        )),
        (Environment::Sandbox, false) if !matches!(kind, DomainKind::Instance { .. }) => {
            Err(FieldError::new(
                "domain",
                format!(
                    "`{host_norm}` is a production domain but the environment is sandbox: choose \
                     the production environment, or enter the sandbox's My Domain (for example \
                     https://acme--dev.sandbox.my.salesforce.com)"
                ),
            ))
        }
        _ => Ok(Domain {
            scheme,
            host: host_norm,
            port: None,
            kind,
        }),
    }
}

fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// Maps a host to its API host and kind; Lightning and Setup hosts become My Domain hosts.
fn classify_host(h: &str) -> Option<(String, DomainKind)> {
    match h {
        "login.salesforce.com" => return Some((h.into(), DomainKind::LoginProduction)),
        "test.salesforce.com" => return Some((h.into(), DomainKind::LoginSandbox)),
        _ => {}
    }
    for suffix in [
        ".my.salesforce.com",
        ".lightning.force.com",
        ".my.salesforce-setup.com",
    ] {
        if let Some(prefix) = h.strip_suffix(suffix) {
            let (name, qualifier) = match prefix.rsplit_once('.') {
                Some((n, q)) => (n, Some(q)),
                None => (prefix, None),
            };
            if !valid_label(name) {
                return None;
            }
            let kind = match qualifier {
                None => DomainKind::MyDomainProduction,
                Some("develop") | Some("trailblaze") => DomainKind::MyDomainProduction,
                Some("sandbox") | Some("scratch") => DomainKind::MyDomainSandbox,
                Some(_) => return None,
            };
            let host = match qualifier {
                Some(q) => format!("{name}.{q}.my.salesforce.com"),
                None => format!("{name}.my.salesforce.com"),
            };
            return Some((host, kind));
        }
    }
    // Classic instance hosts: na123, eu2, cs42 (cs = sandbox).
    if let Some(inst) = h.strip_suffix(".salesforce.com")
        && !inst.contains('.')
        && valid_label(inst)
        && inst.bytes().any(|c| c.is_ascii_digit())
        && inst.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
    {
        return Some((
            h.into(),
            DomainKind::Instance {
                sandbox: inst.starts_with("cs"),
            },
        ));
    }
    None
}
