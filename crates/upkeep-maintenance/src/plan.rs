//! A window's life, decided from what it is, what was done and the time: which steps are due
//! now, which occurrence runs (its services are in maintenance), and when to look again.
//!
//! Pure: the daemon's planner stores each due step once (its notices with it) and asks
//! again. So a step is due until it is stored, and never after: a daemon killed before a
//! reminder and started after it sends it once; started after the occurrence began, it sends
//! no reminder at all (its moment passed), and starts the work. Only the latest reminder whose
//! moment has passed is due: a daemon back after two days sends "in 1 hour", not also "in 24
//! hours".

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use upkeep_core::window::{self, Occurrence, Step, StepTaken, WindowSpec, WindowStatus};

use crate::recur;

/// A stored window and the steps taken so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowState {
    pub spec: WindowSpec,
    pub created: Timestamp,
    pub cancelled: bool,
    pub taken: Vec<StepTaken>,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Steps due now, in order, each with its occurrence's start.
    pub due: Vec<(Timestamp, Step)>,
    /// The occurrence under way: its services are in maintenance until it completes.
    pub running: Option<Occurrence>,
    /// The occurrence under way, or the next one.
    pub current: Option<Occurrence>,
    pub status: WindowStatus,
    /// When to plan again (besides after storing what is due, or after an edit).
    pub wake: Option<Timestamp>,
    /// Overrun: plan again when the services' health changes.
    pub awaits_health: bool,
}

fn overrun_end(end: Timestamp, max: Duration) -> Timestamp {
    SignedDuration::try_from(max)
        .ok()
        .and_then(|m| end.checked_add(m).ok())
        .unwrap_or(Timestamp::MAX)
}

impl WindowState {
    fn has(&self, occurrence: Timestamp, key: &str) -> bool {
        self.taken
            .iter()
            .any(|t| t.occurrence == occurrence && t.step.key() == key)
    }

    /// The expected end of the occurrence starting at `start`: its last extension, or its
    /// length after it began (an occurrence started early lasts as long from then).
    pub fn end_of(&self, start: Timestamp) -> Timestamp {
        let extended = self.taken.iter().rev().find_map(|t| match t.step {
            Step::Extended { until } if t.occurrence == start => Some(until),
            _ => None,
        });
        extended.unwrap_or_else(|| {
            window::began(&self.taken, start)
                .checked_add(self.spec.end.duration_since(self.spec.start))
                .unwrap_or(Timestamp::MAX)
        })
    }

    /// The occurrence started and not completed, if any.
    pub fn running(&self) -> Option<Occurrence> {
        self.taken
            .iter()
            .filter(|t| t.step == Step::Started)
            .map(|t| t.occurrence)
            .find(|o| !self.has(*o, "completed"))
            .map(|start| Occurrence {
                start,
                end: self.end_of(start),
            })
    }
}

/// How a window is lived, as configured (`[maintenance]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// How long before a start people are reminded.
    pub reminders: Vec<Duration>,
    /// How long an overrun may last before the window ends anyway: past it, its services
    /// leave maintenance, and if they are still down that is an outage, with an incident,
    /// not more maintenance (an operator who needs longer extends the window).
    pub overrun_max: Duration,
}

