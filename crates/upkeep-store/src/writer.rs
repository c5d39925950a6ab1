//! The event writer: the one task that writes events, in batches, in order, and never drops
//! one because the store failed (issue 14, C14; issue 15, item 4).
//!
//! Each event gets the next sequence number of this node as it is taken in (going on from the
//! last stored or journaled one), so a batch retried after a lost answer is stored once, and a
//! gap or a duplicate would show. Where numbering stands is also kept in the data dir
//! (`numbers.rs`): a writer that starts while the store is away goes on from there. If the last
//! daemon was killed with a batch in flight, nobody knows whether the store has it: an
//! `unrecorded` event stands in for each of its numbers, journaled first, and stored only where
//! the store has nothing (an event whose number is stored already is skipped). Without a
//! readable file, events wait in memory until the store says where numbering stands.
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
use crate::numbers::{Marks, SeqFile, Unreadable};
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

/// The writer's files in the data dir.
#[derive(Debug, Clone)]
pub struct Paths {
    /// Events kept while the store is away (`journal.rs`).
    pub journal: std::path::PathBuf,
    /// Where numbering stands (`numbers.rs`).
    pub numbers: std::path::PathBuf,
}

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

/// Runs the writer until every sender is gone. `paths.journal` is the file used while the
/// store is away (and read at start: what a killed daemon left is stored first).
pub async fn run(store: Arc<dyn Store>, paths: &Paths, channels: Channels) {
    let journal = &paths.journal;
    let (numbers, marks) = match SeqFile::open(&paths.numbers) {
        Ok((file, marks)) => (Some(file), marks),
        Err(e) => {
            tracing::error!(path = %paths.numbers.display(), "cannot open the sequence number file; with the store away at a start, events will wait in memory: {e}");
            (None, Err(Unreadable::Io(e)))
        }
    };
    let mut w = Writer {
        journal: match Journal::open(journal).await {
            Ok(j) => Some(j),
            Err(e) => {
                tracing::error!(path = %journal.display(), "no journal, events wait in memory while the store is away: {e}");
                None
            }
        },
        numbers,
        marks: Marks::default(),
        fanout_started: false,
        next_seq: 0,
        pending: VecDeque::new(),
        open: true,
        backoff: BACKOFF_MIN,
        failures: 0,
        store,
        ch: channels,
    };
    if !w.start_numbering(marks).await {
        return;
    }
    loop {
        let journaling = w.journal.as_ref().is_some_and(|j| !j.is_drained());
        let go_on = if journaling {
            w.store_journal().await
        } else {
            w.direct().await
        };
        if !go_on {
            break;
        }
    }
    // Nothing is in flight: every number handed out is stored, journaled or refused.
    let last = w.next_seq - 1;
    w.note(Marks {
        kept: last,
        handed: w.marks.handed.max(last),
    });
}

struct Writer {
    store: Arc<dyn Store>,
    journal: Option<Journal>,
    /// Where numbering stands on disk, and what it last said.
    numbers: Option<SeqFile>,
    marks: Marks,
    /// The fanout knows the store's last number (until then nothing is published: a store
    /// away at start is asked before the first write to it).
    fanout_started: bool,
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
    /// Finds the number the next event gets: one past the last stored or journaled, from the
    /// store if it answers, else from the data dir (`marks`, as the file was read); if neither
    /// knows, events wait in memory until the store answers. False if every sender is gone
    /// before numbering is known (what waits in memory is lost, and said so).
    async fn start_numbering(&mut self, marks: Result<Marks, Unreadable>) -> bool {
        let journaled = match &self.journal {
            Some(j) => j.scan().await.ok().and_then(|(_, last)| last).unwrap_or(0),
            None => 0,
        };
        match self.ask_store().await {
            Ok(last) => {
                self.numbered_by_store(last, journaled);
                return true;
            }
            Err(e) => self.failed(&e),
        }
        let path = self
            .numbers
            .as_ref()
            .map(|f| f.path().display().to_string());
        let marks = marks.and_then(|m| {
            // At most one batch is ever in flight: more is not a file of ours.
            if m.handed.saturating_sub(m.kept.max(journaled)) > BATCH as u64 {
                Err(Unreadable::Garbled)
            } else {
                Ok(m)
            }
        });
        match marks {
            Ok(m) => {
                let sure = m.kept.max(journaled);
                self.next_seq = sure + 1;
                if m.handed > sure {
                    tracing::warn!(
                        from = sure + 1,
                        to = m.handed,
                        "the last daemon was killed while storing events, and the store is away: `unrecorded` events hold their numbers, stored only where the store has nothing"
                    );
                    self.stand_in(m.handed - sure).await;
                }
                let last = self.next_seq - 1;
                self.note(Marks {
                    kept: last,
                    handed: m.handed.max(last),
                });
                true
            }
            Err(why) => {
                tracing::error!(
                    path = path.as_deref().unwrap_or("?"),
                    "where numbering stands is unknown ({why}) and the store is away: events wait in memory until it answers"
                );
                loop {
                    if !self.open {
                        if !self.pending.is_empty() {
                            tracing::error!(
                                events = self.pending.len(),
                                "the store never answered and numbering was unknown: events lost"
                            );
                        }
                        return false;
                    }
                    self.wait_in_memory().await;
                    match self.ask_store().await {
                        Ok(last) => {
                            self.numbered_by_store(last, journaled);
                            self.recovered();
                            return true;
                        }
                        Err(e) => self.failed(&e),
                    }
                }
            }
        }
    }

