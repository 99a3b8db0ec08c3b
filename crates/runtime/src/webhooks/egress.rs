//! Where webhooks may go: the connectors' egress rules, applied to the operator's URLs.
//!
//! Threat: a webhook URL naming, or resolving to, a private, loopback or link-local address
//! makes the host send requests into its own network; a name re-pointed between the check and
//! the connection (DNS rebinding) would do the same behind a checked name; a redirect would
//! send the request on to anywhere.
//! Rule: https to a name or address that is public, at any port; anything else (plain http,
//! loopback) only at an origin the operator approved exactly (`--extra-origin`, with insecure
//! loopback for plain http), as for connectors. Each attempt resolves the name once, refuses
//! it as a whole if any address is refused, and connects only to the checked addresses;
//! redirects are not followed.

use std::sync::Arc;
use std::time::Duration;

use crate::app::AppConfig;
use crate::engine::manifest::Manifest;
use crate::engine::policy::{EgressRules, Origin, PolicyError, Scheme, resolve_checked};
use crate::engine::roots::ExtraRoots;

/// The egress rules for webhook URLs on one host.
#[derive(Debug, Clone)]
pub struct WebhookEgress {
    rules: EgressRules,
    extra_roots: ExtraRoots,
}

/// Why a delivery could not be sent to its URL.
#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    /// The URL is outside the rules.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The name did not resolve, or resolved to a refused address.
    #[error("{0}")]
    Resolve(String),
    /// The HTTP client could not be built.
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl WebhookEgress {
    /// The rules of a host set up with `config`: no manifest hosts, its extra origins and its
    /// insecure-loopback setting.
    pub fn of(config: &AppConfig) -> Self {
        Self {
            rules: EgressRules::new(
                Arc::new(Manifest::default()),
                config.extra_origins.clone().into(),
                config.allow_insecure_loopback,
            ),
            extra_roots: config.limits.outbound.extra_roots.clone(),
        }
    }

    /// The origin of `url` when webhooks may go there (before resolving its name).
    pub fn check_url(&self, url: &str) -> Result<Origin, PolicyError> {
        let origin = Origin::parse(url)?;
        // https goes to any public host; anything else only to an approved extra origin.
        if origin.scheme != Scheme::Https {
            self.rules.check_origin(&origin)?;
        }
        if let Ok(ip) = origin.host.parse::<std::net::IpAddr>() {
            self.rules
                .check_addr(&origin, ip)
                .map_err(|reason| PolicyError::BadUrl {
                    url: url.to_string(),
                    reason,
                })?;
        }
        Ok(origin)
    }

    /// A client for one delivery to `url`: the name resolved now, every address checked, the
    /// connection pinned to them, no redirects, at most `timeout` per request.
    pub async fn client_for(
        &self,
        url: &str,
        timeout: Duration,
    ) -> Result<reqwest::Client, EgressError> {
        let origin = self.check_url(url)?;
        let addrs = tokio::time::timeout(timeout, resolve_checked(&self.rules, &origin))
            .await
            .map_err(|_| EgressError::Resolve(format!("resolving {} timed out", origin.host)))?
            .map_err(|e| EgressError::Resolve(e.to_string()))?;
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .resolve_to_addrs(&origin.host, &addrs)
            .dns_resolver(Arc::new(crate::oauth::NoLookups));
        for root in self.extra_roots.certificates() {
            let root = reqwest::Certificate::from_der(root)
                .map_err(|e| EgressError::Client(format!("an extra root is unusable: {e}")))?;
            builder = builder.add_root_certificate(root);
        }
        builder
            .build()
            .map_err(|e| EgressError::Client(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn egress(extra: &[&str], insecure: bool) -> WebhookEgress {
        let mut config = AppConfig::new("/nonexistent".into());
        config.allow_insecure_loopback = insecure;
        config.extra_origins = extra
            .iter()
            .map(|o| crate::engine::policy::parse_extra_origin(o).unwrap())
            .collect();
        WebhookEgress::of(&config)
    }

    #[test]
    fn public_https_passes_and_private_or_plain_targets_are_refused() {
        let rules = egress(&[], false);
        assert!(rules.check_url("https://hooks.example.com/sluice").is_ok());
        assert!(rules.check_url("https://hooks.example.com:8443/x").is_ok());
        for refused in [
            "http://hooks.example.com/x",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[::ffff:192.168.0.1]/x",
            "http://127.0.0.1:9000/x",
            "https://user:pw@hooks.example.com/x",
            "ftp://hooks.example.com/x",
        ] {
            assert!(rules.check_url(refused).is_err(), "{refused} passed");
        }
    }

    #[test]
    fn loopback_needs_the_operators_exact_origin_and_insecure_loopback() {
        let approved = egress(&["http://127.0.0.1:9000"], true);
        assert!(approved.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(approved.check_url("http://127.0.0.1:9001/hook").is_err());
        let without_insecure = egress(&["http://127.0.0.1:9000"], false);
        assert!(
            without_insecure
                .check_url("http://127.0.0.1:9000/hook")
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_delivery() {
        let rules = egress(&[], false);
        let err = rules
            .client_for("https://localhost:9443/hook", Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, EgressError::Resolve(_)), "{err}");
    }
}
