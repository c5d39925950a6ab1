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
//! Runs missed while no daemon ran (systemd's `Persistent=`): with `catch_up` (the default),
//! a job whose last recorded run (or skip) is older than the last time its schedule gave
//! before now runs once at start, for that time. A job that never ran has missed nothing.
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
    if let Some(w) = &cfg.watch {
        let cancel = CancellationToken::new();
        match crate::watch::start(name, w, sup.clone(), deps.logs_dir, cancel.clone()) {
            Ok(()) => timers.push(cancel),
            Err(e) => tracing::error!(service = %name, "cannot watch files: {e}"),
        }
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
            if catch_up
                && self.job.catch_up
                && let Some(missed) = self.missed().await
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

    /// The time of a run missed while no daemon ran, if any (see the module docs).
    async fn missed(&self) -> Option<jiff::Timestamp> {
        let events = match self.store.events(Some(&self.name), 1000).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(service = %self.name, "cannot tell whether a run was missed: {}", e.with_causes());
                return None;
            }
        };
        // Newest first: the first run or skip is the last one.
        let last = events.iter().find_map(|e| {
            upkeep_core::job::JobRun::from_stored(e)
                .map(|r| r.due.unwrap_or(r.started))
                .or_else(|| upkeep_core::job::skipped_of(e))
        })?;
        missed_since(&self.job.schedule, last, self.clock.now())
    }
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
