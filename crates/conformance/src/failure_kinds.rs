//! Test Connection on recorded failures: every request the connector's `test` sends is
//! answered from a cassette with one refusal, and the report must carry the failure kind a
//! platform acts on (log in again, fix permissions, wait).

use sluice_engine::EngineLimits;
use sluice_engine::outbound::Cassette;
use sluice_engine::wit::types::FailureKind;

use crate::harness::{Harness, on_cassette};
use crate::report::Outcome;

/// A recorded refusal and the failure kind it must give.
struct Refusal {
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    expected: FailureKind,
}

/// The refusals every provider's API can answer. The 429's `Retry-After` is longer than the
/// engine waits for, so the answer reaches the connector instead of being retried.
const REFUSALS: [Refusal; 3] = [
    Refusal {
        status: 401,
        headers: &[("content-type", "application/json")],
        body: r#"{"error":"invalid_token"}"#,
        expected: FailureKind::ReauthorizationRequired,
    },
    Refusal {
        status: 403,
        headers: &[("content-type", "application/json")],
        body: r#"{"error":"forbidden"}"#,
        expected: FailureKind::PermissionDenied,
    },
    Refusal {
        status: 429,
        headers: &[
            ("content-type", "application/json"),
            ("retry-after", "3600"),
        ],
        body: r#"{"error":"rate_limited"}"#,
        expected: FailureKind::RateLimited,
    },
];

/// Runs `test` once per refusal, with every request answered by it.
pub async fn check(harness: &Harness, wasm: &[u8], limits: &EngineLimits) -> Outcome {
    let mut seen = Vec::new();
    for refusal in &REFUSALS {
        let cassette =
            Cassette::answering_every_request(refusal.status, refusal.headers, refusal.body);
        let (engine, connector) = match on_cassette(wasm, limits, cassette) {
            Ok(loaded) => loaded,
            Err(why) => return Outcome::Fail(why),
        };
        let report = match engine
            .test(&connector, &harness.ctx, &harness.session)
            .await
        {
            Ok(report) => report,
            Err(error) => {
                return Outcome::Fail(format!(
                    "test on recorded {}s failed: {error}",
                    refusal.status
                ));
            }
        };
        match report.failure {
            Some(failure) if failure.kind == refusal.expected => {
                seen.push(format!("{} → {:?}", refusal.status, refusal.expected));
            }
            Some(failure) => {
                return Outcome::Fail(format!(
                    "on recorded {} answers, test failed as {:?} ({}); expected {:?}",
                    refusal.status, failure.kind, failure.message, refusal.expected
                ));
            }
            None => {
                return Outcome::Fail(format!(
                    "on recorded {} answers, test reported no failure; expected {:?}",
                    refusal.status, refusal.expected
                ));
            }
        }
    }
    Outcome::Pass(seen.join(", "))
}
