//! [`ServiceStatus`]: the current picture of one service, as `upkeep ls` shows it.
//!
//! `state` is the only writer (it folds events into statuses); web and the CLI read it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{ExitStatus, ServiceName};

/// Where a service is in its life. Issue 10 adds probe-driven states (degraded, down,
/// recovering) and maintenance; they slot in here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Spawned, not yet seen running for long.
    Starting,
    /// Running.
    Up,
    /// Exited; the restart policy will start it again after a delay.
    Backoff,
    /// A stop is in progress (stop signal sent, waiting for the group).
    Stopping,
    /// Not running, and not meant to run until started.
    Stopped,
    /// Exited and the policy does not restart it (restart = never / on-failure after success).
    Exited,
    /// Crash loop limit reached, or the program cannot be spawned. Needs an operator.
    Failed,
}

impl State {
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Up => "up",
            State::Backoff => "backoff",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
            State::Exited => "exited",
            State::Failed => "failed",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the operator wants: stored, so a restarted daemon brings the service back to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
        }
    }
}
