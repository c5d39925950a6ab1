//! The occurrences of a window: one for a window without a rule; for a recurring one, each
//! start its RFC 5545 rule gives from the first start, in the window's zone (so "every Sunday
//! 02:00 Europe/Berlin" stays at 02:00 local across daylight-saving changes; a start that
//! falls in a skipped hour moves to the first valid time after it), each lasting as long as
//! the first.
//!
//! The rule is read by the `rrule` crate (chrono inside; converted at this file's edges).

use jiff::{SignedDuration, Timestamp};
use upkeep_core::window::{Occurrence, WindowSpec};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecurError {
    #[error(
        "`{0}` is not a time zone of a place (write an IANA name such as Asia/Shanghai or Europe/Berlin, or UTC)"
    )]
    Zone(String),
    #[error("the repeat rule `{rule}` is not valid: {why}")]
    Rule { rule: String, why: String },
    #[error(
        "the repeat rule `{0}` repeats more often than daily: a window is planned work, not a pulse"
    )]
    TooOften(String),
    #[error(
        "the repeat rule `{0}` starts a window before the one before it ends: make the window shorter or the interval longer"
    )]
    Overlaps(String),
    #[error("the repeat rule `{0}` never starts a window (from the window's start)")]
    Never(String),
}

/// Most occurrences looked at in one call (a rule that yields nothing ahead ends there).
const LOOKAHEAD: u16 = 500;

/// A zone of a place or UTC (`Factory` and `posixrules` parse, but mean nothing to people).
fn zone(tz: &str) -> Result<jiff::tz::TimeZone, RecurError> {
    upkeep_core::when::zone(tz).map_err(|_| RecurError::Zone(tz.to_owned()))
}

fn rule_set(spec: &WindowSpec, rule: &str) -> Result<rrule::RRuleSet, RecurError> {
    let bad = |why: String| RecurError::Rule {
        rule: rule.to_owned(),
        why,
    };
    let upper = rule.trim().to_ascii_uppercase();
    if upper.contains("DTSTART") || upper.contains('\n') {
        return Err(bad(
            "write the rule alone (FREQ=...); the start is the window's".into(),
        ));
    }
    if ["SECONDLY", "MINUTELY", "HOURLY"]
        .iter()
        .any(|f| upper.contains(&format!("FREQ={f}")))
    {
        return Err(RecurError::TooOften(rule.to_owned()));
    }
    let local = spec.start.to_zoned(zone(&spec.tz)?);
    let text = format!(
        "DTSTART;TZID={}:{}\nRRULE:{}",
        spec.tz,
        local.strftime("%Y%m%dT%H%M%S"),
        rule.trim().trim_start_matches("RRULE:")
    );
    text.parse::<rrule::RRuleSet>()
        .map_err(|e| bad(e.to_string()))
}

fn to_timestamp(t: &chrono::DateTime<rrule::Tz>) -> Option<Timestamp> {
    Timestamp::from_millisecond(t.timestamp_millis()).ok()
}

/// Checks the window's zone and rule: it starts a window at least once, never more often
/// than daily (`BYHOUR=1,2,3` in a weekly rule is hourly too), and its occurrences do not
/// overlap.
pub fn check(spec: &WindowSpec) -> Result<(), RecurError> {
    zone(&spec.tz)?;
    if let Some(rule) = &spec.repeat {
        let first = occurrences(spec, Timestamp::MIN, 50)?;
        if first.is_empty() {
            return Err(RecurError::Never(rule.clone()));
        }
        for pair in first.windows(2) {
            // 23 h: a daily rule across a daylight-saving change is daily.
            if pair[1].start.duration_since(pair[0].start) < SignedDuration::from_hours(23) {
                return Err(RecurError::TooOften(rule.clone()));
            }
            if pair[1].start < pair[0].end {
                return Err(RecurError::Overlaps(rule.clone()));
            }
        }
    }
    Ok(())
}

