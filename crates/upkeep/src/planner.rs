//! The maintenance planner: one task that lives each window's life. It reads the stored
//! windows, asks `upkeep_maintenance::plan` what is due at the injected clock's now, stores
//! each due step once (the store's key makes a step decided twice count once: a daemon
//! killed between deciding and storing decides again, and a reminder goes out once) with its
//! notices (outbox rows, `notices.rs`, in the step's transaction), records it as a
//! `window_step` event, and keeps the
//! services of every running occurrence in maintenance (no heals, no incidents, time counted
//! apart), ending it when their last window completes.
//!
//! It sleeps until the next step is due, or until an operator changes a window (`wake`), or,
//! while an occurrence has overrun, until a service's status changes (it completes once they
//! are all well). It never polls, and it never sits on the supervision path: its events go
//! to the state task like every other source's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};
use upkeep_core::window::Step;
use upkeep_core::{Actor, Clock, Event, EventKind, Health, ServiceName, ServiceStatus};
use upkeep_maintenance::{Plan, WindowState};
use upkeep_state::Snapshot;
use upkeep_store::{Store, StoredWindow};

/// Whether a service counts as well for completing a window: every probe passes (slow is
/// well), or, with no probe, its process runs.
pub fn well(status: Option<&ServiceStatus>) -> bool {
    let Some(s) = status else { return false };
    if s.probes.is_empty() {
        return s.pid.is_some();
    }
    s.probes
        .values()
        .all(|p| matches!(p.health, Health::Up | Health::Degraded))
}

pub fn state_of(w: &StoredWindow) -> WindowState {
    WindowState {
        spec: w.spec.clone(),
        created: w.created,
        cancelled: w.cancelled,
        taken: w.taken.clone(),
    }
}

/// How windows are lived, from `[maintenance]`.
pub fn rules(c: &upkeep_config::MaintenanceConfig) -> upkeep_maintenance::Rules {
    upkeep_maintenance::Rules {
        reminders: c.reminders.clone(),
        overrun_max: c.overrun_max,
    }
}

/// Plans `w` at `now` against the current statuses, under `rules`.
pub fn plan_of(
    w: &StoredWindow,
    now: jiff::Timestamp,
    snapshot: &Snapshot,
    rules: &upkeep_maintenance::Rules,
) -> Plan {
    let healthy = w
        .spec
        .services
        .iter()
        .all(|s| well(snapshot.services.get(&s.service)));
    upkeep_maintenance::plan(&state_of(w), now, rules, healthy)
}

pub struct Planner {
    pub store: Arc<dyn Store>,
    pub clock: Clock,
    /// Into the state task, as every source's events.
    pub events: mpsc::Sender<Event>,
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Notified by operations that change a window.
    pub wake: Arc<Notify>,
    /// `[maintenance]` as configured (a reload changes it).
    pub config: watch::Receiver<upkeep_config::MaintenanceConfig>,
    /// Each step's notices, inserted with the step.
    pub notices: crate::notices::Notices,
}

/// What one pass found: when to look again and whether health changes matter.
struct Pass {
    wake: Option<jiff::Timestamp>,
    awaits_health: bool,
    /// Steps were taken: plan again at once (a start is followed by what it makes due).
    again: bool,
}

impl Planner {
    pub async fn run(mut self) {
        // Services this planner put in maintenance, by window: at start, those the last daemon
        // left there (their maintenance names its window).
        let mut placed: BTreeMap<ServiceName, i64> = self
            .snapshot
            .borrow()
            .services
            .iter()
            .filter_map(|(n, s)| Some((n.clone(), s.maintenance.as_ref()?.window?)))
            .collect();
        let mut backoff = Duration::from_secs(1);
        loop {
            let pass = match self.pass(&mut placed).await {
                Ok(p) => {
                    backoff = Duration::from_secs(1);
                    p
                }
                Err(e) => {
                    tracing::warn!(
                        "maintenance planner: {} (trying again in {backoff:?})",
                        e.with_causes()
                    );
                    self.clock.sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    continue;
                }
            };
            if pass.again {
                continue;
            }
            let until = async {
                match pass.wake {
                    Some(at) => self.clock.sleep_until_time(at).await,
                    None => std::future::pending().await,
                }
            };
            let health = async {
                if pass.awaits_health {
                    let _ = self.snapshot.changed().await;
                } else {
                    std::future::pending::<()>().await
                }
            };
            tokio::select! {
                _ = until => {}
                _ = health => {}
                _ = self.wake.notified() => {}
                _ = self.config.changed() => {}
            }
        }
    }

