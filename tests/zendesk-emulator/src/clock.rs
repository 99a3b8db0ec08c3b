//! The emulator's clock: the wall clock plus an offset the control API can move forward, so
//! tests cross the export's one-minute hold-back and the rate-limit windows without
//! sleeping. Zendesk's timestamps have whole seconds; so does this clock.

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Wall clock plus a forward offset.
#[derive(Debug, Default)]
pub struct Clock {
    offset_s: AtomicI64,
}

impl Clock {
    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        OffsetDateTime::now_utc().unix_timestamp() + self.offset_s.load(Ordering::SeqCst)
    }

    /// Moves the clock `seconds` forward (never back: records and cursors assume time
    /// only grows).
    pub fn advance(&self, seconds: i64) -> i64 {
        self.offset_s.fetch_add(seconds.max(0), Ordering::SeqCst);
        self.now()
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
