//! The checks on `configure`: field errors name declared settings, configuring the normalised
//! settings again changes nothing, allowed hosts are exact and approved, and plain http is
//! refused when the host does not allow it.

use std::collections::BTreeSet;

use sluice_engine::policy::normalize_host;
use sluice_engine::wit::types::{
    Configured, FieldError, RequiredFor, Setting, SettingKind, Settings,
};

use crate::harness::Harness;
use crate::report::Outcome;

/// One setting changed for a probe of `configure`.
struct Probe {
    /// The setting.
    name: String,
    /// The value given, or None for leaving it out.
    value: Option<String>,
    /// Whether the connector must refuse it (a missing required setting, a value not of its kind).
    must_refuse: bool,
}

/// Values that are not of `kind`; empty for kinds any text fits.
fn wrong_values(kind: &SettingKind) -> Vec<&'static str> {
    match kind {
        SettingKind::Url => vec!["not a url", "ftp://files.example/"],
        SettingKind::Choice(_) => vec!["no-such-option"],
        SettingKind::Boolean => vec!["maybe"],
        SettingKind::Integer => vec!["twelve", "1.5"],
        SettingKind::Duration => vec!["soon"],
        SettingKind::Date => vec!["2026-13-45", "yesterday"],
        SettingKind::Text | SettingKind::Secret => Vec::new(),
    }
}

fn required(setting: &Setting, capability: &str) -> bool {
    match &setting.required {
        RequiredFor::None => false,
        RequiredFor::All => true,
        RequiredFor::Capabilities(names) => names.iter().any(|n| n == capability),
    }
}

/// The probes of every declared setting: left out, and given values not of its kind.
fn probes(declared: &[Setting], capability: &str) -> Vec<Probe> {
    let mut probes = Vec::new();
    for setting in declared
        .iter()
        .filter(|s| !matches!(s.kind, SettingKind::Secret))
    {
        probes.push(Probe {
            name: setting.name.clone(),
            value: None,
            must_refuse: required(setting, capability),
        });
        for value in wrong_values(&setting.kind) {
            probes.push(Probe {
                name: setting.name.clone(),
                value: Some(value.to_string()),
                must_refuse: true,
            });
        }
    }
    probes
}

fn with_probe(base: &Settings, probe: &Probe) -> Settings {
    let mut values: Vec<(String, String)> = base
        .values
        .iter()
        .filter(|(name, _)| *name != probe.name)
        .cloned()
        .collect();
    if let Some(value) = &probe.value {
        values.push((probe.name.clone(), value.clone()));
    }
    Settings {
        capability: base.capability.clone(),
        values,
    }
}

fn describe_probe(probe: &Probe) -> String {
    match &probe.value {
        Some(value) => format!("{} = {value:?}", probe.name),
        None => format!("{} left out", probe.name),
    }
}

/// Whether every error names a declared setting (or `capability`), and one names the probed
/// setting; otherwise what is wrong.
fn judge(errors: &[FieldError], declared: &BTreeSet<&str>, probe: &Probe) -> Result<(), String> {
    if let Some(stray) = errors
        .iter()
        .find(|e| e.field != "capability" && !declared.contains(e.field.as_str()))
    {
        return Err(format!(
            "with {}, configure named {:?}, which is not a declared setting ({})",
            describe_probe(probe),
            stray.field,
            stray.message
        ));
    }
    if probe.must_refuse && !errors.iter().any(|e| e.field == probe.name) {
        let named: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        return Err(format!(
            "with {}, the errors name {} but not {}",
            describe_probe(probe),
            named.join(", "),
            probe.name
        ));
    }
    Ok(())
}

/// Feeds `configure` missing and wrong values of each declared setting.
pub async fn field_errors(harness: &Harness) -> Outcome {
    let declared: BTreeSet<&str> = harness
        .info
        .settings
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    let base = &harness.session.settings;
    let insecure = harness.session.host.allow_insecure_loopback;
    let probes = probes(&harness.info.settings, &base.capability);
    let mut refused = 0usize;
    for probe in &probes {
        match harness.configure(&with_probe(base, probe), insecure).await {
            Err(error) => {
                return Outcome::Fail(format!(
                    "with {}, configure failed: {error}",
                    describe_probe(probe)
                ));
            }
            Ok(Ok(_)) if probe.must_refuse => {
                return Outcome::Fail(format!(
                    "configure accepted {}, which it must refuse with an error naming {}",
                    describe_probe(probe),
                    probe.name
                ));
            }
            Ok(Ok(_)) => {}
            Ok(Err(errors)) => {
                refused += 1;
                if let Err(problem) = judge(&errors, &declared, probe) {
                    return Outcome::Fail(problem);
                }
            }
        }
    }
    Outcome::Pass(format!(
        "{} probes of {} declared settings; {refused} refused, every error naming a declared setting",
        probes.len(),
        declared.len()
    ))
}

