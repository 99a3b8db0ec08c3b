//! WIT values and egress rules for calls into a guest: settings, sessions, pull requests,
//! manifests and outbound policies.

use std::sync::Arc;

use sluice::engine::manifest::Manifest;
use sluice::engine::outbound::OutboundPolicy;
use sluice::engine::policy::{EgressRules, Origin};
use sluice::engine::wit::types::{Grant, HostContext, PullRequest, Session, Settings};

/// The origin (scheme, host, port) of `url`.
pub fn origin(url: &str) -> Origin {
    Origin::parse(url).expect("a test URL")
}

/// A manifest section's JSON declaring `hosts` and `methods` for credentialed requests.
pub fn manifest_json(hosts: &[&str], methods: &[&str]) -> Vec<u8> {
    serde_json::json!({"hosts": hosts, "credential-methods": methods})
        .to_string()
        .into_bytes()
}

/// Egress rules: a manifest with `hosts` patterns and every credentialed method, the origins
/// of `extra` URLs approved exactly, and insecure loopback on or off.
pub fn rules(hosts: &[&str], extra: &[&str], insecure_loopback: bool) -> EgressRules {
    let all = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];
    let manifest = Manifest::from_json(&manifest_json(hosts, &all)).expect("a test manifest");
    let extra: Vec<Origin> = extra.iter().map(|u| origin(u)).collect();
    EgressRules::new(Arc::new(manifest), extra.into(), insecure_loopback)
}

/// A policy under which the connector declared the hosts of `urls`, each approved at its
/// exact origin; no instance URL (no credentials).
pub fn policy_for(urls: &[&str], insecure_loopback: bool) -> OutboundPolicy {
    let hosts: Vec<String> = urls.iter().map(|u| origin(u).host).collect();
    OutboundPolicy::for_integration(rules(&[], urls, insecure_loopback), hosts, None)
        .expect("the declared hosts are approved")
}

/// Settings that select `behaviour` (of the hostile test connector, a 0.1 component: it is
/// given the environment 0.1 requires), plus further `extra` pairs.
pub fn settings(behaviour: &str, extra: &[(&str, &str)]) -> Settings {
    let mut pairs = vec![
        ("environment".to_string(), "production".to_string()),
        ("behaviour".to_string(), behaviour.to_string()),
    ];
    pairs.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Settings {
        capability: "crm".into(),
        values: pairs,
    }
}

/// Host facts for a call.
pub fn host_ctx(insecure_loopback: bool) -> HostContext {
    HostContext {
        allow_insecure_loopback: insecure_loopback,
        contract_version: sluice::engine::wit::VERSION.into(),
    }
}

/// A session with `settings` whose grant points at `instance_url`.
pub fn session(settings: Settings, instance_url: &str, insecure_loopback: bool) -> Session {
    Session {
        settings,
        host: host_ctx(insecure_loopback),
        grant: Grant {
            instance_url: Some(instance_url.into()),
            fields: Vec::new(),
            issued_at_ms: None,
            scopes: vec!["api".into()],
        },
    }
}

/// A pull request for the test stream.
pub fn pull_request(checkpoint: Option<String>, max_records: u32) -> PullRequest {
    PullRequest {
        stream: "Thing".into(),
        checkpoint,
        max_records,
    }
}
