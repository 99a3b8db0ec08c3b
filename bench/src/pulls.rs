//! One Case pull into a fresh integration, through the sandbox or natively, checked against the
//! emulator's Case Ids.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use super::*;

/// What the pulls share: the host, the emulator and its ground truth.
pub(crate) struct Pulls<'a> {
    /// The host the pulls run in (one store).
    pub app: &'a Arc<App>,
    /// Where the Cases come from.
    pub emulator: &'a sf_emulator::Emulator,
    /// A client for its control API.
    pub control: &'a reqwest::Client,
    /// Its live Case Ids, read at the first check: after the first pull, so that the set does
    /// not count in that pull's `peak_rss_mb`.
    pub truth: OnceLock<BTreeSet<String>>,
    /// No progress on stderr.
    pub quiet: bool,
}

/// One finished pull.
pub(crate) struct Pulled {
    /// The integration that holds its records.
    pub integration: String,
    /// Records committed.
    pub records: u64,
    /// Wall time of the pull.
    pub seconds: f64,
    /// API calls the emulator counted meanwhile.
    pub api_calls: u64,
    /// `VmHWM` after the pull, the high-water mark reset just before it.
    pub peak_rss_mb: f64,
    /// The connector's first `/query` URL (native pulls only).
    pub first_query: Option<String>,
}

impl Pulled {
    /// Records per second.
    pub fn records_per_s(&self) -> f64 {
        self.records as f64 / self.seconds
    }
}

impl Pulls<'_> {
    /// A fresh authorized Case integration named `name`.
    async fn integration(&self, name: &str) -> anyhow::Result<String> {
        let input = case_integration(name, &Provider::of(self.emulator));
        let id = self.app.add_integration(input).await?.integration.id;
        authorize(self.app, &Provider::of(self.emulator), self.control, &id).await?;
        Ok(id)
    }

    fn truth(&self) -> anyhow::Result<&BTreeSet<String>> {
        if let Some(truth) = self.truth.get() {
            return Ok(truth);
        }
        let truth = truth::emulator_case_ids(self.emulator)?;
        Ok(self.truth.get_or_init(|| truth))
    }

    fn api_calls(&self) -> u64 {
        self.emulator
            .state
            .stats
            .lock()
            .map(|s| s.api_calls)
            .unwrap_or(0)
    }

    /// The pull through the sandbox, by the host's runner.
    pub async fn wasm(&self, round: usize) -> anyhow::Result<Pulled> {
        let id = self.integration(&format!("bench wasm {round}")).await?;
        note(
            self.quiet,
            &format!("pulling Case through the sandboxed component (round {round})..."),
        );
        // Reset the high-water mark so that VmHWM is the peak of this pull (Linux >= 4.0).
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let rss_before = proc_status_mb("VmRSS:");
        let calls_before = self.api_calls();
        let started = Instant::now();
        let summary = sluice::runner::run_pull(
            self.app,
            &id,
            PullOptions {
                full: true,
                trigger: "bench".into(),
                ..PullOptions::default()
            },
        )
        .await?;
        let seconds = started.elapsed().as_secs_f64();
        let api_calls = self.api_calls() - calls_before;
        let peak_rss_mb = proc_status_mb("VmHWM:");
        if summary.status != RunStatus::Succeeded {
            bail!(
                "the wasm pull ended {:?}: {:?}",
                summary.status,
                summary.streams
            );
        }
        truth::check_stored_cases(self.app, &id, self.truth()?)?;
        note(
            self.quiet,
            &format!(
                "  {} records, {api_calls} API calls in {seconds:.1} s (RSS before {rss_before:.0} MiB, peak {peak_rss_mb:.0} MiB)",
                summary.records
            ),
        );
        Ok(Pulled {
            integration: id,
            records: summary.records,
            seconds,
            api_calls,
            peak_rss_mb,
            first_query: None,
        })
    }

    /// The same logic natively, through the same store calls.
    pub async fn native(&self, round: usize) -> anyhow::Result<Pulled> {
        let id = self.integration(&format!("bench native {round}")).await?;
        note(
            self.quiet,
            &format!("pulling Case with the native connector (round {round})..."),
        );
        let calls_before = self.api_calls();
        let (records, seconds, first_query) = {
            let app = self.app.clone();
            let id = id.clone();
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || native_pull(&app, &id, handle)).await??
        };
        let api_calls = self.api_calls() - calls_before;
        truth::check_stored_cases(self.app, &id, self.truth()?)?;
        note(
            self.quiet,
            &format!("  {records} records in {seconds:.1} s"),
        );
        Ok(Pulled {
            integration: id,
            records,
            seconds,
            api_calls,
            peak_rss_mb: f64::NAN,
            first_query,
        })
    }
}

/// The median of `values` (the upper one of an even count).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}