/// Decides what is due for `w` at `now` under `rules`; `healthy`: whether every service of
/// the window is well (its probes pass).
pub fn plan(w: &WindowState, now: Timestamp, rules: &Rules, healthy: bool) -> Plan {
    let reminders = &rules.reminders[..];
    let mut p = Plan {
        due: Vec::new(),
        running: None,
        current: None,
        status: WindowStatus::Scheduled,
        wake: None,
        awaits_health: false,
    };
    if w.cancelled {
        p.status = WindowStatus::Cancelled;
        return p;
    }
    if !w.has(w.spec.start, "announced") {
        p.due.push((w.spec.start, Step::Announced));
    }
    if let Some(occ) = w.running() {
        p.running = Some(occ);
        p.current = Some(occ);
        if now < occ.end {
            p.status = WindowStatus::Running;
            p.wake = Some(occ.end);
        } else if healthy || now >= overrun_end(occ.end, rules.overrun_max) {
            p.due.push((occ.start, Step::Completed));
            p.status = WindowStatus::Running;
            p.wake = Some(now);
        } else {
            let overrun = Step::Overrun { end: occ.end };
            if !w.has(occ.start, &overrun.key()) {
                p.due.push((occ.start, overrun));
            }
            p.status = WindowStatus::Overrun;
            p.awaits_health = true;
            p.wake = Some(overrun_end(occ.end, rules.overrun_max));
        }
        return p;
    }
    let ahead = recur::occurrences(&w.spec, now, 64).unwrap_or_default();
    let next = ahead.into_iter().find(|o| {
        !w.has(o.start, "completed") && !w.has(o.start, "started") && w.end_of(o.start) > now
    });
    let Some(next) = next else {
        p.status = WindowStatus::Completed;
        return p;
    };
    let occ = Occurrence {
        start: next.start,
        end: w.end_of(next.start),
    };
    p.current = Some(occ);
    if now >= occ.start {
        // Its time has come (or came while no daemon ran, and it is not over).
        p.due.push((occ.start, Step::Started));
        p.running = Some(occ);
        p.status = WindowStatus::Running;
        p.wake = Some(now);
        return p;
    }
    // The latest reminder whose moment has passed (and came after the window was made).
    let moment = |d: &Duration| {
        SignedDuration::try_from(*d)
            .ok()
            .and_then(|d| occ.start.checked_sub(d).ok())
    };
    let passed = reminders
        .iter()
        .filter_map(|d| Some((moment(d)?, d)))
        .filter(|(at, _)| *at <= now && *at >= w.created)
        .max_by_key(|(at, _)| *at);
    if let Some((_, d)) = passed {
        let step = Step::Reminder {
            before_s: d.as_secs(),
        };
        if !w.has(occ.start, &step.key()) {
            p.due.push((occ.start, step));
        }
    }
    let upcoming = reminders
        .iter()
        .filter_map(moment)
        .filter(|at| *at > now)
        .min();
    p.wake = Some(upcoming.map_or(occ.start, |at| at.min(occ.start)));
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recur::tests::spec;

    const H: u64 = 3600;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn reminders() -> Rules {
        Rules {
            reminders: vec![Duration::from_secs(24 * H), Duration::from_secs(H)],
            overrun_max: Duration::from_secs(24 * H),
        }
    }

    /// Plans at `now` and takes whatever is due, as the daemon does.
    fn step(w: &mut WindowState, now: &str, healthy: bool) -> Vec<String> {
        let now = t(now);
        let mut names = Vec::new();
        loop {
            let p = plan(w, now, &reminders(), healthy);
            if p.due.is_empty() {
                return names;
            }
            for (occurrence, step) in p.due {
                names.push(step.key());
                w.taken.push(StepTaken {
                    occurrence,
                    step,
                    at: now,
                    by: None,
                });
            }
        }
    }

    fn window(start: &str, end: &str, created: &str) -> WindowState {
        WindowState {
            spec: spec(start, end, "UTC", None),
            created: t(created),
            cancelled: false,
            taken: Vec::new(),
        }
    }

    #[test]
    fn a_window_eight_days_ahead_is_announced_reminded_started_and_completed() {
        let mut w = window(
            "2026-12-09T02:00:00Z",
            "2026-12-09T04:00:00Z",
            "2026-12-01T00:00:00Z",
        );
        assert_eq!(step(&mut w, "2026-12-01T00:00:00Z", true), ["announced"]);
        let p = plan(&w, t("2026-12-01T00:00:00Z"), &reminders(), true);
        assert_eq!(
            p.wake,
            Some(t("2026-12-08T02:00:00Z")),
            "wakes for the 24 h reminder"
        );
        assert_eq!(
            step(&mut w, "2026-12-08T01:59:59Z", true),
            Vec::<String>::new()
        );
        assert_eq!(
            step(&mut w, "2026-12-08T02:00:00Z", true),
            ["reminder:86400"]
        );
        assert_eq!(
            step(&mut w, "2026-12-09T01:00:00Z", true),
            ["reminder:3600"]
        );
        assert_eq!(step(&mut w, "2026-12-09T02:00:00Z", true), ["started"]);
        let p = plan(&w, t("2026-12-09T03:00:00Z"), &reminders(), true);
        assert_eq!(
            (p.status, p.wake),
            (WindowStatus::Running, Some(t("2026-12-09T04:00:00Z")))
        );
        assert!(p.running.is_some());
        assert_eq!(step(&mut w, "2026-12-09T04:00:00Z", true), ["completed"]);
        let p = plan(&w, t("2026-12-09T04:00:00Z"), &reminders(), true);
        assert_eq!((p.status, p.running), (WindowStatus::Completed, None));
    }

    #[test]
    fn a_reminder_missed_while_down_is_sent_once_and_a_passed_one_never() {
        let mut w = window(
            "2026-12-09T02:00:00Z",
            "2026-12-09T04:00:00Z",
            "2026-12-01T00:00:00Z",
        );
        step(&mut w, "2026-12-01T00:00:00Z", true);
        // Down from before the 24 h reminder until 30 min before the start: one reminder,
        // the nearest, once.
        assert_eq!(
            step(&mut w, "2026-12-09T01:30:00Z", true),
            ["reminder:3600"]
        );
        assert_eq!(
            step(&mut w, "2026-12-09T01:31:00Z", true),
            Vec::<String>::new()
        );
        // Another window, the daemon back only after the start: no reminder, the work starts.
        let mut late = window(
            "2026-12-09T02:00:00Z",
            "2026-12-09T04:00:00Z",
            "2026-12-01T00:00:00Z",
        );
        step(&mut late, "2026-12-01T00:00:00Z", true);
        assert_eq!(step(&mut late, "2026-12-09T02:10:00Z", true), ["started"]);
        // And one whose whole occurrence passed while down: nothing at all.
        let mut gone = window(
            "2026-12-09T02:00:00Z",
            "2026-12-09T04:00:00Z",
            "2026-12-01T00:00:00Z",
        );
        step(&mut gone, "2026-12-01T00:00:00Z", true);
        assert_eq!(
            step(&mut gone, "2026-12-10T00:00:00Z", true),
            Vec::<String>::new()
        );
        assert_eq!(
            plan(&gone, t("2026-12-10T00:00:00Z"), &reminders(), true).status,
            WindowStatus::Completed
        );
    }

    #[test]
    fn reminders_before_the_window_was_made_are_not_sent() {
        // Made 2 h ahead (an emergency, say): no 24 h reminder, the 1 h one only.
        let mut w = window(
            "2026-12-09T02:00:00Z",
            "2026-12-09T04:00:00Z",
            "2026-12-09T00:00:00Z",
        );
        assert_eq!(step(&mut w, "2026-12-09T00:00:00Z", true), ["announced"]);
        assert_eq!(
            step(&mut w, "2026-12-09T01:00:00Z", true),
            ["reminder:3600"]
        );
    }

    #[test]
    fn an_unhealthy_end_is_an_overrun_until_the_services_are_well_and_an_extension_moves_it() {
        let mut w = window(
            "2026-12-09T02:00:00Z",
            "2026-12-09T04:00:00Z",
            "2026-12-01T00:00:00Z",
        );
        step(&mut w, "2026-12-09T02:00:00Z", true);
        let overrun = format!("overrun:{}", t("2026-12-09T04:00:00Z").as_millisecond());
        assert_eq!(step(&mut w, "2026-12-09T04:00:00Z", false), [overrun]);
        let p = plan(&w, t("2026-12-09T04:30:00Z"), &reminders(), false);
        assert_eq!(
            (p.status, p.awaits_health, p.due.len()),
            (WindowStatus::Overrun, true, 0)
        );
        // Extended to 06:00: running again; a second overrun at the new end.
        w.taken.push(StepTaken {
            occurrence: t("2026-12-09T02:00:00Z"),
            step: Step::Extended {
                until: t("2026-12-09T06:00:00Z"),
            },
            at: t("2026-12-09T04:30:00Z"),
            by: None,
        });
        let p = plan(&w, t("2026-12-09T05:00:00Z"), &reminders(), false);
        assert_eq!(
            (p.status, p.wake),
            (WindowStatus::Running, Some(t("2026-12-09T06:00:00Z")))
        );
        assert_eq!(step(&mut w, "2026-12-09T06:00:00Z", false).len(), 1);
        assert_eq!(step(&mut w, "2026-12-09T06:20:00Z", true), ["completed"]);
    }

    #[test]
    fn an_overrun_ends_after_its_limit_even_while_the_services_are_down() {
        let mut w = window(
            "2026-12-09T02:00:00Z",
            "2026-12-09T04:00:00Z",
            "2026-12-01T00:00:00Z",
        );
        step(&mut w, "2026-12-09T02:00:00Z", true);
        assert_eq!(
            step(&mut w, "2026-12-09T04:00:00Z", false).len(),
            1,
            "overrun"
        );
        let p = plan(&w, t("2026-12-10T03:59:59Z"), &reminders(), false);
        assert_eq!(
            (p.status, p.wake),
            (WindowStatus::Overrun, Some(t("2026-12-10T04:00:00Z")))
        );
        assert_eq!(step(&mut w, "2026-12-10T04:00:00Z", false), ["completed"]);
    }

    #[test]
    fn a_weekly_window_runs_each_sunday_and_a_cancelled_one_nothing() {
        let mut w = WindowState {
            spec: spec(
                "2026-03-15T01:00:00Z",
                "2026-03-15T03:00:00Z",
                "Europe/Berlin",
                Some("FREQ=WEEKLY;BYDAY=SU"),
            ),
            created: t("2026-03-01T00:00:00Z"),
            cancelled: false,
            taken: Vec::new(),
        };
        step(&mut w, "2026-03-01T00:00:00Z", true);
        assert_eq!(step(&mut w, "2026-03-15T01:00:00Z", true), ["started"]);
        assert_eq!(step(&mut w, "2026-03-15T03:00:00Z", true), ["completed"]);
        let p = plan(&w, t("2026-03-15T03:00:00Z"), &reminders(), true);
        assert_eq!(p.current.unwrap().start, t("2026-03-22T01:00:00Z"));
        assert_eq!(
            step(&mut w, "2026-03-28T01:00:00Z", true),
            ["reminder:86400"]
        );
        let p = plan(&w, t("2026-03-28T01:00:00Z"), &reminders(), true);
        assert_eq!(
            p.current.unwrap().start,
            t("2026-03-29T01:00:00Z"),
            "03:00 CEST is 01:00 UTC"
        );
        w.cancelled = true;
        let p = plan(&w, t("2026-03-29T01:00:00Z"), &reminders(), true);
        assert_eq!(
            (p.status, p.due.len(), p.running),
            (WindowStatus::Cancelled, 0, None)
        );
    }
}
