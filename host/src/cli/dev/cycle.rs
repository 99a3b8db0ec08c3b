//! One run of `sluice dev`: configure, test and a few pages of each stream on the active
//! version, from the checkpoints the previous run left, printing rows, checkpoint moves, API
//! calls, egress denials with their fix, and cassette misses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::engine::credentials::{CredentialProvider, FixedCredential};
use crate::engine::outbound::OutboundPolicy;
use crate::engine::outbound::cassette::Tape;
use crate::engine::policy::{EgressRules, Origin, PolicyError};
use crate::engine::registry::ConnectorRegistry;
use crate::engine::wit::types::{
    Configured, Grant, HostContext, Operation, Page, PullRequest, Session, Settings, StreamStatus,
};
use crate::engine::{CallContext, LoadedConnector};
use crate::output::outln;
use crate::terminal::safe;

use super::SettingsFile;

/// What every run uses.
pub struct Dev {
    /// Where the developer's versions live.
    pub registry: Arc<ConnectorRegistry>,
    /// The settings file's contents.
    pub settings: SettingsFile,
    /// Origins approved besides the manifest (`--extra-origin`, the emulator).
    pub extra_origins: Arc<[Origin]>,
    /// Whether plain http to approved loopback origins is allowed.
    pub insecure_loopback: bool,
    /// The origin the token goes to.
    pub instance_url: Option<String>,
    /// The secret sent as the connector's credential plan asks (an access token, an API key
    /// or `user:password`), with the environment variable it came from.
    pub secret: Option<(String, String)>,
    /// Recording or replay.
    pub tape: Tape,
    /// Pages per stream and run.
    pub pages: u32,
    /// Rows asked for per page.
    pub max_records: u32,
    /// Rows printed per page.
    pub show_rows: usize,
}

/// What runs hand on to the next: each stream's checkpoint.
#[derive(Debug, Default)]
pub struct State {
    checkpoints: BTreeMap<String, Option<String>>,
}

/// Longest stretch of a row's JSON printed.
const ROW_CHARS: usize = 200;

