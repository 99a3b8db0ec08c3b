//! Who decides where a connector's traffic and the integration's credentials may go.
//!
//! Threat: the connector is untrusted, and so is every later version of it. If it named its
//! own destinations, a hostile version would declare an attacker's server in `configure`, read
//! the tenant's data with the token the host adds and send it out. If it named the OAuth
//! endpoints, the host itself would send the client secret, the code, the PKCE verifier and
//! every refresh token wherever it pointed, resolving the name without a range check (an SSRF
//! from the host). On a host that allows plain http to loopback for an emulator, a guest could
//! also reach the host's other local ports, the admin API among them. And an allowed name can
//! resolve, or be re-pointed by its owner, into a private range.
//!
//! Rule: the operator decides; the connector can only narrow.
//! - A component's static manifest (see [`super::manifest`]) declares DNS host patterns,
//!   reachable over https on port 443, and the methods of its credentialed requests. The
//!   operator approves it at install.
//! - The operator may approve extra origins (scheme, host and port, exactly) for every
//!   connector: the loopback emulator of tests and demos. Nothing else makes plain http, a
//!   port other than 443 or a loopback address reachable, and plain http also needs the
//!   host's insecure-loopback setting.
//! - Each host `configure` declares must fall within those rules, or the integration's calls
//!   are refused with an error that names the host. A request may go only to a declared host
//!   or the grant's instance host, at an approved origin.
//! - Credentials (an access token, an API key, basic) go only to the grant's instance origin
//!   (scheme, host and port), which must itself be approved, when the grant names one; without
//!   one, only to the approved origins of the exact hosts `configure` declared. Never to any
//!   other origin, and only with a method the manifest declares.
//! - OAuth endpoints and every token response's `instance_url` are held to the same rules.
//! - URLs with userinfo (`user@host`) are refused.
//! - Names are resolved by the host; a name with any private, loopback, link-local, CGNAT,
//!   NAT64, IPv4-mapped-private, multicast or reserved address is refused as a whole, and the
//!   connection goes to the address that was checked. Loopback addresses are accepted only for
//!   a loopback name at an approved extra origin.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use super::manifest::{CredentialMethod, Manifest, join};

/// Why a destination or a rule is refused. The messages name the destination and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not an http(s) URL with a host, or not parseable.
    #[error("{url:?} is not a usable URL: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The URL carries a user name or password.
    #[error("{0:?} carries userinfo (user@host); credentials never go in URLs")]
    Userinfo(String),
    /// The origin is outside the approved rules.
    #[error("{origin} is not an approved destination; approved: {approved}")]
    NotApproved {
        /// The origin.
        origin: Origin,
        /// The rules in force, for the operator.
        approved: String,
    },
    /// `configure` declared a host outside the approved rules.
    #[error(
        "the connector declared host {host}, which its approved hosts do not cover \
         (approved: {approved}); a connector can only narrow what the operator approved"
    )]
    HostNotApproved {
        /// The declared host.
        host: String,
        /// The rules in force.
        approved: String,
    },
    /// Plain http without the host's insecure-loopback setting.
    #[error("plain http to {0} needs the host's --allow-insecure-loopback")]
    InsecureLoopbackOff(Origin),
    /// An extra origin the operator gave is not acceptable.
    #[error("extra origin {origin:?} is refused: {reason}")]
    BadExtraOrigin {
        /// The origin as given.
        origin: String,
        /// Why.
        reason: &'static str,
    },
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheme {
    /// Plain http.
    Http,
    /// http over TLS.
    Https,
}

impl Scheme {
    /// The scheme's default port.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Http => 80,
            Self::Https => 443,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Http => "http",
            Self::Https => "https",
        })
    }
}

/// Where a request goes: scheme, host (lower-case, no brackets, no trailing dot) and port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    /// The scheme.
    pub scheme: Scheme,
    /// The host name or address.
    pub host: String,
    /// The port, explicit or the scheme's default.
    pub port: u16,
}

