//! Durations as people type them in options and API bodies (`15m`, `1h`, `2d`).

use std::time::Duration;

/// The longest duration any option takes: anything longer is a typo, and longer values
/// would overflow the millisecond timestamps they are added to.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// Parses `15m`, `1h`, `30s`, `2d`, `500ms` or plain seconds, up to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let not_a_duration = || format!("{text:?} is not a duration (e.g. 15m, 1h, 30s)");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    if num.is_empty() {
        return Err(not_a_duration());
    }
    let too_long = || {
        format!(
            "{text:?} is too long: at most {}d",
            MAX_DURATION.as_secs() / 86_400
        )
    };
    // Digits only: a parse failure here is an overflow of u64.
    let n: u64 = num.parse().map_err(|_| too_long())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(not_a_duration()),
    };
    let duration = n
        .checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(too_long)?;
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("m").is_err());
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("3650d"), Ok(MAX_DURATION));
        for overflow in [
            "213503982334602d",
            "9223372036854776s",
            "99999999999999999999",
            "3651d",
        ] {
            let err = parse_duration(overflow).unwrap_err();
            assert!(err.contains("too long"), "{overflow}: {err}");
        }
    }
}
