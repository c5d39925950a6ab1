//! Times and zones as people type them, read the same way by the CLI (`upkeep maint add
//! --start`) and the admin pages' window form, so a time means one instant wherever it is
//! written.
//!
//! A time with an offset or `Z` (`2026-12-01T10:00-05:00`, `2026-12-01T15:00Z`) is that
//! instant, whatever zone is chosen; a wall time (`2026-12-01 10:00`) is that time in the
//! chosen zone. A wall time the zone skips (the hour clocks jump over in spring) or passes
//! twice (the hour they repeat in autumn) is an error that says so and how to write it, never
//! a silent guess. A zone must be a real IANA zone of a region (`Asia/Tokyo`) or `UTC`: the
//! tz database also holds `Factory`, `posixrules`, `localtime` and POSIX-style names
//! (`EST5EDT`) that parse but mean nothing to the people a window is announced to.
//! jiff takes three things people never mean and we refuse, saying why: an offset beyond
//! ±23:59 (`+25:00`; RFC 3339 allows no more, and no place has one), seconds in an offset
//! (`+00:00:30`: RFC 3339 has none), and a leap second
//! (`23:59:60`, which jiff reads as `:59` without a word). The API's window times go through
//! [`strict_timestamp`], the same rules. Pure: no clock, no I/O.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};

/// The regions of the tz database's zone names (`Region/City`).
const REGIONS: [&str; 10] = [
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    #[error(
        "`{0}` is not a time zone of a place (write an IANA name such as Asia/Shanghai or Europe/Berlin, or UTC)"
    )]
    Zone(String),
    #[error(
        "`{0}` is not a time: write 2026-12-01T02:00:00+08:00 (or ...Z), or 2026-12-01 02:00 in the chosen zone"
    )]
    Time(String),
    #[error(
        "`{text}` does not exist in {zone}: clocks jump from {before} to {after} there; write an offset ({text}{before}) or a time outside the jump"
    )]
    Skipped {
        text: String,
        zone: String,
        before: String,
        after: String,
    },
    #[error(
        "`{text}` happens twice in {zone} (clocks go back): write which with an offset, {text}{first} or {text}{second}"
    )]
    Twice {
        text: String,
        zone: String,
        first: String,
        second: String,
    },
    #[error(
        "`{text}` has the offset {offset}, beyond ±23:59: write a place's offset (such as +08:00 or -05:00) or Z"
    )]
    Offset { text: String, offset: String },
    #[error(
        "`{text}` has seconds in its offset ({offset}): write hours and minutes (such as +05:30 or -04:00) or Z"
    )]
    OffsetSeconds { text: String, offset: String },
    #[error(
        "`{0}` names a leap second (:60), which no clock here shows: write :59, or :00 of the next minute"
    )]
    LeapSecond(String),
}

/// The largest offset RFC 3339 allows (and more than any place uses): 23:59.
const MAX_OFFSET_S: i32 = 23 * 3600 + 59 * 60;

/// What jiff takes and people never mean, in `iso` (a time with `T` between date and time):
/// an offset beyond ±23:59, or a leap second. `text` is what was typed, for the message.
fn refuse_what_jiff_takes(iso: &str, text: &str) -> Result<(), WhenError> {
    use jiff::fmt::temporal::{Pieces, PiecesOffset};
    if let Ok(pieces) = Pieces::parse(iso)
        && let Some(PiecesOffset::Numeric(n)) = pieces.offset()
    {
        let seconds = n.offset().seconds();
        if seconds.abs() > MAX_OFFSET_S {
            return Err(WhenError::Offset {
                text: text.to_owned(),
                offset: n.offset().to_string(),
            });
        }
        // RFC 3339 has no seconds in an offset (`+00:00:30`), and no place uses them.
        if seconds % 60 != 0 {
            return Err(WhenError::OffsetSeconds {
                text: text.to_owned(),
                offset: n.offset().to_string(),
            });
        }
    }
    // The seconds are the fifth and sixth digit of the time, written `10:00:60` or `100060`
    // (the digits and colons after the `T`; a fraction, an offset or a zone comes after).
    if let Some((_, rest)) = iso.split_once(['T', 't']) {
        let digits: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ':')
            .filter(char::is_ascii_digit)
            .collect();
        if digits.get(4..6) == Some("60") {
            return Err(WhenError::LeapSecond(text.to_owned()));
        }
    }
    Ok(())
}

