//! The words of start order and readiness: what a dependency waits for ([`Condition`]), what a
//! dependent does when one goes down ([`OnDependencyDown`]), and what the dependency gate
//! tells each supervisor ([`Permit`]).
//!
//! Config writes the first two (`depends_on`, `on_dependency_down`); the gate in the daemon
//! judges them against the status snapshot and hands each managed service a [`Permit`] on a
//! `watch` channel; its supervisor obeys it without knowing the graph.

use serde::{Deserialize, Serialize};

/// What a dependency must have reached before its dependent may start. Each implies the ones
/// before it: healthy services are ready, ready ones are started.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Its process was spawned (an external service: always, it is watched).
    Started,
    /// It counts as ready (`ready = ...`; by default once spawned; an external service once
    /// its probes pass). The default.
    #[default]
    Ready,
    /// Ready, and every probe passes.
    Healthy,
}

impl Condition {
    pub fn as_str(&self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Ready => "ready",
            Condition::Healthy => "healthy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "started" => Some(Condition::Started),
            "ready" => Some(Condition::Ready),
            "healthy" => Some(Condition::Healthy),
            _ => None,
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a running service does when a dependency stops satisfying its condition (systemd's
/// `BindsTo=` and `PartOf=` come closest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnDependencyDown {
    /// Keep running (only its next start waits). The default.
    #[default]
    Ignore,
    /// Stop at once, and start again once every dependency is back.
    Stop,
    /// Keep running while the dependency is away, restart once it is back.
    Restart,
}

impl OnDependencyDown {
    pub fn as_str(&self) -> &'static str {
        match self {
            OnDependencyDown::Ignore => "ignore",
            OnDependencyDown::Stop => "stop",
            OnDependencyDown::Restart => "restart",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ignore" => Some(OnDependencyDown::Ignore),
            "stop" => Some(OnDependencyDown::Stop),
            "restart" => Some(OnDependencyDown::Restart),
            _ => None,
        }
    }
}

/// What a service's dependencies allow now, as the dependency gate judges it. Written by the
/// gate (one `watch` per managed service), read by that service's supervisor, which spawns
/// only while `wait` is None. A service without dependencies always has the default: go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Permit {
    /// Why it may not start now, in words (what it waits for); None: it may.
    pub wait: Option<String>,
    /// While it waits, a running process stops too (`on_dependency_down = "stop"`).
    pub stop: bool,
    /// Bumped each time a running process must restart (`on_dependency_down = "restart"`, or
    /// `"stop"` when a dependency was back before it could be stopped); the supervisor
    /// restarts when it sees a number it has not acted on.
    pub restarts: u64,
    /// Why the last restart was asked for.
    pub restart_reason: String,
}

/// One edge as the API shows it (`upkeep ls --tree`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Dependency {
    pub service: crate::ServiceName,
    pub condition: Condition,
}
