//! The checks on pulled data: page bounds, keys, the same data whatever the page size, resuming
//! from every checkpoint and egress.

use sluice_engine::outbound::Denial;

use crate::harness::Harness;
use crate::pulls::{Findings, Run};
use crate::report::Outcome;
use crate::store::difference;

/// The cap a resumed stream runs under: other than the one that wrote the checkpoints, so a
/// checkpoint that means something only at its own page size shows.
pub const RESUME_MAX_RECORDS: u32 = 1000;

/// Rows ≤ max-records on every page.
pub fn rows_within_max(findings: &Findings) -> Outcome {
    if findings.over_max_count == 0 {
        return Outcome::Pass(format!("{} pages, none over max-records", findings.pages));
    }
    Outcome::Fail(format!(
        "{} pages over max-records: {}",
        findings.over_max_count,
        findings.over_max.join("; ")
    ))
}

/// Every upsert row's key equals its key fields joined by `/`.
pub fn keys_match(findings: &Findings) -> Outcome {
    if findings.keys_checked == 0 {
        return Outcome::Skip("the pulls returned no upsert rows to check".into());
    }
    if findings.bad_key_count == 0 {
        return Outcome::Pass(format!(
            "{} upsert rows, every key its key fields joined by /",
            findings.keys_checked
        ));
    }
    Outcome::Fail(format!(
        "{} of {} rows have a key that does not match their key fields: {}",
        findings.bad_key_count,
        findings.keys_checked,
        findings.bad_keys.join("; ")
    ))
}

/// The same final data for every run.
pub fn same_data(runs: &[Run]) -> Outcome {
    if let Some(failure) = runs.iter().find_map(Run::failure) {
        return Outcome::Fail(failure);
    }
    let Some((reference, others)) = runs.split_last() else {
        return Outcome::Skip("no runs".into());
    };
    for run in others {
        for (name, expected) in &reference.streams {
            let actual = &run.streams[name].records;
            if let Some(diff) = difference(&expected.records, actual) {
                return Outcome::Fail(format!(
                    "stream {name} at max-records {} against {}: {diff}",
                    run.max_records, reference.max_records
                ));
            }
        }
    }
    let records: usize = reference.streams.values().map(|s| s.records.len()).sum();
    let caps: Vec<String> = runs.iter().map(|r| r.max_records.to_string()).collect();
    Outcome::Pass(format!(
        "{records} records in {} streams, the same at max-records {}",
        reference.streams.len(),
        caps.join(", ")
    ))
}

/// Resumes each stream of `run` from each of its intermediate checkpoints, over the records
/// committed with it, at [`RESUME_MAX_RECORDS`], and compares with the run's final data.
pub async fn resume(harness: &Harness, run: &Run, findings: &mut Findings) -> Outcome {
    if let Some(failure) = run.failure() {
        return Outcome::Fail(failure);
    }
    let mut resumed = 0usize;
    for stream in &harness.configured.streams {
        let full = &run.streams[&stream.name];
        for (index, step) in full.steps.iter().enumerate().filter(|(_, s)| s.partial) {
            let snapshot = step.snapshot.clone().unwrap_or_default();
            let again = harness
                .pull_stream(
                    stream,
                    step.checkpoint.clone(),
                    snapshot,
                    RESUME_MAX_RECORDS,
                    false,
                    findings,
                )
                .await;
            resumed += 1;
            let at = format!(
                "stream {} resumed from the checkpoint after page {} (max-records {}) at \
                 max-records {RESUME_MAX_RECORDS}",
                stream.name,
                index + 1,
                run.max_records
            );
            if let Some(failure) = again.failure {
                return Outcome::Fail(format!("{at} failed: {failure}"));
            }
            if let Some(diff) = difference(&full.records, &again.records) {
                return Outcome::Fail(format!(
                    "{at} ends with other data than the pull without interruption: {diff}"
                ));
            }
        }
    }
    if resumed == 0 {
        return Outcome::Skip(format!(
            "no stream took more than one page at max-records {}",
            run.max_records
        ));
    }
    Outcome::Pass(format!("{resumed} resumes, each ending with the same data"))
}

/// No request the engine denied during the pulls.
pub fn no_egress_denied(denials: &[Denial], pages: usize) -> Outcome {
    if denials.is_empty() {
        return Outcome::Pass(format!(
            "no request outside the allowed hosts in {pages} pages"
        ));
    }
    let shown: Vec<String> = denials
        .iter()
        .take(3)
        .map(|d| format!("{} ({})", d.target, d.reason))
        .collect();
    Outcome::Fail(format!(
        "the egress policy denied {} requests during the pulls: {}",
        denials.len(),
        shown.join("; ")
    ))
}
