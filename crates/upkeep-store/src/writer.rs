//! The event writer: the one task that writes events, in batches, in order, and never drops
//! one because the store failed (issue 14, C14: it used to retry a batch once, then drop it
//! and count it as written).
//!
//! A write that fails for a reason that passes (the database locked, the disk full) is retried
//! with backoff, from the same event, for as long as it takes; meanwhile new events queue in
//! memory up to [`MAX_PENDING`], past which the writer stops taking more and its senders wait
//! (backpressure). A batch the database refuses for good (a constraint violation: a bug, or a
//! database edited by hand) is written one event at a time, and only the refused events are
//! skipped, each logged in full.
//!
//! Each event gets the next sequence number of this node as it is taken in (going on from the
//! last stored one), so a batch retried after a lost answer is stored once, and a gap or a
//! duplicate would show.
//!
//! It ends when every sender is gone, after writing what is queued: shutdown loses nothing in
//! flight while the store works.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use upkeep_core::Event;

use crate::Store;

/// Most events written in one transaction.
const BATCH: usize = 512;

/// Most events held in memory while the store fails.
pub const MAX_PENDING: usize = 100_000;

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// `written` counts the events handled so far (stored, or refused for good), in arrival
/// order: readers wait on it to know their events are in the store.
pub async fn run(
    store: Arc<dyn Store>,
    mut events: mpsc::Receiver<Event>,
    written: watch::Sender<u64>,
) {
    let mut pending: VecDeque<Event> = VecDeque::new();
    // The sequence number of `pending[0]`.
    let mut next_seq = first_seq(&*store).await;
    let mut open = true;
    let mut backoff = BACKOFF_MIN;
    let mut failures: u64 = 0;
    loop {
        if pending.is_empty() {
            if !open {
                return;
            }
            let mut batch = Vec::with_capacity(64);
            if events.recv_many(&mut batch, BATCH).await == 0 {
                return;
            }
            pending.extend(batch);
        }
        // Take what else is waiting, up to the bound, without waiting.
        while open && pending.len() < MAX_PENDING {
            match events.try_recv() {
                Ok(e) => pending.push_back(e),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        let n = pending.len().min(BATCH);
        // The front of the queue, as a slice: written without a copy.
        let result = store
            .append(next_seq, &pending.make_contiguous()[..n])
            .await;
        match result {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(failures, "the store works again; events stored in order");
                }
                failures = 0;
                backoff = BACKOFF_MIN;
                pending.drain(..n);
                next_seq += n as u64;
                written.send_modify(|w| *w += n as u64);
            }
            Err(e) if e.is_permanent() => {
                tracing::error!(error = %e, events = n, "the store refuses a batch; writing it one event at a time");
                for _ in 0..n {
                    let Some(event) = pending.front() else { break };
                    match store.append(next_seq, std::slice::from_ref(event)).await {
                        Ok(()) => next_seq += 1,
                        // Its number goes to the next event: no gap.
                        Err(e) if e.is_permanent() => {
                            tracing::error!(error = %e, ?event, "event refused by the store: skipped");
                        }
                        // Passing trouble after all: the retry takes it from this event on.
                        Err(_) => break,
                    }
                    pending.pop_front();
                    written.send_modify(|w| *w += 1);
                }
            }
            Err(e) => {
                failures += 1;
                // The first failure in full, then one line per power of two: a long outage
                // is visible without flooding the log.
                if failures.is_power_of_two() {
                    tracing::error!(error = %e, failures, pending = pending.len(), "cannot store events; retrying");
                }
                let sleep = tokio::time::sleep(backoff);
                tokio::pin!(sleep);
                // While waiting, keep taking events (up to the bound), so senders do not wait.
                loop {
                    let room = open && pending.len() < MAX_PENDING;
                    tokio::select! {
                        _ = &mut sleep => break,
                        e = events.recv(), if room => match e {
                            Some(e) => pending.push_back(e),
                            None => open = false,
                        },
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// The number the next event gets: one past the last stored, asked until the store answers
/// (the daemon opened it a moment ago, so this rarely waits).
async fn first_seq(store: &dyn Store) -> u64 {
    let mut backoff = BACKOFF_MIN;
    loop {
        match store.last_seq().await {
            Ok(last) => return last + 1,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the last event's number; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Engine, Error, ServiceRecord, SqlStore};
    use async_trait::async_trait;
    use std::sync::atomic::{AtomicU32, Ordering};
    use upkeep_core::api::{Incident, IncidentDetail, StoredEvent};
    use upkeep_core::report::ReportInputs;
    use upkeep_core::{Desired, EventKind, ServiceName};

    /// A real store whose appends fail a number of times first, as a locked database's do;
    /// every other failure comes after the batch was stored, as when a server's answer is lost.
    struct Flaky {
        inner: SqlStore,
        failures_left: AtomicU32,
    }

    fn busy() -> Error {
        Error::Query {
            what: "insert event",
            source: sqlx::Error::PoolTimedOut,
        }
    }

    #[async_trait]
    impl Store for Flaky {
        async fn append(&self, first: u64, events: &[Event]) -> Result<(), Error> {
            let left = self.failures_left.load(Ordering::SeqCst);
            if left > 0 {
                self.failures_left.store(left - 1, Ordering::SeqCst);
                if left.is_multiple_of(2) {
                    self.inner.append(first, events).await?;
                }
                return Err(busy());
            }
            self.inner.append(first, events).await
        }
        async fn last_seq(&self) -> Result<u64, Error> {
            self.inner.last_seq().await
        }
        async fn events(&self, s: Option<&ServiceName>, l: u32) -> Result<Vec<StoredEvent>, Error> {
            self.inner.events(s, l).await
        }
        async fn incidents(&self, s: Option<&ServiceName>, l: u32) -> Result<Vec<Incident>, Error> {
            self.inner.incidents(s, l).await
        }
        async fn incident(&self, id: i64, l: u32) -> Result<Option<IncidentDetail>, Error> {
            self.inner.incident(id, l).await
        }
        async fn report_inputs(
            &self,
            from: jiff::Timestamp,
            to: jiff::Timestamp,
        ) -> Result<ReportInputs, Error> {
            self.inner.report_inputs(from, to).await
        }
        async fn set_desired(&self, s: &ServiceName, d: Desired) -> Result<(), Error> {
            self.inner.set_desired(s, d).await
        }
        async fn services(&self) -> Result<Vec<ServiceRecord>, Error> {
            self.inner.services().await
        }
        async fn save_revision(&self, path: &str, source: &str) -> Result<i64, Error> {
            self.inner.save_revision(path, source).await
        }
        async fn revision_count(&self) -> Result<i64, Error> {
            self.inner.revision_count().await
        }
        async fn unfinished(
            &self,
        ) -> Result<std::collections::BTreeMap<ServiceName, upkeep_core::Unfinished>, Error>
        {
            self.inner.unfinished().await
        }
        fn engine(&self) -> Engine {
            self.inner.engine()
        }
    }

    #[tokio::test]
    async fn a_failing_store_loses_no_event_stores_none_twice_and_keeps_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Flaky {
            inner: crate::test_store(dir.path()).await,
            failures_left: AtomicU32::new(6),
        });
        let (tx, rx) = mpsc::channel(16);
        let (written_tx, written) = watch::channel(0);
        let task = tokio::spawn(run(store.clone(), rx, written_tx));
        let web = ServiceName::new("web").unwrap();
        // More events than the channel holds: the writer takes them in while it backs off.
        for pid in 1..=100u32 {
            let e = Event::now(&web, EventKind::StaleStopped { pid });
            tx.send(e).await.unwrap();
        }
        // Nothing is counted as written while the store fails.
        assert!(*written.borrow() < 100);
        drop(tx);
        task.await.unwrap();
        assert_eq!(*written.borrow(), 100);
        let stored = store.inner.events(Some(&web), 1000).await.unwrap();
        let pids: Vec<u64> = stored
            .iter()
            .rev()
            .map(|e| e.detail["pid"].as_u64().unwrap())
            .collect();
        assert_eq!(pids, (1..=100).collect::<Vec<u64>>());
        assert_eq!(store.failures_left.load(Ordering::SeqCst), 0);
        assert_eq!(store.last_seq().await.unwrap(), 100);
    }
}
