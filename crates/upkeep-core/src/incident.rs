//! What people write about an incident (issues 16 and 17): updates with a status, a hand
//! resolution, a priority, and the post-mortem; and the API bodies that carry them.
//!
//! The probes open and resolve incidents (upkeep-state); this file is the human part. It
//! holds the words and their checks ([`UpdateRequest::check`], [`Postmortem::check`]) so
//! that the daemon, the CLI and the tests agree on the limits; storing is upkeep-store's,
//! notices upkeep-outbox's, the routes upkeep-web's.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{Principal, ServiceName};

/// Longest update message, post-mortem field or action, in characters.
pub const TEXT_MAX: usize = 4000;
/// Longest title of an incident opened by hand.
pub const TITLE_MAX: usize = 200;
/// How many whys a post-mortem has (the five whys).
pub const WHYS: usize = 5;
/// Most actions in a post-mortem.
pub const ACTIONS_MAX: usize = 50;

/// Where an incident stands, as the people working on it say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl IncidentStatus {
    pub const ALL: [IncidentStatus; 4] = [
        IncidentStatus::Investigating,
        IncidentStatus::Identified,
        IncidentStatus::Monitoring,
        IncidentStatus::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentStatus::Investigating => "investigating",
            IncidentStatus::Identified => "identified",
            IncidentStatus::Monitoring => "monitoring",
            IncidentStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

impl std::fmt::Display for IncidentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent an incident is: P1 (everyone, now) to P4 (whenever). Notices route by it
/// (see upkeep-outbox's mapping onto emergency, important and routine).
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum IncidentPriority {
    P1,
    P2,
    /// What an incident has when neither it nor its service says otherwise.
    #[default]
    P3,
    P4,
}

impl IncidentPriority {
    pub const ALL: [IncidentPriority; 4] = [
        IncidentPriority::P1,
        IncidentPriority::P2,
        IncidentPriority::P3,
        IncidentPriority::P4,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IncidentPriority::P1 => "P1",
            IncidentPriority::P2 => "P2",
            IncidentPriority::P3 => "P3",
            IncidentPriority::P4 => "P4",
        }
    }

    /// `P1`..`P4` (a lowercase `p` too).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
    }
}

impl std::fmt::Display for IncidentPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One update someone wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentUpdate {
    pub id: i64,
    pub at: Timestamp,
    pub status: IncidentStatus,
    pub message: String,
    pub by: Principal,
}

/// An update as the public reads it (the Atom feed): no name of who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicUpdate {
    pub incident: i64,
    pub service: ServiceName,
    pub id: i64,
    pub at: Timestamp,
    pub status: IncidentStatus,
    pub message: String,
}

/// The post-mortem of an incident: what happened, why (five whys), what will change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Postmortem {
    /// What happened, for the people it affected.
    #[schema(max_length = 4000)]
    pub summary: String,
    /// The cause found at the end of the whys.
    #[schema(max_length = 4000)]
    pub root_cause: String,
    /// The five whys ([`WHYS`]): each answer asks the next why, down to the root cause;
    /// each at most 4,000 characters, as are the actions.
    #[schema(min_items = 5, max_items = 5)]
    pub whys: Vec<String>,
    /// What will change so that it does not happen again (at most [`ACTIONS_MAX`]).
    #[serde(default)]
    #[schema(max_items = 50)]
    pub actions: Vec<String>,
}

impl Postmortem {
    /// Every problem with it, at once (empty: fine).
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        text(&mut problems, "summary", &self.summary, TEXT_MAX);
        text(&mut problems, "root_cause", &self.root_cause, TEXT_MAX);
        if self.whys.len() != WHYS {
            problems.push(format!(
                "whys: a post-mortem has {WHYS} whys, this one has {}",
                self.whys.len()
            ));
        }
        for (i, why) in self.whys.iter().enumerate() {
            text(&mut problems, &format!("whys[{i}]"), why, TEXT_MAX);
        }
        if self.actions.len() > ACTIONS_MAX {
            problems.push(format!(
                "actions: at most {ACTIONS_MAX}, this one has {}",
                self.actions.len()
            ));
        }
        for (i, action) in self.actions.iter().enumerate() {
            text(&mut problems, &format!("actions[{i}]"), action, TEXT_MAX);
        }
        problems
    }
}

/// A post-mortem as stored: who wrote it, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WrittenPostmortem {
    #[serde(flatten)]
    pub postmortem: Postmortem,
    pub at: Timestamp,
    pub by: Principal,
}

