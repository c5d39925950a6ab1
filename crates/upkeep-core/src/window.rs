//! Maintenance windows, as operators write them and as the API shows them: planned work
//! with everything the people affected need to know (why, when, what, what to use meanwhile,
//! where to follow up). Data only: `upkeep-maintenance` validates, checks the lead-time
//! policy and plans each window's life; the store keeps them; the CLI and web show them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Principal, ServiceName};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    Maintenance,
    Upgrade,
    Repair,
    Expansion,
    Emergency,
}

impl WindowKind {
    pub const ALL: [WindowKind; 5] = [
        WindowKind::Maintenance,
        WindowKind::Upgrade,
        WindowKind::Repair,
        WindowKind::Expansion,
        WindowKind::Emergency,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            WindowKind::Maintenance => "maintenance",
            WindowKind::Upgrade => "upgrade",
            WindowKind::Repair => "repair",
            WindowKind::Expansion => "expansion",
            WindowKind::Emergency => "emergency",
        }
    }
}

/// What the work does to a service while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Impact {
    Outage,
    Degraded,
}

impl Impact {
    pub fn as_str(&self) -> &'static str {
        match self {
            Impact::Outage => "outage",
            Impact::Degraded => "degraded",
        }
    }
}

/// How urgently people must hear of it: routes choose channels by it.
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
pub enum Priority {
    Emergency,
    Important,
    Routine,
}

impl Priority {
    pub fn as_str(&self) -> &'static str {
        match self {
            Priority::Emergency => "emergency",
            Priority::Important => "important",
            Priority::Routine => "routine",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AffectedService {
    pub service: ServiceName,
    pub impact: Impact,
}

/// A window as an operator writes it (`upkeep maint add`, `POST /api/v1/windows`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WindowSpec {
    pub kind: WindowKind,
    pub title: String,
    pub reason: String,
    /// The (first) start and expected end, in UTC. Read by the rules of `upkeep maint add`
    /// (no offset beyond ±23:59, no leap second: `when::strict_timestamp`).
    #[serde(deserialize_with = "crate::when::strict_timestamp")]
    pub start: Timestamp,
    #[serde(deserialize_with = "crate::when::strict_timestamp")]
    pub end: Timestamp,
    /// The IANA zone the times were written in: what recurrence follows (its daylight-saving
    /// changes included) and what people see by default.
    #[serde(default = "utc")]
    pub tz: String,
    /// An RFC 5545 recurrence rule (`FREQ=WEEKLY;BYDAY=SU`), from `start` in `tz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<String>,
    pub services: Vec<AffectedService>,
    /// What people can use meanwhile.
    #[serde(default)]
    pub alternative: String,
    /// Where people get news and help.
    #[serde(default)]
    pub follow_up: String,
    /// None: emergency for an emergency window, routine otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
}

fn utc() -> String {
    "UTC".into()
}

impl WindowSpec {
    pub fn priority(&self) -> Priority {
        self.priority.unwrap_or(match self.kind {
            WindowKind::Emergency => Priority::Emergency,
            _ => Priority::Routine,
        })
    }
}

/// `POST /api/v1/windows`: a window, and, to schedule it against the lead-time policy, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WindowRequest {
    pub spec: WindowSpec,
    /// Schedules a window that breaks the lead-time policy; recorded with who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_why: Option<String>,
}

/// A step in a window's life. Each is a notice to the people affected.
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
#[serde(rename_all = "snake_case", tag = "step")]
pub enum Step {
    /// Scheduled (once per window).
    Announced,
    /// `before_s` seconds before an occurrence starts.
    Reminder { before_s: u64 },
    /// The work began: its services are in maintenance.
    Started,
    /// The expected end `end` passed with the work not done.
    Overrun { end: Timestamp },
    /// The expected end moved to `until`.
    Extended { until: Timestamp },
    /// Done (by `maint finish`, or by itself once its end passed and its services are well).
    Completed,
    /// Called off (the whole window).
    Cancelled,
}

impl Step {
    /// The step's name, as stored and shown.
    pub fn name(&self) -> &'static str {
        match self {
            Step::Announced => "announced",
            Step::Reminder { .. } => "reminder",
            Step::Started => "started",
            Step::Overrun { .. } => "overrun",
            Step::Extended { .. } => "extended",
            Step::Completed => "completed",
            Step::Cancelled => "cancelled",
        }
    }

    /// What makes it unique within one occurrence: a window is reminded once per lead,
    /// extended once per new end, and overruns once per end.
    pub fn key(&self) -> String {
        match self {
            Step::Reminder { before_s } => format!("reminder:{before_s}"),
            Step::Extended { until } => format!("extended:{}", until.as_millisecond()),
            Step::Overrun { end } => format!("overrun:{}", end.as_millisecond()),
            other => other.name().to_owned(),
        }
    }
}