/// Reads an instant (RFC 3339, with its offset or `Z`) by the rules of [`parse_time`]: for
/// serde's `deserialize_with` on times the API takes (a window's start and end).
pub fn strict_timestamp<'de, D>(d: D) -> Result<Timestamp, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error;
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    let iso = text.trim().replacen(' ', "T", 1);
    refuse_what_jiff_takes(&iso, &text).map_err(D::Error::custom)?;
    iso.parse::<Timestamp>()
        .map_err(|e| D::Error::custom(format!("`{text}` is not an instant: {e}")))
}

/// The zone named `name`, if it is `UTC` or a region's zone (`Asia/Tokyo`,
/// `America/Argentina/Buenos_Aires`); case as the tz database writes it is not required.
pub fn zone(name: &str) -> Result<TimeZone, WhenError> {
    let bad = || WhenError::Zone(name.to_owned());
    let name = name.trim();
    let region = name.split('/').next().unwrap_or("");
    let placed = name.contains('/') && REGIONS.iter().any(|r| r.eq_ignore_ascii_case(region));
    let utc = ["UTC", "Etc/UTC"]
        .iter()
        .any(|u| u.eq_ignore_ascii_case(name));
    if !(placed || utc) || name.contains("..") {
        return Err(bad());
    }
    TimeZone::get(name).map_err(|_| bad())
}

/// The zone's own spelling of its name (`asia/tokyo` → `Asia/Tokyo`), to store and show.
pub fn zone_name(tz: &TimeZone, typed: &str) -> String {
    tz.iana_name().unwrap_or(typed).to_owned()
}