impl Dev {
    /// Runs `connector` once; `since` is when the start or the change that led here happened,
    /// for the time to the first page, printed as `{since_label} to first page`. Returns
    /// whether everything passed.
    pub async fn run(
        &self,
        connector: &Arc<LoadedConnector>,
        state: &mut State,
        (since_label, since): (&str, Instant),
    ) -> anyhow::Result<bool> {
        let engine = self.registry.engine().clone();
        outln!(
            "== version {} ({}, contract {}) ==",
            connector.version,
            connector.label,
            connector.contract
        )?;
        let requests_before = engine.metrics().outbound_requests.load(Ordering::Relaxed);
        let bare = CallContext::default();
        let info = engine.describe(connector, &bare).await?;
        let settings = Settings {
            capability: self
                .settings
                .capability
                .clone()
                .or_else(|| info.capabilities.first().map(|c| c.name.clone()))
                .unwrap_or_default(),
            values: self
                .settings
                .values
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let host = HostContext {
            allow_insecure_loopback: self.insecure_loopback,
            contract_version: crate::engine::wit::VERSION.into(),
        };
        let configured = match engine.configure(connector, &bare, &settings, &host).await? {
            Ok(configured) => configured,
            Err(errors) => {
                for e in errors {
                    outln!("settings: {}: {}", safe(&e.field), safe(&e.message))?;
                }
                return Ok(false);
            }
        };
        outln!(
            "configure: ok; allowed hosts {}; streams {}",
            configured.allowed_hosts.join(", "),
            configured
                .streams
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        let rules = EgressRules::new(
            connector.manifest.clone(),
            self.extra_origins.clone(),
            self.insecure_loopback,
        );
        let policy = match OutboundPolicy::for_integration(
            rules.clone(),
            &configured.allowed_hosts,
            self.instance_url.as_deref(),
        ) {
            Ok(policy) => policy,
            Err(e) => {
                outln!("egress refused: {e}")?;
                outln!("  fix: {}", policy_fix(&e))?;
                return Ok(false);
            }
        };
        let credentials = match &self.secret {
            Some((secret, var)) => match FixedCredential::for_plan(
                &configured.credentials,
                secret,
                format!(
                    "the provider refused the credentials from {var}; put fresh ones there and save a file to run again"
                ),
            ) {
                Ok(c) => c.map(|c| Arc::new(c) as Arc<dyn CredentialProvider>),
                Err(e) => {
                    outln!("credentials from {var} unusable: {e}")?;
                    return Ok(false);
                }
            },
            None => None,
        };
        let ctx = CallContext {
            integration: Some("dev".into()),
            run: None,
            policy: Arc::new(policy),
            credentials,
            stored_keys: None,
        };
        let session = Session {
            settings,
            host,
            grant: Grant {
                instance_url: self.instance_url.clone(),
                fields: self
                    .settings
                    .grant
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                issued_at_ms: None,
                scopes: Vec::new(),
            },
        };
        let mut ok = self.test(connector, &ctx, &session).await?;
        let mut first_page = true;
        let mut api_calls = 0u64;
        for stream in &configured.streams {
            ok &= self
                .pull_stream(
                    connector,
                    &ctx,
                    &session,
                    &stream.name,
                    state,
                    &mut |page_calls| {
                        api_calls += u64::from(page_calls);
                        std::mem::take(&mut first_page).then(|| {
                            format!(
                                "{since_label} to first page: {:.2} s",
                                since.elapsed().as_secs_f64()
                            )
                        })
                    },
                )
                .await?;
        }
        let requests = engine.metrics().outbound_requests.load(Ordering::Relaxed) - requests_before;
        outln!("API calls: {api_calls} reported by the connector; {requests} requests sent")?;
        ok &= self.report_denials(&engine.take_denials(), &configured, &rules)?;
        ok &= self.report_tape()?;
        Ok(ok)
    }

    async fn test(
        &self,
        connector: &LoadedConnector,
        ctx: &CallContext,
        session: &Session,
    ) -> anyhow::Result<bool> {
        let engine = self.registry.engine();
        let report = engine.test(connector, ctx, session).await?;
        for probe in &report.probes {
            match &probe.failure {
                None => outln!("  probe {}: ok {}", safe(&probe.name), safe(&probe.detail))?,
                Some(f) => outln!(
                    "  probe {}: {:?}: {}",
                    safe(&probe.name),
                    f.kind,
                    safe(&f.message)
                )?,
            }
        }
        match &report.failure {
            None => outln!("test: ok")?,
            Some(f) => outln!("test: failed ({:?}): {}", f.kind, safe(&f.message))?,
        }
        Ok(report.failure.is_none())
    }

    /// Pulls up to `pages` pages of `stream` from its last checkpoint. `page_done` is told
    /// each page's API calls and answers a line to print after the page, if any.
    async fn pull_stream(
        &self,
        connector: &LoadedConnector,
        ctx: &CallContext,
        session: &Session,
        stream: &str,
        state: &mut State,
        page_done: &mut dyn FnMut(u32) -> Option<String>,
    ) -> anyhow::Result<bool> {
        let engine = self.registry.engine();
        for number in 1..=self.pages {
            let checkpoint = state.checkpoints.get(stream).cloned().flatten();
            let request = PullRequest {
                stream: stream.to_string(),
                checkpoint: checkpoint.clone(),
                max_records: self.max_records,
            };
            let page = match engine.pull(connector, ctx, session, &request).await? {
                Ok(page) => page,
                Err(f) => {
                    outln!(
                        "page {number} of {stream} (v{}): failed ({:?}): {}",
                        connector.version,
                        f.kind,
                        safe(&f.message)
                    )?;
                    return Ok(false);
                }
            };
            let elapsed = page_done(page.api_calls);
            self.print_page(connector, stream, number, &checkpoint, &page)?;
            if let Some(elapsed) = elapsed {
                outln!("{elapsed}")?;
            }
            state
                .checkpoints
                .insert(stream.to_string(), page.checkpoint.clone());
            if !matches!(page.status, StreamStatus::Partial) {
                break;
            }
        }
        Ok(true)
    }

    fn print_page(
        &self,
        connector: &LoadedConnector,
        stream: &str,
        number: u32,
        before: &Option<String>,
        page: &Page,
    ) -> anyhow::Result<()> {
        let status = match &page.status {
            StreamStatus::Partial => "more to come".to_string(),
            StreamStatus::Complete => "complete".to_string(),
            StreamStatus::Skipped(reason) => format!("skipped: {}", safe(reason)),
        };
        outln!(
            "page {number} of {stream} (v{}): {} rows, {status}, {} API calls",
            connector.version,
            page.rows.len(),
            page.api_calls
        )?;
        for row in page.rows.iter().take(self.show_rows) {
            let json = String::from_utf8_lossy(&row.json);
            let shown: String = json.chars().take(ROW_CHARS).collect();
            let more = if json.chars().count() > ROW_CHARS {
                "…"
            } else {
                ""
            };
            let op = match row.op {
                Operation::Upsert => "upsert",
                Operation::Delete => "delete",
                Operation::Merge => "merge",
            };
            outln!("  {} {op} {}{more}", safe(&row.key), safe(&shown))?;
        }
        if page.rows.len() > self.show_rows {
            outln!("  … {} more", page.rows.len() - self.show_rows)?;
        }
        let shown = |c: &Option<String>| {
            c.as_deref()
                .map(|c| safe(c).into_owned())
                .unwrap_or_else(|| "(none)".into())
        };
        if *before == page.checkpoint {
            outln!("  checkpoint unchanged: {}", shown(before))?;
        } else {
            outln!(
                "  checkpoint: {} -> {}",
                shown(before),
                shown(&page.checkpoint)
            )?;
        }
        Ok(())
    }

    /// Prints each denial with what would allow it; false when there was any.
    fn report_denials(
        &self,
        denials: &[crate::engine::outbound::Denial],
        configured: &Configured,
        rules: &EgressRules,
    ) -> anyhow::Result<bool> {
        for denial in denials {
            outln!(
                "egress denied: {}: {}",
                safe(&denial.target),
                safe(&denial.reason)
            )?;
            outln!("  fix: {}", denial_fix(&denial.target, configured, rules))?;
        }
        Ok(denials.is_empty())
    }

    /// Prints the cassette's misses (replay) or what was recorded; false on a miss.
    fn report_tape(&self) -> anyhow::Result<bool> {
        match &self.tape {
            Tape::Off => Ok(true),
            Tape::Record(recorder) => {
                outln!(
                    "recorded: {} interactions in {}",
                    recorder.recorded(),
                    recorder.dir().display()
                )?;
                for failure in recorder.failures() {
                    outln!("  not written: {}", safe(&failure))?;
                }
                Ok(recorder.failures().is_empty())
            }
            Tape::Replay(cassette) => {
                let misses = cassette.misses();
                for miss in &misses {
                    outln!("replay: {}", safe(&miss.to_string()))?;
                }
                Ok(misses.is_empty())
            }
        }
    }
}

/// What would let a request to `target` through.
fn denial_fix(target: &str, configured: &Configured, rules: &EgressRules) -> String {
    let Ok(origin) = Origin::parse(target) else {
        return "the connector built a URL that is not absolute http(s); fix the URL".into();
    };
    let declared = configured
        .allowed_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&origin.host));
    if !declared {
        return format!(
            "add `{}` to the allowed hosts configure returns",
            origin.host
        );
    }
    match rules.check_origin(&origin) {
        Err(PolicyError::InsecureLoopbackOff(_)) => "pass --allow-insecure-loopback".into(),
        Err(_) => format!(
            "add `{}` to the hosts of the crate's manifest.json (https, port 443), or add `--extra-origin {origin}`",
            origin.host
        ),
        Ok(()) => format!(
            "{} resolves to an address no connector may reach; use a public address, or `--emulator {origin}` for a loopback emulator",
            origin.host
        ),
    }
}

/// What would make the policy accept the declared hosts.
fn policy_fix(error: &PolicyError) -> String {
    match error {
        PolicyError::HostNotApproved { host, .. } => format!(
            "add `{host}` to the hosts of the crate's manifest.json, or pass `--extra-origin ORIGIN` (or `--emulator URL`) for it"
        ),
        PolicyError::InsecureLoopbackOff(_) => "pass --allow-insecure-loopback".into(),
        PolicyError::NotApproved { origin, .. } => {
            format!("add `--extra-origin {origin}` (or `--emulator {origin}`)")
        }
        _ => "check the instance URL (--instance-url or --emulator)".into(),
    }
}
