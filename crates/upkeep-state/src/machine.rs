//! The status machine of one service: the one place that decides what state it is in.
//!
//! Inputs are events: lifecycle facts from the supervisor (started, exited, restart
//! scheduled, stopped, failed) and probe verdicts. From them [`ServiceModel`] derives the
//! state — starting → up ↔ degraded → down → recovering → up, plus stopping, stopped, exited
//! and failed — and produces outputs: `StatusChanged` events (the availability figures are
//! computed from them), heal requests for the supervisor, and incidents.
//!
//! Pure: time comes in as arguments, so every rule is tested on made-up timestamps.
//!
//! Rules:
//! - a managed service whose probes say down is restarted (`on_unhealthy = "restart"`) once
//!   per run; the supervisor applies the same backoff and crash-loop limit as to a crash;
//! - an outage (down, recovering or failed) that lasts `incident_after` opens an incident,
//!   dated from the outage's start; recovery (up or degraded) resolves it with its duration;
//! - down again within [`FLAP_WINDOW`] of a recovery reopens the same incident;
//! - an incident a person resolved (`upkeep incident resolve`) while its outage goes on is
//!   closed for this machine too: no new incident for that outage, no resolution when it
//!   ends; the next outage opens a new one (never reopens the person's);
//! - in maintenance the state is `maintenance` whatever the process and probes say: no heal,
//!   no incident (an open one is resolved: the outage became planned work); it ends when an
//!   operator ends it or at its `until`, and the state is judged afresh;
//! - a managed service is `starting` until its run is ready ([`Readiness`]): at once by
//!   default, on the supervisor's `ready` event (notify, fd, log), or, with `ready = "probe"`,
//!   when its probes first pass (this machine then records the `ready` event itself);
//! - a run not ready within `ready_timeout` is a failed start: `ready_timed_out`, and the
//!   supervisor restarts it under its restart policy (whatever `on_unhealthy` says);
//! - a missed watchdog ping makes a running service `down`, healed like a failed probe;
//! - a service waiting for its dependencies is `starting` (or `recovering` after an outage),
//!   with what it waits for in `waiting`.

use std::time::Duration;

use jiff::Timestamp;
use upkeep_core::{
    Actor, Event, EventKind, Health, Maintenance, ProbeStatus, ServiceName, ServiceStatus, State,
    Unfinished,
};

/// A service down again this soon after recovering continues its last incident.
pub const FLAP_WINDOW: Duration = Duration::from_secs(60);

/// What `state` needs to know of a service's config.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// upkeep runs it (it has a command).
    pub managed: bool,
    /// Restart it when probes say down (managed and `on_unhealthy = "restart"`).
    pub heal: bool,
    pub incident_after: Duration,
    /// Names of its probes.
    pub probes: Vec<String>,
    /// How a run becomes ready.
    pub readiness: Readiness,
    /// A run not ready this long after its start is a failed start.
    pub ready_timeout: Option<Duration>,
    /// A job (`schedule`): a run that fails is an outage until a run succeeds.
    pub job: bool,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            managed: true,
            heal: true,
            incident_after: Duration::ZERO,
            probes: Vec::new(),
            readiness: Readiness::AtSpawn,
            ready_timeout: None,
            job: false,
        }
    }
}

/// How a managed service's run becomes ready, as this machine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Once spawned (no `ready`).
    AtSpawn,
    /// On the supervisor's `ready` event (notify, fd, log).
    Signal,
    /// When every probe first passes (`ready = "probe"`).
    Probes,
}

/// What the machine asks of the world.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Store this event.
    Event(Event),
    /// Ask the supervisor to restart the service (an automatic heal).
    Heal {
        service: ServiceName,
        reason: String,
    },
}

/// Where the process is, from the supervisor's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Phase {
    /// Running (or, for an external service, always: only probes speak for it).
    Running,
    /// Exited (or failed to spawn); a restart is pending.
    Down,
    /// Exited and the policy does not restart it.
    Exited,
    Stopping,
    Stopped,
    Failed,
    /// Would start, but waits for its dependencies.
    Waiting,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Incident {
    since: Timestamp,
    open: bool,
    resolved_at: Option<Timestamp>,
    /// Caused by a drill: each drill has its own incident, and a real outage soon after a
    /// drill (or a drill soon after one) does not reopen the other's.
    drill: bool,
}

#[derive(Debug, Clone)]
pub struct ServiceModel {
    pub status: ServiceStatus,
    spec: ServiceSpec,
    phase: Phase,
    /// Was in an outage since it was last up: a new start is `recovering`, not `starting`.
    recovering: bool,
    /// A heal was requested for the current run.
    healing: bool,
    /// When the current outage began.
    outage_since: Option<Timestamp>,
    /// The last incident (open, or resolved and still within the flap window).
    incident: Option<Incident>,
    /// Why it is down, for incidents and heals.
    reason: String,
    /// A drill is on: an outage now is the drill's.
    drill: bool,
    /// The run is hung (a missed watchdog ping) or was not ready in time: down until it ends.
    stuck: bool,
    /// A job whose last run failed.
    job_failed: bool,
    /// A person resolved the current outage's incident: no incident until the service has
    /// been available (up or degraded) once. A restart in between (a heal, an operator's
    /// restart, stop and start) ends the outage's accounting, not the person's word: the
    /// service still has not come back (issue 16's loose end: it opened a new incident).
    resolved_by_hand: bool,
    /// Nothing is known of its process yet: a managed service's `stopped` here is where a
    /// new model begins, not a stop. At start-up its supervisor has not spoken when the last
    /// daemon's open incident is resumed: taken for stopped on purpose, that incident was
    /// resolved, then reopened once the service was down again (break-it, session 10: every
    /// kill of the daemon, and a kill right after an upgrade, mailed both). Only a `stopped`
    /// event makes the phase `Stopped` again, and clears it.
    unknown_run: bool,
}

/// A model as the next image of the daemon takes it over (`upkeep upgrade`): the status and
/// every fact the machine decides by (where the process is, the outage and its start, the
/// incident open or just resolved, a drill, a heal asked), so that the new image decides
/// nothing again: no incident resolved and opened anew, no failed service called stopped.
/// Serialised into the upgrade's state record; a field added later must have a default.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CarriedModel {
    status: ServiceStatus,
    phase: Phase,
    recovering: bool,
    outage_since: Option<Timestamp>,
    incident: Option<Incident>,
    reason: String,
    drill: bool,
    stuck: bool,
    job_failed: bool,
    resolved_by_hand: bool,
}

impl ServiceModel {
    /// This model as the next image takes it over (see [`CarriedModel`]).
    pub fn carry(&self) -> CarriedModel {
        CarriedModel {
            status: self.status.clone(),
            phase: self.phase,
            recovering: self.recovering,
            outage_since: self.outage_since,
            incident: self.incident.clone(),
            reason: self.reason.clone(),
            drill: self.drill,
            stuck: self.stuck,
            job_failed: self.job_failed,
            resolved_by_hand: self.resolved_by_hand,
        }
    }

    /// Takes over what the last image's model of this service was (`upkeep upgrade`); the spec
    /// stays this image's (its config). A heal the last image asked for may not have reached
    /// its supervisor before the hand-over: asked again, if the run is still down.
    pub fn take_over(&mut self, c: CarriedModel) {
        let name = self.status.name.clone();
        self.status = c.status;
        self.status.name = name;
        self.phase = c.phase;
        self.recovering = c.recovering;
        self.outage_since = c.outage_since;
        self.incident = c.incident;
        self.reason = c.reason;
        self.drill = c.drill;
        self.stuck = c.stuck;
        self.job_failed = c.job_failed;
        self.resolved_by_hand = c.resolved_by_hand;
        self.healing = false;
        self.unknown_run = false;
        // Probes as this image's spec has them (the same config, unless it changed).
        let spec = self.spec.clone();
        self.set_spec(spec);
    }

