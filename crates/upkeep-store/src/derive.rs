//! What a stored event changes besides its own row: the incident it opens, resolves or
//! reopens, and the process a service runs. Decided here, once, for every backend; a backend
//! only carries the [`Change`] out (issue 15: "stores store").
//!
//! Input: one [`Event`] as the writer hands it over. Output: at most one [`Change`], applied in
//! the same transaction as the event's row, and only if that row was new (a retried batch
//! changes nothing twice).

use upkeep_core::{Event, EventKind};

/// A change to a derived table, in the event's own terms (milliseconds, as stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change<'a> {
    /// An incident begins (`since`: when the outage began, before it opened with
    /// `incident_after`). Opening one that exists changes nothing.
    OpenIncident {
        service: &'a str,
        since_ms: i64,
        opened_ms: i64,
        reason: &'a str,
        drill: bool,
    },
    ResolveIncident {
        service: &'a str,
        since_ms: i64,
        at_ms: i64,
    },
    ReopenIncident {
        service: &'a str,
        since_ms: i64,
    },
    /// The process the daemon last started for a service, or none: what a restarted daemon
    /// looks for.
    Running {
        service: &'a str,
        process: Option<(i64, i64)>,
        at_ms: i64,
    },
}

/// The change `event` makes, if any.
pub(crate) fn change(event: &Event) -> Option<Change<'_>> {
    let service = event.service.as_ref()?.as_str();
    let at_ms = event.at.as_millisecond();
    Some(match &event.kind {
        EventKind::IncidentOpened {
            since,
            reason,
            drill,
        } => Change::OpenIncident {
            service,
            since_ms: since.as_millisecond(),
            opened_ms: at_ms,
            reason,
            drill: *drill,
        },
        EventKind::IncidentResolved { since, .. } => Change::ResolveIncident {
            service,
            since_ms: since.as_millisecond(),
            at_ms,
        },
        EventKind::IncidentReopened { since, .. } => Change::ReopenIncident {
            service,
            since_ms: since.as_millisecond(),
        },
        EventKind::Started {
            pid, start_ticks, ..
        } => Change::Running {
            service,
            process: Some((i64::from(*pid), *start_ticks as i64)),
            at_ms,
        },
        // The same run goes on under a new daemon: the stored process is unchanged.
        EventKind::Adopted {
            pid, start_ticks, ..
        } => Change::Running {
            service,
            process: Some((i64::from(*pid), *start_ticks as i64)),
            at_ms,
        },
        EventKind::Exited { .. } | EventKind::StaleStopped { .. } => Change::Running {
            service,
            process: None,
            at_ms,
        },
        _ => return None,
    })
}

/// The changes a batch of new events makes, in order, except that only the last process of
/// each service is kept (a crash loop starts hundreds in a batch; one row holds the last).
pub(crate) fn changes<'a>(events: impl Iterator<Item = &'a Event>) -> Vec<Change<'a>> {
    let mut out: Vec<Change<'a>> = events.filter_map(change).collect();
    let mut seen = std::collections::HashSet::new();
    // From the back: the last of each service stays.
    let mut keep: Vec<bool> = out
        .iter()
        .rev()
        .map(|c| match c {
            Change::Running { service, .. } => seen.insert(*service),
            _ => true,
        })
        .collect();
    keep.reverse();
    let mut keep = keep.into_iter();
    out.retain(|_| keep.next().unwrap_or(true));
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
            Some(Change::Running {
                service: "web",
                process: Some((7, 99)),
                ..
            })
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
        let got: Vec<String> = changes(events.iter())
            .iter()
            .map(|c| match c {
                Change::Running {
                    service, process, ..
                } => format!("{service} {process:?}"),
                Change::OpenIncident { .. } => "open".into(),
                Change::ResolveIncident { .. } => "resolve".into(),
                Change::ReopenIncident { .. } => "reopen".into(),
            })
            .collect();
        assert_eq!(
            got,
            ["db Some((2, 1))", "open", "web Some((3, 1))", "resolve"]
        );
    }
}