    async fn pass(
        &mut self,
        placed: &mut BTreeMap<ServiceName, i64>,
    ) -> Result<Pass, upkeep_store::Error> {
        let windows = self.store.windows(false).await?;
        let now = self.clock.now();
        let snapshot = self.snapshot.borrow_and_update().clone();
        let rules = rules(&self.config.borrow_and_update());
        let mut out = Pass {
            wake: None,
            awaits_health: false,
            again: false,
        };
        // Which window each service's maintenance belongs to now (the latest-ending one).
        let mut wanted: BTreeMap<ServiceName, (i64, String, jiff::Timestamp)> = BTreeMap::new();
        for w in &windows {
            let plan = plan_of(w, now, &snapshot, &rules);
            for (occurrence, step) in &plan.due {
                // Not stored (already there): the next read has it. Only a new step
                // makes the planner look again at once, so a disagreement cannot spin.
                if self
                    .notices
                    .take_step(self.store.as_ref(), w, *occurrence, *step, now, None)
                    .await?
                {
                    tracing::info!(window = w.id, step = %step.key(), "maintenance window step");
                    self.record(w, *occurrence, *step, Actor::Upkeep).await;
                    out.again = true;
                }
            }
            if let Some(run) = plan.running {
                for s in &w.spec.services {
                    let e = wanted.entry(s.service.clone()).or_insert((
                        w.id,
                        w.spec.title.clone(),
                        run.end,
                    ));
                    if run.end > e.2 {
                        *e = (w.id, w.spec.title.clone(), run.end);
                    }
                }
            }
            if plan.due.is_empty()
                && plan.running.is_none()
                && matches!(
                    plan.status,
                    upkeep_core::window::WindowStatus::Completed
                        | upkeep_core::window::WindowStatus::Cancelled
                )
            {
                self.store.window_done(w.id).await?;
            }
            out.wake = match (out.wake, plan.wake) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            out.awaits_health |= plan.awaits_health;
        }
        if !out.again {
            self.reconcile(placed, &wanted, &snapshot).await;
        }
        Ok(out)
    }

    /// Puts the services of running occurrences in maintenance and takes out those whose
    /// windows are over.
    async fn reconcile(
        &self,
        placed: &mut BTreeMap<ServiceName, i64>,
        wanted: &BTreeMap<ServiceName, (i64, String, jiff::Timestamp)>,
        snapshot: &Snapshot,
    ) {
        for (name, (id, title, _)) in wanted {
            let current = snapshot
                .services
                .get(name)
                .and_then(|s| s.maintenance.as_ref());
            if current.is_some_and(|m| m.window == Some(*id)) {
                placed.insert(name.clone(), *id);
                continue;
            }
            placed.insert(name.clone(), *id);
            // No `until` for the state task: a window's maintenance ends when the planner says
            // (an overrun holds it past the expected end), never by the state task's timer.
            let kind = EventKind::MaintenanceStarted {
                reason: title.clone(),
                until: None,
                by: Actor::Upkeep,
                window: Some(*id),
            };
            let _ = self.events.send(self.clock.event(name, kind)).await;
        }
        let over: Vec<ServiceName> = placed
            .keys()
            .filter(|n| !wanted.contains_key(*n))
            .cloned()
            .collect();
        for name in over {
            placed.remove(&name);
            // Only if it is still the window's (an operator may have ended it, or begun
            // maintenance by hand since).
            let ours = snapshot
                .services
                .get(&name)
                .and_then(|s| s.maintenance.as_ref())
                .is_some_and(|m| m.window.is_some());
            if ours {
                let kind = EventKind::MaintenanceEnded { by: Actor::Upkeep };
                let _ = self.events.send(self.clock.event(&name, kind)).await;
            }
        }
    }

    async fn record(&self, w: &StoredWindow, occurrence: jiff::Timestamp, step: Step, by: Actor) {
        let _ = self
            .events
            .send(step_event(&self.clock, w, occurrence, step, by))
            .await;
    }
}

/// The event that records a window's step (each one a notice).
pub fn step_event(
    clock: &Clock,
    w: &StoredWindow,
    occurrence: jiff::Timestamp,
    step: Step,
    by: Actor,
) -> Event {
    clock.daemon_event(EventKind::WindowStep {
        window: w.id,
        title: w.spec.title.clone(),
        occurrence,
        step,
        by,
    })
}
