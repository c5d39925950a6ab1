//! What a daemon takes over from the last one: the processes it left running (stopped, so
//! that no service runs twice), each service's desired state, the incidents it left open and
//! the maintenance in progress, the time nobody watched, and the config revision it runs.
//!
//! When the store answers at start, all of it is read from there, before any service starts
//! ([`inherit`], then [`record_unwatched_time`] and [`apply_revision`]). When it does not, the
//! daemon does not wait: stale processes are found by the run records alone (they are the
//! only proof ever used to kill; the store only names what to record), desired states and
//! maintenance come from `intent.json` (else the config), and [`later`] takes up the rest once
//! the store is back and holds what the last daemons journaled: it records the unwatched
//! time (dated when it was), resolves the incidents left open, resumes maintenance the file
//! did not hold, records the stale processes only the store knew of, and stores the revision.
//!
//! Input: the store, the data dir's files; output: events (through state, as every event),
//! resume requests to state. `daemon.rs` calls it; nothing here spawns a service.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use upkeep_config::Config;
use upkeep_core::api::StoreHealth;
use upkeep_core::{Clock, Desired, Event, EventKind, ServiceName, State, Unfinished};
use upkeep_state::StateControl;
use upkeep_store::{LazyStore, ServiceRecord, Store};
use upkeep_supervisor::{Leftovers, Lineage, procfs};

use crate::control::Daemon;
use crate::intent::Intent;

/// What start-up knows of the last daemon.
pub struct Inherited {
    /// Each service's stored desired state and last process; empty without the store.
    pub records: BTreeMap<ServiceName, ServiceRecord>,
    /// Open incidents and maintenance in progress: from the store, or only maintenance, from
    /// `intent.json`, without it.
    pub unfinished: BTreeMap<ServiceName, Unfinished>,
    /// Whether the store answered: if not, [`later`] takes up what it would have told.
    pub from_store: bool,
}

impl Inherited {
    /// What `name` should be at start: what an operator last asked (the data dir's copy
    /// first: it is written before the store's), else the config's `autostart`. External
    /// services are always watched.
    pub async fn desired(
        &self,
        intent: &Intent,
        name: &ServiceName,
        cfg: &upkeep_config::ServiceConfig,
    ) -> Desired {
        let Some(managed) = &cfg.managed else {
            return Desired::Running;
        };
        if let Some(d) = intent.desired(name).await {
            return d;
        }
        if let Some(r) = self.records.get(name) {
            return r.desired;
        }
        if managed.autostart {
            Desired::Running
        } else {
            Desired::Stopped
        }
    }
}

/// What the last daemon left of a service, with its run that ended for good kept only if
/// that still holds: the operator still wants it running (a stop since is a stop), it is no
/// job (a job runs on its schedule), and the restart policy, perhaps changed since, would
/// still not start it again (`always` would). A crash loop given up on stays failed on the
/// same terms but the policy's: until its config changes (`last`, the config the last daemon
/// applied, None if it cannot be told: then it stays failed, as systemd keeps a unit).
pub fn still_ended(
    name: &ServiceName,
    left: Option<Unfinished>,
    cfg: &upkeep_config::ServiceConfig,
    want: Desired,
    last: Option<&Config>,
) -> Option<Unfinished> {
    let mut left = left?;
    let holds = want == Desired::Running && cfg.job.is_none() && cfg.managed.is_some();
    let exited = holds
        && left.exited
        && cfg
            .managed
            .as_ref()
            .is_some_and(|m| m.restart != upkeep_config::RestartPolicy::Always);
    let failed =
        holds && left.failed.is_some() && last.is_none_or(|l| l.services.get(name) == Some(cfg));
    if !exited {
        left.exited = false;
    }
    if !failed {
        left.failed = None;
    }
    if !(exited || failed) {
        left.last_exit = None;
    }
    Some(left)
}

