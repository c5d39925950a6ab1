//! The dependency gate: one place that knows the graph (`depends_on`), judges it against the
//! state snapshot and hands each managed service's supervisor its [`Permit`] (start, wait,
//! stop for a dependency, restart after one).
//!
//! The judgement is pure and lives in `upkeep_state::deps`; this file holds the gate, one
//! `watch` sender per managed service, and the task that judges again whenever the snapshot
//! changes ([`follow_permits`]). Supervisors are started with their receiver, already holding
//! the permit of the moment (so a service whose dependencies are not up never starts first
//! and stops after). Nothing here polls: it is woken by the snapshot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use upkeep_config::ServiceConfig;
use upkeep_core::{Permit, ServiceName};
use upkeep_state::Snapshot;
use upkeep_state::deps::{Gate, Node};

use crate::wiring::Wiring;

/// The gate and the permits it hands out. A std Mutex: never held across an await.
#[derive(Default)]
pub struct Gates {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    gate: Gate,
    permits: HashMap<ServiceName, watch::Sender<Permit>>,
}

fn node(cfg: &ServiceConfig) -> Node {
    Node {
        managed: cfg.managed.is_some(),
        depends_on: cfg.depends_on.clone(),
        on_down: cfg.on_dependency_down,
    }
}

impl Gates {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("dependency gate poisoned")
    }

    /// Adds (or, on reload, updates) a service, judges again with `snapshot`, and returns the
    /// receiver of its permit if it is managed.
    pub fn configure(
        &self,
        name: &ServiceName,
        cfg: &ServiceConfig,
        snapshot: &Snapshot,
    ) -> Option<watch::Receiver<Permit>> {
        let mut inner = self.lock();
        inner.gate.set(name.clone(), node(cfg));
        let rx = cfg.managed.as_ref().map(|_| {
            inner
                .permits
                .entry(name.clone())
                .or_insert_with(|| watch::channel(Permit::default()).0)
                .subscribe()
        });
        if cfg.managed.is_none() {
            inner.permits.remove(name);
        }
        judge(&mut inner, snapshot);
        rx
    }

    /// Forgets a removed service (its supervisor is told by its channel closing).
    pub fn remove(&self, name: &ServiceName) {
        let mut inner = self.lock();
        inner.gate.remove(name);
        inner.permits.remove(name);
    }

    /// `names` in stop order: layers of services nothing left depends on (see
    /// [`Gate::stop_layers`]).
    pub fn stop_layers(&self, names: &[ServiceName]) -> Vec<Vec<ServiceName>> {
        self.lock().gate.stop_layers(names)
    }

    fn update(&self, snapshot: &Snapshot) {
        judge(&mut self.lock(), snapshot);
    }
}

/// Judges the services the snapshot (or the graph) changed something for and sends each permit
/// that changed (a supervisor wakes only for its own change).
fn judge(inner: &mut Inner, snapshot: &Snapshot) {
    for (name, permit) in inner.gate.judge_changed(&snapshot.services) {
        if let Some(tx) = inner.permits.get(&name) {
            tx.send_if_modified(|p| {
                let changed = *p != permit;
                *p = permit;
                changed
            });
        }
    }
}

/// Judges again at every change of the snapshot, until the daemon stops.
pub async fn follow_permits(wiring: Arc<Wiring>) {
    let mut snapshot = wiring.snapshot.clone();
    loop {
        tokio::select! {
            _ = wiring.cancel.cancelled() => return,
            changed = snapshot.changed() => if changed.is_err() { return },
        }
        let snap = snapshot.borrow_and_update().clone();
        wiring.gates.update(&snap);
    }
}
