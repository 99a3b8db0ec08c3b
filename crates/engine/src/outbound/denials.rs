//! The latest outbound denials, kept for a caller that shows them with their fix (`sluice
//! dev`, conformance). Bounded: a connector that keeps knocking on a closed door cannot grow it.

use std::collections::VecDeque;
use std::sync::Mutex;

/// Denials kept; older ones are dropped first.
const KEPT_DENIALS: usize = 256;

/// One refused outbound request, as the denial log kept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The connector, e.g. `salesforce@<sha>`.
    pub connector: String,
    /// The integration, if any.
    pub integration: Option<String>,
    /// What the request was for: an origin (`scheme://host:port`), or the URL when it had none.
    pub target: String,
    /// Why it was refused.
    pub reason: String,
}

/// The latest [`KEPT_DENIALS`] denials, oldest first.
#[derive(Default)]
pub(super) struct DenialLog(Mutex<VecDeque<Denial>>);

impl DenialLog {
    /// The denials kept so far, emptying the log.
    pub(super) fn take(&self) -> Vec<Denial> {
        let mut denials = self.0.lock().unwrap_or_else(|e| e.into_inner());
        denials.drain(..).collect()
    }

    /// Keeps `denial`, dropping the oldest when full.
    pub(super) fn keep(&self, denial: Denial) {
        let mut denials = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if denials.len() == KEPT_DENIALS {
            denials.pop_front();
        }
        denials.push_back(denial);
    }
}
