//! Salesforce datetimes as UTC milliseconds since the Unix epoch.
//!
//! Salesforce sends `2024-01-02T03:04:05.000+0000` over REST and possibly `Z` or `+00:00` in Bulk
//! CSV; SOQL wants unquoted `2024-01-02T03:04:05.000Z`. Milliseconds since the epoch are totally
//! ordered and cheap to do arithmetic on, which is all the cursor logic needs.

use time::{Date, Month, OffsetDateTime};

/// Parses `YYYY-MM-DDTHH:MM:SS[.fff][Z|+hhmm|+hh:mm|-hh:mm]` (or a bare date) into UTC millis.
pub fn parse_millis(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year: i32 = s.get(0..4)?.parse().ok()?;
    let month: u8 = digits(s.get(5..7)?)?;
    let day: u8 = digits(s.get(8..10)?)?;
    let date = Date::from_calendar_date(year, Month::try_from(month).ok()?, day).ok()?;
    let days = i64::from(date.to_julian_day() - unix_epoch_julian());
    if b.len() == 10 {
        return Some(days * 86_400_000);
    }
    if b[10] != b'T' && b[10] != b' ' {
        return None;
    }
    if b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let hh: u8 = digits(s.get(11..13)?)?;
    let mm: u8 = digits(s.get(14..16)?)?;
    let ss: u8 = digits(s.get(17..19)?)?;
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis: i64 = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits3: String = frac[..n].chars().chain("000".chars()).take(3).collect();
        millis = digits3.parse().ok()?;
        rest = &frac[n..];
    }
    let offset_min: i64 = match rest {
        "" | "Z" | "z" => 0,
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
            let oh: i64 = digits(&body[0..2])?;
            let om: i64 = digits(&body[2..4])?;
            sign * (oh * 60 + om)
        }
    };
    let secs = days * 86_400 + i64::from(hh) * 3600 + i64::from(mm) * 60 + i64::from(ss);
    Some(secs * 1000 + millis - offset_min * 60_000)
}

fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn unix_epoch_julian() -> i32 {
    OffsetDateTime::UNIX_EPOCH.date().to_julian_day()
}

/// Formats UTC millis as a SOQL datetime literal, `YYYY-MM-DDTHH:MM:SS.sssZ`.
pub fn format_soql(millis: i64) -> String {
    let (date, h, m, s, ms) = split(millis);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        date.year(),
        u8::from(date.month()),
        date.day(),
        h,
        m,
        s,
        ms
    )
}

/// Formats UTC millis the way Salesforce REST sends datetimes, `YYYY-MM-DDTHH:MM:SS.sss+0000`.
pub fn format_rest(millis: i64) -> String {
    let mut s = format_soql(millis);
    s.pop();
    s.push_str("+0000");
    s
}

fn split(millis: i64) -> (Date, i64, i64, i64, i64) {
    let days = millis.div_euclid(86_400_000);
    let rem = millis.rem_euclid(86_400_000);
    let date = Date::from_julian_day(unix_epoch_julian() + days as i32).unwrap_or(Date::MIN);
    (
        date,
        rem / 3_600_000,
        (rem / 60_000) % 60,
        (rem / 1000) % 60,
        rem % 1000,
    )
}

/// Parses an HTTP `Date` header (IMF-fixdate and the obsolete forms) into UTC millis.
pub fn parse_http_date(s: &str) -> Option<i64> {
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

/// Formats UTC millis as an HTTP date, for `If-Modified-Since`.
pub fn format_http_date(millis: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(millis.max(0) as u64);
    httpdate::fmt_http_date(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_offsets_alike() {
        let a = parse_millis("2024-01-02T03:04:05.000+0000").unwrap();
        assert_eq!(parse_millis("2024-01-02T03:04:05Z"), Some(a));
        assert_eq!(parse_millis("2024-01-02T03:04:05.000+00:00"), Some(a));
        assert_eq!(parse_millis("2024-01-02T04:04:05.000+01:00"), Some(a));
        assert_eq!(a, 1_704_164_645_000);
        assert_eq!(parse_millis("2024-01-02T03:04:05.5Z"), Some(a + 500));
        assert_eq!(parse_millis("2024-01-02"), Some(1_704_153_600_000));
        assert_eq!(parse_millis("2024-13-02"), None);
        assert_eq!(parse_millis("garbage"), None);
    }

    #[test]
    fn formats_soql_and_rest() {
        assert_eq!(format_soql(1_704_164_645_007), "2024-01-02T03:04:05.007Z");
        assert_eq!(
            format_rest(1_704_164_645_007),
            "2024-01-02T03:04:05.007+0000"
        );
        assert_eq!(format_soql(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn http_dates_round_trip() {
        let ms = parse_http_date("Tue, 02 Jan 2024 03:04:05 GMT").unwrap();
        assert_eq!(ms, 1_704_164_645_000);
        assert_eq!(format_http_date(ms), "Tue, 02 Jan 2024 03:04:05 GMT");
    }
}