impl Origin {
    /// The origin of `url`; refuses other schemes, missing hosts and userinfo.
    pub fn parse(url: &str) -> Result<Self, PolicyError> {
        let parsed = url::Url::parse(url).map_err(|e| PolicyError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        Self::of_url(&parsed)
    }

    /// The origin of a parsed URL.
    pub fn of_url(url: &url::Url) -> Result<Self, PolicyError> {
        if !url.username().is_empty() || url.password().is_some() {
            return Err(PolicyError::Userinfo(redact_userinfo(url)));
        }
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            other => {
                return Err(PolicyError::BadUrl {
                    url: url.to_string(),
                    reason: format!("scheme {other} is not http or https"),
                });
            }
        };
        let host = url
            .host_str()
            .map(normalize_host)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| PolicyError::BadUrl {
                url: url.to_string(),
                reason: "no host".into(),
            })?;
        Ok(Self {
            scheme,
            host,
            port: url.port().unwrap_or(scheme.default_port()),
        })
    }

    /// The origin of a request URI from the guest; refuses userinfo.
    pub fn of_uri(uri: &http::Uri) -> Result<Self, PolicyError> {
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        if authority.contains('@') {
            return Err(PolicyError::Userinfo(format!(
                "{}://{}",
                uri.scheme_str().unwrap_or("?"),
                authority.rsplit('@').next().unwrap_or_default()
            )));
        }
        let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https") => Scheme::Https,
            Some("http") => Scheme::Http,
            other => {
                return Err(PolicyError::BadUrl {
                    url: uri.to_string(),
                    reason: format!("scheme {} is not http or https", other.unwrap_or("(none)")),
                });
            }
        };
        let host = uri
            .host()
            .map(normalize_host)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| PolicyError::BadUrl {
                url: uri.to_string(),
                reason: "no host".into(),
            })?;
        Ok(Self {
            scheme,
            host,
            port: uri.port_u16().unwrap_or(scheme.default_port()),
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

fn redact_userinfo(url: &url::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.to_string()
}

/// Parses an extra origin the operator approves for every connector, e.g.
/// `http://127.0.0.1:8080`. Plain http is accepted only for loopback names; a path, query or
/// userinfo is refused so that the setting means exactly one origin.
pub fn parse_extra_origin(text: &str) -> Result<Origin, PolicyError> {
    let refuse = |reason| PolicyError::BadExtraOrigin {
        origin: text.to_string(),
        reason,
    };
    let url =
        url::Url::parse(text).map_err(|_| refuse("not a URL such as http://127.0.0.1:8080"))?;
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(refuse(
            "give only scheme, host and port, e.g. http://127.0.0.1:8080",
        ));
    }
    let origin =
        Origin::of_url(&url).map_err(|_| refuse("use http(s)://host:port without userinfo"))?;
    if origin.scheme == Scheme::Http && !is_loopback_name(&origin.host) {
        return Err(refuse("plain http is accepted only for loopback hosts"));
    }
    Ok(origin)
}

/// What the operator approved for one connector version: its manifest, plus the host's extra
/// origins and insecure-loopback setting.
#[derive(Debug, Clone)]
pub struct EgressRules {
    manifest: Arc<Manifest>,
    extra_origins: Arc<[Origin]>,
    allow_insecure_loopback: bool,
}

impl Default for EgressRules {
    fn default() -> Self {
        Self::new(Arc::new(Manifest::default()), Vec::new().into(), false)
    }
}

impl EgressRules {
    /// The rules of a version with `manifest` on a host with `extra_origins`.
    pub fn new(
        manifest: Arc<Manifest>,
        extra_origins: Arc<[Origin]>,
        allow_insecure_loopback: bool,
    ) -> Self {
        Self {
            manifest,
            extra_origins,
            allow_insecure_loopback,
        }
    }

    /// The approved manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Whether plain http to approved loopback origins is on.
    pub fn allow_insecure_loopback(&self) -> bool {
        self.allow_insecure_loopback
    }

    /// Whether `host` is within the rules: a manifest pattern or an extra origin's host.
    pub fn covers_host(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.manifest.matches_host(&host) || self.extra_origins.iter().any(|o| o.host == host)
    }

    /// The approved origins of `host` (normalised): `https://host:443` when the manifest
    /// covers it, and each extra origin with that host.
    fn origins_of(&self, host: &str) -> Vec<Origin> {
        let mut origins: Vec<Origin> = self
            .extra_origins
            .iter()
            .filter(|o| o.host == host)
            .cloned()
            .collect();
        if self.manifest.matches_host(host) {
            origins.push(Origin {
                scheme: Scheme::Https,
                host: host.to_string(),
                port: 443,
            });
        }
        origins
    }

    fn is_extra(&self, origin: &Origin) -> bool {
        self.extra_origins.contains(origin)
    }

    /// Checks that requests may go to `origin` at all.
    pub fn check_origin(&self, origin: &Origin) -> Result<(), PolicyError> {
        let approved = if self.is_extra(origin) {
            true
        } else {
            origin.scheme == Scheme::Https
                && origin.port == 443
                && self.manifest.matches_host(&origin.host)
        };
        if !approved {
            return Err(PolicyError::NotApproved {
                origin: origin.clone(),
                approved: self.to_string(),
            });
        }
        if origin.scheme == Scheme::Http && !self.allow_insecure_loopback {
            return Err(PolicyError::InsecureLoopbackOff(origin.clone()));
        }
        Ok(())
    }

    /// The origin of `url` when requests may go there.
    pub fn check_url(&self, url: &str) -> Result<Origin, PolicyError> {
        let origin = Origin::parse(url)?;
        self.check_origin(&origin)?;
        if let Ok(ip) = origin.host.parse::<IpAddr>() {
            self.check_addr(&origin, ip)
                .map_err(|reason| PolicyError::BadUrl {
                    url: url.to_string(),
                    reason,
                })?;
        }
        Ok(origin)
    }

    /// Checks an address `origin`'s host resolved to.
    pub fn check_addr(&self, origin: &Origin, ip: IpAddr) -> Result<(), String> {
        let ip = canonical_ip(ip);
        if ip.is_loopback() {
            if self.allow_insecure_loopback
                && is_loopback_name(&origin.host)
                && self.is_extra(origin)
            {
                return Ok(());
            }
            return Err(format!(
                "{} resolves to loopback address {ip}; allowed only for a loopback name at an \
                 extra origin the operator approved, with insecure loopback enabled",
                origin.host
            ));
        }
        match prohibited_range(ip) {
            Some(range) => Err(format!(
                "{} resolves to {ip}, in the {range} range",
                origin.host
            )),
            None => Ok(()),
        }
    }
}

impl fmt::Display for EgressRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.manifest.hosts.is_empty() {
            f.write_str("no manifest hosts")?;
        } else {
            write!(f, "{} over https on port 443", join(&self.manifest.hosts))?;
        }
        if !self.extra_origins.is_empty() {
            write!(f, "; extra origins {}", join(self.extra_origins.iter()))?;
        }
        Ok(())
    }
}

