//! [`Event`]: an immutable fact about a service, with the time it happened.
//!
//! Sources (the supervisor now; probes and maintenance later) create events; `state` folds them
//! into statuses; `store` appends every one of them. Events are past tense. Operator actions
//! carry [`Actor::Principal`] (who asked, and from where) and count as interventions;
//! automatic ones do not.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Health, ServiceName, State};

/// Who caused an event.
///
/// Stored in the events' JSON (`"by"`), so old forms stay readable: `"operator"` (before
/// issue 15, when the person was not named) reads as [`Actor::Operator`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// A person, named: every operator action since issue 15 (the CLI over the control
    /// socket, or the API over TCP with a token). Counted as an intervention. Stored as
    /// `{"principal": {"name": ..., "via": ..., "from": ...}}`.
    Principal(Principal),
    /// A person whose name was not recorded: events stored before issue 15. Counted as an
    /// intervention. New events never carry it.
    Operator,
    /// upkeep itself: restart policy, boot, shutdown. The default, so fields added to old
    /// events (`by` of `config_applied`) read as upkeep's own.
    #[default]
    Upkeep,
}

impl Actor {
    /// A person asked (named or not): the event is an intervention.
    pub fn is_operator(&self) -> bool {
        matches!(self, Actor::Principal(_) | Actor::Operator)
    }

    /// The person who asked, if named.
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Actor::Principal(p) => Some(p),
            Actor::Operator | Actor::Upkeep => None,
        }
    }
}

impl From<Principal> for Actor {
    fn from(p: Principal) -> Self {
        Actor::Principal(p)
    }
}

/// Who asked for an operator action and from where: what the audit log is built from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Principal {
    /// Over the control socket, the peer's user name (or `uid:N` when it has none); over TCP,
    /// the token's name.
    pub name: String,
    pub via: Via,
    /// Where from: over the socket `uid N`, over TCP the peer's address (`10.0.0.5:41432`).
    #[serde(default)]
    pub from: Option<String>,
}

/// The way a request reached the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The control socket in the data dir (the CLI): the peer's uid from SO_PEERCRED.
    Socket,
    /// The TCP API (`daemon.listen`), with a bearer token.
    Tcp,
    /// The admin pages (`/admin` on `daemon.listen`): a user signed in with a password.
    Session,
}

impl Via {
    pub fn as_str(&self) -> &'static str {
        match self {
            Via::Socket => "socket",
            Via::Tcp => "tcp",
            Via::Session => "session",
        }
    }
}

impl std::fmt::Display for Principal {
    /// `alice (socket, uid 1000)`, `deploy (tcp, 10.0.0.5:41432)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}", self.name, self.via.as_str())?;
        if let Some(from) = &self.from {
            write!(f, ", {from}")?;
        }
        f.write_str(")")
    }
}

/// How a process ended: exactly one of `code` and `signal` is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExitStatus {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

