//! The state task: the single writer of service statuses.
//!
//! Events come in from the supervisors (and later probes); each is folded into its service's
//! status, the new snapshot is published on a `watch` channel (the latest value is all readers
//! need) and the event goes on to the store writer. The task ends when every event sender is
//! gone, after passing everything on, so nothing in flight is lost at shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use upkeep_core::{Event, EventKind, ServiceName, ServiceStatus};

/// Every service's status, as of the last event.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// How many events state has folded in and passed on to the store, in order. Compare with
    /// the store writer's count to know when what `state` shows is also stored.
    pub seq: u64,
    pub services: BTreeMap<ServiceName, ServiceStatus>,
}

pub struct StateTask {
    statuses: BTreeMap<ServiceName, ServiceStatus>,
    seq: u64,
    events: mpsc::Receiver<Event>,
    store: mpsc::Sender<Event>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    draining: bool,
}

impl StateTask {
    pub fn new(
        events: mpsc::Receiver<Event>,
        store: mpsc::Sender<Event>,
    ) -> (Self, watch::Receiver<Arc<Snapshot>>) {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        (
            Self {
                statuses: BTreeMap::new(),
                seq: 0,
                events,
                store,
                snapshot: tx,
                draining: false,
            },
            rx,
        )
    }

    /// Runs until every sender is gone, or until `drain` is cancelled and what was already
    /// sent has been passed on (senders that outlive shutdown, such as a log reader whose pipe
    /// a stray grandchild keeps open, cannot hold the daemon up).
    pub async fn run(mut self, drain: tokio_util::sync::CancellationToken) {
        let mut batch = Vec::with_capacity(64);
        loop {
            let n = tokio::select! {
                n = self.events.recv_many(&mut batch, 256) => n,
                _ = drain.cancelled(), if !self.draining => {
                    self.draining = true;
                    self.events.close();
                    continue;
                }
            };
            if n == 0 {
                break;
            }
            for event in batch.drain(..) {
                if let Some(name) = &event.service {
                    if matches!(event.kind, EventKind::Removed) {
                        self.statuses.remove(name);
                    } else {
                        let status = self
                            .statuses
                            .entry(name.clone())
                            .or_insert_with(|| ServiceStatus::new(name.clone()));
                        crate::apply(status, &event);
                    }
                }
                self.seq += 1;
                let _ = self.store.send(event).await;
            }
            // One snapshot per batch: a burst of events costs one clone, not one each.
            self.snapshot.send_replace(Arc::new(Snapshot {
                seq: self.seq,
                services: self.statuses.clone(),
            }));
        }
    }
}
