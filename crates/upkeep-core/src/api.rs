//! Bodies of the JSON API. The daemon serves them over its Unix socket (and, later, TCP); the
//! CLI and the tests read them. One definition, so the two ends cannot drift apart.

use serde::{Deserialize, Serialize};

use crate::{Desired, Principal, ServiceName, ServiceStatus, State};

/// The version of the API in every route's path: `/api/v1/...`.
pub const PREFIX: &str = "/api/v1";

/// What a bearer token allows on the TCP API. Write implies read.
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
pub enum Scope {
    /// The GET routes: services, events, incidents, report, logs, metrics.
    Read,
    /// Read, and the actions: start, stop, restart, reload, add, maintenance, drills, shutdown.
    Write,
}

impl Scope {
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
        }
    }

    /// True if a holder of `self` may do what needs `need`.
    pub fn allows(self, need: Scope) -> bool {
        self >= need
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            other => Err(format!("unknown scope `{other}` (use read or write)")),
        }
    }
}

/// `GET /api/v1/health`: public, so it says nothing but that the daemon answers.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicHealth {
    pub ok: bool,
    pub version: String,
}

/// One row of `GET /api/v1/status`, the public status list: what a status page may show, and
/// nothing that reveals a command, a path, the environment or a log.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicStatus {
    pub name: ServiceName,
    pub state: State,
    /// When its current process started (none when it is not running).
    pub since: Option<jiff::Timestamp>,
}

/// `GET /api/v1/daemon` (read scope): the daemon's process and files.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = DaemonHealth)]
pub struct Health {
    pub ok: bool,
    pub version: String,
    pub pid: u32,
    pub config_path: String,
    pub data_dir: String,
    /// How the store is doing; absent from daemons that did not say.
    #[serde(default)]
    pub store: StoreHealth,
    /// When this image of the daemon started (an `upkeep upgrade` starts a new one with the
    /// same pid); absent from daemons that did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<jiff::Timestamp>,
    /// The last `upkeep upgrade` that ended in this image, if it did not take: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_error: Option<String>,
}

/// `POST /api/v1/upgrade`: re-execute the daemon from `binary` (default: the path it was
/// started from), keeping every service running.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpgradeRequest {
    #[serde(default)]
    pub binary: Option<String>,
}

/// The answer, given before the daemon re-executes itself: the versions it goes from and to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UpgradeStarted {
    pub from: String,
    pub to: String,
    pub binary: String,
    pub pid: u32,
    /// When the image that answered started: the upgrade is done once the daemon says
    /// another (absent from daemons that did not say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<jiff::Timestamp>,
}

/// Whether the store takes events, as the event writer sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoreHealth {
    /// `sqlite` or `postgres`.
    pub engine: String,
    pub reachable: bool,
    /// Since when it has been unreachable.
    pub since: Option<jiff::Timestamp>,
    /// Events kept in the journal file until the store is back.
    pub journaled: u64,
    /// The last error, with its causes.
    pub error: Option<String>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        Self {
            engine: String::new(),
            reachable: true,
            since: None,
            journaled: 0,
            error: None,
        }
    }
}

/// One row of `GET /api/v1/services`: the status plus live resource figures of the whole group.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceInfo {
    #[serde(flatten)]
    pub status: ServiceStatus,
    pub desired: Desired,
    /// CPU use of the whole process group over a short sample, in % of one core.
    pub cpu_percent: Option<f64>,
    /// Resident memory of the whole process group, in bytes.
    pub memory_bytes: Option<u64>,
    /// Number of processes in the group.
    pub processes: Option<u32>,
    /// What it depends on (`depends_on`), for `upkeep ls --tree`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<crate::Dependency>,
    /// The last `STATUS=` line its process sent over `NOTIFY_SOCKET` in this run (live, never
    /// stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_status: Option<String>,
}

/// A stored event as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoredEvent {
    /// Its node's sequence number: 1, 2, 3... in the order stored.
    pub id: i64,
    pub at: jiff::Timestamp,
    pub service: Option<ServiceName>,
    pub kind: String,
    pub intervention: bool,
    /// The event's fields (pid, exit status, delay, ...).
    pub detail: serde_json::Value,
}

