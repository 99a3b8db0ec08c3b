//! Generic conformance checks for Sluice connector components.
//!
//! A connector is untrusted code that the host runs page by page, resuming from whatever
//! checkpoint it last committed, possibly under another version or page size. These checks
//! hold for every connector whatever its provider; each is a named [`Check`] that passes,
//! fails with a message naming what broke, or is skipped with the reason. [`run`] loads the
//! component in a real engine (sandbox, egress policy, host-side credentials) and pulls a real
//! account (in tests, an emulator on loopback) through it; `sluice conformance FILE.wasm`
//! prints the [`Report`] and writes it as JUnit XML ([`to_junit`]), and connector crates can
//! call [`run`] from `cargo test`.

mod configure_checks;
mod data_checks;
mod failure_kinds;
pub mod harness;
mod imports;
pub mod integration;
mod junit;
mod previous;
pub mod pulls;
mod refused;
pub mod report;
pub mod store;

use sluice_engine::policy::PolicyError;
use sluice_engine::{ConnectorEngine, EngineError, EngineLimits};

pub use harness::Approvals;
pub use imports::top_level_imports;
pub use integration::{Integration, IntegrationError};
pub use junit::to_junit;
pub use report::{Check, CheckResult, Outcome, Report};

use harness::Harness;
use pulls::{Findings, Run};

/// The page caps the data checks pull with; the last one is the reference.
pub const PAGE_SIZES: [u32; 3] = [1, 7, 1000];

/// Why a conformance run could not check anything.
#[derive(Debug, thiserror::Error)]
pub enum ConformanceError {
    /// The engine could not load the component or complete `describe`/`configure`.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// `configure` refused the settings under test, so nothing can be pulled.
    #[error("configure refused the settings under test: {0}")]
    SettingsRefused(String),
    /// The given secret cannot be sent as the connector's credential plan asks.
    #[error("the credentials cannot be sent as the connector's plan asks: {0}")]
    Credentials(String),
    /// The declared hosts or the grant's instance URL are outside the approved hosts.
    #[error("the integration's egress is refused: {0}")]
    Policy(#[from] PolicyError),
}

/// What to check, against which account.
pub struct Options {
    /// The component under test.
    pub component: Vec<u8>,
    /// The version it replaces, for [`Check::PreviousVersion`].
    pub previous: Option<Vec<u8>>,
    /// The integration's settings and grant.
    pub integration: Integration,
    /// The secret the engine sends as the connector's credential plan asks (an OAuth access
    /// token, an API key, or `user:password`), toward the hosts that plan's policy allows.
    pub secret: Option<String>,
    /// What the operator approves besides the manifest.
    pub approvals: Approvals,
    /// The engine's limits (extra trusted roots among them).
    pub limits: EngineLimits,
}

/// Runs every check.
pub async fn run(options: Options) -> Result<Report, ConformanceError> {
    let engine = ConnectorEngine::new(options.limits.clone())?;
    let open = |role: &'static str, wasm: Vec<u8>| {
        let (engine, secret) = (engine.clone(), options.secret.as_deref());
        let (integration, approvals) = (&options.integration, &options.approvals);
        async move { Harness::open(engine, role, &wasm, integration, approvals, secret).await }
    };
    let harness = open("candidate", options.component.clone()).await?;
    let previous = match options.previous.clone() {
        Some(wasm) => Some(open("previous", wasm).await?),
        None => None,
    };
    let mut results = Vec::new();
    let mut record = |check: Check, outcome: Outcome| results.push(CheckResult { check, outcome });
    record(Check::Imports, imports::check(&options.component));
    record(
        Check::FieldErrorsNameSettings,
        configure_checks::field_errors(&harness).await,
    );
    record(
        Check::ConfigureIdempotent,
        configure_checks::idempotent(&harness).await,
    );
    record(
        Check::AllowedHostsExact,
        configure_checks::allowed_hosts(&harness),
    );
    record(
        Check::PlainHttpRefused,
        configure_checks::plain_http(&harness).await,
    );
    record(
        Check::TestFailureKinds,
        failure_kinds::check(&harness, &options.component, &options.limits).await,
    );

    // The denials of configure's probes are not the pulls' to answer for.
    engine.take_denials();
    let mut findings = Findings::default();
    let mut runs: Vec<Run> = Vec::new();
    for max_records in PAGE_SIZES {
        let keep_snapshots = max_records == 7;
        runs.push(
            harness
                .run(max_records, keep_snapshots, &mut findings)
                .await,
        );
    }
    let checkpointed = runs
        .iter()
        .find(|r| r.max_records == 7)
        .expect("a run at 7");
    let resumed = data_checks::resume(&harness, checkpointed, &mut findings).await;
    let skipped = refused::check(
        &harness,
        &options.component,
        &options.limits,
        checkpointed,
        &findings,
    )
    .await;
    let upgrade = match &previous {
        Some(old) => previous::check(&harness, checkpointed, old, &mut findings).await,
        None => Outcome::Skip("no --previous version given".into()),
    };
    let denials = engine.take_denials();

    record(
        Check::RowsWithinMaxRecords,
        data_checks::rows_within_max(&findings),
    );
    record(
        Check::KeysMatchKeyFields,
        data_checks::keys_match(&findings),
    );
    record(
        Check::SameDataAcrossPageSizes,
        data_checks::same_data(&runs),
    );
    record(Check::ResumeFromCheckpoints, resumed);
    record(Check::SkippedStreamKeepsCheckpoint, skipped);
    record(
        Check::NoEgressOutsideAllowedHosts,
        data_checks::no_egress_denied(&denials, findings.pages),
    );
    record(Check::PreviousVersion, upgrade);
    Ok(Report {
        connector: harness.label(),
        results,
    })
}