/// The parts of a configure answer that must not change: everything but the warnings.
fn essence(configured: &Configured) -> String {
    format!(
        "{:?} {:?} {:?} {:?}",
        configured.allowed_hosts, configured.credentials, configured.streams, configured.normalized
    )
}

/// Configures the normalised settings and compares.
pub async fn idempotent(harness: &Harness) -> Outcome {
    let first = &harness.configured;
    let normalized = Settings {
        capability: harness.session.settings.capability.clone(),
        values: first.normalized.clone(),
    };
    let insecure = harness.session.host.allow_insecure_loopback;
    match harness.configure(&normalized, insecure).await {
        Err(error) => Outcome::Fail(format!(
            "configure of the normalised settings failed: {error}"
        )),
        Ok(Err(errors)) => {
            let named: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            Outcome::Fail(format!(
                "configure refused its own normalised settings: {}",
                named.join("; ")
            ))
        }
        Ok(Ok(second)) if essence(&second) != essence(first) => Outcome::Fail(format!(
            "configure of the normalised settings answered differently: first {}, then {}",
            essence(first),
            essence(&second)
        )),
        Ok(Ok(_)) => Outcome::Pass(format!(
            "{} normalised settings configure to the same hosts, plan, streams and settings",
            first.normalized.len()
        )),
    }
}

/// Allowed hosts are exact names (no wildcard, scheme, port or path) within the approved hosts.
pub fn allowed_hosts(harness: &Harness) -> Outcome {
    let hosts = &harness.configured.allowed_hosts;
    for host in hosts {
        let exact = !host.is_empty()
            && !host.contains(['*', '/', ':', '@', ' '])
            && normalize_host(host) == *host;
        if !exact {
            return Outcome::Fail(format!(
                "allowed host {host:?} is not an exact lower-case host name (no wildcard, scheme, port or path)"
            ));
        }
        if !harness.rules.covers_host(host) {
            return Outcome::Fail(format!(
                "allowed host {host} is outside the approved hosts ({})",
                harness.rules
            ));
        }
    }
    Outcome::Pass(format!(
        "{} allowed hosts, exact and within {}",
        hosts.len(),
        harness.rules
    ))
}

/// A URL setting made plain http, configured with insecure loopback off, must be refused
/// with an error naming it.
pub async fn plain_http(harness: &Harness) -> Outcome {
    let base = &harness.session.settings;
    let url_settings: Vec<&Setting> = harness
        .info
        .settings
        .iter()
        .filter(|s| matches!(s.kind, SettingKind::Url))
        .collect();
    let candidates: Vec<(String, String)> = base
        .values
        .iter()
        .filter(|(name, value)| {
            url_settings.iter().any(|s| &s.name == name)
                || value.starts_with("http://")
                || value.starts_with("https://")
        })
        .map(|(name, value)| (name.clone(), as_plain_http(value)))
        .collect();
    if candidates.is_empty() {
        return Outcome::Skip("no setting holds a URL".into());
    }
    for (name, value) in &candidates {
        let probe = Probe {
            name: name.clone(),
            value: Some(value.clone()),
            must_refuse: true,
        };
        match harness.configure(&with_probe(base, &probe), false).await {
            Err(error) => return Outcome::Fail(format!("configure failed: {error}")),
            Ok(Ok(_)) => {
                return Outcome::Fail(format!(
                    "configure accepted {name} = {value:?} without insecure loopback"
                ));
            }
            Ok(Err(errors)) if !errors.iter().any(|e| &e.field == name) => {
                return Outcome::Fail(format!(
                    "configure refused {name} = {value:?} without insecure loopback, but no error names {name}"
                ));
            }
            Ok(Err(_)) => {}
        }
    }
    let names: Vec<&str> = candidates.iter().map(|(n, _)| n.as_str()).collect();
    Outcome::Pass(format!("plain http refused for {}", names.join(", ")))
}

/// `value` with its scheme made `http`.
fn as_plain_http(value: &str) -> String {
    match value.strip_prefix("https://") {
        Some(rest) => format!("http://{rest}"),
        None => value.to_string(),
    }
}
