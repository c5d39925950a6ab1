//! Committed events, fanned out to whoever watches (issue 15, item 9). Two ways, one source:
//!
//! - **live views** (the SSE stream, `upkeep top`, to come) [`Fanout::subscribe`] to a
//!   broadcast of each committed batch: cheap, in memory, and a receiver that lags behind is
//!   told how many it missed (a view reloads; it never blocks the writer);
//! - **durable consumers** (the outbox planner, to come) read from a [`Consumer`]: a cursor
//!   kept in the store, so each sees every event in order across restarts. It wakes when the
//!   writer commits (never polls) and reads from the store. Exactly once when a consumer
//!   writes its output and moves its cursor in one transaction; at least once otherwise.
//!
//! The writer (`writer.rs`) publishes after each commit. Events wait in the journal while the
//! store is away: observers see them once they are stored.

use std::sync::Arc;

use tokio::sync::{broadcast, watch};
use upkeep_core::Committed;

use crate::{Error, Store};

/// How many committed batches a live view may fall behind before it is told it missed some.
const LIVE_BATCHES: usize = 1024;

/// The writer's end: publishes what it committed. Cloned by whoever hands out subscriptions.
#[derive(Clone)]
pub struct Fanout {
    live: broadcast::Sender<Arc<[Committed]>>,
    last: Arc<watch::Sender<u64>>,
}

impl Default for Fanout {
    fn default() -> Self {
        Self::new()
    }
}

impl Fanout {
    pub fn new() -> Fanout {
        Fanout {
            live: broadcast::channel(LIVE_BATCHES).0,
            last: Arc::new(watch::channel(0).0),
        }
    }

    /// Every batch committed from now on, in order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<[Committed]>> {
        self.live.subscribe()
    }

    /// The number of the last committed event, as it changes.
    pub fn last(&self) -> watch::Receiver<u64> {
        self.last.subscribe()
    }

    /// Called by the writer once `events`, numbered from `first`, are committed. Only
    /// numbers past the last published go out: a batch stored again from the journal (its
    /// first answer lost) is not news.
    pub(crate) fn publish(&self, first: u64, events: &[upkeep_core::Event]) {
        let last = *self.last.borrow();
        let Some(top) = (first + events.len() as u64).checked_sub(1) else {
            return;
        };
        if events.is_empty() || top <= last {
            return;
        }
        // Copies only for someone to read them.
        if self.live.receiver_count() > 0 {
            let new: Vec<Committed> = events
                .iter()
                .enumerate()
                .map(|(i, e)| (first + i as u64, e))
                .filter(|(seq, _)| *seq > last)
                .map(|(seq, e)| Committed {
                    seq,
                    event: e.clone(),
                })
                .collect();
            let _ = self.live.send(new.into());
        }
        self.last.send_replace(top);
    }

    /// Where numbering stands at start: the last stored event's number.
    pub(crate) fn start_at(&self, seq: u64) {
        self.last.send_replace(seq);
    }
}

/// A durable consumer of committed events: its cursor lives in the store.
pub struct Consumer {
    name: String,
    store: Arc<dyn Store>,
    last: watch::Receiver<u64>,
    at: u64,
}

impl Consumer {
    /// Opens the consumer `name` where it last stopped.
    pub async fn open(name: &str, store: Arc<dyn Store>, fanout: &Fanout) -> Result<Self, Error> {
        let at = store.cursor(name).await?;
        Ok(Consumer {
            name: name.to_owned(),
            store,
            last: fanout.last(),
            at,
        })
    }

    /// Waits for events past the cursor and returns up to `limit` of them, oldest first;
    /// None once the writer and every [`Fanout`] clone are gone (a consumer inside the daemon
    /// also watches its shutdown).
    pub async fn next(&mut self, limit: u32) -> Result<Option<Vec<Committed>>, Error> {
        loop {
            let at = self.at;
            if self.last.wait_for(|last| *last > at).await.is_err() {
                return Ok(None);
            }
            let events = self.store.events_after(self.at, limit).await?;
            if !events.is_empty() {
                return Ok(Some(events));
            }
            // Announced but not readable (rows skipped as bad): nothing to wait for there.
            let last = *self.last.borrow();
            self.ack(last).await?;
        }
    }

