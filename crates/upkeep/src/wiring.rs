//! Everything that serves one service, started, updated and stopped in one place: its
//! supervisor (if upkeep runs it), its probe runner (if it has probes), its spec in `state`,
//! its place in the dependency gate, and its planned runs (a job's schedule, `restart_at`,
//! `watch`: `schedule.rs`). The daemon uses it at start-up, reload uses it for
//! what changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use upkeep_config::{OnUnhealthy, Ready, ServiceConfig};
use upkeep_core::{Actor, LastCheck, ServiceName, Unfinished};
use upkeep_probes::{ProbeDeps, ProbeRunner, Target};
use upkeep_state::{Readiness, ServiceSpec, Snapshot, StateControl};
use upkeep_supervisor::{Supervisor, SupervisorCommand, SupervisorDeps, SupervisorHandle};

/// What every service's tasks are built from.
pub struct Wiring {
    /// The reaper, log hub, event sender and lineage every supervisor shares.
    pub supervisor: SupervisorDeps,
    pub state: mpsc::Sender<StateControl>,
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub probe_deps: ProbeDeps,
    /// Parent of every supervisor's and probe runner's token.
    pub cancel: CancellationToken,
    pub tasks: TaskTracker,
    /// Each probed service's target, for its probe tasks. A std Mutex: never held across await.
    pub targets: std::sync::Mutex<std::collections::HashMap<ServiceName, watch::Sender<Target>>>,
    /// The dependency graph and each managed service's permit (see `deps.rs`).
    pub gates: crate::deps::Gates,
    /// For a job's history at start (were runs missed?).
    pub store: Arc<dyn upkeep_store::Store>,
    /// Where services' logs are (a watched tree may hold them: their changes do not count).
    pub logs_dir: std::path::PathBuf,
    /// Running processes an upgrade handed over, taken by their supervisors at start-up
    /// (`upgrade.rs`). A std Mutex: never held across an await.
    pub adoptions: std::sync::Mutex<BTreeMap<ServiceName, upkeep_supervisor::Adoption>>,
    /// What the last image knew of each service (`upkeep upgrade`): its model goes to state
    /// instead of what the store left unfinished, its supervisor's counts to the new one.
    pub carried: std::sync::Mutex<BTreeMap<ServiceName, crate::upgrade::CarriedService>>,
}

fn target_of(snapshot: &Snapshot, name: &ServiceName) -> Target {
    snapshot
        .services
        .get(name)
        .map(|s| Target {
            pgid: s.pid,
            since: s.since,
        })
        .unwrap_or_default()
}

/// Keeps every probed service's target in step with the state snapshot: one task, woken by
/// snapshot changes, which wakes a service's probes only when its process changed.
pub async fn follow_targets(wiring: Arc<Wiring>) {
    let mut snapshot = wiring.snapshot.clone();
    loop {
        tokio::select! {
            _ = wiring.cancel.cancelled() => return,
            changed = snapshot.changed() => if changed.is_err() { return },
        }
        let snap = snapshot.borrow_and_update().clone();
        for (name, tx) in wiring.targets.lock().expect("targets poisoned").iter() {
            let target = target_of(&snap, name);
            tx.send_if_modified(|t| std::mem::replace(t, target) != target);
        }
    }
}

/// The running tasks of one service.
#[derive(Default)]
pub struct ServiceHandles {
    pub supervisor: Option<SupervisorHandle>,
    probes: Option<ProbeRunner>,
    /// Its schedule, restart_at and watch tasks: they end when this is dropped.
    timers: crate::schedule::Timers,
}

impl ServiceHandles {
    /// The most recent check of each of the service's probes.
    pub fn last_checks(&self) -> BTreeMap<String, LastCheck> {
        self.probes
            .as_ref()
            .map(ProbeRunner::last_checks)
            .unwrap_or_default()
    }
}