/// A time as people type it: with an offset or `Z`, that instant; else a wall time in `tz`
/// (`T` or a space between date and time; seconds optional).
pub fn parse_time(text: &str, tz: &TimeZone) -> Result<Timestamp, WhenError> {
    let text = text.trim();
    let iso = text.replacen(' ', "T", 1);
    refuse_what_jiff_takes(&iso, text)?;
    if let Ok(t) = iso.parse::<Timestamp>() {
        return Ok(t);
    }
    // jiff reads a civil time with an offset by dropping the offset: the instant above took
    // every text with one, so what is left must have none.
    let civil = iso
        .parse::<DateTime>()
        .map_err(|_| WhenError::Time(text.to_owned()))?;
    let zone = tz.iana_name().unwrap_or("UTC").to_owned();
    let ambiguous = tz.to_ambiguous_timestamp(civil);
    match ambiguous.offset() {
        AmbiguousOffset::Unambiguous { .. } => ambiguous
            .unambiguous()
            .map_err(|_| WhenError::Time(text.to_owned())),
        AmbiguousOffset::Gap { before, after } => Err(WhenError::Skipped {
            text: text.to_owned(),
            zone,
            before: before.to_string(),
            after: after.to_string(),
        }),
        AmbiguousOffset::Fold { before, after } => Err(WhenError::Twice {
            text: text.to_owned(),
            zone,
            first: before.to_string(),
            second: after.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, tz: &str) -> Result<String, String> {
        parse_time(text, &zone(tz).unwrap())
            .map(|t| t.to_string())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn an_offset_or_z_is_that_instant_whatever_the_zone() {
        assert_eq!(
            at("2026-12-01T10:00-05:00", "Asia/Tokyo").unwrap(),
            "2026-12-01T15:00:00Z"
        );
        assert_eq!(
            at("2026-12-01T15:00Z", "Asia/Tokyo").unwrap(),
            "2026-12-01T15:00:00Z"
        );
        assert_eq!(
            at("2026-12-01 15:00:30+00:00", "Europe/Berlin").unwrap(),
            "2026-12-01T15:00:30Z"
        );
    }

    #[test]
    fn a_wall_time_is_in_the_chosen_zone() {
        assert_eq!(
            at("2026-12-01T10:00", "Asia/Tokyo").unwrap(),
            "2026-12-01T01:00:00Z"
        );
        assert_eq!(
            at("2026-12-01 10:00", "UTC").unwrap(),
            "2026-12-01T10:00:00Z"
        );
        assert!(at("soon", "UTC").unwrap_err().contains("not a time"));
    }

    #[test]
    fn a_skipped_or_repeated_wall_time_is_refused_with_the_way_out() {
        let gap = at("2027-03-28T02:30", "Europe/Berlin").unwrap_err();
        assert!(gap.contains("does not exist in Europe/Berlin"), "{gap}");
        assert!(gap.contains("+01"), "{gap}");
        let fold = at("2027-10-31 02:30", "Europe/Berlin").unwrap_err();
        assert!(fold.contains("happens twice"), "{fold}");
        assert!(fold.contains("+02") && fold.contains("+01"), "{fold}");
        // ...and the offset it suggests works.
        assert_eq!(
            at("2027-10-31T02:30+01", "Europe/Berlin").unwrap(),
            "2027-10-31T01:30:00Z"
        );
    }

    /// Break-it finding (session 10): `+00:00:30` was taken as an offset of 30 seconds.
    #[test]
    fn seconds_in_an_offset_are_refused_saying_why() {
        for text in [
            "2026-12-01T10:00+00:00:30",
            "2026-12-01T10:00-05:00:01",
            "2026-12-01 10:00:00+053001",
        ] {
            let e = at(text, "UTC").unwrap_err();
            assert!(e.contains("seconds in its offset"), "{text}: {e}");
        }
        // The API's reading refuses them too.
        let api: Result<Timestamp, _> =
            strict_timestamp(serde_json::Value::from("2026-12-01T10:00:00+00:00:30"));
        assert!(
            api.unwrap_err()
                .to_string()
                .contains("seconds in its offset")
        );
        assert_eq!(
            at("2026-12-01T10:00+05:30", "UTC").unwrap(),
            "2026-12-01T04:30:00Z"
        );
    }

    /// Break-it finding (session 9): `+25:00` and `:60` were taken.
    #[test]
    fn an_offset_beyond_23_59_or_a_leap_second_is_refused_saying_why() {
        for text in [
            "2026-12-01T10:00+25:00",
            "2026-12-01T10:00-24:00",
            "2026-12-01 10:00:00+2400",
            "2026-12-01T10:00+23:59:30",
        ] {
            let e = at(text, "UTC").unwrap_err();
            assert!(e.contains("beyond ±23:59"), "{text}: {e}");
        }
        for text in [
            "2026-12-31T23:59:60Z",
            "2026-12-31 23:59:60",
            "2026-12-31T23:59:60.5+08:00",
            "20261231T235960Z",
        ] {
            let e = at(text, "Asia/Tokyo").unwrap_err();
            assert!(e.contains("leap second"), "{text}: {e}");
        }
        // The edges still hold, and a 60 elsewhere is no leap second.
        assert_eq!(
            at("2026-12-01T10:00+23:59", "UTC").unwrap(),
            "2026-11-30T10:01:00Z"
        );
        assert_eq!(
            at("2026-12-01T10:00-23:59", "UTC").unwrap(),
            "2026-12-02T09:59:00Z"
        );
        assert_eq!(
            at("2026-12-31T23:59:59Z", "UTC").unwrap(),
            "2026-12-31T23:59:59Z"
        );
        assert!(
            at("2026-12-01T10:60", "UTC")
                .unwrap_err()
                .contains("not a time")
        );
        assert_eq!(
            at("2026-12-01T10:00:00.60Z", "UTC").unwrap(),
            "2026-12-01T10:00:00.6Z"
        );
    }

    #[test]
    fn the_apis_instants_follow_the_same_rules() {
        #[derive(serde::Deserialize)]
        struct T {
            #[serde(deserialize_with = "strict_timestamp")]
            at: Timestamp,
        }
        let read = |v: &str| {
            serde_json::from_value::<T>(serde_json::json!({ "at": v }))
                .map(|t| t.at.to_string())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            read("2026-12-01T10:00:00+08:00").unwrap(),
            "2026-12-01T02:00:00Z"
        );
        assert!(
            read("2026-12-01T10:00+25:00")
                .unwrap_err()
                .contains("beyond ±23:59")
        );
        assert!(
            read("2026-12-31T23:59:60Z")
                .unwrap_err()
                .contains("leap second")
        );
        // No offset: not an instant (as before).
        assert!(
            read("2026-12-01T10:00")
                .unwrap_err()
                .contains("not an instant")
        );
    }

    #[test]
    fn only_zones_of_places_and_utc() {
        for ok in ["Asia/Tokyo", "UTC", "Etc/UTC", "america/new_york"] {
            assert!(zone(ok).is_ok(), "{ok}");
        }
        for bad in [
            "Factory",
            "posixrules",
            "localtime",
            "EST5EDT",
            "Etc/GMT+5",
            "Mars/Base",
            "../etc/passwd",
            "Asia/../../etc/passwd",
            "",
        ] {
            assert_eq!(zone(bad).unwrap_err(), WhenError::Zone(bad.into()), "{bad}");
        }
        assert_eq!(
            zone_name(&zone("asia/tokyo").unwrap(), "asia/tokyo"),
            "Asia/Tokyo"
        );
    }
}
