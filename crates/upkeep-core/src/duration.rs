//! Durations as people write them, in the config and on the command line: `250ms`, `30s`,
//! `1m30s`, `2h`, and days (`1d`, `2d 12h`, counted as 24 hours each), or `0`.
//!
//! One parser for both, so that what `report --since 7d` accepts, `--for 1d` and
//! `stop_timeout = "1d"` accept too.

use std::time::Duration;

/// Parses `text`, or None if it is not a duration (negative ones included).
pub fn parse(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let signed = match text.parse::<jiff::SignedDuration>() {
        Ok(d) => d,
        // Days have no fixed length in jiff (daylight saving); here a day is 24 hours.
        Err(_) => text
            .parse::<jiff::Span>()
            .ok()?
            .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
            .ok()?,
    };
    Duration::try_from(signed).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_people_write() {
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("1m 30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse("2d 12h"), Some(Duration::from_secs(216_000)));
        assert_eq!(parse("-5s"), None);
        assert_eq!(parse("1y"), None, "a year has no fixed length");
        assert_eq!(parse("soon"), None);
        assert_eq!(parse(""), None);
    }
}