    /// Marks every event up to `seq` as finished; kept in the store.
    pub async fn ack(&mut self, seq: u64) -> Result<(), Error> {
        self.store.set_cursor(&self.name, seq).await?;
        self.at = seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Engine;
    use crate::writer::{Channels, healthy, run};
    use upkeep_core::{Event, EventKind, ServiceName};

    /// A writer on a fresh SQLite store, its event sender and its fanout.
    async fn writer(
        dir: &std::path::Path,
    ) -> (
        Arc<dyn Store>,
        tokio::sync::mpsc::Sender<Event>,
        Fanout,
        tokio::task::JoinHandle<()>,
    ) {
        let store: Arc<dyn Store> = Arc::new(crate::test_store(dir).await);
        let (tx, events) = tokio::sync::mpsc::channel(64);
        let fanout = Fanout::new();
        let ch = Channels {
            events,
            written: watch::channel(0).0,
            health: watch::channel(healthy(Engine::Sqlite)).0,
            fanout: fanout.clone(),
        };
        let paths = crate::writer::Paths {
            journal: dir.join("journal"),
            numbers: dir.join("seq"),
        };
        let task = tokio::spawn({
            let store = store.clone();
            async move { run(store, &paths, ch).await }
        });
        (store, tx, fanout, task)
    }

    fn stale(pid: u32) -> Event {
        Event::now(
            &ServiceName::new("web").unwrap(),
            EventKind::StaleStopped { pid },
        )
    }

    fn pids(events: &[Committed]) -> Vec<u32> {
        events
            .iter()
            .map(|c| match c.event.kind {
                EventKind::StaleStopped { pid } => pid,
                _ => panic!("{c:?}"),
            })
            .collect()
    }

    /// Issue 15, item 9: a live view gets every committed event in order; a durable consumer
    /// gets each once across a restart of the daemon (a new writer, a reopened consumer).
    #[tokio::test]
    async fn live_views_and_durable_consumers_each_see_every_committed_event_once() {
        let dir = tempfile::tempdir().unwrap();
        let (store, tx, fanout, task) = writer(dir.path()).await;
        let mut live = fanout.subscribe();
        let mut consumer = Consumer::open("test", store.clone(), &fanout)
            .await
            .unwrap();
        for pid in 1..=100 {
            tx.send(stale(pid)).await.unwrap();
        }
        let mut seen = Vec::new();
        while seen.len() < 100 {
            seen.extend(live.recv().await.unwrap().iter().cloned());
        }
        assert_eq!(pids(&seen), (1..=100).collect::<Vec<_>>());
        assert_eq!(
            seen.iter().map(|c| c.seq).collect::<Vec<_>>(),
            (1..=100).collect::<Vec<_>>()
        );
        // The consumer finishes 60 of them, then the daemon stops.
        let mut done = Vec::new();
        while done.len() < 60 {
            let batch = consumer
                .next(60 - done.len() as u32)
                .await
                .unwrap()
                .unwrap();
            let top = batch.last().unwrap().seq;
            done.extend(batch);
            consumer.ack(top).await.unwrap();
        }
        drop((tx, consumer));
        task.await.unwrap();
        drop(store);
        // A new daemon: the consumer goes on from 61, and then takes new events as they come.
        let (store, tx, fanout, task) = writer(dir.path()).await;
        let mut consumer = Consumer::open("test", store.clone(), &fanout)
            .await
            .unwrap();
        tx.send(stale(101)).await.unwrap();
        while done.len() < 101 {
            let batch = consumer.next(1000).await.unwrap().unwrap();
            let top = batch.last().unwrap().seq;
            done.extend(batch);
            consumer.ack(top).await.unwrap();
        }
        assert_eq!(pids(&done), (1..=101).collect::<Vec<_>>());
        drop((tx, fanout));
        task.await.unwrap();
        // The writer and every fanout are gone: nothing more will come.
        assert!(consumer.next(10).await.unwrap().is_none());
    }
}