    /// The store's last number, within [`SLOW`] (a server away is often seen only at the
    /// connection timeout).
    async fn ask_store(&self) -> Result<u64, Error> {
        match tokio::time::timeout(SLOW, self.store.last_seq()).await {
            Ok(r) => r,
            Err(_) => Err(Error::Query {
                what: "read the last sequence number",
                source: sqlx::Error::PoolTimedOut,
            }),
        }
    }

    /// Numbering goes on from the store's last number (or the journal's, if later).
    fn numbered_by_store(&mut self, last: u64, journaled: u64) {
        self.ch.fanout.start_at(last);
        self.fanout_started = true;
        self.next_seq = last.max(journaled) + 1;
        let last = self.next_seq - 1;
        self.note(Marks {
            kept: last,
            handed: last,
        });
    }

    /// Before the first write to a store that was away at start: its last number, so that
    /// observers are told only of what it did not hold already.
    async fn start_fanout(&mut self) -> Result<(), Error> {
        if !self.fanout_started {
            let last = self.ask_store().await?;
            self.ch.fanout.start_at(last);
            self.fanout_started = true;
        }
        Ok(())
    }

    /// Journals `n` `unrecorded` events from `next_seq` on (see the module's comment). Not
    /// counted in `written`: no sender sent them.
    async fn stand_in(&mut self, n: u64) {
        let at = jiff::Timestamp::now();
        let events: Vec<Event> = (0..n)
            .map(|_| Event {
                at,
                service: None,
                kind: upkeep_core::EventKind::Unrecorded,
            })
            .collect();
        if let Some(journal) = self.journal.as_mut() {
            match journal.append(self.next_seq, &events).await {
                Ok(()) => {
                    self.next_seq += n;
                    self.ch.health.send_modify(|h| h.journaled += n);
                    return;
                }
                Err(e) => {
                    tracing::error!("cannot write the journal; events wait in memory: {e}");
                    self.journal = None;
                }
            }
        }
        for e in events.into_iter().rev() {
            self.pending.push_front(e);
        }
    }

