//! The event writer: the one task that writes events, in batches, in order, and never drops
//! one because the store failed (issue 14, C14; issue 15, item 4).
//!
//! Each event gets the next sequence number of this node as it is taken in (going on from the
//! last stored or journaled one), so a batch retried after a lost answer is stored once, and a
//! gap or a duplicate would show.
//!
//! While the store takes writes, events go straight to it. When a write fails for a reason
//! that passes (PostgreSQL away, SQLite locked, a disk full), the batch and every event after
//! it go to the [`Journal`] file in the data dir instead, in order, so memory stays bounded,
//! no sender ever waits on the store (a restart never does) and a daemon killed during the
//! outage loses nothing. The writer retries with backoff, stores the journal from the front
//! once the store answers, and goes back to direct writes when it is empty. Without a journal
//! (its file cannot be opened), events wait in memory up to [`MAX_PENDING`], then senders wait.
//!
//! A batch the database refuses for good (a constraint violation: a bug, or a database edited
//! by hand) is written one event at a time, and only the refused events are skipped, each
//! logged in full.
//!
//! `written` counts the events kept so far (stored, journaled, or refused for good), in
//! arrival order: readers wait on it to know their events will survive a kill. `health` says
//! whether the store answers. It ends when every sender is gone, after writing what is queued
//! (or leaving it in the journal, if the store is away).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use upkeep_core::Event;
use upkeep_core::api::StoreHealth;

use crate::fanout::Fanout;
use crate::journal::Journal;
use crate::{Engine, Error, Store};

/// Most events written in one transaction.
const BATCH: usize = 512;

/// Most events held in memory while the store fails and there is no journal.
pub const MAX_PENDING: usize = 100_000;

/// A write that takes longer than this sends what waits to the journal: a server that went
/// away is often seen only when the connection times out, seconds later.
const SLOW: Duration = Duration::from_millis(500);

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The writer's ends: where events come from, and what it tells readers.
pub struct Channels {
    pub events: mpsc::Receiver<Event>,
    pub written: watch::Sender<u64>,
    pub health: watch::Sender<StoreHealth>,
    /// Where committed events go to observers.
    pub fanout: Fanout,
}

/// A health report for a store on `engine` that answers.
pub fn healthy(engine: Engine) -> StoreHealth {
    StoreHealth {
        engine: match engine {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
        }
        .into(),
        ..StoreHealth::default()
    }
}

/// How many events a previous daemon left in the journal at `path`: what
/// [`StoreHealth::journaled`] starts at, and what a daemon waits to see stored before it reads
/// which processes its predecessor ran.
pub async fn journaled(path: &Path) -> u64 {
    crate::journal::scan(path)
        .await
        .map_or(0, |(lines, _)| lines)
}

/// Opens (creating) the journal at `path` as the writer will, to refuse to start without one:
/// a daemon that cannot journal would lose the events of an outage to a kill.
pub async fn check_journal(path: &Path) -> std::io::Result<()> {
    Journal::open(path).await.map(drop)
}

/// Runs the writer until every sender is gone. `journal` is the file used while the store
/// is away (and read at start: what a killed daemon left is stored first).
pub async fn run(store: Arc<dyn Store>, journal: &Path, channels: Channels) {
    let mut w = Writer {
        journal: match Journal::open(journal).await {
            Ok(j) => Some(j),
            Err(e) => {
                tracing::error!(path = %journal.display(), "no journal, events wait in memory while the store is away: {e}");
                None
            }
        },
        next_seq: 0,
        pending: VecDeque::new(),
        open: true,
        backoff: BACKOFF_MIN,
        failures: 0,
        store,
        ch: channels,
    };
    w.next_seq = w.first_seq().await;
    loop {
        let journaling = w.journal.as_ref().is_some_and(|j| !j.is_drained());
        let go_on = if journaling {
            w.store_journal().await
        } else {
            w.direct().await
        };
        if !go_on {
            return;
        }
    }
}