/// Where one connector call may send requests, and which of them carry credentials.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    rules: EgressRules,
    /// Hosts (lower-case) the call may reach: those `configure` declared, and the instance host.
    hosts: BTreeSet<String>,
    /// The origins whose requests carry the integration's credentials: the grant's instance
    /// origin alone, else the approved origins of the declared hosts.
    credential_origins: BTreeSet<Origin>,
}

impl OutboundPolicy {
    /// A policy that denies every request.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// The policy of an integration: the hosts its connector declared in `configure`, each of
    /// which must be within `rules`, plus the origin of the grant's `instance_url`, which
    /// must be approved too. Credentials go to the instance origin when there is one, else to
    /// the approved origins of the declared hosts.
    pub fn for_integration(
        rules: EgressRules,
        declared_hosts: impl IntoIterator<Item = impl AsRef<str>>,
        instance_url: Option<&str>,
    ) -> Result<Self, PolicyError> {
        let mut hosts = BTreeSet::new();
        for host in declared_hosts {
            let host = normalize_host(host.as_ref());
            if host.is_empty() {
                continue;
            }
            if !rules.covers_host(&host) {
                return Err(PolicyError::HostNotApproved {
                    host,
                    approved: rules.to_string(),
                });
            }
            hosts.insert(host);
        }
        let credential_origins = match instance_url {
            Some(url) => {
                let origin = rules.check_url(url)?;
                hosts.insert(origin.host.clone());
                BTreeSet::from([origin])
            }
            None => hosts
                .iter()
                .flat_map(|host| rules.origins_of(host))
                .collect(),
        };
        Ok(Self {
            rules,
            hosts,
            credential_origins,
        })
    }

    /// Checks one destination before it is resolved; the error says why it is refused.
    pub fn check(&self, origin: &Origin) -> Result<(), String> {
        if !self.hosts.contains(&origin.host) {
            return Err(format!(
                "host {} is not one the connector declared for this integration",
                origin.host
            ));
        }
        self.rules.check_origin(origin).map_err(|e| e.to_string())
    }

    /// Checks an address the destination's host resolved to.
    pub fn check_addr(&self, origin: &Origin, ip: IpAddr) -> Result<(), String> {
        self.rules.check_addr(origin, ip)
    }

    /// Whether requests to `origin` carry the integration's credentials.
    pub fn carries_credentials(&self, origin: &Origin) -> bool {
        self.credential_origins.contains(origin)
    }

    /// Whether the connector's manifest marks `status` as a transient refusal to retry.
    pub fn retries_status(&self, status: u16) -> bool {
        self.rules
            .manifest()
            .retry_statuses
            .iter()
            .any(|s| s.code() == status)
    }