/// The config the last daemon applied, as this daemon reads it now (its revision in the
/// store, parsed; `env_file`s are read as they are now, so only an edit of the file itself
/// shows). None before the first revision, or if it no longer parses (logged).
pub async fn last_config(store: &dyn Store) -> Option<Config> {
    let (path, source) = match store.last_revision().await {
        Ok(last) => last?,
        Err(e) => {
            tracing::warn!(
                "cannot read the last config revision; failed services stay failed: {}",
                e.with_causes()
            );
            return None;
        }
    };
    let path = std::path::PathBuf::from(path);
    tokio::task::spawn_blocking(move || upkeep_config::parse(&path, &source))
        .await
        .ok()?
        .inspect_err(|e| {
            tracing::warn!(
                "the last config revision no longer reads; failed services stay failed: {e}"
            )
        })
        .ok()
}

/// Reads what the last daemon left from the store if it is open (once it has stored what a
/// daemon killed while the store was away kept in the journal: the processes it started are
/// known from it), else from the data dir.
pub async fn inherit(
    store: &LazyStore,
    health: &watch::Receiver<StoreHealth>,
    intent: &Intent,
    now: jiff::Timestamp,
) -> Inherited {
    if store.is_open() {
        let _ = health
            .clone()
            .wait_for(|h| h.journaled == 0 || !h.reachable)
            .await;
        // Given up waiting because the store stopped answering (under load, a pool timeout
        // will do): what it holds lacks the journaled events, the last daemon's latest starts
        // among them, and a run record taken for ended on its word would be forgotten before
        // the run's start is stored, leaving that start without an end. `later` reads it once
        // it holds them.
        let journaled = health.borrow().journaled;
        if journaled > 0 {
            tracing::warn!(
                journaled,
                "the store does not hold what the last daemon journaled yet; starting on the data dir's copy"
            );
        } else {
            match tokio::try_join!(store.services(), store.unfinished()) {
                Ok((records, unfinished)) => {
                    return Inherited {
                        records: records.into_iter().map(|r| (r.name.clone(), r)).collect(),
                        unfinished,
                        from_store: true,
                    };
                }
                Err(e) => tracing::error!(
                    "cannot read what the last daemon left from the store; starting on the data dir's copy: {}",
                    e.with_causes()
                ),
            }
        }
    }
    let unfinished = intent
        .maintenance(now)
        .await
        .into_iter()
        .map(|(name, m)| {
            (
                name,
                Unfinished {
                    maintenance: Some(m),
                    ..Default::default()
                },
            )
        })
        .collect();
    Inherited {
        records: BTreeMap::new(),
        unfinished,
        from_store: false,
    }
}

/// What earlier daemons of this data dir left on this host, found by [`look_for_leftovers`].
pub struct Found(tokio::task::JoinHandle<(BTreeMap<String, Leftovers>, BTreeMap<String, u32>)>);

/// Starts the search for what earlier daemons left (a pass over every process in /proc, and
/// the run records) on a blocking thread, and returns at once: it needs only the run records,
/// so the daemon opens the store (and runs its migrations) meanwhile instead of after it
/// (issue 18's cold start). Nothing this daemon starts can be found: no service starts
/// before [`stop_stale_processes`] has the answer.
pub fn look_for_leftovers(lineage: &Lineage) -> Found {
    let l = lineage.clone();
    Found(tokio::task::spawn_blocking(move || {
        (l.leftovers(), l.recorded())
    }))
}