struct Writer {
    store: Arc<dyn Store>,
    journal: Option<Journal>,
    /// The sequence number of the next event taken in (`pending[0]`'s, when it is not empty).
    next_seq: u64,
    /// Taken in, neither stored nor journaled.
    pending: VecDeque<Event>,
    open: bool,
    backoff: Duration,
    failures: u64,
    ch: Channels,
}

impl Writer {
    /// The number the next event gets: one past the last stored or journaled, asked until the
    /// store answers (the daemon opened it a moment ago, so this rarely waits).
    async fn first_seq(&self) -> u64 {
        let journaled = match &self.journal {
            Some(j) => j.scan().await.ok().and_then(|(_, last)| last).unwrap_or(0),
            None => 0,
        };
        let mut backoff = BACKOFF_MIN;
        loop {
            match self.store.last_seq().await {
                Ok(last) => {
                    self.ch.fanout.start_at(last);
                    return last.max(journaled) + 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the last event's number; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn kept(&self, n: usize) {
        self.ch.written.send_modify(|w| *w += n as u64);
    }

    /// One round of direct writes. False when there is nothing more to do.
    async fn direct(&mut self) -> bool {
        if self.pending.is_empty() {
            if !self.open {
                return false;
            }
            let mut batch = Vec::with_capacity(64);
            if self.ch.events.recv_many(&mut batch, BATCH).await == 0 {
                return false;
            }
            self.pending.extend(batch);
        }
        // Take what else is waiting, up to the bound, without waiting.
        self.take_waiting(MAX_PENDING);
        let n = self.pending.len().min(BATCH);
        let batch: Vec<Event> = self.pending.drain(..n).collect();
        let first = self.next_seq;
        self.next_seq += n as u64;
        let (result, spilled) = self.write_taking_in(first, &batch, true).await;
        if spilled {
            // The batch went to the journal while the write took long: the journal takes over
            // (a batch stored after all is a no-op when the journal is stored).
            match result {
                Ok(()) => self.recovered(),
                Err(e) if !e.is_permanent() => self.failed(&e),
                Err(_) => {}
            }
            return true;
        }
        match result {
            Ok(()) => {
                self.recovered();
                self.kept(n);
                self.ch.fanout.publish(first, &batch);
            }
            Err(e) if e.is_permanent() => {
                let mut batch = batch;
                let (done, next) = self.one_at_a_time(&e, &mut batch, first, false).await;
                self.kept(done);
                // Whatever passing trouble stopped it goes back to the front, numbered on.
                self.put_back(next, batch);
            }
            Err(e) => {
                self.failed(&e);
                self.put_back(first, batch);
                if !self.journal_pending().await {
                    self.wait_in_memory().await;
                }
            }
        }
        true
    }

    /// Puts `batch` back at the front of `pending`, its first event numbered `seq`.
    fn put_back(&mut self, seq: u64, batch: Vec<Event>) {
        for e in batch.into_iter().rev() {
            self.pending.push_front(e);
        }
        self.next_seq = seq;
    }

    /// Writes `batch` (numbered from `first`) while taking new events in, so that a slow
    /// store never leaves them in memory for long: in journal mode (`direct` false) each is
    /// journaled as it comes; in direct mode they wait in `pending`, unless the write takes
    /// longer than [`SLOW`], when the batch and everything after it go to the journal.
    /// Returns the write's result and whether the batch was journaled.
    async fn write_taking_in(
        &mut self,
        first: u64,
        batch: &[Event],
        direct: bool,
    ) -> (Result<(), Error>, bool) {
        let store = self.store.clone();
        let write = store.append(first, batch);
        tokio::pin!(write);
        let slow = tokio::time::sleep(SLOW);
        tokio::pin!(slow);
        let mut journaling = !direct;
        let mut spilled = false;
        loop {
            let room = self.open && self.pending.len() < MAX_PENDING;
            tokio::select! {
                biased;
                r = &mut write => return (r, spilled),
                _ = &mut slow, if !journaling => {
                    journaling = true;
                    if self.journal_batch(first, batch).await {
                        spilled = true;
                        self.journal_pending().await;
                    }
                }
                e = self.ch.events.recv(), if room => match e {
                    Some(e) => {
                        self.pending.push_back(e);
                        self.take_waiting(BATCH);
                        if journaling && self.journal.is_some() {
                            self.journal_pending().await;
                        }
                    }
                    None => self.open = false,
                },
            }
        }
    }

    /// Journals `batch`, already numbered from `first` (`next_seq` is past it). False if
    /// there is no journal, or it fails.
    async fn journal_batch(&mut self, first: u64, batch: &[Event]) -> bool {
        let Some(journal) = self.journal.as_mut() else {
            return false;
        };
        match journal.append(first, batch).await {
            Ok(()) => {
                self.kept(batch.len());
                self.ch
                    .health
                    .send_modify(|h| h.journaled += batch.len() as u64);
                true
            }
            Err(e) => {
                tracing::error!("cannot write the journal; events wait in memory: {e}");
                self.journal = None;
                false
            }
        }
    }

    /// Writes `batch` one event at a time after the store refused it whole, skipping only
    /// what it refuses; stops at passing trouble, leaving the rest in `batch`. Numbers go on
    /// from `seq`: a refused event's number goes to the next one, unless the numbers are
    /// `fixed` (journaled events have theirs already). Returns how many were handled and the
    /// next number.
    async fn one_at_a_time(
        &self,
        e: &Error,
        batch: &mut Vec<Event>,
        mut seq: u64,
        fixed: bool,
    ) -> (usize, u64) {
        tracing::error!(error = %e, events = batch.len(), "the store refuses a batch; writing it one event at a time");
        let mut done = 0;
        for event in batch.iter() {
            match self.store.append(seq, std::slice::from_ref(event)).await {
                Ok(()) => {
                    self.ch.fanout.publish(seq, std::slice::from_ref(event));
                    seq += 1;
                }
                Err(e) if e.is_permanent() => {
                    tracing::error!(error = %e, ?event, "event refused by the store: skipped");
                    if fixed {
                        seq += 1;
                    }
                }
                // Passing trouble after all: the retry takes it from this event on.
                Err(_) => break,
            }
            done += 1;
        }
        batch.drain(..done);
        (done, seq)
    }

    /// Moves every pending event to the journal. False if there is no journal, or it fails.
    async fn journal_pending(&mut self) -> bool {
        let Some(journal) = self.journal.as_mut() else {
            return false;
        };
        let events: Vec<Event> = self.pending.drain(..).collect();
        match journal.append(self.next_seq, &events).await {
            Ok(()) => {
                self.next_seq += events.len() as u64;
                self.kept(events.len());
                self.ch
                    .health
                    .send_modify(|h| h.journaled += events.len() as u64);
                true
            }
            Err(e) => {
                tracing::error!("cannot write the journal; events wait in memory: {e}");
                self.pending.extend(events);
                self.journal = None;
                false
            }
        }
    }

    /// Backs off while taking new events in (up to the bound), so senders do not wait.
    async fn wait_in_memory(&mut self) {
        let sleep = tokio::time::sleep(self.backoff);
        tokio::pin!(sleep);
        loop {
            let room = self.open && self.pending.len() < MAX_PENDING;
            tokio::select! {
                _ = &mut sleep => break,
                e = self.ch.events.recv(), if room => match e {
                    Some(e) => self.pending.push_back(e),
                    None => self.open = false,
                },
            }
        }
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// One round while the journal holds events: back off (journaling what arrives), then
    /// store from the journal's front. False when senders are gone and the store is still
    /// away: the journal keeps the rest for the next daemon.
    async fn store_journal(&mut self) -> bool {
        if self.failures > 0 {
            let sleep = tokio::time::sleep(self.backoff);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    e = self.ch.events.recv(), if self.open => match e {
                        Some(e) => {
                            self.pending.push_back(e);
                            self.take_waiting(BATCH);
                            if !self.journal_pending().await {
                                return true;
                            }
                        }
                        None => self.open = false,
                    },
                }
            }
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        }
        loop {
            // What arrived meanwhile goes behind what is journaled: order is kept.
            self.take_waiting(BATCH);
            if !self.pending.is_empty() && !self.journal_pending().await {
                return true;
            }
            let Some(journal) = self.journal.as_mut() else {
                return true;
            };
            let (first, mut events, offset) = match journal.peek(BATCH).await {
                Ok(read) => read,
                Err(e) => {
                    tracing::error!("cannot read the journal; it is kept for the next start: {e}");
                    self.journal = None;
                    return true;
                }
            };
            let result = if events.is_empty() {
                Ok(())
            } else {
                self.write_taking_in(first, &events, false).await.0
            };
            let n = events.len();
            match result {
                Ok(()) => self.ch.fanout.publish(first, &events),
                Err(e) if e.is_permanent() => {
                    self.one_at_a_time(&e, &mut events, first, true).await;
                    if !events.is_empty() {
                        // Passing trouble: this batch is read again from the journal.
                        return true;
                    }
                }
                Err(e) => {
                    self.failed(&e);
                    return self.open;
                }
            }
            let journal = self.journal.as_mut().expect("checked above");
            if let Err(e) = journal.consume(offset).await {
                tracing::error!("cannot empty the journal: {e}");
            }
            let drained = journal.is_drained();
            self.ch.health.send_modify(|h| {
                // Lines that did not parse count too: empty is empty.
                h.journaled = if drained {
                    0
                } else {
                    h.journaled.saturating_sub(n as u64)
                }
            });
            if drained {
                self.recovered();
                tracing::info!("the journal is stored; writing directly again");
                return true;
            }
        }
    }

    /// Takes events that are already waiting, without waiting, while `pending` is short.
    fn take_waiting(&mut self, bound: usize) {
        while self.open && self.pending.len() < bound {
            match self.ch.events.try_recv() {
                Ok(e) => self.pending.push_back(e),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => self.open = false,
            }
        }
    }

    fn failed(&mut self, e: &Error) {
        self.failures += 1;
        let chain = e.with_causes();
        // The first failure in full, then one line per power of two: a long outage is
        // visible without flooding the log.
        if self.failures.is_power_of_two() {
            tracing::error!(error = %chain, failures = self.failures, "cannot store events; retrying");
        }
        self.ch.health.send_modify(|h| {
            if h.reachable {
                h.reachable = false;
                h.since = Some(jiff::Timestamp::now());
            }
            h.error = Some(chain);
        });
    }

    fn recovered(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                failures = self.failures,
                "the store works again; events stored in order"
            );
        }
        self.failures = 0;
        self.backoff = BACKOFF_MIN;
        self.ch.health.send_if_modified(|h| {
            let was = !h.reachable;
            h.reachable = true;
            h.since = None;
            h.error = None;
            was
        });
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
    use upkeep_core::{Committed, Desired, EventKind, ServiceName};

    /// A real store whose appends fail a number of times first, as a locked database's do;
    /// every other failure comes after the batch was stored, as when a server's answer is lost.
    struct Flaky {
        inner: SqlStore,
        failures_left: AtomicU32,
        /// The next write takes this long (a server gone away: seen at the timeout).
        slow_ms: std::sync::atomic::AtomicU64,
    }

    impl Flaky {
        fn new(inner: SqlStore, failures: u32) -> Arc<Flaky> {
            Arc::new(Flaky {
                inner,
                failures_left: AtomicU32::new(failures),
                slow_ms: Default::default(),
            })
        }
    }

    fn busy() -> Error {
        Error::Query {
            what: "insert event",
            source: sqlx::Error::PoolTimedOut,
        }
    }

    #[async_trait]
    impl crate::Windows for Flaky {
        async fn add_window(
            &self,
            spec: &upkeep_core::window::WindowSpec,
            created: jiff::Timestamp,
            by: &upkeep_core::Principal,
            forced_why: Option<&str>,
        ) -> Result<i64, Error> {
            self.inner.add_window(spec, created, by, forced_why).await
        }
        async fn windows(&self, all: bool) -> Result<Vec<crate::StoredWindow>, Error> {
            self.inner.windows(all).await
        }
        async fn window(&self, id: i64) -> Result<Option<crate::StoredWindow>, Error> {
            self.inner.window(id).await
        }
        async fn edit_window(
            &self,
            id: i64,
            spec: &upkeep_core::window::WindowSpec,
            at: jiff::Timestamp,
        ) -> Result<bool, Error> {
            self.inner.edit_window(id, spec, at).await
        }
        async fn take_step(
            &self,
            id: i64,
            occurrence: jiff::Timestamp,
            step: upkeep_core::window::Step,
            at: jiff::Timestamp,
            by: Option<&upkeep_core::Principal>,
            notices: &[crate::NewNotice],
        ) -> Result<bool, Error> {
            self.inner
                .take_step(id, occurrence, step, at, by, notices)
                .await
        }
        async fn window_done(&self, id: i64) -> Result<(), Error> {
            self.inner.window_done(id).await
        }
    }

    #[async_trait]
    impl crate::Outbox for Flaky {
        async fn add_notices(
            &self,
            rows: &[crate::NewNotice],
            at: jiff::Timestamp,
        ) -> Result<u64, Error> {
            self.inner.add_notices(rows, at).await
        }
        async fn plan_damped(
            &self,
            plan: crate::Damped<'_>,
        ) -> Result<Option<jiff::Timestamp>, Error> {
            self.inner.plan_damped(plan).await
        }
        async fn lease(
            &self,
            channel: &str,
            owner: &str,
            now: jiff::Timestamp,
            until: jiff::Timestamp,
            limit: u32,
        ) -> Result<Vec<crate::Leased>, Error> {
            self.inner.lease(channel, owner, now, until, limit).await
        }
        async fn mark_sent(
            &self,
            id: i64,
            at: jiff::Timestamp,
            delivery: Option<&str>,
        ) -> Result<bool, Error> {
            self.inner.mark_sent(id, at, delivery).await
        }
        async fn mark_retry(
            &self,
            id: i64,
            owner: &str,
            next: jiff::Timestamp,
            error: &str,
        ) -> Result<bool, Error> {
            self.inner.mark_retry(id, owner, next, error).await
        }
        async fn mark_failed(&self, id: i64, owner: &str, error: &str) -> Result<bool, Error> {
            self.inner.mark_failed(id, owner, error).await
        }
        async fn hurry(&self, channel: &str, now: jiff::Timestamp) -> Result<u64, Error> {
            self.inner.hurry(channel, now).await
        }
        async fn next_due(
            &self,
            channels: &[String],
            owner: &str,
        ) -> Result<Option<jiff::Timestamp>, Error> {
            self.inner.next_due(channels, owner).await
        }
        async fn release_leases(&self, now: jiff::Timestamp) -> Result<u64, Error> {
            self.inner.release_leases(now).await
        }
        async fn outbox(
            &self,
            state: Option<crate::OutboxState>,
            limit: u32,
        ) -> Result<Vec<crate::OutboxRow>, Error> {
            self.inner.outbox(state, limit).await
        }
        async fn outbox_row(&self, id: i64) -> Result<Option<crate::OutboxRow>, Error> {
            self.inner.outbox_row(id).await
        }
        async fn retry_notice(&self, id: i64, now: jiff::Timestamp) -> Result<bool, Error> {
            self.inner.retry_notice(id, now).await
        }
    }

    #[async_trait]
    impl Store for Flaky {
        async fn append(&self, first: u64, events: &[Event]) -> Result<(), Error> {
            let slow = self.slow_ms.swap(0, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(slow)).await;
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
        async fn events_after(&self, seq: u64, limit: u32) -> Result<Vec<Committed>, Error> {
            self.inner.events_after(seq, limit).await
        }
        async fn cursor(&self, name: &str) -> Result<u64, Error> {
            self.inner.cursor(name).await
        }
        async fn set_cursor(&self, name: &str, seq: u64) -> Result<(), Error> {
            self.inner.set_cursor(name, seq).await
        }
        async fn rollup_mark(&self) -> Result<Option<crate::RollupMark>, Error> {
            self.inner.rollup_mark().await
        }
        async fn start_rollups(&self, now: jiff::Timestamp) -> Result<crate::RollupMark, Error> {
            self.inner.start_rollups(now).await
        }
        async fn save_rollup(
            &self,
            hour: jiff::Timestamp,
            t: &std::collections::BTreeMap<ServiceName, upkeep_core::report::Tally>,
        ) -> Result<bool, Error> {
            self.inner.save_rollup(hour, t).await
        }
        async fn rollups(
            &self,
            from: jiff::Timestamp,
            to: jiff::Timestamp,
        ) -> Result<std::collections::BTreeMap<ServiceName, upkeep_core::report::Tally>, Error>
        {
            self.inner.rollups(from, to).await
        }
        async fn forget_before(&self, before: jiff::Timestamp) -> Result<u64, Error> {
            self.inner.forget_before(before).await
        }
        async fn add_latency(
            &self,
            hours: &[upkeep_core::latency::HourLatency],
        ) -> Result<(), Error> {
            self.inner.add_latency(hours).await
        }
        async fn latency(
            &self,
            from: jiff::Timestamp,
            to: jiff::Timestamp,
        ) -> Result<Vec<upkeep_core::latency::HourLatency>, Error> {
            self.inner.latency(from, to).await
        }
        fn engine(&self) -> Engine {
            self.inner.engine()
        }
    }

    /// The writer's ends for a test: the event sender, `written` and `health`.
    fn channels() -> (
        mpsc::Sender<Event>,
        Channels,
        watch::Receiver<u64>,
        watch::Receiver<StoreHealth>,
    ) {
        let (tx, events) = mpsc::channel(16);
        let (written, written_rx) = watch::channel(0);
        let (health, health_rx) = watch::channel(healthy(Engine::Sqlite));
        let ch = Channels {
            events,
            written,
            health,
            fanout: Fanout::new(),
        };
        (tx, ch, written_rx, health_rx)
    }

    fn stale(pid: u32) -> Event {
        Event::now(
            &ServiceName::new("web").unwrap(),
            EventKind::StaleStopped { pid },
        )
    }

    async fn stored_pids(store: &dyn Store) -> Vec<u64> {
        let web = ServiceName::new("web").unwrap();
        let stored = store.events(Some(&web), 100_000).await.unwrap();
        stored
            .iter()
            .rev()
            .map(|e| e.detail["pid"].as_u64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn a_failing_store_loses_no_event_stores_none_twice_and_keeps_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Flaky::new(crate::test_store(dir.path()).await, 6);
        let (tx, ch, written, health) = channels();
        let journal = dir.path().join("journal");
        let task = tokio::spawn({
            let store = store.clone();
            async move { run(store, &journal, ch).await }
        });
        // More events than the channel holds: the writer journals them while it backs off.
        for pid in 1..=100u32 {
            tx.send(stale(pid)).await.unwrap();
        }
        // Until the journal is stored (a writer whose senders are gone while the store is
        // away leaves it for the next daemon: the next test).
        let mut h = health.clone();
        let mut w = written.clone();
        w.wait_for(|n| *n == 100).await.unwrap();
        h.wait_for(|h| h.reachable && h.journaled == 0)
            .await
            .unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(
            stored_pids(&store.inner).await,
            (1..=100).collect::<Vec<u64>>()
        );
        assert_eq!(store.failures_left.load(Ordering::SeqCst), 0);
        assert_eq!(store.last_seq().await.unwrap(), 100);
        // Back to direct writes, the journal empty, the store reported reachable.
        let h = health.borrow().clone();
        assert!(
            h.reachable && h.journaled == 0 && h.error.is_none(),
            "{h:?}"
        );
        assert_eq!(
            std::fs::metadata(dir.path().join("journal")).unwrap().len(),
            0
        );
    }

    /// Issue 15, item 4: with the store away, events are kept in the journal, not in memory;
    /// a writer that ends then (a daemon killed or stopped) leaves them for the next one,
    /// which stores every one, once, in order, before anything new.
    #[tokio::test]
    async fn events_kept_in_the_journal_during_an_outage_survive_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let journal = dir.path().join("journal");
        let store = Flaky::new(crate::test_store(dir.path()).await, u32::MAX);
        let (tx, ch, written, health) = channels();
        let task = tokio::spawn({
            let (store, journal) = (store.clone(), journal.clone());
            async move { run(store, &journal, ch).await }
        });
        for pid in 1..=1000u32 {
            tx.send(stale(pid)).await.unwrap();
        }
        let mut w = written.clone();
        w.wait_for(|n| *n == 1000).await.unwrap();
        let h = health.borrow().clone();
        assert!(
            !h.reachable && h.since.is_some() && h.journaled > 0,
            "{h:?}"
        );
        assert!(
            h.error.as_deref().unwrap().contains("insert event"),
            "{h:?}"
        );
        drop(tx);
        task.await.unwrap();
        // Every other failure stored its batch after all (a lost answer): none twice.
        let before: Vec<u64> = stored_pids(&store.inner).await;
        assert!(before.len() < 1000);
        // The store is back; a new writer (a new daemon) starts.
        store.failures_left.store(0, Ordering::SeqCst);
        let (tx, ch, written, health) = channels();
        let task = tokio::spawn({
            let store = store.clone();
            async move { run(store, &journal, ch).await }
        });
        tx.send(stale(1001)).await.unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(*written.borrow(), 1);
        assert!(health.borrow().reachable);
        assert_eq!(
            stored_pids(&store.inner).await,
            (1..=1001).collect::<Vec<u64>>()
        );
        assert_eq!(store.last_seq().await.unwrap(), 1001);
    }

    /// A write that hangs (the server gone, seen only at the connection timeout) does not
    /// leave what arrives meanwhile in memory: it is journaled, and kept, within [`SLOW`].
    #[tokio::test]
    async fn what_arrives_during_a_hanging_write_is_journaled_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Flaky::new(crate::test_store(dir.path()).await, 0);
        store.slow_ms.store(5_000, Ordering::SeqCst);
        let (tx, ch, written, health) = channels();
        let journal = dir.path().join("journal");
        let task = tokio::spawn({
            let store = store.clone();
            async move { run(store, &journal, ch).await }
        });
        for pid in 1..=50u32 {
            tx.send(stale(pid)).await.unwrap();
        }
        let mut w = written.clone();
        tokio::time::timeout(Duration::from_secs(3), w.wait_for(|n| *n == 50))
            .await
            .expect("kept while the write hangs")
            .unwrap();
        assert!(health.borrow().journaled > 0);
        let mut h = health.clone();
        h.wait_for(|h| h.journaled == 0).await.unwrap();
        drop(tx);
        task.await.unwrap();
        assert_eq!(
            stored_pids(&store.inner).await,
            (1..=50).collect::<Vec<u64>>()
        );
    }
}
