//! Time-driven runs of one service: a job's runs on its `schedule`, and `restart_at`'s
//! restarts. One task per service that has either, started and ended with its other tasks
//! (`wiring.rs`); the file watcher (`watch.rs`) is the other planned-restart source.
//!
//! The task sleeps on the injected clock until the next time the cron expression gives (in
//! its zone: `upkeep_config::Schedule`), then asks the supervisor: a job's run
//! (`RunJob`: the supervisor starts it unless a run is still going, and then this task
//! records `job_skipped`; a job an operator stopped waits for `upkeep start`, which runs one
//! at once and lets the schedule go on), or a planned restart (`Planned`: `restart_planned`, no backoff, no
//! crash counted). It never polls and never reads the wall clock itself, so a test moves the
//! clock over `/api/v1/test/clock` and the run comes. A clock that jumps over several times
//! runs once, for the first of them.
//!
//! Runs missed while no daemon ran (systemd's `Persistent=true`): with `catch_up` (the
//! default), at start, a job runs once for the last time its schedule gave before now if
//! that time came after the job's last trigger: the latest of its runs' starts and due
//! times (a run cut by the daemon's death counts: it began), its skipped times (a skip is
//! that time's outcome: never replayed), or, for a job that never ran, the first time a
//! daemon knew it (its oldest stored event: a job with no history gets `job_scheduled` when
//! its task starts, at start-up or on the reload that adds it; a job new in this config has
//! missed nothing).
//! A job an operator stopped is not made up (it waits for `upkeep start`, across restarts).
//! The history is read from the store; a store away at start means no catch-up (logged).

use std::sync::Arc;

use tokio_util::sync::{CancellationToken, DropGuard};
use upkeep_config::{JobConfig, Schedule, ServiceConfig};
use upkeep_core::{Actor, Clock, Event, EventKind, ServiceName};
use upkeep_state::Snapshot;
use upkeep_store::Store;
use upkeep_supervisor::{JobStart, SupervisorHandle};

/// The planned-run tasks of one service (schedule, restart_at, watch): they end when this
/// is dropped.
#[derive(Default)]
pub struct Timers {
    _guards: Vec<DropGuard>,
}

impl Timers {
    pub fn push(&mut self, cancel: CancellationToken) {
        self._guards.push(cancel.drop_guard());
    }
}

/// What the tasks need from the daemon.
pub struct Deps<'a> {
    pub clock: &'a Clock,
    pub events: &'a tokio::sync::mpsc::Sender<Event>,
    pub store: &'a Arc<dyn Store>,
    pub snapshot: &'a tokio::sync::watch::Receiver<Arc<Snapshot>>,
    pub logs_dir: &'a std::path::Path,
}

/// Starts the planned-run tasks `cfg` asks for; `catch_up` at start-up only (a reload does
/// not make up runs).
pub fn start(
    name: &ServiceName,
    cfg: &ServiceConfig,
    sup: Option<&SupervisorHandle>,
    deps: Deps<'_>,
    catch_up: bool,
) -> Timers {
    let mut timers = Timers::default();
    let Some(sup) = sup else { return timers };
    if let Some(job) = &cfg.job {
        let cancel = CancellationToken::new();
        tokio::spawn(
            JobTask {
                name: name.clone(),
                job: job.clone(),
                sup: sup.clone(),
                clock: deps.clock.clone(),
                events: deps.events.clone(),
                store: deps.store.clone(),
                snapshot: deps.snapshot.clone(),
            }
            .run(cancel.clone(), catch_up),
        );
        timers.push(cancel);
    }
    if let Some(schedule) = &cfg.restart_at {
        let cancel = CancellationToken::new();
        tokio::spawn(restarts(
            schedule.clone(),
            sup.clone(),
            deps.clock.clone(),
            cancel.clone(),
        ));
        timers.push(cancel);
    }
    if let (Some(w), Some(_)) = (&cfg.watch, &cfg.managed) {
        let cancel = CancellationToken::new();
        crate::watch::start(name, w, sup.clone(), &deps, cancel.clone());
        timers.push(cancel);
    }
    timers
}

struct JobTask {
    name: ServiceName,
    job: JobConfig,
    sup: SupervisorHandle,
    clock: Clock,
    events: tokio::sync::mpsc::Sender<Event>,
    store: Arc<dyn Store>,
    snapshot: tokio::sync::watch::Receiver<Arc<Snapshot>>,
}