    pub fn new(name: ServiceName, spec: ServiceSpec) -> Self {
        let phase = if spec.managed {
            Phase::Stopped
        } else {
            Phase::Running
        };
        let mut status = ServiceStatus::new(name);
        status.state = if spec.managed {
            State::Stopped
        } else {
            State::Starting
        };
        let mut m = Self {
            status,
            spec: ServiceSpec::default(),
            phase,
            recovering: false,
            healing: false,
            outage_since: None,
            incident: None,
            reason: String::new(),
            drill: false,
            stuck: false,
            job_failed: false,
            resolved_by_hand: false,
            unknown_run: true,
        };
        m.set_spec(spec);
        m
    }

    fn name(&self) -> &ServiceName {
        &self.status.name
    }

    /// Takes a new spec (reload). Probes that no longer exist are forgotten; new ones start
    /// unknown.
    pub fn set_spec(&mut self, spec: ServiceSpec) {
        self.status
            .probes
            .retain(|name, _| spec.probes.contains(name));
        for p in &spec.probes {
            self.status
                .probes
                .entry(p.clone())
                .or_insert_with(ProbeStatus::unknown);
        }
        if !spec.managed {
            self.phase = Phase::Running;
        }
        self.spec = spec;
    }

    /// Takes up what the last daemon left unfinished (see [`Unfinished`]): an open incident
    /// stays open until the service is back, maintenance holds until its end (ended at the
    /// next tick if that passed while no daemon ran), a person's resolution of the outage
    /// holds until the service has been up, and a run that ended for good leaves it exited,
    /// a crash loop given up on failed, with its restart count (its supervisor does not
    /// start it: the daemon says so only when that still holds).
    pub fn resume(&mut self, u: Unfinished) {
        if u.exited && self.spec.managed {
            self.phase = Phase::Exited;
            self.unknown_run = false;
            self.status.last_exit = u.last_exit;
        }
        if let Some(restarts) = u.failed
            && self.spec.managed
        {
            self.phase = Phase::Failed;
            self.unknown_run = false;
            self.status.last_exit = u.last_exit;
            self.status.restarts = restarts;
            self.reason = gave_up(restarts);
        }
        if let Some(since) = u.resolved_by_hand
            && u.incident.is_none()
        {
            self.outage_since = Some(since);
            self.recovering = true;
            self.resolved_by_hand = true;
        }
        if let Some((since, drill)) = u.incident {
            self.incident = Some(Incident {
                since,
                open: true,
                resolved_at: None,
                drill,
            });
            self.outage_since = Some(since);
            self.recovering = true;
            self.status.incident_since = Some(since);
            // A job between runs is down while its last run's failure is open, as the last
            // daemon showed it (break-it, session 12: it came back `stopped`, its incident
            // open), until a run ends well.
            if self.spec.job && !drill && self.phase == Phase::Stopped {
                self.job_failed = true;
                self.phase = Phase::Down;
                self.reason = "its last run failed".into();
            }
        }
        if u.maintenance.is_some() {
            self.status.maintenance = u.maintenance;
        }
    }

    /// A person resolved the incident whose outage began at `since` (stored in
    /// milliseconds): if it is the one this machine holds open, it is closed without a
    /// resolution of the machine's own (the person's went out), and not reopened.
    fn resolve_by_hand(&mut self, since: Timestamp) {
        let Some(inc) = self
            .incident
            .as_mut()
            .filter(|i| i.open && i.since.as_millisecond() == since.as_millisecond())
        else {
            return;
        };
        inc.open = false;
        // Not a recovery: a down again soon after must not reopen it.
        inc.resolved_at = None;
        self.status.incident_since = None;
        self.resolved_by_hand = self.outage_since.is_some();
    }

    fn reset_probes(&mut self) {
        for p in self.status.probes.values_mut() {
            *p = ProbeStatus::unknown();
        }
    }

    /// Folds one event in. Call [`settle`](Self::settle) after a batch to get the outputs.
    pub fn apply(&mut self, e: &Event) {
        let s = &mut self.status;
        match &e.kind {
            EventKind::Started { pid, by, .. } => {
                self.phase = Phase::Running;
                s.pid = Some(*pid);
                s.since = Some(e.at);
                if by.is_operator() {
                    s.restarts = 0;
                }
                s.ready = self.spec.readiness == Readiness::AtSpawn;
                s.waiting = None;
                self.healing = false;
                self.stuck = false;
                self.reset_probes();
            }
            // The run the last image watched goes on (`upkeep upgrade`), and this model was
            // taken over with it: nothing to change.
            EventKind::Adopted { pid, .. }
                if self.phase == Phase::Running && s.pid == Some(*pid) => {}
            // The run the last daemon watched goes on (`upkeep upgrade`): as it was there.
            EventKind::Adopted {
                pid,
                since,
                restarts,
                ready,
                ..
            } => {
                self.phase = Phase::Running;
                s.pid = Some(*pid);
                s.since = Some(*since);
                s.restarts = *restarts;
                // Ready at spawn is this machine's word, not the supervisor's.
                s.ready = *ready || self.spec.readiness == Readiness::AtSpawn;
                s.waiting = None;
                self.healing = false;
                self.stuck = false;
                self.reset_probes();
            }
            // Of this run only: a late one (after an exit) changes nothing.
            EventKind::Ready { .. } if self.phase == Phase::Running => s.ready = true,
            EventKind::WatchdogMissed { timeout_ms }
                if self.phase == Phase::Running && !self.stuck =>
            {
                self.stuck = true;
                self.reason = format!(
                    "watchdog: no WATCHDOG=1 within {}",
                    show(Duration::from_millis(*timeout_ms))
                );
            }
            EventKind::Waiting { reason } => {
                self.phase = Phase::Waiting;
                s.waiting = Some(reason.clone());
                s.pid = None;
                s.since = None;
                s.ready = false;
            }
            // Records of what this machine or the supervisor decided: nothing to fold in.
            EventKind::ReadyTimedOut { .. }
            | EventKind::DependencyRestart { .. }
            | EventKind::Signalled { .. } => {}
            // A job's run that ends well leaves it exited; one that fails, down until a run
            // ends well (an incident like a failed service's, resolved by the next good run).
            // One whose end is unknown (adopted after a kill of the daemon, and reaped by
            // another process) is neither: the job stays as the run before left it (issue 18:
            // it was a failure, and opened an incident).
            EventKind::Exited { status, .. } if self.spec.job && self.phase != Phase::Stopping => {
                if !status.is_unknown() {
                    self.job_failed = !status.success();
                    if self.job_failed {
                        self.reason = format!("run failed ({status})");
                    }
                }
                self.phase = if self.job_failed {
                    Phase::Down
                } else {
                    Phase::Exited
                };
                s.pid = None;
                s.since = None;
                s.ready = false;
                s.last_exit = Some(*status);
            }
            EventKind::Exited { status, .. } => {
                // Down until the supervisor says otherwise (not_restarted, failed); a stop
                // in progress stays a stop.
                if self.phase != Phase::Stopping {
                    self.phase = Phase::Down;
                    self.reason = format!("process exited ({status})");
                }
                s.pid = None;
                s.since = None;
                s.ready = false;
                s.last_exit = Some(*status);
            }
            EventKind::RestartScheduled { .. } => {
                self.phase = Phase::Down;
                // A drill's restart is not the service's: its record stays as it was.
                if !self.drill {
                    s.restarts += 1;
                }
            }
            EventKind::RestartRequested { .. } => s.restarts = 0,
            // A changed file's restart counts as the policy's do (issue 18); `restart_at`'s
            // does not (its stop and start come as events of their own).
            EventKind::RestartPlanned { counted: true, .. } => s.restarts += 1,
            EventKind::NotRestarted { .. } if self.spec.job && self.job_failed => {}
            EventKind::NotRestarted { .. } => self.phase = Phase::Exited,
            // Records: a job's run (its exit came before), a skipped one, a planned restart
            // at its time (its stop and start come as events of their own).
            EventKind::JobRan { .. }
            | EventKind::JobSkipped { .. }
            | EventKind::JobScheduled { .. }
            | EventKind::RestartPlanned { counted: false, .. }
            | EventKind::WatchFailed { .. } => {}
            EventKind::SpawnFailed { error } => {
                // A job that cannot start has failed its run.
                self.job_failed = self.spec.job;
                self.phase = Phase::Down;
                self.reason = error.clone();
            }
            EventKind::Failed { restarts, .. } => {
                self.phase = Phase::Failed;
                s.waiting = None;
                self.reason = gave_up(*restarts);
            }
            EventKind::Stopping { .. } => self.phase = Phase::Stopping,
            EventKind::Stopped { .. } => {
                self.phase = Phase::Stopped;
                self.unknown_run = false;
                s.pid = None;
                s.since = None;
                s.ready = false;
                s.waiting = None;
                self.recovering = false;
                self.reset_probes();
            }
            EventKind::LogLinesDropped { lines, .. } => s.dropped_lines += lines,
            EventKind::MaintenanceStarted {
                reason,
                until,
                window,
                ..
            } => {
                s.maintenance = Some(Maintenance {
                    // A change of an ongoing maintenance keeps its start.
                    since: s.maintenance.as_ref().map_or(e.at, |m| m.since),
                    until: *until,
                    reason: reason.clone(),
                    window: *window,
                });
            }
            EventKind::MaintenanceEnded { .. } => s.maintenance = None,
            EventKind::IncidentNoted {
                note: upkeep_core::incident::Note::Resolved,
                since: Some(since),
                ..
            } => self.resolve_by_hand(*since),
            EventKind::DrillStarted { .. } => self.drill = true,
            EventKind::DrillCompleted { .. } | EventKind::DrillAborted { .. } => self.drill = false,
            EventKind::ProbeChanged {
                probe,
                health,
                reason,
            } => {
                if let Some(p) = s.probes.get_mut(probe) {
                    *p = ProbeStatus {
                        health: *health,
                        reason: reason.clone(),
                        last: None,
                    };
                }
                if *health == Health::Down {
                    self.reason = format!("probe {probe}: {reason}");
                }
            }
            _ => {}
        }
    }

