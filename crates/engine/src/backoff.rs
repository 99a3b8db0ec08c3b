//! Exponential backoff: one policy for every wait that grows with consecutive failures (the
//! engine's retries of transient HTTP failures, the scheduler's pause after failed runs, the
//! runner's wait on a connector that is waiting on its provider).

use std::time::Duration;

/// Waits that double from `base` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub base: Duration,
    /// No wait exceeds this.
    pub max: Duration,
}

impl Backoff {
    /// The wait after `attempt` earlier ones (0 for the first): `base * 2^attempt`, capped.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(30)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// [`Backoff::ceiling`] with "equal jitter": uniformly between half of it and all of it,
    /// so that callers failing together do not retry together.
    pub fn jittered(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        ceiling / 2 + (ceiling / 2).mul_f64(fastrand::f64())
    }
}

/// `d` ± `fraction` of itself, uniformly.
pub fn spread(d: Duration, fraction: f64) -> Duration {
    d.mul_f64(1.0 + fraction * (2.0 * fastrand::f64() - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_and_are_capped() {
        let b = Backoff {
            base: Duration::from_millis(250),
            max: Duration::from_secs(8),
        };
        let ceilings: Vec<u64> = (0..7).map(|a| b.ceiling(a).as_millis() as u64).collect();
        assert_eq!(ceilings, [250, 500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(8));
        for a in 0..10 {
            let d = b.jittered(a);
            assert!(d >= b.ceiling(a) / 2 && d <= b.ceiling(a), "{a}: {d:?}");
        }
    }

    #[test]
    fn spread_stays_within_its_fraction() {
        for _ in 0..1000 {
            let d = spread(Duration::from_secs(100), 0.1);
            assert!(
                d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
    }
}