impl JobTask {
    async fn run(self, cancel: CancellationToken, catch_up: bool) {
        let work = async {
            let history = self.history().await;
            if history.as_ref().is_some_and(Vec::is_empty) {
                let kind = EventKind::JobScheduled {
                    schedule: self.job.schedule.as_str().to_owned(),
                };
                let _ = self.events.send(self.clock.event(&self.name, kind)).await;
            }
            if catch_up
                && self.job.catch_up
                && let Some(events) = &history
                && let Some(missed) = self.missed(events)
            {
                tracing::info!(service = %self.name, %missed, "a run was missed while no daemon ran: running it now");
                self.due(missed).await;
            }
            let mut after = self.clock.now();
            while let Some(due) = self.job.schedule.next_after(after) {
                self.clock.sleep_until_time(due).await;
                self.due(due).await;
                after = due.max(self.clock.now());
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = work => {}
        }
    }

    /// Runs the job for `due`, or records that it is skipped.
    async fn due(&self, due: jiff::Timestamp) {
        match self.sup.run_job(due, Actor::Upkeep).await {
            Some(JobStart::Started) | None => {}
            Some(JobStart::Stopped) => {
                tracing::debug!(service = %self.name, %due, "not run: stopped by an operator");
            }
            Some(JobStart::StillRunning) => {
                let running_since = self
                    .snapshot
                    .borrow()
                    .services
                    .get(&self.name)
                    .and_then(|s| s.since);
                tracing::info!(service = %self.name, %due, "skipped: the last run is still going");
                let kind = EventKind::JobSkipped { due, running_since };
                let _ = self.events.send(self.clock.event(&self.name, kind)).await;
            }
        }
    }

    /// The job's stored history, newest first (None, logged, when the store cannot say).
    async fn history(&self) -> Option<Vec<upkeep_core::api::StoredEvent>> {
        match self.store.events(Some(&self.name), 1000).await {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!(service = %self.name, "cannot read the job's history: no run made up: {}", e.with_causes());
                None
            }
        }
    }

    /// The time of a run missed while no daemon ran, if any (see the module docs), from the
    /// job's history (newest first).
    fn missed(&self, events: &[upkeep_core::api::StoredEvent]) -> Option<jiff::Timestamp> {
        let now = self.clock.now();
        if stopped_by_operator(events) {
            tracing::info!(service = %self.name, "stopped by an operator: no run made up");
            return None;
        }
        let last = last_trigger(events, now)?;
        missed_since(&self.job.schedule, last, now)
    }
}

/// Whether an operator's `upkeep stop` is the job's last word (newest first): no start
/// (by anyone) came after it.
fn stopped_by_operator(events: &[upkeep_core::api::StoredEvent]) -> bool {
    events
        .iter()
        .find(|e| e.kind == "started" || (e.kind == "stopped" && e.intervention))
        .is_some_and(|e| e.kind == "stopped")
}

/// The job's last trigger as its stored history tells it (newest first; see the module
/// docs): the latest run start, run due time or skipped time, else the oldest event (the
/// job was known then); None for a job no daemon knew before `now`.
fn last_trigger(
    events: &[upkeep_core::api::StoredEvent],
    now: jiff::Timestamp,
) -> Option<jiff::Timestamp> {
    use upkeep_core::job::{JobRun, skipped_of, started_of};
    let before: Vec<_> = events.iter().filter(|e| e.at < now).collect();
    let triggers = before.iter().flat_map(|e| {
        let run = JobRun::from_stored(e).map(|r| r.due.map_or(r.started, |d| d.max(r.started)));
        let began = started_of(e).map(|_| e.at);
        [run, began, skipped_of(e)].into_iter().flatten()
    });
    triggers.max().or_else(|| before.iter().map(|e| e.at).min())
}

/// The last time `schedule` gave at or before `now`, if it is after `last` (a run recorded
/// then).
pub fn missed_since(
    schedule: &Schedule,
    last: jiff::Timestamp,
    now: jiff::Timestamp,
) -> Option<jiff::Timestamp> {
    schedule.last_at_or_before(now).filter(|t| *t > last)
}