/// What people wrote about an incident, beside what the probes saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IncidentNotes {
    /// The title of an incident opened by hand; None for the probes' (the service names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The priority set on the incident (by hand, or when opened by hand); None: the
    /// service's configured one (see [`IncidentNotes::priority_or`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<IncidentPriority>,
    /// Who opened it, when a person did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_by: Option<Principal>,
    /// Who resolved it, when a person did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<Principal>,
    /// Oldest first.
    #[serde(default)]
    pub updates: Vec<IncidentUpdate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postmortem: Option<WrittenPostmortem>,
}

impl IncidentNotes {
    /// The incident's priority: its own, else its service's `default`.
    pub fn priority_or(&self, default: IncidentPriority) -> IncidentPriority {
        self.priority.unwrap_or(default)
    }
}

/// `POST /api/v1/incidents/{id}/updates`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRequest {
    pub status: IncidentStatus,
    pub message: String,
}

impl UpdateRequest {
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        text(&mut problems, "message", &self.message, TEXT_MAX);
        problems
    }
}

/// `POST /api/v1/incidents/{id}/resolve`: closes it by hand, with an optional last word.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    #[serde(default)]
    pub message: Option<String>,
}

/// `POST /api/v1/incidents`: an incident the probes did not see (a third party is down).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenRequest {
    pub service: ServiceName,
    pub title: String,
    #[serde(default)]
    pub priority: Option<IncidentPriority>,
    /// The first update (status `investigating`); None: the title says it all.
    #[serde(default)]
    pub message: Option<String>,
}

impl OpenRequest {
    pub fn check(&self) -> Vec<String> {
        let mut problems = Vec::new();
        text(&mut problems, "title", &self.title, TITLE_MAX);
        if let Some(m) = &self.message {
            text(&mut problems, "message", m, TEXT_MAX);
        }
        problems
    }
}

/// `PUT /api/v1/incidents/{id}/priority`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PriorityRequest {
    pub priority: IncidentPriority,
}

/// One write to an incident, as the API routes hand it to the daemon.
#[derive(Debug, Clone)]
pub enum IncidentWrite {
    Open(OpenRequest),
    Update(i64, UpdateRequest),
    Resolve(i64, ResolveRequest),
    Priority(i64, PriorityRequest),
    Postmortem(i64, Postmortem),
}

/// What a person did to an incident: the detail of the `incident_noted` event that records
/// it (the audit trail, and what wakes the status page).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "note", rename_all = "snake_case")]
pub enum Note {
    Opened { title: String },
    Updated { status: IncidentStatus },
    Resolved,
    Priority { priority: IncidentPriority },
    Postmortem,
}

/// A required text: not blank (nor invisible characters alone), at most `max` characters,
/// no control characters but line breaks and tabs.
fn text(problems: &mut Vec<String>, field: &str, value: &str, max: usize) {
    if crate::text::says_nothing(value) {
        problems.push(format!("{field}: must not be empty"));
    } else if value.chars().count() > max {
        problems.push(format!(
            "{field}: at most {max} characters, this one has {}",
            value.chars().count()
        ));
    } else if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        problems.push(format!("{field}: control characters are not allowed"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_priorities_read_back() {
        for s in IncidentStatus::ALL {
            assert_eq!(IncidentStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(IncidentStatus::parse("fixed"), None);
        assert_eq!(IncidentPriority::parse("p2"), Some(IncidentPriority::P2));
        assert_eq!(IncidentPriority::parse("P5"), None);
        assert_eq!(IncidentPriority::default(), IncidentPriority::P3);
        let p: IncidentPriority = serde_json::from_str("\"P1\"").unwrap();
        assert_eq!(p, IncidentPriority::P1);
    }

    #[test]
    fn a_postmortem_reports_every_problem_at_once() {
        let pm = Postmortem {
            summary: " ".into(),
            root_cause: "x".repeat(TEXT_MAX + 1),
            whys: vec!["a".into(); 4],
            actions: vec!["fix\u{7}".into()],
        };
        let p = pm.check();
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p[0].starts_with("summary"), "{p:?}");
        assert!(p[2].contains("5 whys"), "{p:?}");
        let good = Postmortem {
            summary: "s".into(),
            root_cause: "r".into(),
            whys: vec!["w".into(); 5],
            actions: vec![],
        };
        assert!(good.check().is_empty());
    }

    #[test]
    fn an_update_needs_a_message() {
        let u = UpdateRequest {
            status: IncidentStatus::Identified,
            message: "\n".into(),
        };
        assert_eq!(u.check(), ["message: must not be empty"]);
    }
}