/// What `state` needs to know of a service's config.
pub fn spec(cfg: &ServiceConfig) -> ServiceSpec {
    let m = cfg.managed.as_ref();
    ServiceSpec {
        managed: m.is_some(),
        heal: m.is_some() && cfg.on_unhealthy == OnUnhealthy::Restart,
        incident_after: cfg.incident_after,
        probes: cfg.probes.iter().map(|p| p.name.clone()).collect(),
        readiness: match m.map(|m| &m.ready) {
            None | Some(Ready::Spawned) => Readiness::AtSpawn,
            Some(Ready::Probe) => Readiness::Probes,
            Some(Ready::Notify | Ready::Fd(_) | Ready::Log(_)) => Readiness::Signal,
        },
        ready_timeout: m.and_then(|m| m.ready_timeout),
        job: m.is_some_and(|m| m.job),
    }
}

impl Wiring {
    /// Starts the tasks of a service; `run` says whether to start its process now.
    /// `unfinished` is what the last daemon left of it (start-up only).
    pub async fn start(
        &self,
        name: &ServiceName,
        cfg: &ServiceConfig,
        run: bool,
        unfinished: Option<Unfinished>,
    ) -> ServiceHandles {
        // State hears of the service (and what it is in the middle of) before any of its
        // events can arrive.
        let _ = self
            .state
            .send(StateControl::Configure(name.clone(), spec(cfg)))
            .await;
        let carried = self
            .carried
            .lock()
            .expect("carried poisoned")
            .remove(name)
            .unwrap_or_default();
        if let Some(m) = carried.model {
            // Taken over as it was: the store's word on its incident is older.
            let _ = self
                .state
                .send(StateControl::TakeOver(name.clone(), Box::new(m)))
                .await;
        } else if let Some(u) = unfinished {
            let _ = self.state.send(StateControl::Resume(name.clone(), u)).await;
        }
        // The gate knows it (and judges it) before its supervisor can start anything.
        let permit = self.gates.configure(name, cfg, &self.snapshot.borrow());
        // A job runs on its schedule (or `upkeep start`), never because the daemon started.
        let run = run && cfg.job.is_none();
        let supervisor = self.supervisor(name, cfg, run, permit, carried.supervisor);
        ServiceHandles {
            timers: self.timers(name, cfg, supervisor.as_ref(), true),
            supervisor,
            probes: self.probes(name, cfg),
        }
    }

    fn timers(
        &self,
        name: &ServiceName,
        cfg: &ServiceConfig,
        sup: Option<&SupervisorHandle>,
        catch_up: bool,
    ) -> crate::schedule::Timers {
        let deps = crate::schedule::Deps {
            clock: &self.supervisor.clock,
            events: &self.supervisor.events,
            store: &self.store,
            snapshot: &self.snapshot,
            logs_dir: &self.logs_dir,
        };
        crate::schedule::start(name, cfg, sup, deps, catch_up)
    }

    fn supervisor(
        &self,
        name: &ServiceName,
        cfg: &ServiceConfig,
        run: bool,
        permit: Option<watch::Receiver<upkeep_core::Permit>>,
        carried: Option<upkeep_supervisor::Carried>,
    ) -> Option<SupervisorHandle> {
        let managed = cfg.managed.as_ref()?;
        // Managed services always have one; should it be missing, no dependency holds it.
        let permit = permit.unwrap_or_else(|| watch::channel(Default::default()).1);
        let adopted = self
            .adoptions
            .lock()
            .expect("adoptions poisoned")
            .remove(name);
        let begin = match (carried, adopted) {
            // What the last image's supervisor knew decides (a failed service stays failed),
            // not the desired state.
            (Some(carried), adoption) => {
                upkeep_supervisor::Begin::TakeOver(Box::new(upkeep_supervisor::TakeOver {
                    carried,
                    adoption,
                }))
            }
            (None, Some(a)) => upkeep_supervisor::Begin::Adopt(Box::new(a)),
            (None, None) => run.into(),
        };
        Some(Supervisor::spawn(
            name.clone(),
            managed.clone(),
            begin,
            &self.supervisor,
            permit,
            self.cancel.child_token(),
            &self.tasks,
        ))
    }

