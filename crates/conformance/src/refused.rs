//! A stream its account may not read. From an intermediate checkpoint of each stream, one pull
//! has every request answered 403 from a cassette. The connector may fail the pull
//! (`permission-denied`) or skip the stream; a skipped stream keeps the checkpoint it was given
//! and returns no rows, and no answer may move the checkpoint past data it could not read.

use sluice_engine::EngineLimits;
use sluice_engine::outbound::Cassette;
use sluice_engine::wit::types::{PullRequest, StreamStatus};

use crate::harness::{Harness, on_cassette};
use crate::pulls::{Findings, Run};
use crate::report::Outcome;

/// The page size of the refused pulls.
const MAX_RECORDS: u32 = 7;

/// Pulls each stream once on refused requests, from the middle of `run`, and adds what the
/// ordinary pulls saw (`findings`).
pub async fn check(
    harness: &Harness,
    wasm: &[u8],
    limits: &EngineLimits,
    run: &Run,
    findings: &Findings,
) -> Outcome {
    if !findings.moved_on_skip.is_empty() {
        return Outcome::Fail(findings.moved_on_skip.join("; "));
    }
    let cassette = Cassette::answering_every_request(
        403,
        &[("content-type", "application/json")],
        r#"{"error":"forbidden"}"#,
    );
    let (engine, connector) = match on_cassette(wasm, limits, cassette) {
        Ok(loaded) => loaded,
        Err(why) => return Outcome::Fail(why),
    };
    let mut seen = Vec::new();
    for stream in &harness.configured.streams {
        let steps = run.streams.get(&stream.name).map(|s| s.steps.as_slice());
        let checkpoint = steps
            .and_then(|steps| steps.get(steps.len() / 2))
            .and_then(|step| step.checkpoint.clone());
        let request = PullRequest {
            stream: stream.name.clone(),
            checkpoint,
            max_records: MAX_RECORDS,
        };
        let page = match engine
            .pull(&connector, &harness.ctx, &harness.session, &request)
            .await
        {
            Ok(Ok(page)) => page,
            Ok(Err(failure)) => {
                seen.push(format!("{} failed as {:?}", stream.name, failure.kind));
                continue;
            }
            Err(error) => {
                return Outcome::Fail(format!(
                    "stream {}: the pull on refused requests failed: {error}",
                    stream.name
                ));
            }
        };
        if page.checkpoint != request.checkpoint || !page.rows.is_empty() {
            return Outcome::Fail(format!(
                "stream {} answered every request refused (403) with {} rows and its checkpoint \
                 moved from {:?} to {:?}: a stream it cannot read must fail or be skipped with \
                 the checkpoint it was given",
                stream.name,
                page.rows.len(),
                request.checkpoint,
                page.checkpoint
            ));
        }
        let how = match page.status {
            StreamStatus::Skipped(_) => "skipped, its checkpoint kept",
            _ => "no progress, its checkpoint kept",
        };
        seen.push(format!("{} {how}", stream.name));
    }
    Outcome::Pass(format!(
        "on refused requests (403): {}; {} skipped pages in the ordinary pulls kept theirs",
        seen.join(", "),
        findings.skipped_pages
    ))
}
