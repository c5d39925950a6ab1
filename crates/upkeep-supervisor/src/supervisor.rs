//! [`Supervisor`]: one task per managed service, owning its process group.
//!
//! The task waits on these things and nothing else: a command from the daemon, the exit of its
//! process (handed over by the reaper the moment it is reaped), the end of a backoff delay, a
//! change of its [`Permit`] (what its dependencies allow, from the daemon's dependency gate), a
//! note from its readiness signals (`ready/`), the watchdog's deadline, and shutdown. It never
//! polls.
//!
//! Every start goes through the permit: while it says wait, the service is held (a `waiting`
//! event says for what) and starts the moment it says go. The gate decides; the supervisor
//! only obeys: it stops while waiting if the permit says so, and restarts when the permit's
//! restart count moves.
//!
//! On an exit it first stops whatever is left of the group (a kill -9 of npm must not leave node
//! holding the port), then asks the restart policy, restarts, and only then sends the events:
//! event writes never sit on the restart path.
//!
//! Backoff delays, crash-loop windows, uptimes and event stamps come from the injected
//! [`Clock`] (`SupervisorDeps::clock`), so a test moves time through a crash loop instead of
//! sleeping. Stop timeouts stay on tokio's clock: they bound how long real processes get.

use std::os::fd::AsFd;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use upkeep_config::{ManagedConfig, ServiceType};
use upkeep_core::{Actor, Clock, Event, EventKind, ExitStatus, Permit, ServiceName};

use crate::forking;
use crate::group::{StopOutcome, Tree, stop_tree};
use crate::logs::{LogHub, Stream};
use crate::policy::{Decision, RestartTracker};
use crate::ready::{Note, NoteKind, Signals};
use upkeep_sys::{Lineage, Reaper, ServiceLineage};

/// Requests to a supervisor. `done` is answered when the request has been carried out.
#[derive(Debug)]
pub enum SupervisorCommand {
    Start {
        by: Actor,
        done: Option<oneshot::Sender<()>>,
    },
    Stop {
        by: Actor,
        done: Option<oneshot::Sender<()>>,
    },
    Restart {
        by: Actor,
        done: Option<oneshot::Sender<()>>,
    },
    /// A reload changed this service's definition: take it, and restart if running.
    Reconfigure(Box<ManagedConfig>),
    /// Probes say it is down: stop the group and restart it under the restart policy, exactly
    /// as after a crash (same backoff, same crash-loop limit).
    Heal { reason: String },
    /// A drill is about to inject a fault into the current run (`armed`): its end restarts at
    /// once and does not count towards the crash-loop limit. `armed: false` takes that back
    /// (the drill gave up), so that the next real crash counts.
    Drill {
        armed: bool,
        done: Option<oneshot::Sender<()>>,
    },
    /// Send `signal` to the running main process, or with `group` to its whole tree (process
    /// group and cgroup); `reload` says it is the service's reload signal. Nothing restarts.
    Signal {
        signal: i32,
        group: bool,
        reload: bool,
        by: Actor,
        done: oneshot::Sender<Result<Signalled, SignalError>>,
    },
    /// A job fell due at `due`: run it, unless a run is still going (a job never overlaps) or
    /// an operator stopped it (until `upkeep start`). `answer` says which.
    RunJob {
        due: jiff::Timestamp,
        by: Actor,
        answer: oneshot::Sender<JobStart>,
    },
    /// A planned restart (`restart_at`): restart it if it runs, saying why; neither a crash
    /// (no backoff, not counted: the crash-loop count begins again) nor an intervention. A
    /// stopped service stays stopped.
    Planned { reason: String },
    /// A watched file changed (`watch`): restart it if it runs, saying why, counted as a
    /// restart and in the crash-loop window as a crash's (no backoff), unless the window is
    /// full. Not an intervention. `answer` says which.
    Changed {
        reason: String,
        answer: oneshot::Sender<ChangeRestart>,
    },
    /// The daemon re-executes itself (`upkeep upgrade`): let go of the running process
    /// without stopping it, answer what the next daemon needs to take it over, and end.
    Release {
        done: oneshot::Sender<crate::adopt::Released>,
    },
}

/// A signal sent (see [`SupervisorCommand::Signal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signalled {
    /// The main process it went to (with `group`, the tree led by it).
    pub pid: u32,
}

/// Why a signal was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    #[error("service `{0}` is not running")]
    NotRunning(ServiceName),
    #[error("the supervisor of `{0}` is gone")]
    Gone(ServiceName),
}

/// What became of a job's due run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStart {
    /// It began (or waits for its dependencies).
    Started,
    /// The last run is still going: skipped.
    StillRunning,
    /// An operator stopped the job: its schedule waits for `upkeep start`.
    Stopped,
}

/// What became of a restart for a changed file ([`SupervisorCommand::Changed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRestart {
    Restarted,
    /// Not running (stopped, backing off, failed, waiting): nothing to restart.
    NotRunning,
    /// `max_restarts` restarts (crashes and changes) within `window` already: not restarted.
    OverBudget {
        restarts: u32,
        window: Duration,
    },
}

/// The daemon's side of a supervisor.
#[derive(Clone, Debug)]
pub struct SupervisorHandle {
    commands: mpsc::Sender<SupervisorCommand>,
    /// Cancels this one supervisor (service removed); it stops its group first.
    cancel: CancellationToken,
    /// The last `STATUS=` of the current run (see `ready/notify.rs`).
    notify_status: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl SupervisorHandle {
    /// Sends `make(done)` and waits until the supervisor has carried it out.
    pub async fn request(
        &self,
        make: impl FnOnce(Option<oneshot::Sender<()>>) -> SupervisorCommand,
    ) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(make(Some(tx))).await.is_err() {
            return false;
        }
        rx.await.is_ok()
    }

