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
use upkeep_core::{Event, EventKind, ServiceName, ServiceStatus, Unfinished};

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
    /// What the last daemon left unfinished for a configured service (start-up only, right
    /// after its `Configure`).
    Resume(ServiceName, Unfinished),
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
                // Control first: a service's spec is sent before its supervisor and probes
                // start, so handling it first guarantees no event of the service is folded in
                // without it (a probe verdict for a probe the model does not know yet would
                // be dropped, and an unchanged verdict is never sent again).
                biased;
                Some(control) = self.control.recv() => self.control(control).await,
                n = self.events.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break;
                    }
                    self.handle(std::mem::take(&mut batch)).await;
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

    async fn control(&mut self, control: StateControl) {
        let now = jiff::Timestamp::now();
        let outputs = match control {
            StateControl::Configure(name, spec) => match self.models.get_mut(&name) {
                Some(m) => {
                    m.set_spec(spec);
                    m.settle(now)
                }
                None => {
                    let mut m = ServiceModel::new(name.clone(), spec);
                    let outputs = m.settle(now);
                    self.models.insert(name, m);
                    outputs
                }
            },
            StateControl::Resume(name, unfinished) => match self.models.get_mut(&name) {
                Some(m) => {
                    m.resume(unfinished);
                    m.settle(now)
                }
                None => Vec::new(),
            },
        };
        self.emit(outputs).await;
        self.publish();
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

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::{Health, State};

    /// Regression: with a service's spec and its probe's first verdict both queued, the verdict
    /// must not be folded in before the spec (it would be dropped, and the service would stay
    /// `starting` for good). Twenty tries: a random choice would lose about half.
    #[tokio::test]
    async fn a_spec_is_applied_before_the_events_queued_after_it() {
        for _ in 0..20 {
            let (etx, erx) = mpsc::channel(16);
            let (ctx, crx) = mpsc::channel(16);
            let (stx, mut srx) = mpsc::channel(64);
            let (htx, _hrx) = mpsc::channel(16);
            let (task, mut snapshot) = StateTask::new(erx, crx, stx, htx);
            let name = ServiceName::new("db").unwrap();
            let spec = ServiceSpec {
                managed: false,
                heal: false,
                probes: vec!["tcp".into()],
                ..Default::default()
            };
            ctx.send(StateControl::Configure(name.clone(), spec))
                .await
                .unwrap();
            let kind = EventKind::ProbeChanged {
                probe: "tcp".into(),
                health: Health::Up,
                reason: "ok".into(),
            };
            etx.send(Event::now(&name, kind)).await.unwrap();
            let drain = CancellationToken::new();
            let run = tokio::spawn(task.run(drain.clone()));
            let up = snapshot.wait_for(|s| {
                s.services
                    .get(&name)
                    .is_some_and(|st| st.state == State::Up)
            });
            tokio::time::timeout(std::time::Duration::from_secs(2), up)
                .await
                .expect("the verdict was lost")
                .unwrap();
            drain.cancel();
            drop(etx);
            run.await.unwrap();
            while srx.try_recv().is_ok() {}
        }
    }
}
