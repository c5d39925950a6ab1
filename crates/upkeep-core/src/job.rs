//! Jobs as the API shows them: [`JobInfo`] (a job, its schedule and its recent runs) and
//! [`JobRun`] (one run, read back from its stored `job_ran` event).
//!
//! A job's history is its events (`job_ran`, `job_skipped`): nothing is stored apart, so a
//! run is read from the event that recorded it ([`JobRun::from_stored`]). The daemon builds
//! these (`upkeep/src/control.rs`); `upkeep jobs` and `GET /api/v1/jobs` show them.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::api::StoredEvent;
use crate::{Actor, EventKind, ExitStatus, ServiceName, State};

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRun {
    pub started: Timestamp,
    /// When it ended (its record's time).
    pub ended: Timestamp,
    /// The scheduled time it ran for; None when an operator ran it.
    pub due: Option<Timestamp>,
    pub by: Actor,
    pub status: ExitStatus,
    pub duration_ms: u64,
    /// Its last lines of output (stderr's marked `stderr| `).
    pub output: Vec<String>,
    /// Earlier lines not kept.
    pub output_dropped: u64,
    /// Cut short by the daemon's death (see `EventKind::JobRan`): its status is unknown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interrupted: bool,
}

impl JobRun {
    /// The run a stored `job_ran` event records (None for any other event).
    pub fn from_stored(e: &StoredEvent) -> Option<JobRun> {
        match kind_of(e)? {
            EventKind::JobRan {
                started,
                due,
                by,
                status,
                duration_ms,
                output,
                output_dropped,
                interrupted,
            } => Some(JobRun {
                started,
                ended: e.at,
                due,
                by,
                status,
                duration_ms,
                output,
                output_dropped,
                interrupted,
            }),
            _ => None,
        }
    }
}

/// The time a stored `job_skipped` event says was skipped.
pub fn skipped_of(e: &StoredEvent) -> Option<Timestamp> {
    match kind_of(e)? {
        EventKind::JobSkipped { due, .. } => Some(due),
        _ => None,
    }
}

/// The pid and the starter a stored `started` event names (a run of any service).
pub fn started_of(e: &StoredEvent) -> Option<(u32, Actor)> {
    match kind_of(e)? {
        EventKind::Started { pid, by, .. } => Some((pid, by)),
        _ => None,
    }
}

/// A stored event's kind, with its fields (the API's detail lacks the tag).
fn kind_of(e: &StoredEvent) -> Option<EventKind> {
    if !matches!(e.kind.as_str(), "job_ran" | "job_skipped" | "started") {
        return None;
    }
    let mut detail = e.detail.clone();
    detail
        .as_object_mut()?
        .insert("kind".into(), serde_json::Value::String(e.kind.clone()));
    serde_json::from_value(detail).ok()
}

/// A job and its recent history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobInfo {
    pub name: ServiceName,
    /// As written in the config (`*/15 * * * *`, `0 4 * * * Asia/Shanghai`).
    pub schedule: String,
    pub state: State,
    /// When the run in progress began.
    pub running_since: Option<Timestamp>,
    /// When it runs next.
    pub next: Option<Timestamp>,
    /// Recent runs, newest first.
    pub runs: Vec<JobRun>,
    /// Recent times a run was skipped because the last one was still going, newest first.
    pub skipped: Vec<Timestamp>,
    /// The history could not be read (the store is away): `runs` and `skipped` are empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_run_reads_back() {
        let kind = EventKind::JobRan {
            started: Timestamp::UNIX_EPOCH,
            due: None,
            by: Actor::Upkeep,
            status: ExitStatus {
                code: Some(2),
                signal: None,
            },
            duration_ms: 1500,
            output: vec!["hello".into()],
            output_dropped: 0,
            interrupted: false,
        };
        let mut detail = serde_json::to_value(&kind).unwrap();
        detail.as_object_mut().unwrap().remove("kind");
        let e = StoredEvent {
            id: 1,
            at: Timestamp::from_second(2).unwrap(),
            service: None,
            kind: "job_ran".into(),
            intervention: false,
            detail,
        };
        let run = JobRun::from_stored(&e).unwrap();
        assert_eq!(run.status.code, Some(2));
        assert_eq!(run.output, ["hello"]);
        assert_eq!(run.ended, Timestamp::from_second(2).unwrap());
        assert_eq!(skipped_of(&e), None);
    }
}
