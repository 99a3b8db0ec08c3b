//! Date and datetime helpers. The store keeps datetimes as milliseconds since the Unix
//! epoch (UTC) and dates as days since the epoch; this module renders them the way
//! Salesforce's REST API does (`2024-01-02T03:04:05.000+0000`, `2024-01-02`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds per day.
pub const DAY_MS: i64 = 86_400_000;

/// The current time in epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Converts days since 1970-01-01 to a civil `(year, month, day)` (Howard Hinnant's
/// algorithm; avoids any allocation so rendering a million rows stays cheap).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Converts a civil date to days since 1970-01-01.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Formats epoch milliseconds as `YYYY-MM-DDTHH:MM:SS.sss+0000`.
pub fn format_datetime(ms: i64) -> String {
    let mut s = String::with_capacity(28);
    push_datetime(&mut s, ms, "+0000");
    s
}

/// Appends a datetime with the given zone suffix (`+0000` for REST, `Z` elsewhere).
pub fn push_datetime(s: &mut String, ms: i64, zone: &str) {
    use std::fmt::Write;
    let days = ms.div_euclid(DAY_MS);
    let rem = ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, sec, milli) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    let _ = write!(
        s,
        "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{sec:02}.{milli:03}{zone}"
    );
}

/// Formats days since the epoch as `YYYY-MM-DD`.
pub fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parses an ISO-8601 datetime (`Z`, `+hh:mm`, `+hhmm`, optional fraction) into epoch ms.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = &frac[..n];
        let padded = format!("{:0<3}", &digits[..n.min(3)]);
        millis = padded.parse().ok()?;
        rest = &frac[n..];
    }
    let offset_min = match rest {
        "Z" | "" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let body = rest[1..].replace(':', "");
            if body.len() != 4 {
                return None;
            }
            let oh: i64 = body[..2].parse().ok()?;
            let om: i64 = body[2..].parse().ok()?;
            sign * (oh * 60 + om)
        }
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(days * DAY_MS + ((h * 60 + mi - offset_min) * 60 + sec) * 1000 + millis)
}

/// Parses `YYYY-MM-DD` into days since the epoch.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y = s[0..4].parse().ok()?;
    let m = s[5..7].parse().ok()?;
    let d = s[8..10].parse().ok()?;
    Some(days_from_civil(y, m, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let ms = parse_datetime("2024-01-02T03:04:05.678Z").unwrap();
        assert_eq!(format_datetime(ms), "2024-01-02T03:04:05.678+0000");
        assert_eq!(
            parse_datetime("2024-01-02T05:04:05+02:00"),
            parse_datetime("2024-01-02T03:04:05.000+0000")
        );
        assert_eq!(format_date(parse_date("1999-12-31").unwrap()), "1999-12-31");
        assert_eq!(format_datetime(0), "1970-01-01T00:00:00.000+0000");
    }
}