    fn probes(&self, name: &ServiceName, cfg: &ServiceConfig) -> Option<ProbeRunner> {
        if cfg.probes.is_empty() {
            return None;
        }
        // Probes watch their target (the process group, and when it started), kept up to date
        // from the state snapshot by `follow_targets`: the process state believes in.
        let (tx, rx) = watch::channel(target_of(&self.snapshot.borrow(), name));
        self.targets
            .lock()
            .expect("targets poisoned")
            .insert(name.clone(), tx);
        Some(ProbeRunner::spawn(
            name.clone(),
            &cfg.probes,
            rx,
            &self.probe_deps,
            self.supervisor.events.clone(),
            self.cancel.child_token(),
            &self.tasks,
        ))
    }

    /// Applies a changed definition to a service's handles at once (probes replaced only if
    /// they changed), and returns what takes time, to be awaited without holding the handles:
    /// the process restarts (or stops) only if how it runs changed.
    pub async fn update(
        &self,
        name: &ServiceName,
        h: &mut ServiceHandles,
        old: &ServiceConfig,
        new: &ServiceConfig,
        run: bool,
    ) -> Option<futures_util::future::BoxFuture<'static, ()>> {
        if spec(old) != spec(new) {
            let _ = self
                .state
                .send(StateControl::Configure(name.clone(), spec(new)))
                .await;
        }
        // An edge added or removed, or a new reaction: the gate judges again; nothing restarts
        // for it.
        let permit = if old.depends_on != new.depends_on
            || old.on_dependency_down != new.on_dependency_down
            || old.managed.is_some() != new.managed.is_some()
        {
            self.gates.configure(name, new, &self.snapshot.borrow())
        } else {
            None
        };
        if old.probes != new.probes {
            if let Some(p) = h.probes.take() {
                p.stop();
            }
            h.probes = self.probes(name, new);
        }
        let planned_changed = old.job != new.job
            || old.restart_at != new.restart_at
            || old.watch != new.watch
            || old.managed.is_some() != new.managed.is_some();
        if planned_changed {
            h.timers = Default::default();
        }
        let slow: Option<futures_util::future::BoxFuture<'static, ()>> =
            match (&old.managed, &new.managed, &h.supervisor) {
                (Some(a), Some(b), Some(sup)) if a != b => {
                    let (sup, b) = (sup.clone(), b.clone());
                    Some(Box::pin(async move { sup.reconfigure(b).await }))
                }
                (Some(_), None, _) => h.supervisor.take().map(|sup| {
                    let stopping: futures_util::future::BoxFuture<'static, ()> =
                        Box::pin(stop(sup));
                    stopping
                }),
                (None, Some(_), _) => {
                    h.supervisor =
                        self.supervisor(name, new, run && new.job.is_none(), permit, None);
                    None
                }
                _ => None,
            };
        if planned_changed {
            h.timers = self.timers(name, new, h.supervisor.as_ref(), false);
        }
        slow
    }

    /// Stops a removed service: probes first, then its process group, then its place in the
    /// gate (not before: a held supervisor let go by the gate would start).
    pub async fn remove(&self, name: &ServiceName, h: ServiceHandles) {
        self.targets.lock().expect("targets poisoned").remove(name);
        drop(h.timers);
        if let Some(p) = h.probes {
            p.stop();
        }
        if let Some(sup) = h.supervisor {
            stop(sup).await;
        }
        self.gates.remove(name);
    }
}

async fn stop(sup: SupervisorHandle) {
    sup.request(|done| SupervisorCommand::Stop {
        by: Actor::Upkeep,
        done,
    })
    .await;
    sup.remove();
}