    /// Restart because probes say down (see [`SupervisorCommand::Heal`]).
    pub async fn heal(&self, reason: String) {
        let _ = self.commands.send(SupervisorCommand::Heal { reason }).await;
    }

    /// A job fell due at `due`: runs it unless a run is still going or an operator stopped
    /// it. None if the supervisor is gone.
    pub async fn run_job(&self, due: jiff::Timestamp, by: Actor) -> Option<JobStart> {
        let (answer, answered) = oneshot::channel();
        let cmd = SupervisorCommand::RunJob { due, by, answer };
        self.commands.send(cmd).await.ok()?;
        answered.await.ok()
    }

    /// A planned restart (see [`SupervisorCommand::Planned`]).
    pub async fn planned(&self, reason: String) {
        let _ = self
            .commands
            .send(SupervisorCommand::Planned { reason })
            .await;
    }

    /// A watched file changed (see [`SupervisorCommand::Changed`]). None if the supervisor
    /// is gone.
    pub async fn changed(&self, reason: String) -> Option<ChangeRestart> {
        let (answer, answered) = oneshot::channel();
        let cmd = SupervisorCommand::Changed { reason, answer };
        self.commands.send(cmd).await.ok()?;
        answered.await.ok()
    }

    pub async fn reconfigure(&self, cfg: ManagedConfig) {
        let _ = self
            .commands
            .send(SupervisorCommand::Reconfigure(Box::new(cfg)))
            .await;
    }

    /// Sends a signal to the running service (see [`SupervisorCommand::Signal`]).
    pub async fn signal(
        &self,
        name: &ServiceName,
        signal: i32,
        group: bool,
        reload: bool,
        by: Actor,
    ) -> Result<Signalled, SignalError> {
        let (done, rx) = oneshot::channel();
        let cmd = SupervisorCommand::Signal {
            signal,
            group,
            reload,
            by,
            done,
        };
        if self.commands.send(cmd).await.is_err() {
            return Err(SignalError::Gone(name.clone()));
        }
        rx.await
            .unwrap_or_else(|_| Err(SignalError::Gone(name.clone())))
    }

    /// Lets go of the running process without stopping it (`upkeep upgrade`), with what the
    /// supervisor knew; the supervisor ends. None if the supervisor had ended.
    pub async fn release(&self) -> Option<crate::adopt::Released> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(SupervisorCommand::Release { done: tx })
            .await
            .ok()?;
        rx.await.ok()
    }

    /// Stops the service for good (removed from config, or daemon shutdown of one service).
    pub fn remove(&self) {
        self.cancel.cancel();
    }

    /// What the running process last said in a `STATUS=` line, if anything.
    pub fn notify_status(&self) -> Option<String> {
        self.notify_status
            .lock()
            .expect("status text poisoned")
            .clone()
    }
}

pub(crate) struct Running {
    /// The main process: the spawned one, or a forking service's daemon.
    pub pid: u32,
    /// The pid its output pipes are kept under (see `Adoption::pipes`).
    pub pipes: u32,
    /// The keeper lets go of its pipes when the run ends, not at their end (a forking
    /// service's: see `LogHub::capture`).
    pub pipes_until_end: bool,
    /// The keeper holds its readiness pipe (`ready = { fd = N }`) until it is ready.
    pub ready_pipe_kept: bool,
    /// The process group its tree is stopped by (`pid` but for a forking daemon that kept
    /// its start command's group).
    pub pgid: u32,
    pub start_ticks: u64,
    pub started: Instant,
    pub exit: oneshot::Receiver<ExitStatus>,
    /// Its output pipes' readers, so that `upkeep upgrade` can take the pipes back.
    /// A job's run: what its record needs.
    pub job: Option<JobRun>,
    pub captures: Vec<(Stream, crate::logs::Capture)>,
}

impl Running {
    /// The group its tree is stopped by now: a forking daemon recorded in its start command's
    /// group may have made its own since (a `setsid` after its PID file); a group named by
    /// the daemon's pid can only be one it made.
    pub(crate) fn group(&self) -> u32 {
        if self.pgid != self.pid && upkeep_sys::group_exists(self.pid) {
            self.pid
        } else {
            self.pgid
        }
    }
}

/// How a supervisor begins: idle, starting its service, taking over a running one, or taking
/// over what the last image's supervisor carried (`upkeep upgrade`), with its run if any.
#[derive(Debug)]
pub enum Begin {
    Idle,
    Start,
    Adopt(Box<crate::adopt::Adoption>),
    TakeOver(Box<crate::adopt::TakeOver>),
}

/// What a supervisor does first, once its first events are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum First {
    Nothing,
    /// A fresh start (no memory of earlier crashes).
    Start,
    /// A start through its permit, its restart count going on.
    Launch,
}

impl From<bool> for Begin {
    fn from(start: bool) -> Begin {
        if start { Begin::Start } else { Begin::Idle }
    }
}

/// What a job's run record (`job_ran`) is made of, besides its end.
pub(crate) struct JobRun {
    pub started: jiff::Timestamp,
    pub due: Option<jiff::Timestamp>,
    pub by: Actor,
    pub tap: crate::logs::tap::Tap,
}

/// How long a job's record waits for the end of its output after the run ended: the pipes
/// close when the group is gone, which it is by then, unless something escaped it.
const OUTPUT_BOUND: Duration = Duration::from_secs(2);