impl From<&crate::Committed> for StoredEvent {
    /// A committed event as the API shows stored ones: its sequence number as its id.
    fn from(c: &crate::Committed) -> Self {
        let mut detail = serde_json::to_value(&c.event.kind).unwrap_or_default();
        if let Some(o) = detail.as_object_mut() {
            o.remove("kind");
        }
        StoredEvent {
            id: c.seq as i64,
            at: c.event.at,
            service: c.event.service.clone(),
            kind: c.event.kind.tag().into(),
            intervention: c.event.kind.is_intervention(),
            detail,
        }
    }
}

/// An incident: a period a service was down, failed or recovering.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Incident {
    pub id: i64,
    pub service: ServiceName,
    /// When the outage began.
    pub started: jiff::Timestamp,
    pub resolved: Option<jiff::Timestamp>,
    /// Until resolution, or until now while open.
    pub duration_ms: u64,
    pub reason: String,
    /// The outage was caused by a drill.
    #[serde(default)]
    pub drill: bool,
    /// The title a person gave it (one opened by hand has one; others may get one), as the
    /// lists read it; an incident's own answer has it in its notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// `GET /api/v1/incidents/{id}`: an incident and its timeline, the service's events from the
/// outage's start to its resolution (or now), oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentDetail {
    pub incident: Incident,
    pub timeline: Vec<StoredEvent>,
    /// What people wrote: title, priority, updates, post-mortem (issue 16).
    #[serde(default)]
    pub notes: crate::incident::IncidentNotes,
}

/// `GET /api/v1/services/{name}`
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServiceDetail {
    pub info: ServiceInfo,
    pub command: Vec<String>,
    pub cwd: Option<String>,
    pub restart: String,
    pub stdout_log: String,
    pub stderr_log: String,
    /// How it says it is ready, when it says so itself (`ready` and `ready_timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Readiness>,
    /// Most recent first.
    pub events: Vec<StoredEvent>,
    /// Most recent first.
    #[serde(default)]
    pub incidents: Vec<Incident>,
    /// Why `events` and `incidents` are empty when the store could not give them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_unavailable: Option<String>,
}

/// How a service says it is ready (see [`ServiceDetail`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `notify`, `fd`, `log` or `probe`.
    pub kind: String,
    /// The fd's number, or the log pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// A run not ready this many milliseconds after its start is a failed start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

/// `POST /api/v1/services/{name|all}/{start|stop|restart}`
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActionResult {
    pub action: String,
    pub services: Vec<ServiceName>,
    /// Who asked (recorded in the events too). `None` only from a daemon older than issue 15.
    #[serde(default)]
    pub by: Option<Principal>,
    /// Jobs a start left alone because their run was still going (a job never overlaps),
    /// with when that run began: they are not in `services`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub still_running: Vec<StillRunning>,
    /// Services of `services` that wait for a dependency, and what for (a start does not
    /// start what they depend on): they start once it is ready.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting: Vec<Waiting>,
}

/// A service a start left waiting for its dependencies (see [`ActionResult`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Waiting {
    pub name: ServiceName,
    /// `waiting for db to be ready (it is stopped)`.
    pub reason: String,
    /// Dependencies an operator stopped: nothing starts them but a start of theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stopped: Vec<ServiceName>,
}

/// A job whose run was still going when a start was asked for (see [`ActionResult`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StillRunning {
    pub name: ServiceName,
    pub since: Option<jiff::Timestamp>,
}

/// `POST /api/v1/services/{name}/signal`: a signal by name (`HUP`, `SIGHUP`) or number, to
/// the main process, or with `group` to its whole tree (process group and cgroup).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    pub signal: String,
    #[serde(default)]
    pub group: bool,
}

/// The answer of `POST /api/v1/services/{name}/signal` and `.../reload` (which sends the
/// service's `reload_signal` to its main process).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SignalResult {
    pub service: ServiceName,
    /// Its name, `SIGHUP`.
    pub signal: String,
    /// The main process it went to (with `group`, the tree it leads).
    pub pid: u32,
    pub group: bool,
    pub by: Principal,
}

