//! [`ServiceStatus`]: the current picture of one service, as `upkeep ls` shows it.
//!
//! `state` is the only writer (it folds events into statuses); web and the CLI read it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{ExitStatus, ServiceName};

/// Where a service is in its life: starting → up ↔ degraded → down → recovering → up, plus
/// stopping, stopped, exited and failed. Maintenance comes with the notification issue.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Running (or, for an external service, watched), probes not yet passing.
    Starting,
    /// Running and every probe passes (or it has none).
    Up,
    /// Serving, but slower than a probe's `degraded_after`.
    Degraded,
    /// Not serving: a probe says down, or the process exited and a restart is pending.
    Down,
    /// Restarted after being down; probes not yet passing again.
    Recovering,
    /// A stop is in progress (stop signal sent, waiting for the group).
    Stopping,
    /// Not running, and not meant to run until started.
    Stopped,
    /// Exited and the policy does not restart it (restart = never / on-failure after success).
    Exited,
    /// Crash loop limit reached, or the program cannot be spawned. Needs an operator.
    Failed,
    /// In a planned maintenance window: down on purpose, counted apart from availability.
    Maintenance,
    /// No daemon watched it: from the last sign of a daemon that was killed to the start of
    /// the next one. Counted apart from availability. Only ever in the history, never live.
    Unknown,
}

impl State {
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Up => "up",
            State::Degraded => "degraded",
            State::Down => "down",
            State::Recovering => "recovering",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Exited => "exited",
            State::Failed => "failed",
            State::Maintenance => "maintenance",
            State::Unknown => "unknown",
        }
    }
}

impl State {
    /// Counts as available in the availability figures.
    pub fn is_available(&self) -> bool {
        matches!(self, State::Up | State::Degraded)
    }

    /// Counts as an outage: down, failed, or exited when it should run.
    pub fn is_outage(&self) -> bool {
        matches!(self, State::Down | State::Failed | State::Recovering)
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the operator wants: stored, so a restarted daemon brings the service back to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Desired {
    Running,
    Stopped,
}

impl Desired {
    pub fn as_str(&self) -> &'static str {
        match self {
            Desired::Running => "running",
            Desired::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(Desired::Running),
            "stopped" => Some(Desired::Stopped),
            _ => None,
        }
    }
}

/// What one probe says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No verdict yet (just started, or within the grace period).
    Unknown,
    Up,
    Degraded,
    Down,
}

/// What one probe says: its verdict (from events, so it is also what history holds) and its
/// most recent check (live, never stored: a thousand checks a second would flood the store).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProbeStatus {
    pub health: Health,
    /// Why the verdict is what it is, in words: "HTTP 500", "connection refused",
    /// "412 MiB > 400 MiB". A failure that changes its nature while down shows in `last`.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<LastCheck>,
}

impl ProbeStatus {
    /// No verdict yet.
    pub fn unknown() -> Self {
        Self {
            health: Health::Unknown,
            reason: String::new(),
            last: None,
        }
    }
}

/// The most recent check of a probe, whatever it did to the verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LastCheck {
    pub at: Timestamp,
    pub healthy: bool,
    /// Healthy but slower than `degraded_after`.
    #[serde(default)]
    pub degraded: bool,
    pub reason: String,
    pub latency_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceStatus {
    pub name: ServiceName,
    pub state: State,
    pub pid: Option<u32>,
    /// When the current process started (None when not running).
    pub since: Option<Timestamp>,
    /// Restarts by policy since the daemon started or an operator last started it.
    pub restarts: u32,
    pub last_exit: Option<ExitStatus>,
    /// Lines dropped by the log capture since the daemon started.
    pub dropped_lines: u64,
    /// Each probe's verdict, by probe name.
    #[serde(default)]
    pub probes: std::collections::BTreeMap<String, ProbeStatus>,
    /// When the open incident began (None when there is none).
    #[serde(default)]
    pub incident_since: Option<Timestamp>,
    /// The maintenance it is in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Maintenance>,
    /// The running process counts as ready (`ready = ...`; by default once spawned).
    /// Dependents with the condition `ready` wait for it.
    #[serde(default)]
    pub ready: bool,
    /// What it waits for before it can start (its dependencies), while it waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
}

/// Maintenance: down or changing on purpose. No heals, no incidents, and the time is counted
/// apart from availability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Maintenance {
    pub since: Timestamp,
    /// When it ends by itself (None: when an operator ends it).
    pub until: Option<Timestamp>,
    pub reason: String,
    /// The maintenance window it belongs to (None: by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
}

/// What a daemon left unfinished for a service, which the next one takes up (issue 14, E21):
/// an incident still open (resolved once the service is back), maintenance in progress
/// (held until its end), a person's resolution of an outage still going on (held until the
/// service has been up), and a run that ended for good (the service stays exited, or failed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unfinished {
    /// The open incident's outage start, and whether a drill caused it.
    pub incident: Option<(Timestamp, bool)>,
    pub maintenance: Option<Maintenance>,
    /// The outage start of the service's last incident, which a person resolved while the
    /// outage went on, and which the service has not been up since: no incident of the
    /// machine's for that outage (break-it, session 11: a daemon restart opened a new one).
    pub resolved_by_hand: Option<Timestamp>,
    /// Its last run ended and its restart policy did not start it again (`restart =
    /// "never"`, or `on-failure` after a clean exit): it stays exited as `upkeep upgrade`
    /// keeps it (break-it, session 11: a killed daemon's successor ran it again).
    pub exited: bool,
    /// With `exited` or `failed`: how that run ended (None if it never ran: its spawn failed).
    pub last_exit: Option<ExitStatus>,
    /// Its crash loop was given up on after this many restarts, and nothing started it
    /// since: it stays failed, as under systemd, until an operator starts it or its config
    /// changes (issue 18: the next daemon ran it again, a kill -9 or a restart of the daemon
    /// at a time).
    pub failed: Option<u32>,
}

impl ServiceStatus {
    pub fn new(name: ServiceName) -> Self {
        Self {
            name,
            state: State::Stopped,
            pid: None,
            since: None,
            restarts: 0,
            last_exit: None,
            dropped_lines: 0,
            probes: Default::default(),
            incident_since: None,
            maintenance: None,
            ready: false,
            waiting: None,
        }
    }
}
