//! The named checks, their outcomes, and the report people read.

use std::fmt;

/// One generic check every connector must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    /// The component imports only `wasi:http`, what `wasi:http` needs and the host interface.
    Imports,
    /// Every field error `configure` returns names a declared setting (or `capability`).
    FieldErrorsNameSettings,
    /// `configure` of its own normalised settings gives the same result.
    ConfigureIdempotent,
    /// The allowed hosts `configure` declares are exact names within the approved hosts.
    AllowedHostsExact,
    /// A plain-http URL setting is refused when the host does not allow insecure loopback.
    PlainHttpRefused,
    /// `test` maps recorded 401, 403 and 429 answers to the matching failure kinds.
    TestFailureKinds,
    /// No page holds more rows than the request's `max-records`.
    RowsWithinMaxRecords,
    /// Every upsert row's key is its key fields' values joined by `/`.
    KeysMatchKeyFields,
    /// Pulls with `max-records` of 1, 7 and 1000 end with the same data.
    SameDataAcrossPageSizes,
    /// Resuming from every intermediate checkpoint, under another page size, ends with the
    /// same data as a pull without interruption.
    ResumeFromCheckpoints,
    /// A stream that cannot be read (every request refused) fails or is skipped, keeping the
    /// checkpoint it was given; so does every page that skips its stream.
    SkippedStreamKeepsCheckpoint,
    /// The engine denied no request during the pulls.
    NoEgressOutsideAllowedHosts,
    /// The new version resumes from the previous version's checkpoints, with the same stream
    /// names, keys and cursors.
    PreviousVersion,
}

impl Check {
    /// Every check, in the order they run and print.
    pub const ALL: [Check; 13] = [
        Check::Imports,
        Check::FieldErrorsNameSettings,
        Check::ConfigureIdempotent,
        Check::AllowedHostsExact,
        Check::PlainHttpRefused,
        Check::TestFailureKinds,
        Check::RowsWithinMaxRecords,
        Check::KeysMatchKeyFields,
        Check::SameDataAcrossPageSizes,
        Check::ResumeFromCheckpoints,
        Check::SkippedStreamKeepsCheckpoint,
        Check::NoEgressOutsideAllowedHosts,
        Check::PreviousVersion,
    ];

    /// The check's stable name, as output and JUnit show it.
    pub fn name(self) -> &'static str {
        match self {
            Check::Imports => "imports",
            Check::FieldErrorsNameSettings => "field-errors-name-settings",
            Check::ConfigureIdempotent => "configure-idempotent",
            Check::AllowedHostsExact => "allowed-hosts-exact",
            Check::PlainHttpRefused => "plain-http-refused",
            Check::TestFailureKinds => "test-failure-kinds",
            Check::RowsWithinMaxRecords => "rows-within-max-records",
            Check::KeysMatchKeyFields => "keys-match-key-fields",
            Check::SameDataAcrossPageSizes => "same-data-across-page-sizes",
            Check::ResumeFromCheckpoints => "resume-from-checkpoints",
            Check::SkippedStreamKeepsCheckpoint => "skipped-stream-keeps-checkpoint",
            Check::NoEgressOutsideAllowedHosts => "no-egress-outside-allowed-hosts",
            Check::PreviousVersion => "previous-version",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a check ended, with a message naming what it saw or what broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The check held.
    Pass(String),
    /// The check failed; the message names what broke.
    Fail(String),
    /// The check could not run here; the message says why.
    Skip(String),
}

impl Outcome {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Outcome::Pass(m) | Outcome::Fail(m) | Outcome::Skip(m) => m,
        }
    }

    /// `pass`, `FAIL` or `skip`.
    fn label(&self) -> &'static str {
        match self {
            Outcome::Pass(_) => "pass",
            Outcome::Fail(_) => "FAIL",
            Outcome::Skip(_) => "skip",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    /// The check.
    pub check: Check,
    /// How it ended.
    pub outcome: Outcome,
}

/// Every check's outcome for one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The connector's name and version, as `describe` gives them.
    pub connector: String,
    /// The outcomes, in [`Check::ALL`] order.
    pub results: Vec<CheckResult>,
}

impl Report {
    /// The outcome of `check`.
    pub fn outcome(&self, check: Check) -> Option<&Outcome> {
        self.results
            .iter()
            .find(|r| r.check == check)
            .map(|r| &r.outcome)
    }

    /// The checks that failed.
    pub fn failed(&self) -> Vec<Check> {
        self.results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Fail(_)))
            .map(|r| r.check)
            .collect()
    }

    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.failed().is_empty()
    }

    /// How many checks passed, failed and were skipped.
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |f: fn(&Outcome) -> bool| self.results.iter().filter(|r| f(&r.outcome)).count();
        (
            count(|o| matches!(o, Outcome::Pass(_))),
            count(|o| matches!(o, Outcome::Fail(_))),
            count(|o| matches!(o, Outcome::Skip(_))),
        )
    }
}

/// One line per check, then a summary line.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of {}", self.connector)?;
        for result in &self.results {
            let message = result.outcome.message().replace('\n', " ");
            writeln!(
                f,
                "{:<4} {:<32} {message}",
                result.outcome.label(),
                result.check.name()
            )?;
        }
        let (passed, failed, skipped) = self.counts();
        write!(f, "{passed} passed, {failed} failed, {skipped} skipped")
    }
}