/// `POST /api/v1/reload`
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReloadResult {
    pub revision: i64,
    pub added: Vec<ServiceName>,
    pub removed: Vec<ServiceName>,
    pub changed: Vec<ServiceName>,
    pub unchanged: Vec<ServiceName>,
    /// Who asked.
    #[serde(default)]
    pub by: Option<Principal>,
    /// Keys changed in the file that the running daemon keeps as it started with until it
    /// restarts (`daemon.listen`, `notify`): none of them is applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_needed: Vec<String>,
    /// What was applied but should be known (a certificate out of, or near the end of, its
    /// dates), as `upkeep check` says it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `POST /api/v1/services`: add a service to the config file and start it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddService {
    pub name: ServiceName,
    pub command: Vec<String>,
    pub cwd: Option<String>,
    pub restart: Option<String>,
}

/// Every error answer: a message, and a hint when the user can fix it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A fault a drill injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL of the main process.
    Crash,
    /// SIGSTOP of the whole group: alive, not answering.
    Hang,
    /// SIGKILL of the process that holds the service's listening port (node under npm, say),
    /// leaving the rest of the tree up.
    ClosePort,
}

impl Fault {
    pub fn as_str(&self) -> &'static str {
        match self {
            Fault::Crash => "crash",
            Fault::Hang => "hang",
            Fault::ClosePort => "close-port",
        }
    }
}

/// `POST /api/v1/drills`
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DrillRequest {
    pub service: ServiceName,
    pub fault: Fault,
}

/// What one drill measured, from the stored events' times.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DrillResult {
    pub service: ServiceName,
    pub fault: Fault,
    pub injected_at: jiff::Timestamp,
    /// Fault to the first sign of it (an exit, a probe down, a state change).
    pub detected_ms: u64,
    /// Fault to up again with probes green: the measured time to recovery.
    pub recovered_ms: u64,
    /// What noticed: "exited", "probe http: HTTP 500", ...
    pub detected_by: String,
    /// Who asked for the drill.
    #[serde(default)]
    pub by: Option<Principal>,
}

/// `POST /api/v1/services/{name}/maintenance` (begin, or change) and `DELETE` (end).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceRequest {
    #[serde(default)]
    pub reason: String,
    /// When it ends by itself; None: when ended (or after `lasting`).
    #[serde(default)]
    pub until: Option<jiff::Timestamp>,
    /// How long it lasts (`2h`, `7d`), from the daemon's now: the daemon's clock decides, not
    /// the client's (which may be skewed, or not the test clock). Not with `until`.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub lasting: Option<String>,
}

/// `POST /api/v1/test/clock`, served only by a daemon with `daemon.test_clock` (tests).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestClockRequest {
    /// How far to move the clock forward, as in the config: `90s`, `7d`.
    pub advance: String,
}

/// The answer to `POST /api/v1/test/clock`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TestClockState {
    /// The daemon's time after the move.
    pub now: jiff::Timestamp,
    /// Whether everything the move made due had woken before the answer (false: something was
    /// busy for longer than the daemon waits, and may act after the answer).
    pub settled: bool,
}

/// `GET /api/v1/notify`: one outbox row, a notice to one recipient over one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OutboxNotice {
    pub id: i64,
    pub channel: String,
    /// An address or chat id; empty for a group bot.
    pub recipient: String,
    /// The notice's kind (`announced`, `incident_resolved`, `test`).
    pub kind: String,
    /// What it is about (`window:3:<occurrence>`, `incident:web:<since>`).
    pub subject: String,
    pub title: String,
    /// pending, sending, sent or failed.
    pub state: String,
    pub attempts: u32,
    /// Leases taken from a dispatcher that died or hung: each a possible resend.
    pub takeovers: u32,
    /// The idempotency key every attempt carries (the mail's Message-ID).
    pub key: String,
    pub due: jiff::Timestamp,
    /// The next attempt, while pending.
    pub next: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The receiver's id for it, once sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    pub created: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<jiff::Timestamp>,
    /// In the daily digest: while pending and never tried, it waits for the digest at
    /// `next`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub digest: bool,
}

/// `POST /api/v1/notify/test`: a test notice through one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyTestRequest {
    pub channel: String,
    /// The recipient (an address, a chat id); default: the channel's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_implies_read() {
        assert!(Scope::Write.allows(Scope::Read));
        assert!(Scope::Write.allows(Scope::Write));
        assert!(Scope::Read.allows(Scope::Read));
        assert!(!Scope::Read.allows(Scope::Write));
        assert_eq!("write".parse::<Scope>(), Ok(Scope::Write));
        assert!("admin".parse::<Scope>().is_err());
    }
}
