//! What makes a window acceptable, checked in one place before it is stored (by the API, the
//! CLI's request and an edit alike): text within limits, an end after its start, at least one
//! service and each one known, a real zone and a rule that repeats sensibly; and, against
//! the clock ([`ahead`]), a window that is still to come and not absurdly far off (a lead-time
//! policy forced with a reason bypasses neither: no reason makes a window in 1970 useful).

use std::collections::BTreeSet;

use upkeep_core::ServiceName;
use upkeep_core::window::WindowSpec;

use crate::recur::{self, RecurError};

/// Longest texts, in characters: a notice is read on a phone.
const TITLE_MAX: usize = 200;
const TEXT_MAX: usize = 4000;
/// Longest window: a month. Longer "maintenance" is a decommission.
pub const LENGTH_MAX_DAYS: i64 = 31;
const SERVICES_MAX: usize = 1000;
/// Furthest first start: two years. Further is a typo (2206 for 2026), not a plan.
pub const AHEAD_MAX_DAYS: i64 = 2 * 366;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("the title is empty: say in a few words what the work is")]
    NoTitle,
    #[error("{field} is {len} characters long; at most {max} are kept")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} holds a control character: write plain text")]
    Control { field: &'static str },
    #[error("the end ({end}) is not after the start ({start})")]
    EndBeforeStart { start: String, end: String },
    #[error("the window is longer than {LENGTH_MAX_DAYS} days")]
    TooLongWindow,
    #[error("name at least one service the work affects (--services a,b)")]
    NoServices,
    #[error("at most {SERVICES_MAX} services per window")]
    TooManyServices,
    #[error("no service named `{0}` in the config")]
    UnknownService(ServiceName),
    #[error("`{0}` is named twice")]
    Duplicate(ServiceName),
    #[error(transparent)]
    Recur(#[from] RecurError),
    #[error(
        "the window is over before it is announced (it ends {end}): check the date and the zone"
    )]
    Past { end: String },
    #[error("the window starts {start}, more than two years ahead: check the year")]
    TooFarAhead { start: String },
}

/// Checks that `spec` still has an occurrence to come at `now` and starts within
/// [`AHEAD_MAX_DAYS`]. Call it after [`validate`] (it trusts the rule and the zone).
pub fn ahead(spec: &WindowSpec, now: jiff::Timestamp) -> Result<(), SpecError> {
    if recur::occurrences(spec, now, 1)?.is_empty() {
        return Err(SpecError::Past {
            end: spec.end.to_string(),
        });
    }
    let far = now
        .checked_add(jiff::SignedDuration::from_hours(AHEAD_MAX_DAYS * 24))
        .unwrap_or(jiff::Timestamp::MAX);
    if spec.start > far {
        return Err(SpecError::TooFarAhead {
            start: spec.start.to_string(),
        });
    }
    Ok(())
}

fn text(field: &'static str, value: &str, max: usize, lines: bool) -> Result<(), SpecError> {
    let len = value.chars().count();
    if len > max {
        return Err(SpecError::TooLong { field, len, max });
    }
    if value
        .chars()
        .any(|c| c.is_control() && !(lines && (c == '\n' || c == '\t')))
    {
        return Err(SpecError::Control { field });
    }
    Ok(())
}

/// Whole seconds: what people write, what recurrence rules count in, and what the store's
/// millisecond keys hold exactly (a step of an occurrence is found by its start).
pub fn normalize(spec: &mut WindowSpec) {
    let whole = |t: jiff::Timestamp| jiff::Timestamp::from_second(t.as_second()).unwrap_or(t);
    spec.start = whole(spec.start);
    spec.end = whole(spec.end);
    spec.title = spec.title.trim().to_owned();
}