    /// Writes where numbering stands, if it changed. A file that cannot be written is
    /// emptied if it can be (an old line would number events again) and no longer used.
    fn note(&mut self, m: Marks) {
        if m == self.marks {
            return;
        }
        let Some(file) = self.numbers.as_mut() else {
            return;
        };
        match file.write(m) {
            Ok(()) => self.marks = m,
            Err(e) => {
                tracing::error!(path = %file.path().display(), "cannot write the sequence number file; a start with the store away will wait for it: {e}");
                use std::os::unix::fs::OpenOptionsExt;
                let _ = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(file.path())
                    .and_then(|f| f.set_len(0));
                self.numbers = None;
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
        if let Err(e) = self.start_fanout().await {
            self.failed(&e);
            if !self.journal_pending().await {
                self.wait_in_memory().await;
            }
            return true;
        }
        let n = self.pending.len().min(BATCH);
        let batch: Vec<Event> = self.pending.drain(..n).collect();
        let first = self.next_seq;
        self.next_seq += n as u64;
        // On disk before the store sees them: a daemon killed now leaves their numbers marked.
        self.note(Marks {
            kept: first - 1,
            handed: self.next_seq - 1,
        });
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
            if let Err(e) = self.start_fanout().await {
                self.failed(&e);
                return self.open;
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
            if self.journal.as_ref().is_some_and(|j| j.drains_at(offset)) {
                // Emptying the journal forgets its numbers: the file keeps the last one.
                let last = self.next_seq - 1;
                self.note(Marks {
                    kept: last,
                    handed: self.marks.handed.max(last),
                });
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
        /// Away altogether: every write and every question fails.
        away: std::sync::atomic::AtomicBool,
    }

    impl Flaky {
        fn new(inner: SqlStore, failures: u32) -> Arc<Flaky> {
            Arc::new(Flaky {
                inner,
                failures_left: AtomicU32::new(failures),
                slow_ms: Default::default(),
                away: Default::default(),
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
            forced_why: Option<&str>,
        ) -> Result<bool, Error> {
            self.inner.edit_window(id, spec, at, forced_why).await
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
    impl crate::Subscribers for Flaky {
        async fn subscribe(
            &self,
            email: &str,
            services: &[String],
            lang: &str,
            now: jiff::Timestamp,
            expired_before: jiff::Timestamp,
        ) -> Result<crate::Subscribed, Error> {
            self.inner
                .subscribe(email, services, lang, now, expired_before)
                .await
        }
        async fn confirm_subscriber(
            &self,
            id: i64,
            email: &str,
            created: jiff::Timestamp,
            now: jiff::Timestamp,
        ) -> Result<Option<crate::Subscriber>, Error> {
            self.inner.confirm_subscriber(id, email, created, now).await
        }
        async fn unsubscribe(&self, id: Option<i64>, email: &str) -> Result<bool, Error> {
            self.inner.unsubscribe(id, email).await
        }
        async fn subscribers(&self) -> Result<Vec<crate::Subscriber>, Error> {
            self.inner.subscribers().await
        }
        async fn take_step_fanned(&self, take: crate::StepTake<'_>) -> Result<bool, Error> {
            self.inner.take_step_fanned(take).await
        }
        async fn fail_orphaned_notices(&self, channels: &[String]) -> Result<u64, Error> {
            self.inner.fail_orphaned_notices(channels).await
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
            if self.away.load(Ordering::SeqCst) {
                return Err(busy());
            }
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
            if self.away.load(Ordering::SeqCst) {
                return Err(busy());
            }
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

    fn paths(dir: &std::path::Path) -> Paths {
        Paths {
            journal: dir.join("journal"),
            numbers: dir.join("seq"),
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
        let journal = paths(dir.path());
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
        let journal = paths(dir.path());
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
        let journal = paths(dir.path());
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

    /// Every stored event as (number, pid), oldest first; an `unrecorded` one as pid 0.
    async fn stored(store: &dyn Store) -> Vec<(i64, u64)> {
        let mut all: Vec<(i64, u64)> = store
            .events(None, 100_000)
            .await
            .unwrap()
            .iter()
            .map(|e| {
                let pid = match e.kind.as_str() {
                    "unrecorded" => 0,
                    _ => e.detail["pid"].as_u64().unwrap(),
                };
                (e.id, pid)
            })
            .collect();
        all.reverse();
        all
    }

    /// Runs a writer on `store` for the events of `pids`, until they are kept (stored or
    /// journaled), then ends it, as a daemon that stops would.
    async fn write(store: &Arc<Flaky>, dir: &std::path::Path, pids: std::ops::RangeInclusive<u32>) {
        write_then(store, dir, pids, false).await
    }

    /// [`write`], then ends the writer where it stands, as a kill -9 would (its last words,
    /// where numbering stands, are not written).
    async fn write_then_kill(
        store: &Arc<Flaky>,
        dir: &std::path::Path,
        pids: std::ops::RangeInclusive<u32>,
    ) {
        write_then(store, dir, pids, true).await
    }

    async fn write_then(
        store: &Arc<Flaky>,
        dir: &std::path::Path,
        pids: std::ops::RangeInclusive<u32>,
        kill: bool,
    ) {
        let (tx, ch, written, _) = channels();
        let task = tokio::spawn({
            let (store, paths) = (store.clone(), paths(dir));
            async move { run(store, &paths, ch).await }
        });
        let n = pids.clone().count() as u64;
        for pid in pids {
            tx.send(stale(pid)).await.unwrap();
        }
        let mut w = written.clone();
        tokio::time::timeout(Duration::from_secs(30), w.wait_for(|k| *k == n))
            .await
            .expect("the writer to keep every event")
            .unwrap();
        if kill {
            task.abort();
            let _ = task.await;
            return;
        }
        drop(tx);
        task.await.unwrap();
    }

    /// A daemon that starts while the store is away numbers on from the data dir, across any
    /// number of such starts: once the store is back, every event is there once, in order,
    /// numbered with no gap.
    #[tokio::test]
    async fn starts_with_the_store_away_number_on_with_no_gap_and_no_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let store = Flaky::new(crate::test_store(dir.path()).await, 0);
        write_then_kill(&store, dir.path(), 1..=10).await;
        store.away.store(true, Ordering::SeqCst);
        write(&store, dir.path(), 11..=15).await;
        write_then_kill(&store, dir.path(), 16..=30).await;
        write_then_kill(&store, dir.path(), 31..=40).await;
        assert_eq!(store.inner.last_seq().await.unwrap(), 10);
        store.away.store(false, Ordering::SeqCst);
        write(&store, dir.path(), 41..=41).await;
        let want: Vec<(i64, u64)> = (1..=41).map(|n| (n as i64, n as u64)).collect();
        assert_eq!(stored(&store.inner).await, want);
    }

    /// A daemon killed with a batch in flight, then a start with the store away: whether the
    /// store took the batch or not, numbers go on with no gap and no duplicate; an
    /// `unrecorded` event holds each number the store did not get, and none replaces an event
    /// it did get.
    #[tokio::test]
    async fn a_batch_in_flight_at_a_kill_is_stood_in_for_only_where_the_store_lacks_it() {
        for committed in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let store = Flaky::new(crate::test_store(dir.path()).await, 0);
            write(&store, dir.path(), 1..=10).await;
            // Killed while 11..=15 were being stored: the file says so.
            if committed {
                let batch: Vec<Event> = (11..=15).map(stale).collect();
                store.inner.append(11, &batch).await.unwrap();
            }
            let (mut file, _) = SeqFile::open(&dir.path().join("seq")).unwrap();
            file.write(Marks {
                kept: 10,
                handed: 15,
            })
            .unwrap();
            store.away.store(true, Ordering::SeqCst);
            write(&store, dir.path(), 16..=20).await;
            store.away.store(false, Ordering::SeqCst);
            write(&store, dir.path(), 21..=21).await;
            let got = stored(&store.inner).await;
            let numbers: Vec<i64> = got.iter().map(|(n, _)| *n).collect();
            assert_eq!(numbers, (1..=21).collect::<Vec<i64>>(), "{committed}");
            let pids: Vec<u64> = got.iter().map(|(_, p)| *p).collect();
            let middle: Vec<u64> = if committed {
                (11..=15).collect()
            } else {
                vec![0; 5]
            };
            let want: Vec<u64> = (1..=10).chain(middle).chain(16..=21).collect();
            assert_eq!(pids, want, "committed: {committed}");
        }
    }

    /// Without a file to go on from (a first start after an upgrade, or a file that does not
    /// read back), a start with the store away does not guess: events wait in memory (not
    /// acknowledged as kept) and are numbered from the store's last once it answers.
    #[tokio::test]
    async fn with_numbering_unknown_events_wait_for_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Flaky::new(crate::test_store(dir.path()).await, 0);
        let batch: Vec<Event> = (1..=5).map(stale).collect();
        store.inner.append(1, &batch).await.unwrap();
        std::fs::write(dir.path().join("seq"), "torn").unwrap();
        store.away.store(true, Ordering::SeqCst);
        let (tx, ch, written, health) = channels();
        let task = tokio::spawn({
            let (store, paths) = (store.clone(), paths(dir.path()));
            async move { run(store, &paths, ch).await }
        });
        for pid in 6..=8 {
            tx.send(stale(pid)).await.unwrap();
        }
        let mut h = health.clone();
        h.wait_for(|h| !h.reachable).await.unwrap();
        assert_eq!(*written.borrow(), 0);
        assert_eq!(h.borrow().journaled, 0);
        store.away.store(false, Ordering::SeqCst);
        let mut w = written.clone();
        w.wait_for(|k| *k == 3).await.unwrap();
        drop(tx);
        task.await.unwrap();
        let want: Vec<(i64, u64)> = (1..=8).map(|n| (n as i64, n as u64)).collect();
        assert_eq!(stored(&store.inner).await, want);
        // And the file is whole again.
        let (_, marks) = SeqFile::open(&dir.path().join("seq")).unwrap();
        assert_eq!(marks.unwrap(), Marks { kept: 8, handed: 8 });
    }
}