/// Up to `limit` occurrences that end after `after`, in order.
pub fn occurrences(
    spec: &WindowSpec,
    after: Timestamp,
    limit: usize,
) -> Result<Vec<Occurrence>, RecurError> {
    let length: SignedDuration = spec.end.duration_since(spec.start);
    let Some(rule) = &spec.repeat else {
        let one = Occurrence {
            start: spec.start,
            end: spec.end,
        };
        return Ok(if one.end > after && limit > 0 {
            vec![one]
        } else {
            vec![]
        });
    };
    let set = rule_set(spec, rule)?;
    // Those that started up to one length before `after` may still run.
    let from = after
        .checked_sub(length)
        .unwrap_or(Timestamp::MIN)
        .max(spec.start);
    let from = chrono::DateTime::from_timestamp_millis(from.as_millisecond())
        .map(|t| t.with_timezone(&rrule::Tz::UTC));
    let set = match from {
        Some(from) => set.after(from),
        None => set,
    };
    let mut out = Vec::new();
    for start in set.all(LOOKAHEAD).dates.iter().filter_map(to_timestamp) {
        let Ok(end) = start.checked_add(length) else {
            break;
        };
        if end > after {
            out.push(Occurrence { start, end });
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use upkeep_core::ServiceName;
    use upkeep_core::window::{AffectedService, Impact, WindowKind};

    pub(crate) fn spec(start: &str, end: &str, tz: &str, repeat: Option<&str>) -> WindowSpec {
        WindowSpec {
            kind: WindowKind::Maintenance,
            title: "disks".into(),
            reason: "new disks".into(),
            start: start.parse().unwrap(),
            end: end.parse().unwrap(),
            tz: tz.into(),
            repeat: repeat.map(str::to_owned),
            services: vec![AffectedService {
                service: ServiceName::new("db").unwrap(),
                impact: Impact::Outage,
            }],
            alternative: String::new(),
            follow_up: String::new(),
            priority: None,
        }
    }

    fn starts(o: &[Occurrence], tz: &str) -> Vec<String> {
        o.iter()
            .map(|o| {
                o.start
                    .to_zoned(jiff::tz::TimeZone::get(tz).unwrap())
                    .strftime("%Y-%m-%d %H:%M %Z")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn a_weekly_window_keeps_its_local_time_across_daylight_saving_changes() {
        // Sundays 02:00-04:00 Berlin time from 2026-03-15 (CET, UTC+1). On 2026-03-29 clocks
        // skip 02:00-03:00: that Sunday starts at 03:00 CEST. On 2026-10-25 02:00 happens
        // twice; the rule takes the first.
        let s = spec(
            "2026-03-15T01:00:00Z",
            "2026-03-15T03:00:00Z",
            "Europe/Berlin",
            Some("FREQ=WEEKLY;BYDAY=SU"),
        );
        let o = occurrences(&s, "2026-03-14T00:00:00Z".parse().unwrap(), 4).unwrap();
        assert_eq!(
            starts(&o, "Europe/Berlin"),
            [
                "2026-03-15 02:00 CET",
                "2026-03-22 02:00 CET",
                "2026-03-29 03:00 CEST",
                "2026-04-05 02:00 CEST"
            ]
        );
        // Each lasts two hours, UTC times move by the offset change.
        assert!(
            o.iter()
                .all(|o| o.end.duration_since(o.start).as_secs() == 7200)
        );
        assert_eq!(o[3].start.to_string(), "2026-04-05T00:00:00Z");
        let autumn = occurrences(&s, "2026-10-20T00:00:00Z".parse().unwrap(), 2).unwrap();
        assert_eq!(
            starts(&autumn, "Europe/Berlin"),
            ["2026-10-25 02:00 CEST", "2026-11-01 02:00 CET"]
        );
    }

    #[test]
    fn a_running_occurrence_is_still_listed_and_past_ones_are_not() {
        let s = spec(
            "2026-03-15T01:00:00Z",
            "2026-03-15T03:00:00Z",
            "UTC",
            Some("FREQ=DAILY"),
        );
        let o = occurrences(&s, "2026-03-20T02:00:00Z".parse().unwrap(), 2).unwrap();
        assert_eq!(o[0].start.to_string(), "2026-03-20T01:00:00Z");
        let once = spec("2026-03-15T01:00:00Z", "2026-03-15T03:00:00Z", "UTC", None);
        assert_eq!(
            occurrences(&once, "2026-03-15T02:59:00Z".parse().unwrap(), 5)
                .unwrap()
                .len(),
            1
        );
        assert!(
            occurrences(&once, "2026-03-15T03:00:00Z".parse().unwrap(), 5)
                .unwrap()
                .is_empty()
        );
        let counted = spec(
            "2026-03-15T01:00:00Z",
            "2026-03-15T03:00:00Z",
            "UTC",
            Some("FREQ=DAILY;COUNT=3"),
        );
        assert_eq!(occurrences(&counted, Timestamp::MIN, 10).unwrap().len(), 3);
    }

    #[test]
    fn bad_zones_and_rules_are_refused_with_a_reason() {
        let mut s = spec(
            "2026-03-15T01:00:00Z",
            "2026-03-15T03:00:00Z",
            "Mars/Olympus",
            None,
        );
        assert!(matches!(check(&s), Err(RecurError::Zone(_))));
        s.tz = "UTC".into();
        for (rule, want) in [
            ("FREQ=SOMETIMES", "not valid"),
            ("FREQ=MINUTELY", "more often than daily"),
            (
                "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY",
                "the rule alone",
            ),
            ("FREQ=DAILY;COUNT=many", "not valid"),
            ("FREQ=WEEKLY;BYHOUR=1,2,3", "more often than daily"),
            ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "never starts"),
        ] {
            s.repeat = Some(rule.into());
            let e = check(&s).unwrap_err().to_string();
            assert!(e.contains(want), "{rule}: {e}");
        }
        // Three days long, every day: occurrences would overlap.
        let long = spec(
            "2026-03-15T01:00:00Z",
            "2026-03-18T01:00:00Z",
            "UTC",
            Some("FREQ=DAILY"),
        );
        assert!(matches!(check(&long), Err(RecurError::Overlaps(_))));
    }
}