/// A step taken: of which occurrence (its start), when, and by whom (None: upkeep itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StepTaken {
    pub occurrence: Timestamp,
    #[serde(flatten)]
    pub step: Step,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<Principal>,
}

/// When the occurrence keyed by `occurrence` (its planned start) began, going by `taken`: the
/// moment an operator started it early, else its planned start. Steps stay keyed by the planned
/// start (the occurrence's identity); what people are told and shown is when it began.
pub fn began(taken: &[StepTaken], occurrence: Timestamp) -> Timestamp {
    taken
        .iter()
        .filter(|t| t.occurrence == occurrence && t.step == Step::Started)
        .map(|t| t.at)
        .fold(occurrence, Timestamp::min)
}

/// Where a window is, as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowStatus {
    Scheduled,
    Running,
    Overrun,
    Completed,
    Cancelled,
}

impl WindowStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            WindowStatus::Scheduled => "scheduled",
            WindowStatus::Running => "running",
            WindowStatus::Overrun => "overrun",
            WindowStatus::Completed => "completed",
            WindowStatus::Cancelled => "cancelled",
        }
    }
}

/// One occurrence: from start to its expected end (extended, if it was).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Occurrence {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// A stored window, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Window {
    pub id: i64,
    #[serde(flatten)]
    pub spec: WindowSpec,
    pub status: WindowStatus,
    /// The occurrence running now, or the next one; None once none is left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<Occurrence>,
    pub created: Timestamp,
    pub created_by: Principal,
    /// Why it was scheduled against the lead-time policy, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forced_why: Option<String>,
    /// Every step taken, oldest first.
    #[serde(default)]
    pub steps: Vec<StepTaken>,
    /// How many times it was edited (the iCalendar feed's SEQUENCE).
    #[serde(default)]
    pub revision: i64,
    /// Its last change: an edit, or a step of its life.
    #[serde(default = "epoch")]
    pub updated: Timestamp,
    /// In the answer to `maint add` and `maint edit`: free text that names a service hidden
    /// from the status page (`public = false`). The page, the feeds and subscribers' mails
    /// show the text as written, so the operator is told rather than the text rewritten.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names_hidden: Vec<NamesHidden>,
}

/// A field of a window's text that names a hidden service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NamesHidden {
    /// `title`, `reason`, `alternative` or `follow_up`.
    pub field: String,
    pub service: ServiceName,
}

fn epoch() -> Timestamp {
    Timestamp::UNIX_EPOCH
}

/// A window as the public sees it (the announcements API, the feeds, the status page): what
/// people need to know, and nothing about who scheduled it or how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Announcement {
    pub id: i64,
    pub kind: WindowKind,
    pub priority: Priority,
    pub title: String,
    pub reason: String,
    /// The occurrence under way, or the next one (or the last, once over).
    pub start: Timestamp,
    pub end: Timestamp,
    pub tz: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<String>,
    pub services: Vec<AffectedService>,
    pub alternative: String,
    pub follow_up: String,
    pub status: WindowStatus,
    pub revision: i64,
    pub updated: Timestamp,
}

impl From<&Window> for Announcement {
    fn from(w: &Window) -> Self {
        let o = w.current.unwrap_or(Occurrence {
            start: w.spec.start,
            end: w.spec.end,
        });
        Announcement {
            id: w.id,
            kind: w.spec.kind,
            priority: w.spec.priority(),
            title: w.spec.title.clone(),
            reason: w.spec.reason.clone(),
            start: o.start,
            end: o.end,
            tz: w.spec.tz.clone(),
            repeat: w.spec.repeat.clone(),
            services: w.spec.services.clone(),
            alternative: w.spec.alternative.clone(),
            follow_up: w.spec.follow_up.clone(),
            status: w.status,
            revision: w.revision,
            updated: w.updated,
        }
    }
}

impl Announcement {
    /// The announcement as the public may see it: without the services `shown` says are not
    /// public (`public = false`), and none at all when the window affects no public service.
    /// Operators may put a hidden service in a window; the page, the feeds and the public
    /// window page must still never name it.
    pub fn public(mut self, shown: impl Fn(&crate::ServiceName) -> bool) -> Option<Self> {
        self.services.retain(|s| shown(&s.service));
        (!self.services.is_empty()).then_some(self)
    }
}

/// `POST /api/v1/windows/{id}/extend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ExtendRequest {
    #[serde(deserialize_with = "crate::when::strict_timestamp")]
    pub until: Timestamp,
}

/// What an operator does to a scheduled window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowAction {
    /// Calls it off (ending its maintenance if it is under way).
    Cancel,
    /// Starts the next occurrence now.
    Start,
    /// Ends the occurrence under way now.
    Finish,
    /// Moves the expected end of the occurrence under way (or the next one).
    Extend { until: Timestamp },
}