    fn derive(&self) -> State {
        if self.status.maintenance.is_some() {
            return State::Maintenance;
        }
        match self.phase {
            Phase::Stopped => State::Stopped,
            Phase::Stopping => State::Stopping,
            Phase::Failed => State::Failed,
            Phase::Exited => State::Exited,
            Phase::Down => State::Down,
            Phase::Waiting if self.recovering => State::Recovering,
            Phase::Waiting => State::Starting,
            Phase::Running => {
                let healths: Vec<Health> = self.status.probes.values().map(|p| p.health).collect();
                // An external service has no run to be ready: its probes speak for it.
                let ready = self.status.ready || !self.spec.managed;
                if healths.contains(&Health::Down) || self.stuck {
                    State::Down
                } else if self.spec.job && self.recovering {
                    // A job's outage lasts until a run ends well, not until one starts.
                    State::Recovering
                } else if healths.contains(&Health::Unknown) || !ready {
                    if self.recovering {
                        State::Recovering
                    } else {
                        State::Starting
                    }
                } else if healths.contains(&Health::Degraded) {
                    State::Degraded
                } else {
                    State::Up
                }
            }
        }
    }

    /// Brings the state up to date after events, at time `now`, and says what to do.
    pub fn settle(&mut self, now: Timestamp) -> Vec<Output> {
        let mut out = Vec::new();
        // `ready = "probe"`: the first time every probe passes in this run.
        if self.spec.readiness == Readiness::Probes
            && self.phase == Phase::Running
            && !self.status.ready
            && !self.status.probes.is_empty()
            && self
                .status
                .probes
                .values()
                .all(|p| matches!(p.health, Health::Up | Health::Degraded))
        {
            self.status.ready = true;
            out.push(self.event(
                now,
                EventKind::Ready {
                    how: "probe".into(),
                },
            ));
        }
        let from = self.status.state;
        let to = self.derive();
        if to != from {
            self.status.state = to;
            out.push(self.event(now, EventKind::StatusChanged { from, to }));
        }
        if to.is_outage() {
            self.recovering = true;
            self.outage_since.get_or_insert(now);
        } else if self.outage_since.is_some() {
            // Back (up or degraded), or stopped on purpose: the outage is over.
            let stopped = match to {
                State::Stopped => !self.unknown_run,
                State::Stopping | State::Maintenance => true,
                _ => false,
            };
            if to.is_available() || stopped || (self.spec.job && to == State::Exited) {
                self.outage_since = None;
                self.recovering = false;
                if to.is_available() || (self.spec.job && to == State::Exited) {
                    self.resolved_by_hand = false;
                }
                // The drill's outage is over (also when the drill itself gave up waiting).
                self.drill = false;
                if let Some(inc) = self.incident.as_mut().filter(|i| i.open) {
                    inc.open = false;
                    inc.resolved_at = Some(now);
                    let duration_ms = now.duration_since(inc.since).as_millis().max(0) as u64;
                    let since = inc.since;
                    self.status.incident_since = None;
                    out.push(self.event(now, EventKind::IncidentResolved { since, duration_ms }));
                }
            }
        }
        if to == State::Down && self.phase == Phase::Running && self.spec.heal && !self.healing {
            self.healing = true;
            let reason = self.reason.clone();
            out.push(self.event(
                now,
                EventKind::HealRequested {
                    reason: reason.clone(),
                },
            ));
            out.push(Output::Heal {
                service: self.name().clone(),
                reason,
            });
        }
        out.extend(self.tick(now));
        out
    }

