//! How a run stands while its streams pull in parallel: the run's status, its error and its
//! retry pause, merged from every stream's end.
//!
//! Streams end in any order, so the merge must not depend on it: a later, milder end (a
//! stream that failed on its own) never hides an earlier one that stops the whole run (a
//! shutdown, a spent API budget, dead credentials), and the run's error is the one that
//! explains its status.

use super::*;

/// The run's status, error and retry pause so far.
#[derive(Debug)]
pub(super) struct Standing {
    status: RunStatus,
    retry_after_s: Option<u32>,
    error: Option<String>,
}

impl Default for Standing {
    fn default() -> Self {
        Self {
            status: RunStatus::Succeeded,
            retry_after_s: None,
            error: None,
        }
    }
}

/// How much a status weighs when streams end differently: the heaviest one is the run's.
/// A lost authorization needs a person, so it outweighs a budget pause, which outweighs a
/// shutdown (the scheduler must honour the pause); a stream failing alone weighs least.
fn weight(status: RunStatus) -> u8 {
    match status {
        RunStatus::Succeeded => 0,
        RunStatus::Failed => 1,
        RunStatus::Interrupted => 2,
        RunStatus::RateLimited => 3,
        RunStatus::NeedsReauthorization => 4,
    }
}

impl Standing {
    /// Records that a stream ended the run's way `status`, with `error` (if any) and the
    /// pause before a retry (rate limits): kept unless the run already stands heavier.
    pub(super) fn record(
        &mut self,
        status: RunStatus,
        error: Option<String>,
        retry_after_s: Option<u32>,
    ) {
        if weight(status) < weight(self.status) {
            return;
        }
        self.status = status;
        if error.is_some() {
            self.error = error;
        }
        if status == RunStatus::RateLimited {
            self.retry_after_s = retry_after_s;
        }
    }

    /// Whether streams still pull: a failed stream does not stop the others; a stop, a rate
    /// limit or a lost authorization stops them all.
    pub(super) fn goes_on(&self) -> bool {
        matches!(self.status, RunStatus::Succeeded | RunStatus::Failed)
    }

    /// The run's status.
    pub(super) fn status(&self) -> RunStatus {
        self.status
    }

    /// The pause before a retry, when rate-limited.
    pub(super) fn retry_after_s(&self) -> Option<u32> {
        self.retry_after_s
    }

    /// The error that explains the status.
    pub(super) fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_failing_after_a_run_stopping_end_does_not_hide_it() {
        let mut s = Standing::default();
        s.record(
            RunStatus::RateLimited,
            Some("Case: budget".into()),
            Some(60),
        );
        s.record(RunStatus::Failed, Some("Account: broken".into()), None);
        s.record(RunStatus::Interrupted, None, None);
        assert_eq!(s.status(), RunStatus::RateLimited);
        assert_eq!(s.error(), Some("Case: budget"));
        assert_eq!(s.retry_after_s(), Some(60));
        assert!(!s.goes_on());
    }

    #[test]
    fn dead_credentials_outweigh_a_budget_pause_in_either_order() {
        for order in [[0, 1], [1, 0]] {
            let ends = [
                (RunStatus::RateLimited, "Case: budget"),
                (RunStatus::NeedsReauthorization, "Lead: session refused"),
            ];
            let mut s = Standing::default();
            for i in order {
                let (status, error) = ends[i];
                s.record(status, Some(error.into()), Some(30));
            }
            assert_eq!(s.status(), RunStatus::NeedsReauthorization);
            assert_eq!(s.error(), Some("Lead: session refused"));
        }
    }

    #[test]
    fn failed_streams_let_the_others_go_on_and_the_last_error_is_kept() {
        let mut s = Standing::default();
        assert!(s.goes_on());
        s.record(RunStatus::Failed, Some("Case: a".into()), None);
        s.record(RunStatus::Failed, Some("Lead: b".into()), None);
        assert!(s.goes_on());
        assert_eq!(s.status(), RunStatus::Failed);
        assert_eq!(s.error(), Some("Lead: b"));
    }
}