/// `restart_at`: a planned restart at each time the schedule gives.
async fn restarts(
    schedule: Schedule,
    sup: SupervisorHandle,
    clock: Clock,
    cancel: CancellationToken,
) {
    let work = async {
        let mut after = clock.now();
        while let Some(at) = schedule.next_after(after) {
            clock.sleep_until_time(at).await;
            sup.planned(format!("restart_at {}", schedule.as_str()))
                .await;
            after = at.max(clock.now());
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = work => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn stored(at: &str, kind: EventKind) -> upkeep_core::api::StoredEvent {
        let mut detail = serde_json::to_value(&kind).unwrap();
        let tag = detail["kind"].as_str().unwrap().to_owned();
        detail.as_object_mut().unwrap().remove("kind");
        upkeep_core::api::StoredEvent {
            id: 0,
            at: ts(at),
            service: None,
            kind: tag,
            intervention: false,
            detail,
        }
    }

    fn ran(at: &str, due: &str) -> upkeep_core::api::StoredEvent {
        stored(
            at,
            EventKind::JobRan {
                started: ts(due),
                due: Some(ts(due)),
                by: upkeep_core::Actor::Upkeep,
                status: upkeep_core::ExitStatus {
                    code: Some(0),
                    signal: None,
                },
                duration_ms: 0,
                output: vec![],
                output_dropped: 0,
                interrupted: false,
            },
        )
    }

    /// Issue 18: a long run recorded after the skip of the next time must not make that
    /// skipped time look missed; a start (a run cut by the daemon's death has no record yet)
    /// counts; a job that never ran is judged from the first time it was known.
    #[test]
    fn the_last_trigger_is_the_latest_run_skip_or_start_else_the_first_sign() {
        let s = Schedule::parse("0 * * * * UTC").unwrap();
        let now = ts("2026-01-03T10:30:00Z");
        // Newest first: the 09:00 run ended at 10:10, after 10:00 was skipped.
        let events = [
            ran("2026-01-03T10:10:00Z", "2026-01-03T09:00:00Z"),
            stored(
                "2026-01-03T10:00:00Z",
                EventKind::JobSkipped {
                    due: ts("2026-01-03T10:00:00Z"),
                    running_since: None,
                },
            ),
        ];
        let last = last_trigger(&events, now).unwrap();
        assert_eq!(last, ts("2026-01-03T10:00:00Z"));
        assert_eq!(
            missed_since(&s, last, now),
            None,
            "the skipped 10:00 is not replayed"
        );

        let started = stored(
            "2026-01-03T10:00:01Z",
            EventKind::Started {
                pid: 7,
                start_ticks: 1,
                by: upkeep_core::Actor::Upkeep,
            },
        );
        let last = last_trigger(std::slice::from_ref(&started), now).unwrap();
        assert_eq!(missed_since(&s, last, now), None, "the 10:00 run began");

        let known = stored(
            "2026-01-03T08:20:00Z",
            EventKind::StatusChanged {
                from: upkeep_core::State::Unknown,
                to: upkeep_core::State::Stopped,
            },
        );
        let last = last_trigger(std::slice::from_ref(&known), now).unwrap();
        assert_eq!(
            missed_since(&s, last, now),
            Some(ts("2026-01-03T10:00:00Z")),
            "never ran: the last time since it was known"
        );
        assert_eq!(last_trigger(&[], now), None, "new: nothing missed");
    }

    #[test]
    fn an_operators_stop_holds_until_a_start() {
        let by = upkeep_core::Actor::Operator;
        let mut stop = stored(
            "2026-01-03T10:00:00Z",
            EventKind::Stopped { by: by.clone() },
        );
        stop.intervention = true;
        let start = stored(
            "2026-01-03T10:01:00Z",
            EventKind::Started {
                pid: 7,
                start_ticks: 1,
                by,
            },
        );
        let mut upkeeps = stored(
            "2026-01-03T10:02:00Z",
            EventKind::Stopped {
                by: upkeep_core::Actor::Upkeep,
            },
        );
        upkeeps.intervention = false;
        assert!(stopped_by_operator(&[upkeeps.clone(), stop.clone()]));
        assert!(!stopped_by_operator(&[upkeeps, start, stop]));
        assert!(!stopped_by_operator(&[]));
    }

    #[test]
    fn a_run_is_missed_only_if_one_fell_due_after_the_last() {
        let s = Schedule::parse("0 4 * * * UTC").unwrap();
        let now = ts("2026-01-03T10:00:00Z");
        // Ran on the 2nd at 04:00; the 3rd's 04:00 passed with no daemon.
        assert_eq!(
            missed_since(&s, ts("2026-01-02T04:00:00Z"), now),
            Some(ts("2026-01-03T04:00:00Z"))
        );
        // Ran this morning: nothing missed.
        assert_eq!(missed_since(&s, ts("2026-01-03T04:00:00Z"), now), None);
    }
}
