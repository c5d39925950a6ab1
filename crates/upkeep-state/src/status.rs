//! The status machine: (status, event) → new status.

use upkeep_core::{Actor, Event, EventKind, ServiceStatus, State};

/// Folds one event into a service's status.
pub fn apply(s: &mut ServiceStatus, e: &Event) {
    match &e.kind {
        EventKind::Started { pid, by, .. } => {
            // Without probes a running process is up; issue 10 makes this `starting` until
            // the probes pass.
            s.state = State::Up;
            s.pid = Some(*pid);
            s.since = Some(e.at);
            if *by == Actor::Operator {
                s.restarts = 0;
            }
        }
        EventKind::Exited { status, .. } => {
            s.state = State::Exited;
            s.pid = None;
            s.since = None;
            s.last_exit = Some(*status);
        }
        EventKind::RestartScheduled { .. } => {
            s.state = State::Backoff;
            s.restarts += 1;
        }
        EventKind::RestartRequested { .. } => s.restarts = 0,
        EventKind::SpawnFailed { .. } => s.state = State::Exited,
        EventKind::Failed { .. } => s.state = State::Failed,
        EventKind::Stopping { .. } => s.state = State::Stopping,
        EventKind::Stopped { .. } | EventKind::Removed => {
            s.state = State::Stopped;
            s.pid = None;
            s.since = None;
        }
        EventKind::LogLinesDropped { lines, .. } => s.dropped_lines += lines,
        EventKind::GroupCleaned { .. }
        | EventKind::StaleStopped { .. }
        | EventKind::ConfigApplied { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::{ExitStatus, ServiceName};

    fn ev(kind: EventKind) -> Event {
        Event::now(&ServiceName::new("x").unwrap(), kind)
    }

    const KILLED: ExitStatus = ExitStatus {
        code: None,
        signal: Some(9),
    };

    #[test]
    fn transitions() {
        use EventKind::*;
        // (events from a fresh status) → (state, pid, restarts)
        let table: Vec<(Vec<EventKind>, State, Option<u32>, u32)> = vec![
            (
                vec![Started {
                    pid: 7,
                    start_ticks: 1,
                    by: Actor::Upkeep,
                }],
                State::Up,
                Some(7),
                0,
            ),
            (
                vec![
                    Started {
                        pid: 7,
                        start_ticks: 1,
                        by: Actor::Upkeep,
                    },
                    Exited {
                        pid: 7,
                        status: KILLED,
                        uptime_ms: 5,
                    },
                    RestartScheduled {
                        attempt: 1,
                        delay_ms: 0,
                    },
                    Started {
                        pid: 8,
                        start_ticks: 2,
                        by: Actor::Upkeep,
                    },
                ],
                State::Up,
                Some(8),
                1,
            ),
            (
                vec![
                    Exited {
                        pid: 7,
                        status: KILLED,
                        uptime_ms: 5,
                    },
                    RestartScheduled {
                        attempt: 2,
                        delay_ms: 100,
                    },
                ],
                State::Backoff,
                None,
                1,
            ),
            (
                vec![
                    RestartScheduled {
                        attempt: 9,
                        delay_ms: 0,
                    },
                    Failed {
                        restarts: 10,
                        window_ms: 60_000,
                    },
                ],
                State::Failed,
                None,
                1,
            ),
            (
                vec![
                    Started {
                        pid: 7,
                        start_ticks: 1,
                        by: Actor::Upkeep,
                    },
                    Stopping {
                        by: Actor::Operator,
                    },
                ],
                State::Stopping,
                Some(7),
                0,
            ),
            (
                vec![
                    Started {
                        pid: 7,
                        start_ticks: 1,
                        by: Actor::Upkeep,
                    },
                    Stopping {
                        by: Actor::Operator,
                    },
                    Stopped {
                        by: Actor::Operator,
                    },
                ],
                State::Stopped,
                None,
                0,
            ),
            (
                vec![
                    RestartScheduled {
                        attempt: 1,
                        delay_ms: 0,
                    },
                    Started {
                        pid: 9,
                        start_ticks: 1,
                        by: Actor::Operator,
                    },
                ],
                State::Up,
                Some(9),
                0,
            ),
            (
                vec![SpawnFailed { error: "x".into() }],
                State::Exited,
                None,
                0,
            ),
        ];
        for (events, state, pid, restarts) in table {
            let mut s = ServiceStatus::new(ServiceName::new("x").unwrap());
            for e in &events {
                apply(&mut s, &ev(e.clone()));
            }
            assert_eq!(
                (s.state, s.pid, s.restarts),
                (state, pid, restarts),
                "after {events:?}"
            );
        }
    }

    #[test]
    fn exit_is_remembered_and_drops_add_up() {
        let mut s = ServiceStatus::new(ServiceName::new("x").unwrap());
        apply(
            &mut s,
            &ev(EventKind::Exited {
                pid: 1,
                status: KILLED,
                uptime_ms: 1,
            }),
        );
        apply(
            &mut s,
            &ev(EventKind::LogLinesDropped {
                stream: "stdout".into(),
                lines: 3,
            }),
        );
        apply(
            &mut s,
            &ev(EventKind::LogLinesDropped {
                stream: "stdout".into(),
                lines: 4,
            }),
        );
        assert_eq!((s.last_exit, s.dropped_lines), (Some(KILLED), 7));
    }
}
