//! Zendesk's request-rate limits: a per-minute budget for the whole account, and a
//! stricter one for the incremental export endpoints, counted in one-minute windows of the
//! emulator's clock. A request over either budget is refused with 429 and a `Retry-After`
//! of the seconds left in its window; refused requests do not use the budget.

/// One per-minute budget.
#[derive(Clone, Copy, Debug, Default)]
pub struct Window {
    /// Clock second the current window opened.
    started: i64,
    used: u32,
}

/// The account's budgets.
#[derive(Debug, Default)]
pub struct Limits {
    pub account: Window,
    pub incremental: Window,
}

/// What a budget says about one more request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed { limit: u32, remaining: u32 },
    Limited { limit: u32, retry_after_s: i64 },
}

const WINDOW_S: i64 = 60;

impl Window {
    /// Uses one request of `limit` at `now`, or refuses it.
    pub fn take(&mut self, now: i64, limit: u32) -> Decision {
        if now >= self.started + WINDOW_S {
            self.started = now;
            self.used = 0;
        }
        if self.used >= limit {
            return Decision::Limited {
                limit,
                retry_after_s: (self.started + WINDOW_S - now).max(1),
            };
        }
        self.used += 1;
        Decision::Allowed {
            limit,
            remaining: limit - self.used,
        }
    }

    /// Gives back a request taken by [`Window::take`] (the other budget refused it).
    pub fn give_back(&mut self) {
        self.used = self.used.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_refuses_past_its_limit_until_it_rolls_over() {
        let mut w = Window::default();
        assert_eq!(
            w.take(1_000, 2),
            Decision::Allowed {
                limit: 2,
                remaining: 1
            }
        );
        assert!(matches!(
            w.take(1_010, 2),
            Decision::Allowed { remaining: 0, .. }
        ));
        assert_eq!(
            w.take(1_020, 2),
            Decision::Limited {
                limit: 2,
                retry_after_s: 40
            }
        );
        assert!(matches!(
            w.take(1_060, 2),
            Decision::Allowed { remaining: 1, .. }
        ));
    }
}