    /// Checks that a credentialed request may use `method`.
    pub fn check_credentialed_method(&self, method: &http::Method) -> Result<(), String> {
        let declared = &self.rules.manifest().credential_methods;
        match CredentialMethod::of(method) {
            Some(m) if declared.contains(&m) => Ok(()),
            _ => Err(format!(
                "{method} with the integration's credentials is not declared by the connector's \
                 manifest (declared: {})",
                join(declared)
            )),
        }
    }
}

/// Lower-case, without IPv6 brackets or a trailing dot.
pub fn normalize_host(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

/// Whether `host` names the loopback interface.
pub fn is_loopback_name(host: &str) -> bool {
    let host = normalize_host(host);
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| canonical_ip(ip).is_loopback())
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// The non-public range `ip` lies in, if any (loopback included).
pub fn prohibited_range(ip: IpAddr) -> Option<&'static str> {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => prohibited_v4(v4),
        IpAddr::V6(v6) => prohibited_v6(v6),
    }
}

fn prohibited_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "carrier-grade NAT (100.64.0.0/10)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local and cloud metadata (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 88, 99) => "6to4 relay (192.88.99.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        (240..=255, _, _) => "reserved and broadcast (240.0.0.0/4)",
        _ => return None,
    })
}

/// The IPv4 address in the last 32 bits of `seg`.
fn embedded_v4(seg: &[u16; 8]) -> Ipv4Addr {
    Ipv4Addr::new(
        (seg[6] >> 8) as u8,
        seg[6] as u8,
        (seg[7] >> 8) as u8,
        seg[7] as u8,
    )
}

fn prohibited_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let seg = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified (::)");
    }
    if ip.is_loopback() {
        return Some("loopback (::1)");
    }
    // Addresses that embed an IPv4 address are judged by it (IPv4-mapped ones, ::ffff:0:0/96,
    // were turned into that address already).
    if seg[0..6] == [0, 0, 0, 0, 0xffff, 0] {
        return prohibited_v4(embedded_v4(&seg))
            .map(|_| "IPv4-translated (::ffff:0:0:0/96) of a non-public IPv4 address");
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6] == [0, 0, 0, 0] {
        return prohibited_v4(embedded_v4(&seg)).map(|_| "NAT64 of a non-public IPv4 address");
    }
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2] == 1 {
        // Local-use NAT64 translates into the operator's own network.
        return Some("local-use NAT64 (64:ff9b:1::/48)");
    }
    if seg[0] == 0x2002 {
        let v4 = Ipv4Addr::new(
            (seg[1] >> 8) as u8,
            seg[1] as u8,
            (seg[2] >> 8) as u8,
            seg[2] as u8,
        );
        return prohibited_v4(v4).map(|_| "6to4 of a non-public IPv4 address");
    }
    if seg[0..6] == [0, 0, 0, 0, 0, 0] {
        return Some("IPv4-compatible (deprecated, ::/96)");
    }
    Some(match seg[0] {
        0xfc00..=0xfdff => "unique local (fc00::/7)",
        0xfe80..=0xfebf => "link-local (fe80::/10)",
        0xfec0..=0xfeff => "site-local (fec0::/10)",
        0xff00..=0xffff => "multicast (ff00::/8)",
        0x2001 if seg[1] == 0x0db8 => "documentation (2001:db8::/32)",
        0x2001 if seg[1] < 0x0200 => "IETF special purpose (2001::/23)",
        0x0100 if seg[1..4] == [0, 0, 0] => "discard (100::/64)",
        _ => return None,
    })
}

/// Resolves `host` with the system resolver and checks every address against `rules` for
/// `origin`; a name with any refused address is refused as a whole.
pub async fn resolve_checked(
    rules: &EgressRules,
    origin: &Origin,
) -> Result<Vec<SocketAddr>, ResolveError> {
    let addrs: Vec<SocketAddr> = match origin.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, origin.port)],
        Err(_) => tokio::net::lookup_host((origin.host.as_str(), origin.port))
            .await
            .map_err(|e| ResolveError::Lookup(e.to_string()))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(ResolveError::Lookup(format!(
            "{} has no address",
            origin.host
        )));
    }
    for addr in &addrs {
        rules
            .check_addr(origin, addr.ip())
            .map_err(ResolveError::Denied)?;
    }
    Ok(addrs)
}

/// Why [`resolve_checked`] gave no address.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    /// The lookup failed.
    #[error("cannot resolve: {0}")]
    Lookup(String),
    /// An address is refused.
    #[error("{0}")]
    Denied(String),
}

#[cfg(test)]
mod tests;