    /// Ends maintenance at its `until`; fails a start not ready within `ready_timeout`;
    /// opens an incident once an outage has lasted `incident_after`.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Output> {
        if let Some(until) = self.status.maintenance.as_ref().and_then(|m| m.until)
            && now >= until
        {
            self.status.maintenance = None;
            let mut out = vec![self.event(now, EventKind::MaintenanceEnded { by: Actor::Upkeep })];
            out.extend(self.settle(now));
            return out;
        }
        if let Some((at, timeout)) = self.ready_deadline()
            && now >= at
        {
            // A failed start: the supervisor ends the run as after a crash, and its restart
            // policy decides (a heal in the supervisor's terms, whatever `on_unhealthy` says).
            self.stuck = true;
            self.healing = true;
            self.reason = format!("not ready within {}", show(timeout));
            let mut out = vec![
                self.event(
                    now,
                    EventKind::ReadyTimedOut {
                        timeout_ms: timeout.as_millis() as u64,
                    },
                ),
                Output::Heal {
                    service: self.name().clone(),
                    reason: self.reason.clone(),
                },
            ];
            out.extend(self.settle(now));
            return out;
        }
        let Some(since) = self.outage_since else {
            return Vec::new();
        };
        if self.incident.as_ref().is_some_and(|i| i.open)
            || self.resolved_by_hand
            || now < add(since, self.spec.incident_after)
        {
            return Vec::new();
        }
        let reason = self.reason.clone();
        let drill = self.drill;
        let flapping = self
            .incident
            .as_ref()
            .filter(|i| !i.drill && !drill)
            .and_then(|i| i.resolved_at)
            .is_some_and(|r| now.duration_since(r).unsigned_abs() <= FLAP_WINDOW);
        let kind = if flapping {
            let inc = self
                .incident
                .as_mut()
                .expect("flapping implies an earlier incident");
            inc.open = true;
            inc.resolved_at = None;
            EventKind::IncidentReopened {
                since: inc.since,
                reason,
            }
        } else {
            self.incident = Some(Incident {
                since,
                open: true,
                resolved_at: None,
                drill,
            });
            EventKind::IncidentOpened {
                since,
                reason,
                drill,
            }
        };
        self.status.incident_since = self.incident.as_ref().map(|i| i.since);
        vec![self.event(now, kind)]
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn deadline(&self) -> Option<Timestamp> {
        let maintenance_end = self.status.maintenance.as_ref().and_then(|m| m.until);
        let incident = self
            .outage_since
            .filter(|_| !self.incident.as_ref().is_some_and(|i| i.open) && !self.resolved_by_hand)
            .map(|since| add(since, self.spec.incident_after));
        let ready = self.ready_deadline().map(|(at, _)| at);
        [maintenance_end, incident, ready]
            .into_iter()
            .flatten()
            .min()
    }

    /// When the current run fails its start for not being ready, and the timeout: while it
    /// runs, is not ready, has not failed already, and is not in maintenance (no heals then).
    fn ready_deadline(&self) -> Option<(Timestamp, Duration)> {
        let timeout = self.spec.ready_timeout?;
        let pending = self.phase == Phase::Running
            && !self.status.ready
            && !self.stuck
            && self.status.maintenance.is_none();
        if !pending {
            return None;
        }
        Some((add(self.status.since?, timeout), timeout))
    }

    fn event(&self, at: Timestamp, kind: EventKind) -> Output {
        Output::Event(Event {
            at,
            service: Some(self.name().clone()),
            kind,
        })
    }
}

/// Why a failed service is down: its crash loop, given up on after `restarts` restarts.
fn gave_up(restarts: u32) -> String {
    format!("crash loop: {restarts} restarts, then gave up")
}