/// Stops processes that a killed daemon left running, so that no service ever runs twice and
/// no restart fails because the old copy holds its port. What is stopped is what our own
/// records prove ours (cgroups, run records, marks: `upkeep_sys::lineage`), as `found`
/// found them, never a pid on the database's word alone: this works the same with the store
/// away. (Adopting them instead would keep a process whose stdout pipe has lost its reader:
/// its next log line would kill it with SIGPIPE. A clean restart is the honest choice.)
/// `adopted` names the services an upgrade handed over with their pipes (`upgrade.rs`):
/// theirs are not leftovers.
#[allow(clippy::too_many_arguments)]
pub async fn stop_stale_processes(
    config: &Config,
    lineage: &Lineage,
    found: Found,
    records: &BTreeMap<ServiceName, ServiceRecord>,
    adopted: &std::collections::BTreeSet<String>,
    store_known: bool,
    events: &mpsc::Sender<Event>,
    clock: &Clock,
) -> BTreeMap<ServiceName, u32> {
    let (mut leftovers, mut recorded) = found.0.await.unwrap_or_default();
    leftovers.retain(|name, _| !adopted.contains(name));
    recorded.retain(|name, _| !adopted.contains(name));
    let stops: Vec<_> = leftovers
        .iter()
        .map(|(name, left)| {
            let managed = ServiceName::new(name.as_str())
                .ok()
                .and_then(|n| config.services.get(&n))
                .and_then(|c| c.managed.as_ref());
            let signal = managed.map_or(15, |c| c.stop_signal);
            let timeout = managed.map_or(Duration::from_secs(10), |c| c.stop_timeout);
            (left, signal, timeout)
        })
        .collect();
    let outcomes = upkeep_supervisor::stop_leftovers(&stops).await;
    for ((name, left), o) in leftovers.iter().zip(outcomes) {
        tracing::info!(
            service = %name,
            groups = ?left.pgids,
            killed = o.killed,
            lingering = o.lingering,
            "stopped processes left by an earlier daemon"
        );
    }
    // Recorded for every service the store thought running, every one we found, and every
    // run a record names (ended since, with nobody to see it: without the store, the only
    // word on it): the stored pid is no longer ours.
    let mut stale: BTreeMap<ServiceName, u32> = records
        .values()
        .filter(|r| !adopted.contains(r.name.as_str()))
        .filter_map(|r| Some((r.name.clone(), r.running?.0)))
        .collect();
    // A record whose run the store (read at this start: `store_known`) already knows ended,
    // with nothing of it left, is done with: forgotten, and no second `stale_stopped` (a job,
    // or a service stopped since, would be "left running" at every start). Any other record
    // is named stale now and kept until the store has that: forgotten on the word of an event
    // not stored yet, a run would be lost if this daemon were killed too before storing it
    // (the next one, starting with the store away, would have no word on it at all).
    let mut done = Vec::new();
    for (name, pid) in &recorded {
        let Ok(n) = ServiceName::new(name.as_str()) else {
            continue;
        };
        let ended = store_known
            && !leftovers.contains_key(name)
            && records.get(&n).is_none_or(|r| r.running.is_none());
        if ended {
            done.push(name.clone());
        } else {
            stale.entry(n).or_insert(*pid);
        }
    }
    // A leftover no record names (found by its cgroup or mark): named by its group, the
    // nearest to its leader there is. (After the records: a leader gone, its `setsid` child's
    // group is not the run that started.)
    for (name, left) in &leftovers {
        if let Ok(n) = ServiceName::new(name.as_str()) {
            let pid = left
                .pgids
                .first()
                .or(left.pids.first())
                .copied()
                .unwrap_or(0);
            stale.entry(n).or_insert(pid);
        }
    }
    for (name, pid) in &stale {
        let _ = events
            .send(clock.event(name, EventKind::StaleStopped { pid: *pid }))
            .await;
    }
    for name in &done {
        lineage.forget(name);
    }
    let keep = config
        .services
        .iter()
        .filter(|(_, c)| c.managed.is_some())
        .map(|(n, _)| n.to_string())
        .collect();
    lineage.prune(&keep);
    stale
}

