//! The emulator's clock: the wall clock plus an offset the control API can move forward, so
//! tests cross the export's one-minute hold-back and the rate-limit windows without
//! sleeping. It can also be frozen, so a test that checks a boundary to the second is not
//! moved across it by a slow machine. Zendesk's timestamps have whole seconds; so does this
//! clock.

use std::sync::Mutex;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Wall clock plus a forward offset, or a frozen reading.
#[derive(Debug, Default)]
pub struct Clock {
    state: Mutex<Reading>,
}

#[derive(Debug, Default)]
struct Reading {
    offset_s: i64,
    frozen_at: Option<i64>,
}

fn wall() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

impl Clock {
    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        let r = self.state.lock().expect("clock lock");
        r.frozen_at.unwrap_or_else(|| wall() + r.offset_s)
    }

    /// Moves the clock `seconds` forward (never back: records and cursors assume time
    /// only grows).
    pub fn advance(&self, seconds: i64) -> i64 {
        let mut r = self.state.lock().expect("clock lock");
        let seconds = seconds.max(0);
        match &mut r.frozen_at {
            Some(at) => *at += seconds,
            None => r.offset_s += seconds,
        }
        r.frozen_at.unwrap_or_else(|| wall() + r.offset_s)
    }

    /// Stops the clock at its current reading (`true`) or lets it run on from there.
    pub fn freeze(&self, frozen: bool) -> i64 {
        let mut r = self.state.lock().expect("clock lock");
        match (frozen, r.frozen_at) {
            (true, None) => r.frozen_at = Some(wall() + r.offset_s),
            // Running on from the frozen reading, never from an earlier one.
            (false, Some(at)) => {
                r.offset_s = r.offset_s.max(at - wall());
                r.frozen_at = None;
            }
            _ => {}
        }
        r.frozen_at.unwrap_or_else(|| wall() + r.offset_s)
    }
}

/// `2026-01-02T03:04:05Z`, as Zendesk writes `created_at` and `updated_at`.
pub fn iso(unix_s: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp(unix_s).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// Parses an RFC 3339 timestamp into Unix seconds (fractions dropped).
pub fn parse_iso(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trips() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_iso(&iso(1_700_000_123)), Some(1_700_000_123));
    }
}