/// Checks `spec`; `known` says whether a service is configured.
pub fn validate(spec: &WindowSpec, known: impl Fn(&ServiceName) -> bool) -> Result<(), SpecError> {
    if spec.title.trim().is_empty() {
        return Err(SpecError::NoTitle);
    }
    text("the title", &spec.title, TITLE_MAX, false)?;
    text("the reason", &spec.reason, TEXT_MAX, true)?;
    text("the alternative", &spec.alternative, TEXT_MAX, true)?;
    text("the follow-up", &spec.follow_up, TEXT_MAX, true)?;
    if spec.end <= spec.start {
        return Err(SpecError::EndBeforeStart {
            start: spec.start.to_string(),
            end: spec.end.to_string(),
        });
    }
    if spec.end.duration_since(spec.start).as_hours() > LENGTH_MAX_DAYS * 24 {
        return Err(SpecError::TooLongWindow);
    }
    if spec.services.is_empty() {
        return Err(SpecError::NoServices);
    }
    if spec.services.len() > SERVICES_MAX {
        return Err(SpecError::TooManyServices);
    }
    let mut seen = BTreeSet::new();
    for s in &spec.services {
        if !seen.insert(&s.service) {
            return Err(SpecError::Duplicate(s.service.clone()));
        }
        if !known(&s.service) {
            return Err(SpecError::UnknownService(s.service.clone()));
        }
    }
    recur::check(spec)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recur::tests::spec;

    #[test]
    fn careless_and_hostile_windows_are_refused_with_a_reason() {
        let ok = spec("2026-12-02T01:00:00Z", "2026-12-02T03:00:00Z", "UTC", None);
        let known = |n: &ServiceName| n.as_str() == "db";
        assert_eq!(validate(&ok, known), Ok(()));
        type Break = Box<dyn Fn(&mut WindowSpec)>;
        let cases: Vec<(Break, &str)> = vec![
            (Box::new(|s| s.title = "  ".into()), "title is empty"),
            (Box::new(|s| s.title = "x".repeat(201)), "201 characters"),
            (
                Box::new(|s| s.title = "a\u{1b}[2Jb".into()),
                "control character",
            ),
            (Box::new(|s| s.reason = "é".repeat(4001)), "4001 characters"),
            (Box::new(|s| s.end = s.start), "not after the start"),
            (
                Box::new(|s| s.end = "2027-02-01T00:00:00Z".parse().unwrap()),
                "longer than 31 days",
            ),
            (Box::new(|s| s.services.clear()), "at least one service"),
            (
                Box::new(|s| s.services.push(s.services[0].clone())),
                "named twice",
            ),
            (
                Box::new(|s| s.services[0].service = ServiceName::new("web").unwrap()),
                "no service named `web`",
            ),
            (
                Box::new(|s| s.tz = "../etc/passwd".into()),
                "not a time zone",
            ),
        ];
        for (break_it, want) in cases {
            let mut s = ok.clone();
            break_it(&mut s);
            let e = validate(&s, known).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        for zone in ["Factory", "posixrules", "EST5EDT"] {
            let mut s = ok.clone();
            s.tz = zone.into();
            let e = validate(&s, known).unwrap_err().to_string();
            assert!(e.contains("not a time zone of a place"), "{zone}: {e}");
        }
        // Newlines are fine in the reason, not in the title.
        let mut s = ok.clone();
        s.reason = "line one\nline two".into();
        assert_eq!(validate(&s, known), Ok(()));
    }

    #[test]
    fn a_window_must_be_to_come_and_not_years_off() {
        let now: jiff::Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let at = |start: &str, end: &str, repeat: Option<&str>| {
            ahead(&spec(start, end, "UTC", repeat), now).map_err(|e| e.to_string())
        };
        assert_eq!(
            at("2026-12-02T01:00:00Z", "2026-12-02T03:00:00Z", None),
            Ok(())
        );
        // Under way: still to come (its end is).
        assert_eq!(
            at("2026-11-30T23:00:00Z", "2026-12-01T01:00:00Z", None),
            Ok(())
        );
        let e = at("1970-01-01T00:00:00Z", "1970-01-01T02:00:00Z", None).unwrap_err();
        assert!(e.contains("over before it is announced"), "{e}");
        let e = at("2026-11-30T01:00:00Z", "2026-11-30T03:00:00Z", None).unwrap_err();
        assert!(e.contains("over before"), "{e}");
        // A weekly window begun a month ago has its next Sunday to come.
        assert_eq!(
            at(
                "2026-11-01T01:00:00Z",
                "2026-11-01T03:00:00Z",
                Some("FREQ=WEEKLY")
            ),
            Ok(())
        );
        let e = at(
            "2026-11-01T01:00:00Z",
            "2026-11-01T03:00:00Z",
            Some("FREQ=WEEKLY;COUNT=2"),
        )
        .unwrap_err();
        assert!(e.contains("over before"), "{e}");
        let e = at("2206-12-02T01:00:00Z", "2206-12-02T03:00:00Z", None).unwrap_err();
        assert!(e.contains("two years ahead"), "{e}");
    }
}