/// Job runs the last daemon started and never saw end (it was killed while they ran): each
/// gets its `job_ran`, marked `interrupted`, so that the job's history holds every run and
/// its run record is not taken for one still going (issue 18). `stale` names what
/// [`stop_stale_processes`] stopped or found gone (service → pid); `before` is this daemon's
/// start (events from then on are its own). A run is found by its `started` event, the pid
/// it names; a `job_ran` stored after it means the run ended and was recorded. The record:
/// the run's start and starter, `due` (for upkeep's runs the schedule's last time at or
/// before the start: a run starts at its time, a make-up run for the last time it missed),
/// its end at the last daemon's last sign of life (`cut`, else now), an unknown status and
/// no output (the service's log files have it). Not a failure: state ignores `job_ran`, so
/// the job is neither `down` nor in an incident; `catch_up` counts the run as run.
pub async fn record_cut_runs(
    config: &Config,
    store: &dyn Store,
    stale: &BTreeMap<ServiceName, u32>,
    cut: Option<jiff::Timestamp>,
    before: jiff::Timestamp,
    events: &mpsc::Sender<Event>,
    clock: &Clock,
) {
    for (name, pid) in stale {
        let Some(job) = config.services.get(name).and_then(|c| c.job.as_ref()) else {
            continue;
        };
        let stored = match store.events(Some(name), 200).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(service = %name, "cannot record the run the last daemon left: {}", e.with_causes());
                continue;
            }
        };
        // Newest first: the run's start, unless its record comes first.
        let run = stored
            .iter()
            .filter(|e| e.at < before)
            .find_map(|e| {
                if e.kind == "job_ran" {
                    return Some(None);
                }
                upkeep_core::job::started_of(e)
                    .filter(|(p, _)| p == pid)
                    .map(|(_, by)| Some((e.at, by)))
            })
            .flatten();
        let Some((started, by)) = run else { continue };
        let ended = cut.filter(|c| *c >= started).unwrap_or_else(|| clock.now());
        let due = matches!(by, upkeep_core::Actor::Upkeep)
            .then(|| job.schedule.last_at_or_before(started))
            .flatten();
        tracing::info!(service = %name, pid, %started, "a run was cut short by the last daemon's death");
        let kind = EventKind::JobRan {
            started,
            due,
            by,
            status: upkeep_core::ExitStatus {
                code: None,
                signal: None,
            },
            duration_ms: started.duration_until(ended).as_millis().max(0) as u64,
            output: Vec::new(),
            output_dropped: 0,
            interrupted: true,
        };
        let _ = events
            .send(Event {
                at: ended,
                service: Some(name.clone()),
                kind,
            })
            .await;
    }
}

/// The last daemon's last sign of life, from `<data_dir>/alive` (see `daemon::heartbeat`).
pub fn last_alive(alive: &File) -> Option<jiff::Timestamp> {
    use std::io::Read;
    let mut text = String::new();
    let _ = (&mut &*alive).take(64).read_to_string(&mut text);
    text.trim()
        .parse::<i64>()
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
}

/// The last daemon may have been killed: from its last sign of life (its heartbeat, or the
/// service's last change if later) until `start`, nobody watched. Each service whose last
/// recorded state was not `stopped` gets a change to `unknown` at that moment, so that reports
/// count the gap apart instead of as up (or down) (issue 14, E21). A daemon that stopped
/// cleanly stopped its services first; probe-only services it could not stop are unwatched
/// all the same. `last` is the store's report of `[start, start)`: each service's last change
/// before `start`.
fn unwatched_time(
    last_alive: jiff::Timestamp,
    last: upkeep_core::report::ReportInputs,
    start: jiff::Timestamp,
) -> Vec<Event> {
    last.transitions
        .into_iter()
        .filter_map(|t| {
            let since = t.at.max(last_alive);
            if matches!(t.to, State::Stopped | State::Unknown) || since >= start {
                return None;
            }
            Some(Event {
                at: since,
                service: Some(t.service),
                kind: EventKind::StatusChanged {
                    from: t.to,
                    to: State::Unknown,
                },
            })
        })
        .collect()
}

/// Records the unwatched time before `start` (see [`unwatched_time`]). False if the store
/// could not say what came before.
pub async fn record_unwatched_time(
    last_alive: Option<jiff::Timestamp>,
    store: &dyn Store,
    events: &mpsc::Sender<Event>,
    start: jiff::Timestamp,
) -> bool {
    let Some(last_alive) = last_alive else {
        return true; // a first start, or a data dir from before the heartbeat: nothing known
    };
    let Ok(last) = store.report_inputs(start, start).await else {
        return false;
    };
    for event in unwatched_time(last_alive, last, start) {
        let _ = events.send(event).await;
    }
    true
}

/// Stores the config the daemon started on and records it applied, dated `at`. After an
/// upgrade (`upgraded`) nothing was applied: the new image runs the config the last one ran
/// (an upgrade with edits not reloaded is refused), so its revision is stored if it is not
/// yet (a no-op when it is) and no event says every service was added (break-it, session 10).
pub async fn apply_revision(
    store: &dyn Store,
    config: &Config,
    events: &mpsc::Sender<Event>,
    at: jiff::Timestamp,
    upgraded: bool,
) -> Result<(), upkeep_store::Error> {
    let revision = store
        .save_revision(&config.path.display().to_string(), &config.source)
        .await?;
    if upgraded {
        return Ok(());
    }
    let _ = events
        .send(Event {
            at,
            service: None,
            kind: EventKind::ConfigApplied {
                revision,
                added: config.services.len() as u32,
                removed: 0,
                changed: 0,
                by: upkeep_core::Actor::Upkeep,
            },
        })
        .await;
    Ok(())
}

