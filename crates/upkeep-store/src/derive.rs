//! What a stored event changes besides its own row: the incident it opens, resolves or
//! reopens, and the process a service runs. Decided here, once, for every backend; a backend
//! only carries the [`Change`] out (issue 15: "stores store").
//!
//! Input: one [`Event`] as the writer hands it over. Output: at most one [`Change`], applied in
//! the same transaction as the event's row, and only if that row was new (a retried batch
//! changes nothing twice). A batch's changes come as [`Changes`]: the incidents' in order,
//! each service's last process apart (one row each, written in a few statements).

use upkeep_core::{Event, EventKind};

/// A change to a derived table, in the event's own terms (milliseconds, as stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change<'a> {
    Incident(IncidentChange<'a>),
    Running(Running<'a>),
}

/// A change to an incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IncidentChange<'a> {
    /// An incident begins (`since`: when the outage began, before it opened with
    /// `incident_after`). Opening one that exists changes nothing.
    Open {
        service: &'a str,
        since_ms: i64,
        opened_ms: i64,
        reason: &'a str,
        drill: bool,
    },
    Resolve {
        service: &'a str,
        since_ms: i64,
        at_ms: i64,
    },
    Reopen {
        service: &'a str,
        since_ms: i64,
    },
}

/// The process the daemon last started for a service, or none: what a restarted daemon looks
/// for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Running<'a> {
    pub service: &'a str,
    /// Its pid and start ticks.
    pub process: Option<(i64, i64)>,
    pub at_ms: i64,
}

/// The change `event` makes, if any.
pub(crate) fn change(event: &Event) -> Option<Change<'_>> {
    let service = event.service.as_ref()?.as_str();
    let at_ms = event.at.as_millisecond();
    let running = |process| {
        Change::Running(Running {
            service,
            process,
            at_ms,
        })
    };
    Some(match &event.kind {
        EventKind::IncidentOpened {
            since,
            reason,
            drill,
        } => Change::Incident(IncidentChange::Open {
            service,
            since_ms: since.as_millisecond(),
            opened_ms: at_ms,
            reason,
            drill: *drill,
        }),
        EventKind::IncidentResolved { since, .. } => Change::Incident(IncidentChange::Resolve {
            service,
            since_ms: since.as_millisecond(),
            at_ms,
        }),
        EventKind::IncidentReopened { since, .. } => Change::Incident(IncidentChange::Reopen {
            service,
            since_ms: since.as_millisecond(),
        }),
        EventKind::Started {
            pid, start_ticks, ..
        } => running(Some((i64::from(*pid), *start_ticks as i64))),
        // The same run goes on under a new daemon: the stored process is unchanged.
        EventKind::Adopted {
            pid, start_ticks, ..
        } => running(Some((i64::from(*pid), *start_ticks as i64))),
        EventKind::Exited { .. } | EventKind::StaleStopped { .. } => running(None),
        _ => return None,
    })
}

/// What a batch of new events changes.
#[derive(Debug, Default)]
pub(crate) struct Changes<'a> {
    /// In the events' order.
    pub incidents: Vec<IncidentChange<'a>>,
    /// The last process of each service the batch names (a crash loop starts hundreds in a
    /// batch; one row holds the last), one per service, so that one statement may write them.
    pub running: Vec<Running<'a>>,
}

/// The changes a batch of new events makes.
pub(crate) fn changes<'a>(events: impl Iterator<Item = &'a Event>) -> Changes<'a> {
    let mut out = Changes::default();
    let mut last = std::collections::HashMap::new();
    for change in events.filter_map(change) {
        match change {
            Change::Incident(c) => out.incidents.push(c),
            Change::Running(r) => match last.get(r.service) {
                Some(&i) => out.running[i] = r,
                None => {
                    last.insert(r.service, out.running.len());
                    out.running.push(r);
                }
            },
        }
    }
    out
}

/// The earliest time an event tells about (milliseconds): its own, or the outage or drill it
/// closes, which began earlier. The hours from there on are rolled up again if they were.
pub(crate) fn earliest_ms(event: &Event) -> i64 {
    let at = event.at.as_millisecond();
    match &event.kind {
        EventKind::IncidentOpened { since, .. }
        | EventKind::IncidentResolved { since, .. }
        | EventKind::IncidentReopened { since, .. } => at.min(since.as_millisecond()),
        EventKind::DrillCompleted { injected_at, .. } => at.min(injected_at.as_millisecond()),
        _ => at,
    }
}

/// The columns of an event's own row that are derived from it: its new state, for a status
/// change (queried by reports, so a column and not JSON), as the JSON holds it.
pub(crate) fn to_state(event: &Event) -> Option<String> {
    match &event.kind {
        EventKind::StatusChanged { to, .. } => serde_json::to_value(to)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::{Actor, ServiceName, State};

    #[test]
    fn each_event_changes_what_it_names_and_nothing_else() {
        let web = ServiceName::new("web").unwrap();
        let started = Event::now(
            &web,
            EventKind::Started {
                pid: 7,
                start_ticks: 99,
                by: Actor::Upkeep,
            },
        );
        assert!(matches!(
            change(&started),
            Some(Change::Running(Running {
                service: "web",
                process: Some((7, 99)),
                ..
            }))
        ));
        let status = Event::now(
            &web,
            EventKind::StatusChanged {
                from: State::Up,
                to: State::Down,
            },
        );
        assert_eq!(change(&status), None);
        assert_eq!(to_state(&status).as_deref(), Some("down"));
        assert_eq!(to_state(&started), None);
        let global = Event {
            at: jiff::Timestamp::UNIX_EPOCH,
            service: None,
            kind: EventKind::StaleStopped { pid: 1 },
        };
        assert_eq!(change(&global), None);
    }

    #[test]
    fn a_batch_keeps_each_services_last_process_and_every_incident_change_in_order() {
        let (web, db) = (
            ServiceName::new("web").unwrap(),
            ServiceName::new("db").unwrap(),
        );
        let start = |s: &ServiceName, pid| {
            Event::now(
                s,
                EventKind::Started {
                    pid,
                    start_ticks: 1,
                    by: Actor::Upkeep,
                },
            )
        };
        let since = jiff::Timestamp::UNIX_EPOCH;
        let events = [
            start(&web, 1),
            start(&db, 2),
            Event::now(
                &web,
                EventKind::IncidentOpened {
                    since,
                    reason: "x".into(),
                    drill: false,
                },
            ),
            start(&web, 3),
            Event::now(
                &web,
                EventKind::IncidentResolved {
                    since,
                    duration_ms: 1,
                },
            ),
        ];
        let got = changes(events.iter());
        let incidents: Vec<&str> = got
            .incidents
            .iter()
            .map(|c| match c {
                IncidentChange::Open { .. } => "open",
                IncidentChange::Resolve { .. } => "resolve",
                IncidentChange::Reopen { .. } => "reopen",
            })
            .collect();
        assert_eq!(incidents, ["open", "resolve"]);
        let running: Vec<String> = got
            .running
            .iter()
            .map(|r| format!("{} {:?}", r.service, r.process))
            .collect();
        assert_eq!(running, ["web Some((3, 1))", "db Some((2, 1))"]);
    }
}