/// What every supervisor is built from: the daemon's shared plumbing.
#[derive(Clone)]
pub struct SupervisorDeps {
    pub reaper: Reaper,
    pub logs: LogHub,
    /// Where the supervisor's events go (the state task).
    pub events: mpsc::Sender<Event>,
    /// The daemon's records of what it started (cgroups, run records, marks).
    pub lineage: Lineage,
    /// Time for backoff, crash-loop windows, uptimes, the watchdog and event stamps.
    pub clock: Clock,
    /// Where each service's notify socket goes (`<data_dir>/notify`).
    pub notify_dir: std::path::PathBuf,
    /// Every stop enters it first; an upgrade seals it before its hand-over (`seal.rs`).
    pub seal: crate::seal::Seal,
}

pub struct Supervisor {
    pub(crate) name: ServiceName,
    pub(crate) cfg: ManagedConfig,
    reaper: Reaper,
    pub(crate) logs: LogHub,
    events: mpsc::Sender<Event>,
    /// The mark every process of this service carries (see `upkeep_sys::lineage`).
    mark: [(&'static str, String); 2],
    /// This service's cgroup and run record.
    pub(crate) lineage: ServiceLineage,
    commands: mpsc::Receiver<SupervisorCommand>,
    pub(crate) running: Option<Running>,
    /// When the backoff ends, on `clock`.
    pub(crate) restart_at: Option<Instant>,
    pub(crate) tracker: RestartTracker,
    pub(crate) clock: Clock,
    /// A drill's fault will end the current run (see [`SupervisorCommand::Drill`]).
    drill: bool,
    /// What the dependencies allow (from the daemon's gate); None once the gate let go of it.
    permit: Option<watch::Receiver<Permit>>,
    /// Wants to run, and is held by its dependencies: who asked for the start.
    pub(crate) held: Option<Actor>,
    /// What the last `waiting` event said, so that only a new reason is reported.
    told: Option<String>,
    /// The permit's restart count last acted on.
    restarts_seen: u64,
    /// Readiness signals: notify socket, readiness pipe, log watch, watchdog.
    pub(crate) signals: Signals,
    notify_dir: std::path::PathBuf,
    /// It was stopped and has reported it: shutdown need not report it again.
    pub(crate) stopped: bool,
    /// This supervisor's end (removal or shutdown): also ends the wait for a forking
    /// service's PID file, which holds the task.
    cancel: CancellationToken,
    /// A command that ended the wait for a forking service's PID file (a stop, a restart, a
    /// new config): the run loop carries it out next.
    interrupted: Option<SupervisorCommand>,
    /// The scheduled time the next run of a job is for (set by `RunJob`, taken by the spawn).
    job_due: Option<jiff::Timestamp>,
    /// It let go of its process (`upkeep upgrade`): it ends without stopping anything.
    released: bool,
    /// Entered before each stop of a run (see `seal.rs`).
    seal: crate::seal::Seal,
    /// Its run was adopted from a killed daemon and is not our child (see `group::Tree`).
    pub(crate) orphaned: bool,
}

enum Wake {
    Cancelled,
    Command(Option<SupervisorCommand>),
    Exited(ExitStatus),
    BackoffOver,
    /// The permit changed (false: the gate let go of this service).
    Permit(bool),
    Note(Note),
    WatchdogOver,
}

impl Supervisor {
    /// Starts the supervisor of `name` on `tasks`; `begin` says whether to run it now (once
    /// `permit` says go: `true`), or to take over a run an earlier image of the daemon
    /// started (see `adopt.rs`). Cancelling `cancel` stops its process group and ends the task.
    pub fn spawn(
        name: ServiceName,
        cfg: ManagedConfig,
        begin: impl Into<Begin>,
        deps: &SupervisorDeps,
        permit: watch::Receiver<Permit>,
        cancel: CancellationToken,
        tasks: &TaskTracker,
    ) -> SupervisorHandle {
        let (tx, rx) = mpsc::channel(32);
        deps.logs.configure(&name, &cfg.log);
        let span = tracing::info_span!("supervisor", service = %name);
        let lineage = deps.lineage.service(name.as_str());
        let signals = Signals::new(lineage.cgroup().map(|c| c.procs_file()));
        let notify_status = signals.status_text.clone();
        let restarts_seen = permit.borrow().restarts;
        let mut sup = Supervisor {
            mark: deps.lineage.mark(name.as_str()),
            lineage,
            name,
            cfg,
            reaper: deps.reaper.clone(),
            logs: deps.logs.clone(),
            events: deps.events.clone(),
            commands: rx,
            running: None,
            restart_at: None,
            tracker: RestartTracker::default(),
            drill: false,
            clock: deps.clock.clone(),
            restarts_seen,
            permit: Some(permit),
            held: None,
            told: None,
            signals,
            notify_dir: deps.notify_dir.clone(),
            stopped: false,
            cancel: cancel.clone(),
            interrupted: None,
            job_due: None,
            released: false,
            seal: deps.seal.clone(),
            orphaned: false,
        };
        sup.configure_signals();
        let (start, first) = match begin.into() {
            Begin::Idle => (First::Nothing, Vec::new()),
            Begin::Start => (First::Start, Vec::new()),
            Begin::Adopt(mut a) => match a.carried.take() {
                // After a killed daemon: its note said what the supervisor knew.
                Some(carried) => sup.take_over(crate::adopt::TakeOver {
                    carried,
                    adoption: Some(*a),
                }),
                None => (First::Nothing, vec![sup.resume(*a)]),
            },
            Begin::TakeOver(t) => sup.take_over(*t),
        };
        let token = cancel.clone();
        tasks.spawn(sup.run(token, start, first).instrument(span));
        SupervisorHandle {
            commands: tx,
            cancel,
            notify_status,
        }
    }

    /// Opens (or closes) the notify socket as the config asks.
    fn configure_signals(&mut self) {
        let node = self.mark[0].1.clone();
        self.signals
            .configure(&self.cfg, &self.notify_dir, &node, &self.name);
    }

    async fn run(mut self, cancel: CancellationToken, start: First, first: Vec<Event>) {
        self.emit(first).await;
        match start {
            First::Nothing => {}
            First::Start => self.start(Actor::Upkeep).await,
            First::Launch => self.launch(Actor::Upkeep, Vec::new()).await,
        }
        loop {
            if let Some(cmd) = self.interrupted.take() {
                // A release that ended the wait for a PID file is carried out as in the loop.
                if let SupervisorCommand::Release { done } = cmd {
                    let _ = done.send(self.release().await);
                    self.released = true;
                    return;
                }
                self.handle(cmd).await;
                continue;
            }
            let wake = {
                let exit = async {
                    match self.running.as_mut() {
                        // The reaper never drops a registered sender unreaped; treat it as unknown.
                        Some(r) => (&mut r.exit).await.unwrap_or(ExitStatus {
                            code: None,
                            signal: None,
                        }),
                        None => std::future::pending().await,
                    }
                };
                let backoff = async {
                    match self.restart_at {
                        Some(at) => self.clock.sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let watchdog = async {
                    match self.signals.watchdog_at {
                        Some(at) => self.clock.sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let permit = async {
                    match self.permit.as_mut() {
                        Some(p) => p.changed().await.is_ok(),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => Wake::Cancelled,
                    status = exit => Wake::Exited(status),
                    cmd = self.commands.recv() => Wake::Command(cmd),
                    open = permit => Wake::Permit(open),
                    Some(note) = self.signals.notes.recv() => Wake::Note(note),
                    _ = watchdog => Wake::WatchdogOver,
                    _ = backoff => Wake::BackoffOver,
                }
            };
            match wake {
                Wake::Cancelled | Wake::Command(None) => break,
                Wake::Exited(status) => self.on_exit(status).await,
                Wake::BackoffOver => {
                    self.restart_at = None;
                    self.launch(Actor::Upkeep, Vec::new()).await;
                }
                Wake::Command(Some(SupervisorCommand::Release { done })) => {
                    let _ = done.send(self.release().await);
                    self.released = true;
                    return;
                }
                Wake::Command(Some(cmd)) => self.handle(cmd).await,
                Wake::Permit(true) => self.on_permit().await,
                // The gate let go of this service (it is being removed): go on without it.
                Wake::Permit(false) => self.permit = None,
                Wake::Note(note) => self.on_note(note).await,
                Wake::WatchdogOver => self.watchdog_missed().await,
            }
        }
        // Stopped already (an ordered shutdown, an operator), with nothing left to stop:
        // said once is enough.
        if !(self.stopped && self.running.is_none()) {
            self.stop(Actor::Upkeep).await;
        }
    }

    /// The permit as it is now (go, once the gate let go).
    fn permit(&self) -> Permit {
        self.permit
            .as_ref()
            .map(|p| p.borrow().clone())
            .unwrap_or_default()
    }

    /// Starts a run, unless the dependencies hold it: then it waits (saying for what) and
    /// starts when the permit says go.
    async fn launch(&mut self, by: Actor, mut before: Vec<Event>) {
        let permit = self.permit();
        self.stopped = false;
        match permit.wait {
            Some(reason) => {
                self.held = Some(by);
                if self.told.as_ref() != Some(&reason) {
                    before.push(self.ev(EventKind::Waiting {
                        reason: reason.clone(),
                    }));
                    self.told = Some(reason);
                }
                self.emit(before).await;
            }
            None => {
                self.held = None;
                self.told = None;
                // A new run starts with the dependencies as they are: earlier restart
                // requests are not for it.
                self.restarts_seen = permit.restarts;
                self.spawn_and_report(by, before).await;
            }
        }
    }

    /// What the dependencies allow changed: start a held service, stop a running one the
    /// permit says to stop, restart one whose dependency came back, or report a new reason.
    async fn on_permit(&mut self) {
        let permit = match self.permit.as_mut() {
            Some(p) => p.borrow_and_update().clone(),
            None => return,
        };
        match &permit.wait {
            Some(reason) if permit.stop && self.running.is_some() => {
                let Some(_inside) = self.enter("stopping") else {
                    return;
                };
                tracing::info!(%reason, "stopping while a dependency is down");
                self.stop_process(Actor::Upkeep).await;
                self.launch(Actor::Upkeep, Vec::new()).await;
            }
            Some(reason) => {
                if self.held.is_some() && self.told.as_ref() != Some(reason) {
                    self.told = Some(reason.clone());
                    let waiting = self.ev(EventKind::Waiting {
                        reason: reason.clone(),
                    });
                    self.emit(vec![waiting]).await;
                }
            }
            None => {
                if let Some(by) = self.held.take() {
                    if self.running.is_none() && self.restart_at.is_none() {
                        self.launch(by, Vec::new()).await;
                    }
                } else if self.running.is_some() && permit.restarts != self.restarts_seen {
                    let Some(_inside) = self.enter("restarting") else {
                        return;
                    };
                    tracing::info!(reason = %permit.restart_reason, "restarting: a dependency is back");
                    let restart = self.ev(EventKind::DependencyRestart {
                        reason: permit.restart_reason.clone(),
                    });
                    self.emit(vec![restart]).await;
                    self.stop_process(Actor::Upkeep).await;
                    self.tracker.reset();
                    self.launch(Actor::Upkeep, Vec::new()).await;
                }
            }
        }
        self.restarts_seen = self.restarts_seen.max(permit.restarts);
    }

    /// A note from the current run's readiness signals (an earlier run's is dropped).
    async fn on_note(&mut self, note: Note) {
        if self.running.as_ref().is_none_or(|r| r.pid != note.pgid) {
            return;
        }
        match note.kind {
            NoteKind::Ready(how) => {
                if !self.signals.ready {
                    self.signals.ready = true;
                    // Noted first: a daemon killed in between lets go of it itself.
                    self.write_note();
                    self.let_go_ready_pipe();
                    self.signals.arm_watchdog(&self.cfg, self.clock.instant());
                    let ready = self.ev(EventKind::Ready { how: how.into() });
                    self.emit(vec![ready]).await;
                }
            }
            NoteKind::Status(text) => {
                *self
                    .signals
                    .status_text
                    .lock()
                    .expect("status text poisoned") = Some(text);
            }
            // The watchdog runs from the ready signal on; a ping re-arms it.
            NoteKind::Ping => {
                if self.signals.watchdog_at.is_some() {
                    self.signals.arm_watchdog(&self.cfg, self.clock.instant());
                }
            }
            NoteKind::Trigger => self.watchdog_missed().await,
        }
    }

    /// No ping in time (or the service said it is hung): state decides (a heal, by default).
    /// Once per run: the watchdog is disarmed until the next one is ready.
    async fn watchdog_missed(&mut self) {
        self.signals.watchdog_at = None;
        let Some(timeout) = self.cfg.watchdog else {
            return;
        };
        tracing::warn!(?timeout, "watchdog: the service missed its ping");
        let missed = self.ev(EventKind::WatchdogMissed {
            timeout_ms: timeout.as_millis() as u64,
        });
        self.emit(vec![missed]).await;
    }

    async fn handle(&mut self, cmd: SupervisorCommand) {
        match cmd {
            SupervisorCommand::Start { by, done } => {
                self.start(by).await;
                ack(done);
            }
            // Refused once an upgrade's hand-over began: `done` dropped says so.
            SupervisorCommand::Stop { by, done } => {
                let Some(_inside) = self.enter("stopping") else {
                    return;
                };
                self.stop(by).await;
                ack(done);
            }
            SupervisorCommand::Restart { by, done } => {
                let Some(_inside) = self.enter("restarting") else {
                    return;
                };
                self.emit(vec![
                    self.ev(EventKind::RestartRequested { by: by.clone() }),
                ])
                .await;
                self.stop_process(by).await;
                self.tracker.reset();
                self.restart_at = None;
                // The operator's act is the request above; upkeep carries out the start.
                self.launch(Actor::Upkeep, Vec::new()).await;
                ack(done);
            }
            SupervisorCommand::Heal { reason } => {
                if self.running.is_none() {
                    return;
                }
                // The next image's state asks again if the run is still down.
                let Some(_inside) = self.enter("healing") else {
                    return;
                };
                let Some(mut run) = self.running.take() else {
                    return;
                };
                tracing::info!(%reason, "healing: ending the run as failed");
                let record = run.job.take();
                let Ended {
                    outcome,
                    status,
                    uptime,
                    exited,
                } = self.end_run(run).await;
                let cleaned = self.ev(EventKind::GroupCleaned {
                    signalled: outcome.signalled,
                    killed: outcome.killed,
                });
                let mut ended = vec![exited, cleaned];
                if let Some(j) = record {
                    ended.push(self.job_ran(j, status, uptime).await);
                }
                // A heal is a failure whatever the exit code: on-failure services restart too.
                let failed = ExitStatus {
                    code: status.code.filter(|c| *c != 0).or(Some(1)),
                    ..status
                };
                self.after_exit(failed, uptime, ended).await;
            }
            // Taken in `run`, which ends after it.
            SupervisorCommand::Release { .. } => {}
            SupervisorCommand::Drill { armed, done } => {
                self.drill = armed && self.running.is_some();
                ack(done);
            }
            SupervisorCommand::Signal {
                signal,
                group,
                reload,
                by,
                done,
            } => {
                let sent = self.send_signal(signal, group, reload, by).await;
                let _ = done.send(sent);
            }
            SupervisorCommand::RunJob { due, by, answer } => {
                let start = if self.running.is_some() || self.held.is_some() {
                    JobStart::StillRunning
                } else if self.stopped {
                    JobStart::Stopped
                } else {
                    self.job_due = Some(due);
                    self.start(by).await;
                    JobStart::Started
                };
                let _ = answer.send(start);
            }
            SupervisorCommand::Planned { reason } => {
                if self.running.is_none() {
                    return;
                }
                let Some(_inside) = self.enter("restarting") else {
                    return;
                };
                tracing::info!(%reason, "planned restart");
                let planned = self.ev(EventKind::RestartPlanned {
                    reason,
                    counted: false,
                });
                self.emit(vec![planned]).await;
                self.stop_process(Actor::Upkeep).await;
                self.tracker.reset();
                self.restart_at = None;
                self.launch(Actor::Upkeep, Vec::new()).await;
            }
            SupervisorCommand::Changed { reason, answer } => {
                let _ = answer.send(self.restart_for_change(reason).await);
            }
            SupervisorCommand::Reconfigure(cfg) => {
                // Sealed: the run goes on as it is, and the next image reads the config.
                let inside = match self.running {
                    Some(_) => match self.enter("restarting") {
                        Some(inside) => Some(inside),
                        None => return,
                    },
                    None => None,
                };
                self.cfg = *cfg;
                self.logs.configure(&self.name, &self.cfg.log);
                if inside.is_some() {
                    self.stop_process(Actor::Upkeep).await;
                    self.configure_signals();
                    self.tracker.reset();
                    self.launch(Actor::Upkeep, Vec::new()).await;
                } else {
                    self.configure_signals();
                }
            }
        }
    }

    /// Restarts the run because a watched file changed, counted as a restart (see
    /// [`SupervisorCommand::Changed`]).
    async fn restart_for_change(&mut self, reason: String) -> ChangeRestart {
        if self.running.is_none() {
            return ChangeRestart::NotRunning;
        }
        // Entered first: a restart an upgrade's hand-over holds off is not counted.
        let Some(_inside) = self.enter("restarting") else {
            return ChangeRestart::NotRunning;
        };
        if let Err(restarts) = self.tracker.on_change(&self.cfg, self.clock.instant()) {
            return ChangeRestart::OverBudget {
                restarts,
                window: self.cfg.window,
            };
        }
        tracing::info!(%reason, "restart: a watched file changed");
        let planned = self.ev(EventKind::RestartPlanned {
            reason,
            counted: true,
        });
        self.emit(vec![planned]).await;
        self.stop_process(Actor::Upkeep).await;
        self.restart_at = None;
        self.launch(Actor::Upkeep, Vec::new()).await;
        ChangeRestart::Restarted
    }

    /// Enters the seal to stop its run (`doing`: `stopping`, `restarting`), unless an upgrade's
    /// hand-over began: then None, logged, and what would have stopped it is not done (the
    /// next image takes this service over as it is).
    fn enter(&self, doing: &str) -> Option<crate::seal::Inside> {
        match self.seal.enter(format!("{} ({doing})", self.name)) {
            Ok(inside) => Some(inside),
            Err(e) => {
                tracing::warn!(doing, "not done: {e}");
                None
            }
        }
    }

    /// Sends `signal` to the main process (or its tree) and records it; the run goes on.
    async fn send_signal(
        &mut self,
        signal: i32,
        group: bool,
        reload: bool,
        by: Actor,
    ) -> Result<Signalled, SignalError> {
        let Some(run) = self.running.as_ref() else {
            return Err(SignalError::NotRunning(self.name.clone()));
        };
        let (pid, pgid) = (run.pid, run.group());
        let sig = nix::sys::signal::Signal::try_from(signal)
            .map_err(|_| SignalError::NotRunning(self.name.clone()))?;
        let sent = if group {
            self.tree(pgid).signal_each_once(sig)
        } else {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).is_ok()
        };
        if !sent {
            // Gone between its exit and the reaper's word: the exit is on its way.
            return Err(SignalError::NotRunning(self.name.clone()));
        }
        tracing::info!(signal = sig.as_str(), pid, group, reload, "signal sent");
        let ev = self.ev(EventKind::Signalled {
            signal: sig.as_str().into(),
            pid,
            group,
            reload,
            by,
        });
        self.emit(vec![ev]).await;
        Ok(Signalled { pid })
    }

    /// Starts the service unless it runs (or waits to); a fresh start forgets earlier
    /// crashes.
    async fn start(&mut self, by: Actor) {
        if self.running.is_some() {
            return;
        }
        if self.held.is_some() {
            // Already waiting for its dependencies: the start, when it comes, is this one's.
            self.held = Some(by);
            return;
        }
        self.tracker.reset();
        self.restart_at = None;
        self.launch(by, Vec::new()).await;
    }

    /// Stops the service (if running) and leaves it stopped (no longer waiting either).
    async fn stop(&mut self, by: Actor) {
        self.restart_at = None;
        self.held = None;
        self.told = None;
        self.stop_process(by.clone()).await;
        self.emit(vec![self.ev(EventKind::Stopped { by })]).await;
        self.stopped = true;
    }

    /// Stops the running process group: stop signal, `stop_timeout`, SIGKILL.
    async fn stop_process(&mut self, by: Actor) {
        let Some(run) = self.running.take() else {
            return;
        };
        self.drill = false;
        self.emit(vec![self.ev(EventKind::Stopping { by })]).await;
        let mut run = run;
        let record = run.job.take();
        let ended = self.end_run(run).await;
        let mut events = vec![ended.exited];
        if let Some(j) = record {
            events.push(self.job_ran(j, ended.status, ended.uptime).await);
        }
        self.emit(events).await;
    }

    /// The record of a job's run that ended with `status` after `took`: waits for the end of
    /// its output (bounded), then says it all.
    async fn job_ran(&self, j: JobRun, status: ExitStatus, took: Duration) -> Event {
        let (output, output_dropped) = j.tap.finished(OUTPUT_BOUND).await;
        self.ev(EventKind::JobRan {
            started: j.started,
            due: j.due,
            by: j.by,
            status,
            duration_ms: took.as_millis() as u64,
            output,
            output_dropped,
            interrupted: false,
        })
    }

    /// Stops the group of `run` and collects the leader's exit.
    async fn end_run(&mut self, run: Running) -> Ended {
        self.signals.run_ended();
        self.let_go_pipes(&run);
        let outcome = self.stop_group(run.group()).await;
        let status = exit_status(run.exit).await;
        let uptime = self.clock.instant().saturating_duration_since(run.started);
        Ended {
            outcome,
            status,
            uptime,
            exited: self.exited(run.pid, status, uptime),
        }
    }

    /// The run ended: the keeper lets go of its pipes if their readers do not.
    fn let_go_pipes(&self, run: &Running) {
        if run.pipes_until_end {
            self.logs.let_go(&self.name, run.pipes);
        }
        if run.ready_pipe_kept {
            self.logs.let_go_ready(&self.name, run.pipes);
        }
    }

    /// The run is ready: its readiness pipe is no longer needed by a next daemon.
    fn let_go_ready_pipe(&mut self) {
        if let Some(run) = self.running.as_mut()
            && std::mem::take(&mut run.ready_pipe_kept)
        {
            self.logs.let_go_ready(&self.name, run.pipes);
        }
    }

    /// The tree of the run led by `pgid`: its process group and the service's cgroup.
    fn tree(&self, pgid: u32) -> Tree<'_> {
        Tree {
            pgid,
            cgroup: self.lineage.cgroup(),
            orphaned: self.orphaned,
        }
    }

    /// Stops the tree of the run led by `pgid` the way this service is stopped: its stop
    /// signal, `stop_timeout`, then SIGKILL. Once it is gone, the run record is cleared.
    async fn stop_group(&self, pgid: u32) -> StopOutcome {
        let outcome = stop_tree(
            &self.reaper,
            self.tree(pgid),
            self.cfg.stop_signal,
            self.cfg.stop_timeout,
        )
        .await;
        if !outcome.lingering {
            self.lineage.clear();
        }
        outcome
    }

    /// The `exited` event of the process `pid`, stamped now.
    fn exited(&self, pid: u32, status: ExitStatus, uptime: Duration) -> Event {
        self.ev(EventKind::Exited {
            pid,
            status,
            uptime_ms: uptime.as_millis() as u64,
        })
    }

    /// The main process exited on its own (crash, kill, or a normal end).
    async fn on_exit(&mut self, status: ExitStatus) {
        let mut run = self
            .running
            .take()
            .expect("on_exit only fires while running");
        let record = run.job.take();
        self.signals.run_ended();
        self.let_go_pipes(&run);
        let uptime = self.clock.instant().saturating_duration_since(run.started);
        // Stamped now, at the reap: the restart below comes before the reporting, but the
        // record keeps the real times (MTTR is measured from them).
        let mut events = vec![self.exited(run.pid, status, uptime)];
        // Whatever is left of the tree would hold ports and files: stop it first.
        let group = run.group();
        if self.tree(group).exists() {
            let o = self.stop_group(group).await;
            events.push(self.ev(EventKind::GroupCleaned {
                signalled: o.signalled,
                killed: o.killed,
            }));
        } else {
            self.lineage.clear();
        }
        if let Some(j) = record {
            events.push(self.job_ran(j, status, uptime).await);
        }
        self.after_exit(status, uptime, events).await;
    }

    /// Applies the restart policy to an exit (or a failed spawn) and reports.
    async fn after_exit(&mut self, status: ExitStatus, uptime: Duration, mut events: Vec<Event>) {
        let decision = if std::mem::take(&mut self.drill) {
            self.tracker.on_drill_exit(&self.cfg, status)
        } else {
            self.tracker.on_exit(
                &self.cfg,
                status,
                uptime,
                self.clock.instant(),
                fastrand::f64(),
            )
        };
        match decision {
            Decision::Restart { attempt, delay } => {
                events.push(self.ev(EventKind::RestartScheduled {
                    attempt,
                    delay_ms: delay.as_millis() as u64,
                }));
                if delay.is_zero() {
                    Box::pin(self.launch(Actor::Upkeep, events)).await;
                } else {
                    self.restart_at = Some(self.clock.instant() + delay);
                    self.emit(events).await;
                }
            }
            Decision::Failed { restarts } => {
                tracing::warn!(
                    restarts,
                    "crash loop: service failed, waiting for an operator"
                );
                events.push(self.ev(EventKind::Failed {
                    restarts,
                    window_ms: self.cfg.window.as_millis() as u64,
                }));
                self.emit(events).await;
            }
            Decision::Exit => {
                events.push(self.ev(EventKind::NotRestarted {
                    policy: self.cfg.restart.as_str().into(),
                }));
                self.emit(events).await
            }
        }
    }

    /// Spawns the process, then sends `before` followed by what happened: the spawn comes first,
    /// the reporting after.
    async fn spawn_and_report(&mut self, by: Actor, mut before: Vec<Event>) {
        self.stopped = false;
        let mut env = self.signals.env(&self.cfg);
        env.extend(self.mark.iter().cloned());
        let pipe = match Signals::ready_pipe(&self.cfg) {
            Ok(p) => p,
            Err(e) => {
                // Like a spawn that failed: backed off, and failed if it persists.
                let error = format!("cannot make the readiness pipe: {e}");
                before.push(self.ev(EventKind::SpawnFailed { error }));
                let status = ExitStatus {
                    code: Some(127),
                    signal: None,
                };
                return Box::pin(self.after_exit(status, Duration::ZERO, before)).await;
            }
        };
        let pass_fd = pipe
            .as_ref()
            .map(|(_, w, n)| (std::os::fd::AsRawFd::as_raw_fd(w), *n));
        let spawned = crate::spawn::spawn(
            &self.reaper,
            &env,
            self.lineage.cgroup(),
            &self.cfg,
            pass_fd,
        );
        match spawned {
            Ok(s) => {
                self.orphaned = false;
                // Before anything else: a daemon killed from here on leaves the next one
                // what it needs to find this process (see `upkeep_sys::lineage`).
                self.lineage.adopt(s.pid, s.start_ticks);
                let due = self.job_due.take();
                let tap = self.cfg.job.then(crate::logs::tap::Tap::new);
                self.signals.run_started(s.pid);
                let ready_pipe_kept = pipe.is_some();
                if let Some((read, write, _)) = pipe {
                    // Ours closed, so that the end of file comes when the service's copies go.
                    drop(write);
                    // Kept like the output pipes, until the run is ready.
                    self.logs.keep_ready(&self.name, s.pid, read.as_fd());
                    self.signals.watch_fd(read, s.pid);
                }
                // Kept before a byte is read: a daemon killed from here on leaves the pipes
                // to the next one (systemd's fd store, where there is one).
                self.logs
                    .keep(&self.name, Stream::Stdout, s.pid, s.stdout.as_fd());
                self.logs
                    .keep(&self.name, Stream::Stderr, s.pid, s.stderr.as_fd());
                let watch = self.signals.line_watch(&self.cfg, s.pid);
                let forking = matches!(self.cfg.kind, ServiceType::Forking { .. });
                let let_go = (!forking).then_some(s.pid);
                let out = self.logs.capture(
                    &self.name,
                    Stream::Stdout,
                    let_go,
                    (s.stdout, Vec::new()),
                    watch.clone(),
                    tap.as_ref().map(|t| t.stream(false)),
                );
                let err = self.logs.capture(
                    &self.name,
                    Stream::Stderr,
                    let_go,
                    (s.stderr, Vec::new()),
                    watch,
                    tap.as_ref().map(|t| t.stream(true)),
                );
                let (pid, pgid, start_ticks, exit) = match self.cfg.kind.clone() {
                    ServiceType::Simple => (s.pid, s.pid, s.start_ticks, s.exit),
                    ServiceType::Forking { pid_file, timeout } => {
                        // The start command forks the daemon and exits: follow the daemon.
                        // Meanwhile a stop, a restart, a new config, a removal or shutdown
                        // end the wait (the command is carried out next); the other commands
                        // are answered as for a service not yet running. Until followed it
                        // is `starting`, saying for what (not the `stopped` or `stopping`
                        // of before its start: issue 18).
                        before.push(self.ev(EventKind::Waiting {
                            reason: format!("waiting for its PID file {}", pid_file.display()),
                        }));
                        self.emit(std::mem::take(&mut before)).await;
                        let followed = {
                            let cgroup = self.lineage.cgroup();
                            let follow = forking::follow(
                                &self.reaper,
                                s.pid,
                                s.exit,
                                &pid_file,
                                timeout,
                                cgroup,
                            );
                            tokio::pin!(follow);
                            loop {
                                tokio::select! {
                                    f = &mut follow => break f,
                                    _ = self.cancel.cancelled() => {
                                        break Err("the supervisor stopped while the start was followed".into());
                                    }
                                    Some(cmd) = self.commands.recv() => match cmd {
                                        SupervisorCommand::Signal { done, .. } => {
                                            let _ = done.send(Err(SignalError::NotRunning(self.name.clone())));
                                        }
                                        SupervisorCommand::Start { done, .. }
                                        | SupervisorCommand::Drill { done, .. } => ack(done),
                                        SupervisorCommand::Heal { .. } => {}
                                        other => {
                                            self.interrupted = Some(other);
                                            break Err("the start was interrupted by a stop, a restart or a new config".into());
                                        }
                                    },
                                }
                            }
                        };
                        match followed {
                            Ok(f) => {
                                // The record names the daemon and the group it is in now (the
                                // start command's until its setsid, which can come after its
                                // PID file): the next daemon looks in both.
                                // Its pipes stay named by the start command (`pipes`).
                                self.lineage.adopt_in(f.pid, f.pgid, f.start_ticks, s.pid);
                                (f.pid, f.pgid, f.start_ticks, f.exit)
                            }
                            Err(error) => {
                                tracing::warn!(%error, "forking service did not start");
                                self.signals.run_ended();
                                // Whatever it left (a daemon without a PID file) goes.
                                let _ = self.stop_group(s.pid).await;
                                self.logs.let_go(&self.name, s.pid);
                                if ready_pipe_kept {
                                    self.logs.let_go_ready(&self.name, s.pid);
                                }
                                before.push(self.ev(EventKind::SpawnFailed { error }));
                                if self.cancel.is_cancelled() || self.interrupted.is_some() {
                                    // Ending, or an operator's command comes next: no restart.
                                    self.emit(before).await;
                                    return;
                                }
                                let status = ExitStatus {
                                    code: Some(1),
                                    signal: None,
                                };
                                return Box::pin(self.after_exit(status, Duration::ZERO, before))
                                    .await;
                            }
                        }
                    }
                };
                self.running = Some(Running {
                    pid,
                    pipes: s.pid,
                    pipes_until_end: forking,
                    ready_pipe_kept,
                    pgid,
                    start_ticks,
                    started: self.clock.instant(),
                    exit,
                    job: tap.map(|tap| JobRun {
                        started: self.clock.now(),
                        due,
                        by: by.clone(),
                        tap,
                    }),
                    captures: vec![(Stream::Stdout, out), (Stream::Stderr, err)],
                });
                self.write_note();
                before.push(self.ev(EventKind::Started {
                    pid,
                    start_ticks,
                    by,
                }));
                self.emit(before).await;
            }
            Err(e) => {
                // The errno alone tells a missing folder from a missing program no better than
                // `ENOENT` does: the folder and the program say what is wrong, if they can.
                let program = self.cfg.program.path.display();
                let error = match upkeep_config::why_not_started(&self.cfg) {
                    Some(why) => format!("cannot start {program}: {why}"),
                    None => format!("cannot start {program}: {e}"),
                };
                tracing::warn!(%error, "spawn failed");
                before.push(self.ev(EventKind::SpawnFailed { error }));
                // Like a crash at once: the policy backs off and, if it persists, fails it.
                let status = ExitStatus {
                    code: Some(127),
                    signal: None,
                };
                Box::pin(self.after_exit(status, Duration::ZERO, before)).await;
            }
        }
    }

    /// An event of this service, stamped now.
    fn ev(&self, kind: EventKind) -> Event {
        self.clock.event(&self.name, kind)
    }

    async fn emit(&self, events: Vec<Event>) {
        for e in events {
            // A closed channel means the daemon is shutting down; the process work is done.
            let _ = self.events.send(e).await;
        }
    }
}

/// The exit status of a leader whose group was just stopped: once the group is gone the
/// leader has been reaped, so its status is waiting for us.
async fn exit_status(exit: oneshot::Receiver<ExitStatus>) -> ExitStatus {
    tokio::time::timeout(Duration::from_millis(200), exit)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(ExitStatus {
            code: None,
            signal: None,
        })
}

/// How stopping a running process went.
struct Ended {
    outcome: StopOutcome,
    status: ExitStatus,
    uptime: Duration,
    exited: Event,
}

fn ack(done: Option<oneshot::Sender<()>>) {
    if let Some(d) = done {
        let _ = d.send(());
    }
}