/// What [`later`] needs of the start it completes.
pub struct Later {
    pub store: Arc<LazyStore>,
    /// When the daemon started (its clock's time): the end of the unwatched time, the date of
    /// the revision, and what tells the last daemon's incidents and maintenance from ours.
    pub started: jiff::Timestamp,
    pub last_alive: Option<jiff::Timestamp>,
    /// The config the daemon started on.
    pub config: Config,
    /// The processes [`stop_stale_processes`] recorded stopped, by service: not again.
    pub stopped: BTreeMap<ServiceName, u32>,
    /// This start is an upgrade's new image: its config was applied by the last one.
    pub upgraded: bool,
}

/// Takes up what start-up would have read from the store (see the module's comment), once
/// it is open and holds every journaled event, retrying while it fails.
pub async fn later(daemon: Arc<Daemon>, l: Later) {
    l.store.opened().await;
    let mut backoff = Duration::from_secs(1);
    let (records, unfinished, last) = loop {
        // An empty journal once the store is open: every journaled event of the last
        // daemons is stored (the journal is stored from its front).
        let mut health = daemon.store_health.clone();
        if health.wait_for(|h| h.journaled == 0).await.is_err() {
            return;
        }
        let store = daemon.store.as_ref();
        match tokio::try_join!(
            store.services(),
            store.unfinished(),
            store.report_inputs(l.started, l.started)
        ) {
            Ok(read) => break read,
            Err(e) => {
                tracing::debug!(
                    "the store is back but not answering yet: {}",
                    e.with_causes()
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    };
    tracing::info!("the store is back: taking up what the last daemon left");
    let events = &daemon.wiring.supervisor.events;
    if let Some(last_alive) = l.last_alive {
        for event in unwatched_time(last_alive, last, l.started) {
            let _ = events.send(event).await;
        }
    }
    // Only what the last daemon left: what this one opened or began, state knows.
    let snapshot = daemon.snapshot.borrow().clone();
    for (name, u) in unfinished {
        let Some(status) = snapshot.services.get(&name) else {
            continue;
        };
        let u = Unfinished {
            incident: u
                .incident
                .filter(|(since, _)| *since < l.started && status.incident_since.is_none()),
            maintenance: u
                .maintenance
                .filter(|m| m.since < l.started && status.maintenance.is_none()),
            resolved_by_hand: u
                .resolved_by_hand
                .filter(|since| *since < l.started && status.incident_since.is_none()),
            // Too late: this daemon started it already, or it is down or stopped by now.
            exited: false,
            failed: None,
            last_exit: None,
        };
        if u != Unfinished::default() {
            tracing::info!(service = %name, ?u, "taking up what the last daemon left unfinished");
            let _ = daemon
                .wiring
                .state
                .send(StateControl::Resume(name, u))
                .await;
        }
    }
    // Processes only the store knew of (the run records knew of the rest, and stopped them):
    // gone, and not this daemon's. As the store stood when this daemon started, and when
    // each earlier daemon that started without it did (`pending`: one killed before this
    // point buried what only the store knew under starts of its own).
    let pending = Pending::at(&daemon.data_dir);
    let mut boundaries = pending.read().await;
    if !boundaries.contains(&l.started) {
        boundaries.push(l.started);
    }
    let skip = |name: &ServiceName, pid: u32, ticks: u64| {
        snapshot.services.get(name).and_then(|s| s.pid) == Some(pid)
            || l.stopped.get(name) == Some(&pid)
            || procfs::running_start_ticks(pid) == Some(ticks)
    };
    match record_buried_starts(
        daemon.store.as_ref(),
        &boundaries,
        skip,
        events,
        &daemon.clock,
    )
    .await
    {
        Ok(still) => pending.keep_only(&still).await,
        Err(e) => tracing::warn!(
            "cannot look for runs only the store knew of; the next start looks again: {}",
            e.with_causes()
        ),
    }
    record_cut_runs(
        &l.config,
        daemon.store.as_ref(),
        &l.stopped,
        l.last_alive,
        l.started,
        events,
        &daemon.clock,
    )
    .await;
    {
        let live = daemon.live.lock().await;
        for r in &records {
            if let Some(d) = live.desired.get(&r.name).filter(|d| **d != r.desired) {
                tracing::warn!(
                    service = %r.name,
                    stored = r.desired.as_str(),
                    now = d.as_str(),
                    "the store's desired state was not known at start; it now follows the data dir"
                );
            }
        }
    }
    daemon.intent.mark_behind("the store was away at start");
    // After any reload made meanwhile, this revision is not the running one: not stored.
    let _one = daemon.reloading.lock().await;
    let current = daemon.live.lock().await.config.source == l.config.source;
    if current
        && let Err(e) = apply_revision(
            daemon.store.as_ref(),
            &l.config,
            events,
            l.started,
            l.upgraded,
        )
        .await
    {
        tracing::error!(
            "cannot store the config revision the daemon started on; the next reload or start stores it: {}",
            e.with_causes()
        );
    }
}

/// `<data_dir>/takeover-pending`: the start times (ms, a line each) of daemons that started
/// without the store, so could not yet take up the runs only the store knew of (a daemon
/// killed after it cleared a run's record at its end and before its `exited` was kept leaves
/// that run known to the store alone). One killed before its [`later`] did buries those runs
/// under starts of its own, where the next daemon, looking at each service's last start
/// only, would never see them. So each such time stays here until a daemon that reads the
/// store found nothing left to record as of it ([`record_buried_starts`]).
pub struct Pending(std::path::PathBuf);

impl Pending {
    pub fn at(data_dir: &std::path::Path) -> Self {
        Self(data_dir.join("takeover-pending"))
    }

    pub async fn read(&self) -> Vec<jiff::Timestamp> {
        let path = self.0.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i64>().ok())
                .filter_map(|ms| jiff::Timestamp::from_millisecond(ms).ok())
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Adds `started`, durably, before this daemon starts any service.
    pub async fn add(&self, started: jiff::Timestamp) {
        let mut all = self.read().await;
        all.push(started);
        self.keep_only(&all).await;
    }

    /// Leaves only `times` (none: the file goes), replaced at once (synced: off the runtime).
    pub async fn keep_only(&self, times: &[jiff::Timestamp]) {
        let path = self.0.clone();
        let text: String = times
            .iter()
            .map(|t| format!("{}\n", t.as_millisecond()))
            .collect();
        let result = tokio::task::spawn_blocking(move || {
            if text.is_empty() {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                }
            } else {
                crate::ops::reload::write_config(&path, &text)
            }
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        if let Err(e) = result {
            tracing::error!(path = %self.0.display(), "cannot keep the starts to look at again: {e}");
        }
    }
}

/// For each time in `boundaries`, each service's last start before it (the store's
/// `running_before`) with no end on record since, and not `skip`ped (ours, stopped by this
/// daemon, or still running), is recorded `stale_stopped`. Answers the times something was
/// recorded for: to look at again once that is stored.
pub async fn record_buried_starts(
    store: &dyn Store,
    boundaries: &[jiff::Timestamp],
    skip: impl Fn(&ServiceName, u32, u64) -> bool,
    events: &mpsc::Sender<Event>,
    clock: &Clock,
) -> Result<Vec<jiff::Timestamp>, upkeep_store::Error> {
    let mut still = Vec::new();
    let mut recorded = std::collections::BTreeSet::new();
    for b in boundaries {
        let mut any = false;
        for (name, (pid, ticks)) in store.running_before(*b).await? {
            if skip(&name, pid, ticks) || recorded.contains(&(name.clone(), pid)) {
                continue;
            }
            if ended_since_start(store, &name, pid, ticks).await? {
                continue;
            }
            tracing::info!(service = %name, pid, "a run only the store knew of ended unseen");
            let _ = events
                .send(clock.event(&name, EventKind::StaleStopped { pid }))
                .await;
            recorded.insert((name, pid));
            any = true;
        }
        if any {
            still.push(*b);
        }
    }
    Ok(still)
}

/// Whether the store holds an end (`exited`, `stale_stopped`) of the run of `pid` that began
/// with `ticks`: newer than its start, among the service's latest events.
async fn ended_since_start(
    store: &dyn Store,
    name: &ServiceName,
    pid: u32,
    ticks: u64,
) -> Result<bool, upkeep_store::Error> {
    for e in store.events(Some(name), 10_000).await? {
        let same = e.detail["pid"].as_u64() == Some(u64::from(pid));
        match e.kind.as_str() {
            "exited" | "stale_stopped" if same => return Ok(true),
            "started" if same && e.detail["start_ticks"].as_u64() == Some(ticks) => {
                return Ok(false);
            }
            _ => {}
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::report::{ReportInputs, Transition};

    /// A run only the store knew of (its record cleared at its end, its `exited` lost), then a
    /// daemon that started without the store, started the service again and was killed: the
    /// run is buried under that start, and found as of the pending time; a run that ended on
    /// record is not recorded again, and a time that needed nothing is dropped.
    #[tokio::test]
    async fn a_run_buried_by_a_daemon_that_started_without_the_store_is_recorded() {
        use upkeep_store::EventLog;
        let dir = tempfile::tempdir().unwrap();
        let node = upkeep_store::Node {
            id: "n".into(),
            name: "n".into(),
        };
        let store = upkeep_store::open(
            &upkeep_store::Location::Sqlite(dir.path().join("s.db")),
            &node,
        )
        .await
        .unwrap();
        let web = ServiceName::new("web").unwrap();
        let ev = |at: i64, kind: EventKind| Event {
            at: t(at),
            service: Some(web.clone()),
            kind,
        };
        let started = |pid: u32| EventKind::Started {
            pid,
            start_ticks: u64::from(pid) * 10,
            by: upkeep_core::Actor::Upkeep,
        };
        store
            .append(
                1,
                &[
                    ev(1, started(100)),
                    // A daemon starts at 2 without the store, starts 200; 200 ends on record.
                    ev(3, started(200)),
                    ev(4, EventKind::StaleStopped { pid: 200 }),
                    // Another starts at 5, starts 300, is killed.
                    ev(6, started(300)),
                ],
            )
            .await
            .unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let clock = Clock::default();
        let still = record_buried_starts(&store, &[t(2), t(5)], |_, _, _| false, &tx, &clock)
            .await
            .unwrap();
        drop(tx);
        let mut sent = Vec::new();
        while let Some(e) = rx.recv().await {
            sent.push(e.kind);
        }
        assert_eq!(sent, vec![EventKind::StaleStopped { pid: 100 }]);
        assert_eq!(still, vec![t(2)]);
        // Once recorded, nothing more as of that time.
        store
            .append(5, &[ev(7, EventKind::StaleStopped { pid: 100 })])
            .await
            .unwrap();
        let (tx, _rx) = mpsc::channel(16);
        let still = record_buried_starts(&store, &[t(2)], |_, _, _| false, &tx, &clock)
            .await
            .unwrap();
        assert!(still.is_empty(), "{still:?}");
    }

    fn t(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    /// The unwatched time runs from the later of the heartbeat and the service's last change
    /// to the start, and only for services that were not stopped.
    #[test]
    fn unwatched_time_runs_from_the_last_sign_of_life_to_the_start() {
        let name = |s: &str| ServiceName::new(s).unwrap();
        let last = ReportInputs {
            transitions: vec![
                Transition {
                    service: name("up"),
                    at: t(10),
                    to: State::Up,
                },
                Transition {
                    service: name("late"),
                    at: t(70),
                    to: State::Down,
                },
                Transition {
                    service: name("stopped"),
                    at: t(20),
                    to: State::Stopped,
                },
            ],
            ..Default::default()
        };
        let got = unwatched_time(t(60), last, t(100));
        let got: Vec<(String, jiff::Timestamp)> = got
            .into_iter()
            .map(|e| (e.service.unwrap().to_string(), e.at))
            .collect();
        assert_eq!(got, [("up".into(), t(60)), ("late".into(), t(70))]);
    }
}
