//! Upgrading from a previous version: the host hands the new version the checkpoints and
//! records the old one committed, so the new one must keep its streams' names, keys and cursor
//! fields, and resume from each old checkpoint to the same records.

use std::collections::BTreeSet;

use crate::data_checks::RESUME_MAX_RECORDS;
use crate::harness::Harness;
use crate::pulls::{Findings, Run};
use crate::report::Outcome;

/// How the new version's streams differ from the old one's, if they do.
fn stream_changes(new: &Harness, old: &Harness) -> Option<String> {
    for before in &old.configured.streams {
        let Some(after) = new
            .configured
            .streams
            .iter()
            .find(|s| s.name == before.name)
        else {
            return Some(format!("stream {} is gone", before.name));
        };
        if after.key_fields != before.key_fields {
            return Some(format!(
                "stream {}'s key fields changed from {:?} to {:?}",
                before.name, before.key_fields, after.key_fields
            ));
        }
        if after.cursor_field != before.cursor_field {
            return Some(format!(
                "stream {}'s cursor field changed from {:?} to {:?}",
                before.name, before.cursor_field, after.cursor_field
            ));
        }
    }
    None
}

/// Checks the new version against the previous one: streams unchanged, and a resume by the
/// new version from every checkpoint of the old version's pull (at `new_run`'s cap) ending
/// with the keys of `new_run`.
pub async fn check(
    new: &Harness,
    new_run: &Run,
    old: &Harness,
    findings: &mut Findings,
) -> Outcome {
    if let Some(change) = stream_changes(new, old) {
        return Outcome::Fail(format!("against {}: {change}", old.label()));
    }
    if let Some(failure) = new_run.failure() {
        return Outcome::Fail(failure);
    }
    // The old version's own findings are not the new version's to answer for.
    let old_run = old
        .run(new_run.max_records, true, &mut Findings::default())
        .await;
    if let Some(failure) = old_run.failure() {
        return Outcome::Fail(format!(
            "the previous version {} failed: {failure}",
            old.label()
        ));
    }
    let mut resumed = 0usize;
    for stream in &old.configured.streams {
        let expected: BTreeSet<&String> = new_run.streams[&stream.name].records.keys().collect();
        for (index, step) in old_run.streams[&stream.name].steps.iter().enumerate() {
            let again = new
                .pull_stream(
                    stream,
                    step.checkpoint.clone(),
                    step.snapshot.clone().unwrap_or_default(),
                    RESUME_MAX_RECORDS,
                    false,
                    findings,
                )
                .await;
            resumed += 1;
            let at = format!(
                "stream {} resumed by the new version from {}'s checkpoint after page {}",
                stream.name,
                old.label(),
                index + 1
            );
            if let Some(failure) = again.failure {
                return Outcome::Fail(format!("{at} failed: {failure}"));
            }
            let keys: BTreeSet<&String> = again.records.keys().collect();
            if keys != expected {
                let missing = expected.difference(&keys).count();
                let extra = keys.difference(&expected).count();
                return Outcome::Fail(format!(
                    "{at} ends with other keys than a pull by the new version: {missing} missing, {extra} extra"
                ));
            }
        }
    }
    Outcome::Pass(format!(
        "streams unchanged from {}; {resumed} resumes from its checkpoints end with the same keys",
        old.label()
    ))
}
