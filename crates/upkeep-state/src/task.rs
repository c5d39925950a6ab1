//! The state task: the single writer of service statuses.
//!
//! Events come in from supervisors and probe runners; each is folded into its service's model,
//! the new snapshot is published on a `watch` channel (the latest value is all readers need),
//! and every event (the inputs, and what the machine produced) goes on to the store writer, in
//! order. Heal requests go out on their own channel. The task ends when every event sender is
//! gone or `drain` is cancelled, after passing everything on, so nothing in flight is lost.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use upkeep_core::{Event, EventKind, ServiceName, ServiceStatus};

use crate::machine::{Output, ServiceModel, ServiceSpec};

/// Every service's status, as of the last event.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// How many events state has passed on to the store, in order. Compare with the store
    /// writer's count to know when what `state` shows is also stored.
    pub seq: u64,
    pub services: BTreeMap<ServiceName, ServiceStatus>,
}

/// Config changes from the daemon.
#[derive(Debug, Clone)]
pub enum StateControl {
    Configure(ServiceName, ServiceSpec),
}

/// A request to restart a service because its probes say down.
#[derive(Debug, Clone, PartialEq)]
pub struct Heal {
    pub service: ServiceName,
    pub reason: String,
}

pub struct StateTask {
    models: BTreeMap<ServiceName, ServiceModel>,
    seq: u64,
    events: mpsc::Receiver<Event>,
    control: mpsc::Receiver<StateControl>,
    store: mpsc::Sender<Event>,
    heals: mpsc::Sender<Heal>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    draining: bool,
}

impl StateTask {
    pub fn new(
        events: mpsc::Receiver<Event>,
        control: mpsc::Receiver<StateControl>,
        store: mpsc::Sender<Event>,
        heals: mpsc::Sender<Heal>,
    ) -> (Self, watch::Receiver<Arc<Snapshot>>) {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let task = Self {
            models: BTreeMap::new(),
            seq: 0,
            events,
            control,
            store,
            heals,
            snapshot: tx,
            draining: false,
        };
        (task, rx)
    }

    pub async fn run(mut self, drain: CancellationToken) {
        let mut batch = Vec::with_capacity(64);
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                n = self.events.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break;
                    }
                    self.handle(std::mem::take(&mut batch)).await;
                }
                Some(StateControl::Configure(name, spec)) = self.control.recv() => {
                    match self.models.get_mut(&name) {
                        Some(m) => m.set_spec(spec),
                        None => {
                            self.models.insert(name.clone(), ServiceModel::new(name.clone(), spec));
                        }
                    }
                    self.settle(Some(&name)).await;
                }
                _ = sleep_until(deadline) => {
                    let now = jiff::Timestamp::now();
                    let mut outputs = Vec::new();
                    for m in self.models.values_mut() {
                        outputs.extend(m.tick(now));
                    }
                    self.emit(outputs).await;
                    self.publish();
                }
                _ = drain.cancelled(), if !self.draining => {
                    self.draining = true;
                    self.events.close();
                }
            }
        }
    }

    async fn handle(&mut self, batch: Vec<Event>) {
        for event in batch {
            let mut outputs = Vec::new();
            if let Some(name) = &event.service {
                if matches!(event.kind, EventKind::Removed) {
                    self.models.remove(name);
                } else {
                    let model = self
                        .models
                        .entry(name.clone())
                        .or_insert_with(|| ServiceModel::new(name.clone(), ServiceSpec::default()));
                    model.apply(&event);
                    // Settled at the event's own time: the supervisor restarts before it
                    // reports, so exit and restart arrive together, yet the outage between
                    // them is real and is measured from the events' times.
                    outputs = model.settle(event.at);
                }
            }
            self.forward(event).await;
            self.emit(outputs).await;
        }
        self.publish();
    }

    async fn settle(&mut self, name: Option<&ServiceName>) {
        let now = jiff::Timestamp::now();
        let outputs = match name.and_then(|n| self.models.get_mut(n)) {
            Some(m) => m.settle(now),
            None => Vec::new(),
        };
        self.emit(outputs).await;
        self.publish();
    }

    async fn emit(&mut self, outputs: Vec<Output>) {
        for o in outputs {
            match o {
                Output::Event(e) => self.forward(e).await,
                Output::Heal { service, reason } => {
                    let _ = self.heals.send(Heal { service, reason }).await;
                }
            }
        }
    }

    async fn forward(&mut self, event: Event) {
        self.seq += 1;
        let _ = self.store.send(event).await;
    }

    fn publish(&self) {
        let services = self
            .models
            .iter()
            .map(|(n, m)| (n.clone(), m.status.clone()))
            .collect();
        self.snapshot.send_replace(Arc::new(Snapshot {
            seq: self.seq,
            services,
        }));
    }

    fn next_deadline(&self) -> Option<jiff::Timestamp> {
        self.models
            .values()
            .filter_map(ServiceModel::deadline)
            .min()
    }
}

async fn sleep_until(deadline: Option<jiff::Timestamp>) {
    match deadline {
        Some(at) => {
            let wait = at.duration_since(jiff::Timestamp::now());
            let wait = std::time::Duration::try_from(wait).unwrap_or_default();
            tokio::time::sleep(wait).await
        }
        None => std::future::pending().await,
    }
}