impl ExitStatus {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Neither code nor signal: another process reaped it (a run adopted after the daemon
    /// was killed is no child of this one), so how it ended is not known.
    pub fn is_unknown(&self) -> bool {
        self.code.is_none() && self.signal.is_none()
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            (None, None) => f.write_str("unknown exit"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A process was spawned. `start_ticks` is its start time from /proc (clock ticks after
    /// boot), stored so that a restarted daemon never mistakes a reused pid for its child.
    Started {
        pid: u32,
        start_ticks: u64,
        by: Actor,
    },
    /// The process says it is ready (`how`: `notify`, `fd` or `log`), or, with `ready =
    /// "probe"`, its probes passed for the first time in this run (`how`: `probe`). Dependents
    /// waiting for it may start.
    Ready { how: String },
    /// The process was not ready within `ready_timeout`: a failed start, restarted (or not)
    /// by the restart policy.
    ReadyTimedOut { timeout_ms: u64 },
    /// No `WATCHDOG=1` came within `watchdog` (or the service sent `WATCHDOG=trigger`): it is
    /// hung, and heals like a service its probes call down.
    WatchdogMissed { timeout_ms: u64 },
    /// The service would start, but waits for its dependencies (`reason` says for what).
    Waiting { reason: String },
    /// A dependency came back after going down: the service restarts
    /// (`on_dependency_down = "restart"`).
    DependencyRestart { reason: String },
    /// The service's main process ended.
    Exited {
        pid: u32,
        status: ExitStatus,
        uptime_ms: u64,
    },
    /// The service exited and its restart policy does not start it again (`never`, or
    /// `on-failure` after a clean exit).
    NotRestarted { policy: String },
    /// The restart policy will start the service again after `delay_ms`.
    RestartScheduled { attempt: u32, delay_ms: u64 },
    /// The service could not be started (program missing, bad cwd, unknown user).
    SpawnFailed { error: String },
    /// Crash loop: more than `max_restarts` restarts within `window_ms`. Nothing restarts the
    /// service until an operator acts.
    Failed { restarts: u32, window_ms: u64 },
    /// A stop began: the stop signal went to the whole process group.
    Stopping { by: Actor },
    /// The service's process group is gone and it stays down until started.
    Stopped { by: Actor },
    /// An operator asked for a restart.
    RestartRequested { by: Actor },
    /// An operator sent `signal` (its name, `SIGHUP`) to the running process `pid`, or with
    /// `group` to its whole tree (process group and cgroup): `upkeep signal`, or `upkeep
    /// reload NAME` (`reload`: the service's `reload_signal`). Nothing restarts: a recorded
    /// intervention that leaves the run as it is.
    Signalled {
        signal: String,
        pid: u32,
        group: bool,
        reload: bool,
        by: Actor,
    },
    /// Survivors of the group were still running after the main process died; they were
    /// stopped before the restart.
    GroupCleaned { signalled: bool, killed: bool },
    /// Lines the service wrote that the log capture had to drop rather than stall it.
    LogLinesDropped { stream: String, lines: u64 },
    /// A process left by an earlier daemon (found by pid and start time) was stopped so that
    /// the service never runs twice.
    StaleStopped { pid: u32 },
    /// The daemon applied a config revision: at start-up (`by` upkeep) or on a reload or an
    /// add (`by` the operator who asked).
    ConfigApplied {
        revision: i64,
        added: u32,
        removed: u32,
        changed: u32,
        #[serde(default)]
        by: Actor,
    },
    /// The service was removed from the config.
    Removed,
    /// A probe's verdict changed (after `failures` or `successes` in a row).
    ProbeChanged {
        probe: String,
        health: Health,
        reason: String,
    },
    /// The service's state changed. Written by `state`; the availability figures are computed
    /// from these.
    StatusChanged { from: State, to: State },
    /// Probes say down: `state` asked the supervisor to restart it (an automatic heal).
    HealRequested { reason: String },
    /// An outage lasted longer than `incident_after`. `since` is when the outage began.
    /// `drill`: the outage is a drill's (no one is to be paged for it).
    IncidentOpened {
        since: Timestamp,
        reason: String,
        #[serde(default)]
        drill: bool,
    },
    /// The service is back. `duration_ms` runs from the outage's start.
    IncidentResolved { since: Timestamp, duration_ms: u64 },
    /// A drill is about to inject `fault`: until it completes, an outage is the drill's.
    /// `by`: who asked for it (upkeep's own for events stored before issue 15).
    DrillStarted {
        fault: String,
        #[serde(default)]
        by: Actor,
    },
    /// A drill armed for `fault` gave up (the fault could not be injected, or the service did
    /// not recover in time): an outage from now on is no longer the drill's.
    DrillAborted { fault: String, reason: String },
    /// A drill injected `fault` at `injected_at`; detection and recovery times from then.
    /// The report counts the drill's time apart, like maintenance.
    DrillCompleted {
        fault: String,
        injected_at: Timestamp,
        detected_ms: u64,
        recovered_ms: u64,
    },
    /// Down again soon after a recovery: the same incident goes on (flapping is one
    /// incident, not fifty).
    IncidentReopened { since: Timestamp, reason: String },
    /// A person acted on incident `incident` (`note`: opened it by hand, wrote an update,
    /// resolved it, set its priority, wrote its post-mortem). What they wrote is kept with
    /// the incident (upkeep-store); this event is the audit trail and wakes its readers.
    IncidentNoted {
        incident: i64,
        note: crate::incident::Note,
        by: Actor,
        /// When the incident's outage began (its identity with the service): how the status
        /// machine knows a hand resolution closes the incident it holds open. None in events
        /// stored before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        since: Option<Timestamp>,
    },
    /// Maintenance began: until `until` (or until ended), the service is in maintenance.
    /// Planned work, not an intervention.
    MaintenanceStarted {
        reason: String,
        until: Option<Timestamp>,
        by: Actor,
        /// The maintenance window that put it there (None: by hand, `upkeep maintenance`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        window: Option<i64>,
    },
    /// Maintenance ended: by an operator, or by upkeep at its `until`.
    MaintenanceEnded { by: Actor },
    /// A maintenance window (`window`, titled `title`) took a step of its life (announced,
    /// reminded, started, ...) for its occurrence starting at `occurrence`: each one a notice
    /// to the people it affects. Daemon-wide (a window may name several services).
    WindowStep {
        window: i64,
        title: String,
        occurrence: Timestamp,
        step: crate::window::Step,
        #[serde(default)]
        by: Actor,
    },
    /// A job's run ended (or was stopped, or was cut by the daemon's death: `interrupted`): when it began, the scheduled time it ran for
    /// (`due`; None when an operator ran it), who started it, how it ended, how long it took,
    /// and the last lines it wrote (stderr's marked `stderr| `; `output_dropped` earlier
    /// lines were not kept). One per run: the job's history.
    JobRan {
        started: Timestamp,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        due: Option<Timestamp>,
        by: Actor,
        status: ExitStatus,
        duration_ms: u64,
        output: Vec<String>,
        #[serde(default)]
        output_dropped: u64,
        /// The run was cut short by the daemon's death (a kill -9, a crash): the next daemon
        /// stopped what was left of it and records it so. Its `status` is unknown and its
        /// `output` empty (kept only in the service's log files); not counted as a failure:
        /// the job did not fail, its supervisor died.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        interrupted: bool,
    },
    /// A job fell due (`due`) while its last run, started at `running_since`, was still going:
    /// this run is skipped (a job never runs twice at once).
    JobSkipped {
        due: Timestamp,
        running_since: Option<Timestamp>,
    },
    /// A job is on its schedule for the first time (new in the config, no history yet):
    /// from now on a time its schedule gives while no daemon runs is made up (`catch_up`).
    JobScheduled { schedule: String },
    /// A planned restart: `restart_at`'s time came, or a watched file changed (`reason` says
    /// which). Neither a crash nor an intervention. `counted`: it counts as a restart (a
    /// changed file's: in `ls` and in the crash-loop window, issue 18); `restart_at`'s begins
    /// the count again.
    RestartPlanned {
        reason: String,
        #[serde(default)]
        counted: bool,
    },
    /// A `watch` path cannot be watched (missing, unreadable, out of inotify watches): a
    /// change there restarts nothing until the next start or reload. The other paths are
    /// still watched.
    WatchFailed { path: String, error: String },
    /// The daemon re-executed itself (`upkeep upgrade`) and the new one took this running
    /// process over from the old one: same pid, same run. Not a start and not a restart:
    /// `since` and `restarts` carry on from the old daemon's view, and `ready` says whether
    /// the run had said it was ready.
    Adopted {
        pid: u32,
        start_ticks: u64,
        since: Timestamp,
        restarts: u32,
        ready: bool,
    },
    /// The daemon re-executed itself in place (`upkeep upgrade`), from version `from` to
    /// `to`, adopting `adopted` running services; `error` says why it stayed on `from` (the
    /// new binary could not be executed). Daemon-wide.
    DaemonUpgraded {
        from: String,
        to: String,
        adopted: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Stands in for an event whose fate is unknown: a daemon numbered it and was killed
    /// while storing it, and the next one started with the store away, so could not ask.
    /// Stored with that number only if the store did not get the event (the event's row, if
    /// it is there, wins), so that numbers have neither a gap nor a duplicate.
    Unrecorded,
}

impl EventKind {
    /// The snake_case tag, as stored in the `kind` column.
    pub fn tag(&self) -> &'static str {
        match self {
            EventKind::Started { .. } => "started",
            EventKind::Exited { .. } => "exited",
            EventKind::Ready { .. } => "ready",
            EventKind::ReadyTimedOut { .. } => "ready_timed_out",
            EventKind::WatchdogMissed { .. } => "watchdog_missed",
            EventKind::Waiting { .. } => "waiting",
            EventKind::DependencyRestart { .. } => "dependency_restart",
            EventKind::RestartScheduled { .. } => "restart_scheduled",
            EventKind::NotRestarted { .. } => "not_restarted",
            EventKind::SpawnFailed { .. } => "spawn_failed",
            EventKind::Failed { .. } => "failed",
            EventKind::Stopping { .. } => "stopping",
            EventKind::Stopped { .. } => "stopped",
            EventKind::RestartRequested { .. } => "restart_requested",
            EventKind::Signalled { .. } => "signalled",
            EventKind::GroupCleaned { .. } => "group_cleaned",
            EventKind::LogLinesDropped { .. } => "log_lines_dropped",
            EventKind::StaleStopped { .. } => "stale_stopped",
            EventKind::ConfigApplied { .. } => "config_applied",
            EventKind::Removed => "removed",
            EventKind::ProbeChanged { .. } => "probe_changed",
            EventKind::StatusChanged { .. } => "status_changed",
            EventKind::HealRequested { .. } => "heal_requested",
            EventKind::IncidentOpened { .. } => "incident_opened",
            EventKind::IncidentResolved { .. } => "incident_resolved",
            EventKind::IncidentReopened { .. } => "incident_reopened",
            EventKind::IncidentNoted { .. } => "incident_noted",
            EventKind::DrillStarted { .. } => "drill_started",
            EventKind::DrillAborted { .. } => "drill_aborted",
            EventKind::DrillCompleted { .. } => "drill_completed",
            EventKind::MaintenanceStarted { .. } => "maintenance_started",
            EventKind::MaintenanceEnded { .. } => "maintenance_ended",
            EventKind::WindowStep { .. } => "window_step",
            EventKind::JobRan { .. } => "job_ran",
            EventKind::JobSkipped { .. } => "job_skipped",
            EventKind::JobScheduled { .. } => "job_scheduled",
            EventKind::RestartPlanned { .. } => "restart_planned",
            EventKind::WatchFailed { .. } => "watch_failed",
            EventKind::Adopted { .. } => "adopted",
            EventKind::DaemonUpgraded { .. } => "daemon_upgraded",
            EventKind::Unrecorded => "unrecorded",
        }
    }

    /// True for the one event that records an operator action (the availability report
    /// counts these apart from automatic heals): a start, a stop, a restart request, or a
    /// signal (a reload). The
    /// steps an action causes (stopping, the restart's new start) are not counted again.
    pub fn is_intervention(&self) -> bool {
        matches!(
            self,
            EventKind::Started { by, .. }
                | EventKind::Stopped { by }
                | EventKind::RestartRequested { by }
                | EventKind::Signalled { by, .. }
                if by.is_operator()
        )
    }
}

/// A fact with its time. `service` is `None` for daemon-wide facts (config applied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    pub at: Timestamp,
    pub service: Option<ServiceName>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// An event as the store committed it, with its node's sequence number: what observers of
/// committed events get (live views by broadcast, durable consumers from their cursor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Committed {
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
}

impl Event {
    /// An event stamped with the system's time. The daemon's stages stamp theirs with their
    /// [`crate::Clock`] instead ([`crate::Clock::event`]), so that tests can move time.
    pub fn now(service: &ServiceName, kind: EventKind) -> Self {
        Self {
            at: Timestamp::now(),
            service: Some(service.clone()),
            kind,
        }
    }

    /// A daemon-wide event stamped with the system's time (see [`Event::now`]).
    pub fn daemon(kind: EventKind) -> Self {
        Self {
            at: Timestamp::now(),
            service: None,
            kind,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_matches_serde_tag() {
        let kinds = [
            EventKind::Started {
                pid: 1,
                start_ticks: 2,
                by: Actor::Upkeep,
            },
            EventKind::Exited {
                pid: 1,
                status: ExitStatus {
                    code: Some(1),
                    signal: None,
                },
                uptime_ms: 3,
            },
            EventKind::Failed {
                restarts: 3,
                window_ms: 10,
            },
            EventKind::Removed,
            EventKind::Unrecorded,
            EventKind::Ready { how: "fd".into() },
            EventKind::ReadyTimedOut { timeout_ms: 1 },
            EventKind::WatchdogMissed { timeout_ms: 1 },
            EventKind::Waiting {
                reason: "db".into(),
            },
            EventKind::DependencyRestart {
                reason: "db".into(),
            },
            EventKind::Signalled {
                signal: "SIGHUP".into(),
                pid: 7,
                group: false,
                reload: true,
                by: alice(),
            },
        ];
        for k in kinds {
            let v = serde_json::to_value(&k).unwrap();
            assert_eq!(v["kind"], k.tag());
        }
    }

    fn alice() -> Actor {
        Actor::Principal(Principal {
            name: "alice".into(),
            via: Via::Socket,
            from: Some("uid 1000".into()),
        })
    }

    #[test]
    fn old_stored_events_still_read() {
        // As stored before issue 15: the operator was not named.
        let old: Event = serde_json::from_str(
            r#"{"at":"2024-05-01T10:00:00Z","service":"web","kind":"stopped","by":"operator"}"#,
        )
        .unwrap();
        assert_eq!(
            old.kind,
            EventKind::Stopped {
                by: Actor::Operator
            }
        );
        assert!(old.kind.is_intervention());
        let old: EventKind =
            serde_json::from_str(r#"{"kind":"started","pid":3,"start_ticks":4,"by":"upkeep"}"#)
                .unwrap();
        assert!(!old.is_intervention());
        // Fields added since read as upkeep's own.
        let old: EventKind = serde_json::from_str(
            r#"{"kind":"config_applied","revision":2,"added":1,"removed":0,"changed":0}"#,
        )
        .unwrap();
        assert!(matches!(
            old,
            EventKind::ConfigApplied {
                by: Actor::Upkeep,
                ..
            }
        ));
        let old: EventKind =
            serde_json::from_str(r#"{"kind":"drill_started","fault":"crash"}"#).unwrap();
        assert!(matches!(
            old,
            EventKind::DrillStarted {
                by: Actor::Upkeep,
                ..
            }
        ));
    }

    #[test]
    fn a_named_operator_round_trips() {
        let kind = EventKind::RestartRequested { by: alice() };
        let json = serde_json::to_value(&kind).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "kind": "restart_requested",
                "by": { "principal": { "name": "alice", "via": "socket", "from": "uid 1000" } }
            })
        );
        let back: EventKind = serde_json::from_value(json).unwrap();
        assert_eq!(back, kind);
        assert!(back.is_intervention());
        assert_eq!(
            alice().principal().unwrap().to_string(),
            "alice (socket, uid 1000)"
        );
    }

    #[test]
    fn only_operator_actions_are_interventions() {
        assert!(EventKind::Stopped { by: alice() }.is_intervention());
        assert!(
            EventKind::Stopped {
                by: Actor::Operator
            }
            .is_intervention()
        );
        assert!(!EventKind::Stopped { by: Actor::Upkeep }.is_intervention());
        // The steps of an action are not counted again.
        assert!(
            !EventKind::Stopping {
                by: Actor::Operator
            }
            .is_intervention()
        );
        assert!(
            !EventKind::RestartScheduled {
                attempt: 1,
                delay_ms: 0
            }
            .is_intervention()
        );
    }
}