/// A duration as people write it ("30s", "1m 30s"), for reasons.
fn show(d: Duration) -> String {
    match jiff::SignedDuration::try_from(d) {
        Ok(d) => format!("{d:#}"),
        Err(_) => format!("{d:?}"),
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::*;
    use upkeep_core::{Actor, ExitStatus};

    const KILLED: ExitStatus = ExitStatus {
        code: None,
        signal: Some(9),
    };

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn spec(probes: &[&str]) -> ServiceSpec {
        ServiceSpec {
            probes: probes.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }
    }

    fn model(probes: &[&str]) -> ServiceModel {
        ServiceModel::new(ServiceName::new("x").unwrap(), spec(probes))
    }

    /// A managed service with one probe, `http`.
    fn managed() -> ServiceModel {
        let spec = ServiceSpec {
            managed: true,
            ..spec(&["http"])
        };
        ServiceModel::new(ServiceName::new("x").unwrap(), spec)
    }

    fn started(pid: u32) -> EventKind {
        Started {
            pid,
            start_ticks: 1,
            by: Actor::Upkeep,
        }
    }

    fn probe(name: &str, health: Health) -> EventKind {
        ProbeChanged {
            probe: name.into(),
            health,
            reason: format!("{health:?}"),
        }
    }

    /// Applies `(second, event)`s, settling after each; returns the outputs' kinds as strings.
    fn run(m: &mut ServiceModel, steps: Vec<(i64, EventKind)>) -> Vec<String> {
        let mut out = Vec::new();
        for (at, kind) in steps {
            m.apply(&Event {
                at: t(at),
                service: Some(ServiceName::new("x").unwrap()),
                kind,
            });
            out.extend(names(m.settle(t(at))));
        }
        out
    }

    /// Taken over by the next image of the daemon (`upkeep upgrade`), a model decides nothing
    /// again: a failed service stays failed with its incident open and its restart count, and
    /// a running one's `adopted` changes nothing (its probes stay as they were).
    #[test]
    fn a_model_taken_over_by_the_next_image_decides_nothing_again() {
        let mut m = model(&[]);
        let out = run(
            &mut m,
            vec![
                (0, started(7)),
                (
                    1,
                    Exited {
                        pid: 7,
                        status: KILLED,
                        uptime_ms: 1000,
                    },
                ),
                (
                    1,
                    RestartScheduled {
                        attempt: 1,
                        delay_ms: 0,
                    },
                ),
                (
                    1,
                    Failed {
                        restarts: 1,
                        window_ms: 60_000,
                    },
                ),
            ],
        );
        assert!(out.contains(&"incident_opened".to_string()), "{out:?}");
        let mut next = model(&[]);
        next.take_over(m.carry());
        assert_eq!(names(next.settle(t(5))), Vec::<String>::new());
        assert_eq!(next.status.state, State::Failed);
        assert_eq!(next.status.restarts, 1);
        assert_eq!(next.status.incident_since, Some(t(1)));
        assert_eq!(names(next.tick(t(100))), Vec::<String>::new());

        let mut m = model(&["p"]);
        run(&mut m, vec![(0, started(8)), (1, probe("p", Health::Up))]);
        let mut next = model(&["p"]);
        next.take_over(m.carry());
        let adopted = Adopted {
            pid: 8,
            start_ticks: 1,
            since: t(0),
            restarts: 0,
            ready: true,
        };
        assert_eq!(run(&mut next, vec![(5, adopted)]), Vec::<String>::new());
        assert_eq!(next.status.state, State::Up);
    }

    /// Outputs as short names: the new state for a status change, the tag of other events,
    /// HEAL for a heal request.
    fn names(outputs: Vec<Output>) -> Vec<String> {
        outputs
            .into_iter()
            .map(|o| match o {
                Output::Event(e) => match e.kind {
                    StatusChanged { to, .. } => format!("{to}"),
                    other => other.tag().to_string(),
                },
                Output::Heal { .. } => "HEAL".into(),
            })
            .collect()
    }

    #[test]
    fn after_a_daemon_restart_an_open_incident_resolves_and_maintenance_goes_on() {
        // The last daemon died during an outage with its incident open.
        let mut m = model(&["http"]);
        m.resume(Unfinished {
            incident: Some((t(-50), false)),
            maintenance: None,
            ..Default::default()
        });
        assert_eq!(m.status.incident_since, Some(t(-50)));
        let out = run(
            &mut m,
            vec![(0, started(7)), (1, probe("http", Health::Up))],
        );
        assert_eq!(out, ["recovering", "up", "incident_resolved"]);
        assert_eq!(m.status.incident_since, None);

        // It died during maintenance: held until its end, then judged afresh.
        let mut m = model(&["http"]);
        let maintenance = Maintenance {
            since: t(-10),
            until: Some(t(100)),
            reason: "upgrade".into(),
            window: None,
        };
        m.resume(Unfinished {
            incident: None,
            maintenance: Some(maintenance.clone()),
            ..Default::default()
        });
        let out = run(
            &mut m,
            vec![(0, started(7)), (1, probe("http", Health::Up))],
        );
        assert_eq!(out, ["maintenance"]);
        assert_eq!(m.deadline(), Some(t(100)));
        assert_eq!(names(m.tick(t(100))), ["maintenance_ended", "up"]);

        // Maintenance whose end passed while no daemon ran ends at the first tick.
        let mut m = model(&["http"]);
        m.resume(Unfinished {
            incident: None,
            maintenance: Some(Maintenance {
                until: Some(t(-1)),
                ..maintenance
            }),
            ..Default::default()
        });
        assert_eq!(
            names(m.tick(t(0))).first().map(String::as_str),
            Some("maintenance_ended")
        );
    }

    /// Break-it (session 10): at start-up the last daemon's open incident is resumed before the
    /// service's supervisor has said anything, when its model still says `stopped`: that was
    /// taken for a stop, resolving the incident, which was reopened once the service was down
    /// again. It stays the same incident, open, until the service is back or really stopped.
    #[test]
    fn an_incident_resumed_before_the_service_starts_again_stays_open_until_it_is_back() {
        let mut m = managed();
        m.resume(Unfinished {
            incident: Some((t(-50), false)),
            maintenance: None,
            ..Default::default()
        });
        assert_eq!(names(m.settle(t(0))), Vec::<String>::new());
        assert_eq!(m.status.state, State::Stopped);
        assert_eq!(names(m.tick(t(100))), Vec::<String>::new());
        let out = run(
            &mut m,
            vec![
                (1, started(7)),
                (2, probe("http", Health::Down)),
                (200, probe("http", Health::Up)),
            ],
        );
        assert_eq!(
            out,
            [
                "recovering",
                "down",
                "heal_requested",
                "HEAL",
                "up",
                "incident_resolved"
            ]
        );

        // Stopped for real (an operator's stop, after its start): the outage is over.
        let mut m = managed();
        m.resume(Unfinished {
            incident: Some((t(-50), false)),
            maintenance: None,
            ..Default::default()
        });
        let out = run(
            &mut m,
            vec![
                (1, started(7)),
                (
                    2,
                    Stopping {
                        by: Actor::Operator,
                    },
                ),
                (
                    3,
                    Stopped {
                        by: Actor::Operator,
                    },
                ),
            ],
        );
        assert_eq!(
            out,
            ["recovering", "stopping", "incident_resolved", "stopped"]
        );
    }

    /// Issue 18: a crash loop given up on is `failed` at once after a daemon restart, with
    /// its restart count, last exit and reason, its incident still open; an operator's start
    /// runs it, and its restart count begins again.
    #[test]
    fn a_failed_service_is_taken_up_failed_after_a_daemon_restart() {
        let mut m = managed();
        let status = ExitStatus {
            code: Some(3),
            signal: None,
        };
        m.resume(Unfinished {
            incident: Some((t(-50), false)),
            failed: Some(2),
            last_exit: Some(status),
            ..Default::default()
        });
        assert_eq!(names(m.settle(t(0))), ["failed"]);
        assert_eq!(m.status.state, State::Failed);
        assert_eq!(m.status.restarts, 2);
        assert_eq!(m.status.last_exit, Some(status));
        assert_eq!(m.reason, "crash loop: 2 restarts, then gave up");
        assert_eq!(m.status.incident_since, Some(t(-50)));
        assert_eq!(names(m.tick(t(100))), Vec::<String>::new());
        let by_operator = Started {
            pid: 8,
            start_ticks: 1,
            by: Actor::Operator,
        };
        let out = run(&mut m, vec![(101, by_operator)]);
        assert_eq!(out, ["recovering"]);
        assert_eq!(m.status.restarts, 0);
    }

    /// Break-it (session 11): what a killed daemon's successor takes up besides open
    /// incidents. A run that ended for good is `exited` at once, with how it ended, and its
    /// open incident stays open (no resolution, no reopening); a person's resolution of the
    /// outage holds through the restart: still down, no incident, until it has been up once.
    #[test]
    fn an_exited_run_and_a_hand_resolution_are_taken_up_after_a_daemon_restart() {
        let mut m = managed();
        let status = ExitStatus {
            code: Some(3),
            signal: None,
        };
        m.resume(Unfinished {
            incident: Some((t(-50), false)),
            exited: true,
            last_exit: Some(status),
            ..Default::default()
        });
        assert_eq!(names(m.settle(t(0))), ["exited"]);
        assert_eq!(m.status.last_exit, Some(status));
        assert_eq!(m.status.incident_since, Some(t(-50)));
        assert_eq!(names(m.tick(t(100))), Vec::<String>::new());
        // Started by an operator, it is back: the incident resolves.
        let out = run(
            &mut m,
            vec![(101, started(8)), (102, probe("http", Health::Up))],
        );
        assert_eq!(out, ["recovering", "up", "incident_resolved"]);

        let mut m = managed();
        m.resume(Unfinished {
            resolved_by_hand: Some(t(-50)),
            ..Default::default()
        });
        assert_eq!(names(m.settle(t(0))), Vec::<String>::new());
        let out = run(
            &mut m,
            vec![(1, started(7)), (2, probe("http", Health::Down))],
        );
        assert_eq!(out, ["recovering", "down", "heal_requested", "HEAL"]);
        assert_eq!(m.deadline(), None);
        assert_eq!(names(m.tick(t(500))), Vec::<String>::new());
        // Up once, then down: a new incident, not the person's reopened.
        let out = run(
            &mut m,
            vec![
                (501, started(9)),
                (502, probe("http", Health::Up)),
                (503, probe("http", Health::Down)),
            ],
        );
        assert_eq!(
            out,
            [
                "recovering",
                "up",
                "down",
                "heal_requested",
                "HEAL",
                "incident_opened"
            ]
        );
    }

    #[test]
    fn maintenance_holds_off_heals_and_incidents_and_ends_at_its_time() {
        let mut m = model(&["http"]);
        let begin = MaintenanceStarted {
            reason: "upgrade".into(),
            until: Some(t(100)),
            by: Actor::Operator,
            window: None,
        };
        let out = run(
            &mut m,
            vec![
                (0, started(7)),
                (1, probe("http", Health::Up)),
                (10, begin),
                (20, probe("http", Health::Down)),
            ],
        );
        assert_eq!(out, ["starting", "up", "maintenance"]);
        assert_eq!(m.status.maintenance.as_ref().unwrap().since, t(10));
        assert_eq!(m.deadline(), Some(t(100)));
        // At its end the state is judged afresh: down, so heal and open an incident.
        assert_eq!(
            names(m.tick(t(100))),
            [
                "maintenance_ended",
                "down",
                "heal_requested",
                "HEAL",
                "incident_opened"
            ]
        );
        // Maintenance entered during an outage resolves its incident; ending it by hand
        // while healthy gives up.
        let out = run(
            &mut m,
            vec![
                (
                    110,
                    MaintenanceStarted {
                        reason: String::new(),
                        until: None,
                        by: Actor::Operator,
                        window: None,
                    },
                ),
                (120, probe("http", Health::Up)),
                (
                    130,
                    MaintenanceEnded {
                        by: Actor::Operator,
                    },
                ),
            ],
        );
        assert_eq!(out, ["maintenance", "incident_resolved", "up"]);
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn a_drills_outage_is_its_own_incident() {
        let mut m = model(&[]);
        let killed = || Exited {
            pid: 7,
            status: KILLED,
            uptime_ms: 5,
        };
        let restart = || RestartScheduled {
            attempt: 1,
            delay_ms: 0,
        };
        let drill = DrillStarted {
            fault: "crash".into(),
            by: Actor::Operator,
        };
        let out = run(
            &mut m,
            vec![
                (0, started(7)),
                (10, drill),
                (11, killed()),
                (11, restart()),
                (11, started(7)),
            ],
        );
        assert_eq!(
            out,
            ["up", "down", "incident_opened", "up", "incident_resolved"]
        );
        assert!(m.incident.as_ref().unwrap().drill);
        assert_eq!(
            m.status.restarts, 0,
            "a drill's restart is not the service's"
        );
        // A real crash 5 s later: a new incident, not the drill's reopened.
        let out = run(
            &mut m,
            vec![(16, killed()), (16, restart()), (16, started(7))],
        );
        assert_eq!(out, ["down", "incident_opened", "up", "incident_resolved"]);
        assert!(!m.drill);
        assert!(!m.incident.as_ref().unwrap().drill);
        assert_eq!(m.status.restarts, 1);
    }

    /// Issue 18: a job's run whose end is unknown (adopted after a kill of the daemon, reaped
    /// by another process) is neither a failure nor a success: no outage, no incident, and a
    /// failed job is not recovered by it.
    #[test]
    fn a_job_run_of_unknown_end_neither_fails_nor_recovers_the_job() {
        let mut m = ServiceModel::new(
            ServiceName::new("x").unwrap(),
            ServiceSpec {
                job: true,
                ..Default::default()
            },
        );
        let exited = |code| Exited {
            pid: 7,
            status: ExitStatus { code, signal: None },
            uptime_ms: 5,
        };
        let not_restarted = || NotRestarted {
            policy: "never".into(),
        };
        assert_eq!(
            run(
                &mut m,
                vec![(0, started(7)), (1, exited(None)), (1, not_restarted())]
            ),
            ["up", "exited"]
        );
        assert_eq!(m.status.incident_since, None);
        // Failed, then a run of unknown end: still down, the same incident open.
        assert_eq!(
            run(
                &mut m,
                vec![
                    (60, started(8)),
                    (61, exited(Some(3))),
                    (61, not_restarted())
                ]
            ),
            ["up", "down", "incident_opened"]
        );
        assert_eq!(
            run(
                &mut m,
                vec![
                    (120, started(9)),
                    (121, exited(None)),
                    (121, not_restarted())
                ]
            ),
            ["recovering", "down"]
        );
        assert_eq!(m.reason, "run failed (exit code 3)");
        assert!(m.status.incident_since.is_some());
    }

    #[test]
    fn a_failed_job_run_is_an_incident_until_a_run_ends_well() {
        let mut m = ServiceModel::new(
            ServiceName::new("x").unwrap(),
            ServiceSpec {
                job: true,
                ..Default::default()
            },
        );
        let exited = |code| Exited {
            pid: 7,
            status: ExitStatus {
                code: Some(code),
                signal: None,
            },
            uptime_ms: 5,
        };
        let not_restarted = || NotRestarted {
            policy: "never".into(),
        };
        // A good run: up while it runs, exited after, no outage.
        assert_eq!(
            run(
                &mut m,
                vec![(0, started(7)), (1, exited(0)), (1, not_restarted())]
            ),
            ["up", "exited"]
        );
        // A failed run: down, and an incident (incident_after 0) at once.
        assert_eq!(
            run(
                &mut m,
                vec![(60, started(8)), (61, exited(3)), (61, not_restarted())]
            ),
            ["up", "down", "incident_opened"]
        );
        assert_eq!(m.status.state, State::Down);
        // The next run starting is not yet a recovery; its good end is.
        assert_eq!(
            run(
                &mut m,
                vec![(120, started(9)), (121, exited(0)), (121, not_restarted())]
            ),
            ["recovering", "exited", "incident_resolved"]
        );
        assert_eq!(m.status.incident_since, None);
    }

    #[test]
    fn lifecycle_without_probes() {
        // (events) → (state, pid, restarts)
        let table: Vec<(Vec<EventKind>, State, Option<u32>, u32)> = vec![
            (vec![started(7)], State::Up, Some(7), 0),
            (
                vec![
                    started(7),
                    Exited {
                        pid: 7,
                        status: KILLED,
                        uptime_ms: 5,
                    },
                    RestartScheduled {
                        attempt: 1,
                        delay_ms: 0,
                    },
                    started(8),
                ],
                State::Up,
                Some(8),
                1,
            ),
            (
                vec![
                    started(7),
                    Exited {
                        pid: 7,
                        status: KILLED,
                        uptime_ms: 5,
                    },
                    RestartScheduled {
                        attempt: 2,
                        delay_ms: 100,
                    },
                ],
                State::Down,
                None,
                1,
            ),
            (
                vec![
                    started(7),
                    Exited {
                        pid: 7,
                        status: KILLED,
                        uptime_ms: 5,
                    },
                ],
                State::Down,
                None,
                0,
            ),
            (
                vec![
                    started(7),
                    Exited {
                        pid: 7,
                        status: KILLED,
                        uptime_ms: 5,
                    },
                    NotRestarted {
                        policy: "never".into(),
                    },
                ],
                State::Exited,
                None,
                0,
            ),
            (
                vec![
                    RestartScheduled {
                        attempt: 9,
                        delay_ms: 0,
                    },
                    Failed {
                        restarts: 10,
                        window_ms: 60_000,
                    },
                ],
                State::Failed,
                None,
                1,
            ),
            (
                vec![
                    started(7),
                    Stopping {
                        by: Actor::Operator,
                    },
                ],
                State::Stopping,
                Some(7),
                0,
            ),
            (
                vec![
                    started(7),
                    Stopping {
                        by: Actor::Operator,
                    },
                    Exited {
                        pid: 7,
                        status: KILLED,
                        uptime_ms: 1,
                    },
                    Stopped {
                        by: Actor::Operator,
                    },
                ],
                State::Stopped,
                None,
                0,
            ),
            (
                vec![
                    RestartScheduled {
                        attempt: 1,
                        delay_ms: 0,
                    },
                    Started {
                        pid: 9,
                        start_ticks: 1,
                        by: Actor::Operator,
                    },
                ],
                State::Up,
                Some(9),
                0,
            ),
            (
                vec![SpawnFailed { error: "x".into() }],
                State::Down,
                None,
                0,
            ),
        ];
        for (events, state, pid, restarts) in table {
            let mut m = model(&[]);
            run(
                &mut m,
                events
                    .iter()
                    .cloned()
                    .enumerate()
                    .map(|(i, e)| (i as i64, e))
                    .collect(),
            );
            assert_eq!(
                (m.status.state, m.status.pid, m.status.restarts),
                (state, pid, restarts),
                "after {events:?}"
            );
        }
    }

    #[test]
    fn probes_drive_starting_up_degraded_down_recovering_and_heal_once() {
        let mut m = model(&["http", "tcp"]);
        let out = run(
            &mut m,
            vec![
                (0, started(1)),
                (1, probe("http", Health::Up)),
                (2, probe("tcp", Health::Up)),
                (3, probe("http", Health::Degraded)),
                (4, probe("http", Health::Up)),
                (5, probe("http", Health::Down)),
                (6, probe("tcp", Health::Down)), // still down: no second heal
                (
                    7,
                    Exited {
                        pid: 1,
                        status: KILLED,
                        uptime_ms: 7000,
                    },
                ),
                (
                    7,
                    RestartScheduled {
                        attempt: 1,
                        delay_ms: 0,
                    },
                ),
                (7, started(2)),
                (8, probe("http", Health::Up)),
                (9, probe("tcp", Health::Up)),
            ],
        );
        assert_eq!(
            out,
            [
                "starting",
                "up",
                "degraded",
                "up",
                "down",
                "heal_requested",
                "HEAL",
                "incident_opened",
                "recovering",
                "up",
                "incident_resolved"
            ]
        );
        assert_eq!(m.status.incident_since, None);
    }

    #[test]
    fn alert_only_services_are_not_healed_and_external_ones_start_as_starting() {
        let mut m = ServiceModel::new(
            ServiceName::new("db").unwrap(),
            ServiceSpec {
                managed: false,
                heal: false,
                probes: vec!["tcp".into()],
                ..Default::default()
            },
        );
        assert_eq!(m.status.state, State::Starting);
        let out = run(
            &mut m,
            vec![
                (0, probe("tcp", Health::Up)),
                (5, probe("tcp", Health::Down)),
                (65, probe("tcp", Health::Up)),
            ],
        );
        assert_eq!(
            out,
            ["up", "down", "incident_opened", "up", "incident_resolved"]
        );
    }

    #[test]
    fn incidents_wait_for_incident_after_and_date_from_the_outage_start() {
        let mut m = ServiceModel::new(
            ServiceName::new("db").unwrap(),
            ServiceSpec {
                managed: false,
                heal: false,
                probes: vec!["tcp".into()],
                incident_after: Duration::from_secs(30),
                ..Default::default()
            },
        );
        run(
            &mut m,
            vec![
                (0, probe("tcp", Health::Up)),
                (100, probe("tcp", Health::Down)),
            ],
        );
        assert_eq!(m.deadline(), Some(t(130)));
        assert!(m.tick(t(129)).is_empty());
        let out = m.tick(t(130));
        assert!(
            matches!(&out[..], [Output::Event(Event { kind: IncidentOpened { since, .. }, .. })] if *since == t(100)),
            "{out:?}"
        );
        assert_eq!(m.deadline(), None);
        let out = run(&mut m, vec![(160, probe("tcp", Health::Up))]);
        assert_eq!(out, ["up", "incident_resolved"]);
        // A blip shorter than incident_after opens nothing.
        let out = run(
            &mut m,
            vec![
                (500, probe("tcp", Health::Down)),
                (510, probe("tcp", Health::Up)),
            ],
        );
        assert_eq!(out, ["down", "up"]);
    }

    #[test]
    fn flapping_is_one_incident() {
        let mut m = ServiceModel::new(
            ServiceName::new("db").unwrap(),
            ServiceSpec {
                managed: false,
                heal: false,
                probes: vec!["tcp".into()],
                ..Default::default()
            },
        );
        let mut steps = vec![(0, probe("tcp", Health::Up))];
        for i in 0..5 {
            steps.push((10 + i * 20, probe("tcp", Health::Down)));
            steps.push((20 + i * 20, probe("tcp", Health::Up)));
        }
        let out = run(&mut m, steps);
        assert_eq!(
            out.iter().filter(|o| *o == "incident_opened").count(),
            1,
            "{out:?}"
        );
        assert_eq!(
            out.iter().filter(|o| *o == "incident_reopened").count(),
            4,
            "{out:?}"
        );
        // Long after, a new outage is a new incident.
        let out = run(&mut m, vec![(1000, probe("tcp", Health::Down))]);
        assert!(out.contains(&"incident_opened".to_string()), "{out:?}");
    }

    #[test]
    fn an_incident_resolved_by_hand_stays_resolved_and_the_next_outage_is_a_new_one() {
        let mut m = ServiceModel::new(
            ServiceName::new("db").unwrap(),
            ServiceSpec {
                managed: false,
                heal: false,
                probes: vec!["tcp".into()],
                ..Default::default()
            },
        );
        let by_hand = |since: i64| IncidentNoted {
            incident: 7,
            note: upkeep_core::incident::Note::Resolved,
            by: Actor::Operator,
            since: Some(t(since)),
        };
        let out = run(
            &mut m,
            vec![
                (0, probe("tcp", Health::Up)),
                (10, probe("tcp", Health::Down)),
                // Someone else's incident (another start): nothing changes.
                (15, by_hand(11)),
            ],
        );
        assert_eq!(out, ["up", "down", "incident_opened"]);
        assert_eq!(m.status.incident_since, Some(t(10)));
        // Resolved by hand while still down: nothing opens again for this outage, and its
        // end resolves nothing.
        let out = run(&mut m, vec![(20, by_hand(10))]);
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(m.status.incident_since, None);
        assert_eq!(m.deadline(), None, "no incident is due for this outage");
        assert!(m.tick(t(500)).is_empty());
        let out = run(&mut m, vec![(30, probe("tcp", Health::Up))]);
        assert_eq!(out, ["up"]);
        // Down again within the flap window: a new incident, not the person's reopened.
        let out = run(&mut m, vec![(40, probe("tcp", Health::Down))]);
        assert_eq!(out, ["down", "incident_opened"]);
        assert_eq!(m.status.incident_since, Some(t(40)));
        let out = run(&mut m, vec![(50, probe("tcp", Health::Up))]);
        assert_eq!(out, ["up", "incident_resolved"]);
    }

    #[test]
    fn a_hand_resolution_holds_through_restarts_until_the_service_is_back() {
        let mut m = model(&["tcp"]);
        let by_hand = |since: i64| IncidentNoted {
            incident: 7,
            note: upkeep_core::incident::Note::Resolved,
            by: Actor::Operator,
            since: Some(t(since)),
        };
        let stopped = |pid| Exited {
            pid,
            status: KILLED,
            uptime_ms: 1,
        };
        let out = run(
            &mut m,
            vec![
                (0, started(1)),
                (1, probe("tcp", Health::Up)),
                (10, probe("tcp", Health::Down)),
            ],
        );
        assert_eq!(
            out,
            [
                "starting",
                "up",
                "down",
                "heal_requested",
                "HEAL",
                "incident_opened"
            ]
        );
        assert!(run(&mut m, vec![(20, by_hand(10))]).is_empty());
        // The heal restarts it, still down; then an operator stops and starts it: still the
        // outage the person resolved, no incident.
        let out = run(
            &mut m,
            vec![
                (21, stopped(1)),
                (22, started(2)),
                (30, probe("tcp", Health::Down)),
                (
                    40,
                    Stopping {
                        by: Actor::Operator,
                    },
                ),
                (41, stopped(2)),
                (42, started(3)),
                (50, probe("tcp", Health::Down)),
            ],
        );
        assert!(!out.iter().any(|o| o.starts_with("incident")), "{out:?}");
        assert_eq!(m.deadline(), None, "no incident is due");
        assert!(m.tick(t(500)).is_empty());
        // Back once: the next outage is an incident again.
        let out = run(
            &mut m,
            vec![
                (60, probe("tcp", Health::Up)),
                (70, probe("tcp", Health::Down)),
            ],
        );
        assert!(out.contains(&"incident_opened".to_string()), "{out:?}");
    }

    #[test]
    fn crash_loop_failure_is_an_outage_and_an_operator_stop_ends_it() {
        let mut m = model(&[]);
        let out = run(
            &mut m,
            vec![
                (0, started(1)),
                (
                    1,
                    Exited {
                        pid: 1,
                        status: KILLED,
                        uptime_ms: 1,
                    },
                ),
                (
                    1,
                    Failed {
                        restarts: 10,
                        window_ms: 60_000,
                    },
                ),
                (
                    50,
                    Stopped {
                        by: Actor::Operator,
                    },
                ),
            ],
        );
        assert_eq!(
            out,
            [
                "up",
                "down",
                "incident_opened",
                "failed",
                "stopped",
                "incident_resolved"
            ]
        );
    }

    #[test]
    fn a_crash_restarted_at_once_is_still_an_outage_with_an_incident() {
        let mut m = model(&[]);
        let out = run(
            &mut m,
            vec![
                (0, started(1)),
                (
                    10,
                    Exited {
                        pid: 1,
                        status: KILLED,
                        uptime_ms: 10_000,
                    },
                ),
                (
                    10,
                    RestartScheduled {
                        attempt: 1,
                        delay_ms: 0,
                    },
                ),
                (11, started(2)),
            ],
        );
        assert_eq!(
            out,
            ["up", "down", "incident_opened", "up", "incident_resolved"]
        );
    }

    #[test]
    fn probes_reset_on_a_new_process_and_follow_a_reload() {
        let mut m = model(&["http"]);
        run(
            &mut m,
            vec![(0, started(1)), (1, probe("http", Health::Up))],
        );
        assert_eq!(m.status.state, State::Up);
        m.set_spec(spec(&["http", "tcp"]));
        assert_eq!(m.settle(t(2)).len(), 1);
        assert_eq!(m.status.state, State::Starting);
        m.set_spec(spec(&[]));
        m.settle(t(3));
        assert_eq!(m.status.state, State::Up);
    }

    fn ready_by(readiness: Readiness, probes: &[&str], ready_timeout: Option<u64>) -> ServiceModel {
        ServiceModel::new(
            ServiceName::new("x").unwrap(),
            ServiceSpec {
                readiness,
                ready_timeout: ready_timeout.map(Duration::from_secs),
                ..spec(probes)
            },
        )
    }

    fn ready(how: &str) -> EventKind {
        Ready { how: how.into() }
    }

    #[test]
    fn a_run_is_up_only_once_ready() {
        // Signalled: starting until the supervisor says ready, whatever the probes say.
        let mut m = ready_by(Readiness::Signal, &["http"], None);
        let out = run(
            &mut m,
            vec![
                (0, started(7)),
                (1, probe("http", Health::Up)),
                (2, ready("notify")),
            ],
        );
        assert_eq!(out, ["starting", "up"]);
        assert!(m.status.ready);
        // A ready event of no run (late, after an exit) changes nothing.
        let out = run(
            &mut m,
            vec![
                (
                    3,
                    Exited {
                        pid: 7,
                        status: KILLED,
                        uptime_ms: 3000,
                    },
                ),
                (3, ready("notify")),
            ],
        );
        assert_eq!(out, ["down", "incident_opened"]);
        assert!(!m.status.ready);
        // By probes: the machine records the ready event itself, once.
        let mut m = ready_by(Readiness::Probes, &["http", "tcp"], None);
        let out = run(
            &mut m,
            vec![
                (0, started(7)),
                (1, probe("http", Health::Up)),
                (2, probe("tcp", Health::Degraded)),
                (3, probe("tcp", Health::Up)),
            ],
        );
        assert_eq!(out, ["starting", "ready", "degraded", "up"]);
        // Once spawned, by default.
        let mut m = model(&[]);
        assert_eq!(run(&mut m, vec![(0, started(7))]), ["up"]);
        assert!(m.status.ready);
    }

    #[test]
    fn a_start_not_ready_in_time_fails_and_is_restarted() {
        let mut m = ready_by(Readiness::Signal, &[], Some(30));
        assert_eq!(run(&mut m, vec![(0, started(7))]), ["starting"]);
        assert_eq!(m.deadline(), Some(t(30)));
        assert!(m.tick(t(29)).is_empty());
        // Restarted whatever on_unhealthy says: a failed start, not a health verdict.
        m.spec.heal = false;
        assert_eq!(
            names(m.tick(t(30))),
            ["ready_timed_out", "HEAL", "down", "incident_opened"]
        );
        assert_eq!(m.deadline(), None, "once per run");
        // The supervisor ends the run and starts another, which is ready in time.
        let out = run(
            &mut m,
            vec![
                (
                    30,
                    Exited {
                        pid: 7,
                        status: KILLED,
                        uptime_ms: 30_000,
                    },
                ),
                (
                    30,
                    RestartScheduled {
                        attempt: 1,
                        delay_ms: 0,
                    },
                ),
                (30, started(8)),
                (35, ready("fd")),
            ],
        );
        assert_eq!(out, ["recovering", "up", "incident_resolved"]);
        assert_eq!(m.deadline(), None);
        // A run that is ready never times out; nor does one in maintenance.
        let mut m = ready_by(Readiness::Signal, &[], Some(30));
        run(&mut m, vec![(0, started(7)), (1, ready("log"))]);
        assert_eq!(m.deadline(), None);
    }

    #[test]
    fn a_missed_watchdog_ping_is_down_and_healed_once() {
        let mut m = ready_by(Readiness::Signal, &[], None);
        let out = run(
            &mut m,
            vec![
                (0, started(7)),
                (1, ready("notify")),
                (20, WatchdogMissed { timeout_ms: 10_000 }),
                (21, WatchdogMissed { timeout_ms: 10_000 }),
            ],
        );
        assert_eq!(
            out,
            [
                "starting",
                "up",
                "down",
                "heal_requested",
                "HEAL",
                "incident_opened"
            ]
        );
        assert_eq!(m.reason, "watchdog: no WATCHDOG=1 within 10s");
        // The next run is not hung.
        let out = run(
            &mut m,
            vec![
                (
                    22,
                    Exited {
                        pid: 7,
                        status: KILLED,
                        uptime_ms: 22_000,
                    },
                ),
                (
                    22,
                    RestartScheduled {
                        attempt: 1,
                        delay_ms: 0,
                    },
                ),
                (22, started(8)),
                (23, ready("notify")),
            ],
        );
        assert_eq!(out, ["recovering", "up", "incident_resolved"]);
    }

    #[test]
    fn waiting_for_dependencies_is_starting_with_a_reason() {
        let mut m = model(&[]);
        let wait = || Waiting {
            reason: "waiting for db to be ready (it is starting)".into(),
        };
        assert_eq!(run(&mut m, vec![(0, wait())]), ["starting"]);
        assert_eq!(
            m.status.waiting.as_deref(),
            Some("waiting for db to be ready (it is starting)")
        );
        assert_eq!(run(&mut m, vec![(1, started(7))]), ["up"]);
        assert_eq!(m.status.waiting, None);
        // After a crash, waiting goes on as the outage it is.
        let out = run(
            &mut m,
            vec![
                (
                    5,
                    Exited {
                        pid: 7,
                        status: KILLED,
                        uptime_ms: 4000,
                    },
                ),
                (
                    5,
                    RestartScheduled {
                        attempt: 1,
                        delay_ms: 0,
                    },
                ),
                (5, wait()),
                (9, started(8)),
            ],
        );
        assert_eq!(
            out,
            [
                "down",
                "incident_opened",
                "recovering",
                "up",
                "incident_resolved"
            ]
        );
        // Stopped while waiting: stopped, and no longer waiting.
        run(
            &mut m,
            vec![
                (10, wait()),
                (
                    11,
                    Stopped {
                        by: Actor::Operator,
                    },
                ),
            ],
        );
        assert_eq!(
            (m.status.state, m.status.waiting.clone()),
            (State::Stopped, None)
        );
    }
}
