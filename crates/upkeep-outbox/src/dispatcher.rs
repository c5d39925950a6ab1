//! The dispatcher: one task that leases due outbox rows, sends each through its channel and
//! marks it sent, to be retried, or failed.
//!
//! It is a task of its own and never on the supervision path: nothing waits for it, and it
//! reads only the store. It wakes when rows are added ([`Dispatcher::waker`], a `Notify`) or
//! when the next row falls due or a lease runs out (the store says when, on the injected
//! clock); it never polls. Per channel it leases at most twice the channel's `concurrency`
//! (so that rows do not wait in its memory past their lease), sends at most `concurrency` at
//! once, and no faster than the channel's `rate` (real time: receivers count real seconds).
//!
//! Every attempt of a row carries the row's idempotency key (the mail's Message-ID), and a
//! row is marked sent only once its channel confirmed it: delivery is at least once, with a
//! stable identity. The one resend a crash between the receiver's acceptance and the mark
//! can cause is the same message, which receivers that honour the key drop. Retries follow
//! `retry.rs`; a permanent refusal, a notice that cannot be read or rendered, or one past its
//! time (`give_up_after`) is marked failed. Several dispatchers may share one store: the
//! lease (`upkeep-store`'s `outbox.rs`) keeps them from sending one row twice.
//!
//! A reload swaps its channels and templates ([`Dispatcher::with_setups`]): rows are leased
//! for the new channels from then on, while sends in flight finish on the channel objects
//! they started with (each holds its own `Arc` of them).
//!
//! Stopping ([`Dispatcher::stopper`], before an upgrade's exec or at shutdown): it leases
//! nothing more, gives back the rows it leased and has not begun to send, and ends once the
//! sends under way are done and their verdicts stored, so that no send is cut off between
//! the receiver's acceptance and the row's mark (break-it, session 11: an upgrade during an
//! SMTP send sent that mail twice). The caller bounds the wait.
//!
//! Digest rows (a route's `digest = true`) wait for their digest's time; then the rows of
//! one recipient and channel are leased together and sent as ONE message
//! ([`Templates::render_digest`]), whose idempotency key is derived from the rows' keys: a
//! digest sent again after a crash (or a retry) is the same message. All its rows share one
//! verdict, and are marked sent in one statement. A digest with no row is never sent.
//!
//! Start at [`Dispatcher::run`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use jiff::SignedDuration;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use upkeep_core::Clock;
use upkeep_store::{Leased, Store};

use crate::channel::{Channel, SendError};
use crate::notice::{IdempotencyKey, Notice, Recipient};
use crate::render::Templates;
use crate::retry;
use crate::route::Rate;

/// One channel as the dispatcher runs it.
#[derive(Clone)]
pub struct Lane {
    pub channel: Arc<dyn Channel>,
    /// Sends in flight at once.
    pub concurrency: u32,
    pub rate: Option<Rate>,
}

/// How the dispatcher leases.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This dispatcher's name in the rows it leases (unique among those sharing the store).
    pub owner: String,
    /// How long a lease holds: longer than any send may take.
    pub lease: Duration,
    /// A notice not delivered this long after it was due is given up.
    pub give_up_after: Duration,
}

/// What a reload of `[notify]` changes in a running dispatcher: its channels, its templates
/// and the leases' timings (the owner stays).
#[derive(Clone)]
pub struct Setup {
    pub templates: Templates,
    pub lanes: BTreeMap<String, Lane>,
    pub lease: Duration,
    pub give_up_after: Duration,
}

pub struct Dispatcher {
    shared: Arc<Shared>,
    slots: BTreeMap<String, Arc<Slot>>,
    wake: Arc<Notify>,
    /// Each new value replaces the channels and templates (`upkeep reload`).
    setups: Option<watch::Receiver<Arc<Setup>>>,
    /// True once asked to stop (by its [`Stopper`]).
    stop: watch::Receiver<bool>,
    /// Sends still under way once stopping (None before): the [`Stopper`] waits for 0.
    busy: watch::Sender<Option<usize>>,
    stopper: Stopper,
}

/// Stops a running dispatcher: see [`Stopper::stop`].
#[derive(Clone)]
pub struct Stopper {
    stop: Arc<watch::Sender<bool>>,
    busy: watch::Receiver<Option<usize>>,
}

impl Stopper {
    /// Asks the dispatcher to lease nothing more and to give back the rows it has not begun
    /// to send; returns once the sends under way are done and their verdicts stored (or the
    /// dispatcher ended). The caller bounds the wait: a send has its channel's timeout.
    pub async fn stop(&self) {
        self.stop.send_replace(true);
        let mut busy = self.busy.clone();
        // Err: the dispatcher is gone, and its sends with it.
        let _ = busy.wait_for(|b| *b == Some(0)).await;
    }

    /// Sends still under way, once stopping began.
    pub fn busy(&self) -> Option<usize> {
        *self.busy.borrow()
    }
}

/// What every send needs.
struct Shared {
    store: Arc<dyn Store>,
    clock: Clock,
    templates: Templates,
    settings: Settings,
}

struct Slot {
    name: String,
    channel: Arc<dyn Channel>,
    /// Rows leased and not yet done, at most [`Slot::queue`].
    sending: Semaphore,
    queue: u32,
    pace: Option<Pace>,
    /// A row of this channel waits for a retry: the next success brings it forward.
    retrying: AtomicBool,
}

/// At most one send start per `spacing`, in real time.
struct Pace {
    spacing: Duration,
    next: std::sync::Mutex<tokio::time::Instant>,
}

impl Pace {
    async fn wait(&self) {
        let at = {
            // A std Mutex: held for two assignments, never across an await.
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            let at = (*next).max(tokio::time::Instant::now());
            *next = at + self.spacing;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// How a send ended, for the log line.
enum Outcome {
    Sent,
    Retry,
    Failed,
    /// The row's verdict could not be stored: its lease will run out and it goes again.
    Unmarked,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        templates: Templates,
        lanes: BTreeMap<String, Lane>,
        settings: Settings,
    ) -> Dispatcher {
        let (stop_tx, stop) = watch::channel(false);
        let (busy, busy_rx) = watch::channel(None);
        Dispatcher {
            shared: Arc::new(Shared {
                store,
                clock,
                templates,
                settings,
            }),
            slots: slots(lanes),
            wake: Arc::new(Notify::new()),
            setups: None,
            stop,
            busy,
            stopper: Stopper {
                stop: Arc::new(stop_tx),
                busy: busy_rx,
            },
        }
    }

    /// What stops it (an upgrade's hand-over, a shutdown).
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Takes its channels and templates from `setups` from now on: each new value replaces
    /// them (a reload). Sends in flight finish on the old ones.
    pub fn with_setups(mut self, setups: watch::Receiver<Arc<Setup>>) -> Dispatcher {
        self.setups = Some(setups);
        self
    }

    /// Swaps in `setup`: new slots (a removed channel's rows are no longer leased), a new
    /// template set; the same store, clock and owner.
    fn apply(&mut self, setup: &Setup) {
        self.shared = Arc::new(Shared {
            store: self.shared.store.clone(),
            clock: self.shared.clock.clone(),
            templates: setup.templates.clone(),
            settings: Settings {
                owner: self.shared.settings.owner.clone(),
                lease: setup.lease,
                give_up_after: setup.give_up_after,
            },
        });
        self.slots = slots(setup.lanes.clone());
        tracing::info!(channels = self.slots.len(), "notices: channels reloaded");
    }

    /// Wakes the dispatcher: rows were added.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Uses `wake` (shared with whoever adds rows) instead of its own.
    pub fn with_waker(mut self, wake: Arc<Notify>) -> Dispatcher {
        self.wake = wake;
        self
    }

    /// Runs until the task is dropped, or until stopped ([`Dispatcher::stopper`]) and its
    /// sends are done. Sends in flight when it is dropped are left leased: their lease runs
    /// out and another dispatcher (or the next daemon) sends them.
    pub async fn run(mut self) {
        let mut inflight: JoinSet<(String, Outcome)> = JoinSet::new();
        // Rows leased and not yet done, per channel name: a channel a reload replaced keeps
        // its count while its old sends finish.
        let mut held: BTreeMap<String, u32> = BTreeMap::new();
        let mut backoff = Duration::from_millis(500);
        let owner = self.shared.settings.owner.clone();
        let mut setups = self.setups.take();
        let mut stop = self.stop.clone();
        loop {
            // A reload swapped in while a pass ran (or woken by the reload's own wake-up): this
            // pass leases with it, so that what is planned after a reload goes through the
            // new channels, never the old.
            if let Some(s) = setups.as_mut()
                && s.has_changed().unwrap_or(false)
            {
                let setup = s.borrow_and_update().clone();
                self.apply(&setup);
            }
            if *stop.borrow_and_update() {
                // Stopping: nothing more is leased; what was sent is marked, what was not yet
                // begun is given back (`deliver`), then the task ends.
                self.busy.send_replace(Some(inflight.len()));
                match inflight.join_next().await {
                    Some(done) => {
                        finished(&mut held, done);
                        continue;
                    }
                    None => {
                        tracing::info!("notices: dispatcher stopped, no send under way");
                        return;
                    }
                }
            }
            for name in self.slots.keys() {
                held.entry(name.clone()).or_insert(0);
            }
            let now = self.shared.clock.now();
            let until = now
                .checked_add(
                    SignedDuration::try_from(self.shared.settings.lease)
                        .unwrap_or(SignedDuration::from_hours(1)),
                )
                .unwrap_or(now);
            let mut store_failed = false;
            let mut leased_any = false;
            for (name, slot) in &self.slots {
                let room = slot.queue.saturating_sub(held[name]);
                if room == 0 {
                    continue;
                }
                match self
                    .shared
                    .store
                    .lease(name, &owner, now, until, room)
                    .await
                {
                    Ok(rows) => {
                        leased_any |= !rows.is_empty();
                        for row in rows {
                            *held.get_mut(name).expect("every slot is counted") += 1;
                            inflight.spawn(deliver(
                                self.shared.clone(),
                                slot.clone(),
                                row,
                                self.stop.clone(),
                            ));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(channel = %name, "cannot lease notices: {}", e.with_causes());
                        store_failed = true;
                        break;
                    }
                }
                // Digests due: one recipient's rows at a time, each digest one send.
                while held[name] < slot.queue {
                    match self
                        .shared
                        .store
                        .lease_digest(name, &owner, now, until)
                        .await
                    {
                        Ok(rows) if rows.is_empty() => break,
                        Ok(rows) => {
                            leased_any = true;
                            *held.get_mut(name).expect("every slot is counted") += 1;
                            inflight.spawn(deliver_digest(
                                self.shared.clone(),
                                slot.clone(),
                                rows,
                                self.stop.clone(),
                            ));
                        }
                        Err(e) => {
                            tracing::warn!(channel = %name, "cannot lease a digest: {}", e.with_causes());
                            store_failed = true;
                            break;
                        }
                    }
                }
                if store_failed {
                    break;
                }
            }
            let wake_at = if store_failed {
                let at = now + SignedDuration::try_from(backoff).unwrap_or_default();
                backoff = (backoff * 2).min(Duration::from_secs(30));
                Some(at)
            } else {
                backoff = Duration::from_millis(500);
                let open: Vec<String> = self
                    .slots
                    .iter()
                    .filter(|(n, s)| held[*n] < s.queue)
                    .map(|(n, _)| n.clone())
                    .collect();
                match self.shared.store.next_due(&open, &owner).await {
                    // Due already, yet nothing could be leased (another dispatcher took it
                    // in between): look again soon rather than spin.
                    Ok(Some(at)) if at <= now && !leased_any => {
                        Some(now + SignedDuration::from_secs(1))
                    }
                    Ok(Some(at)) if at <= now => Some(now),
                    Ok(at) => at,
                    Err(e) => {
                        tracing::warn!(
                            "cannot read when the next notice is due: {}",
                            e.with_causes()
                        );
                        Some(now + SignedDuration::from_secs(5))
                    }
                }
            };
            if wake_at.is_some_and(|at| at <= now) {
                // More is due now: lease again at once (after collecting what finished).
                while let Some(done) = inflight.try_join_next() {
                    finished(&mut held, done);
                }
                tokio::task::yield_now().await;
                continue;
            }
            let reloaded = {
                let clock = self.shared.clock.clone();
                let sleep = async {
                    match wake_at {
                        Some(at) => clock.sleep_until_time(at).await,
                        None => std::future::pending().await,
                    }
                };
                let reloaded = async {
                    match setups.as_mut() {
                        Some(s) => match s.changed().await {
                            Ok(()) => Some(s.borrow_and_update().clone()),
                            Err(_) => std::future::pending().await,
                        },
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = stop.changed() => None,
                    _ = self.wake.notified() => None,
                    _ = sleep => None,
                    Some(setup) = reloaded => Some(setup),
                    Some(done) = inflight.join_next(), if !inflight.is_empty() => {
                        finished(&mut held, done);
                        while let Some(done) = inflight.try_join_next() {
                            finished(&mut held, done);
                        }
                        None
                    }
                }
            };
            if let Some(setup) = reloaded {
                self.apply(&setup);
            }
        }
    }
}

/// A slot per lane, each with its own limits.
fn slots(lanes: BTreeMap<String, Lane>) -> BTreeMap<String, Arc<Slot>> {
    lanes
        .into_iter()
        .map(|(name, lane)| {
            let concurrency = lane.concurrency.max(1);
            let slot = Slot {
                name: name.clone(),
                channel: lane.channel,
                sending: Semaphore::new(concurrency as usize),
                queue: concurrency * 2,
                pace: lane.rate.map(|r| Pace {
                    spacing: r.spacing(),
                    next: std::sync::Mutex::new(tokio::time::Instant::now()),
                }),
                retrying: AtomicBool::new(true),
            };
            (name, Arc::new(slot))
        })
        .collect()
}

fn finished(
    held: &mut BTreeMap<String, u32>,
    done: Result<(String, Outcome), tokio::task::JoinError>,
) {
    match done {
        Ok((channel, _)) => {
            if let Some(n) = held.get_mut(&channel) {
                *n = n.saturating_sub(1);
            }
        }
        // A send task panicked (or was cancelled): its row's lease runs out and it is sent
        // again. Its channel's count stays taken, so that channel leases one row fewer.
        Err(e) => tracing::error!("a notice's send task failed: {e}"),
    }
}

/// Waits for a turn to send on `slot` (a permit, then the pace); None if the dispatcher is
/// stopped first: the send is not begun.
async fn turn<'a>(
    slot: &'a Slot,
    stop: &mut watch::Receiver<bool>,
) -> Option<tokio::sync::SemaphorePermit<'a>> {
    let take = async {
        let permit = slot.sending.acquire().await.ok();
        if let Some(pace) = &slot.pace {
            pace.wait().await;
        }
        permit
    };
    tokio::select! {
        biased;
        _ = stop.wait_for(|s| *s) => None,
        permit = take => Some(permit?),
    }
}

/// Gives rows `ids`, leased and not sent, back to the outbox (the dispatcher is stopping).
async fn give_back(shared: &Shared, slot: &Slot, ids: &[i64]) -> (String, Outcome) {
    let owner = &shared.settings.owner;
    let back = persist(|| shared.store.unlease(ids, owner)).await;
    tracing::debug!(channel = %slot.name, rows = ids.len(), "notices given back unsent: stopping");
    let outcome = if back.is_some() {
        Outcome::Retry
    } else {
        Outcome::Unmarked
    };
    (slot.name.clone(), outcome)
}

/// Sends one leased row and stores the verdict.
async fn deliver(
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    row: Leased,
    mut stop: watch::Receiver<bool>,
) -> (String, Outcome) {
    let Some(permit) = turn(&slot, &mut stop).await else {
        return give_back(&shared, &slot, &[row.id]).await;
    };
    let outcome = attempt(&shared, &slot, &row).await;
    // Marked before the next send of the channel may begin (see `settle`).
    let verdict = settle(&shared, &slot, &[row.id], row.due, row.attempts, outcome).await;
    drop(permit);
    verdict
}

/// Sends one recipient's digest (its rows, leased together, in order) as one message and
/// stores the verdict for every row.
async fn deliver_digest(
    shared: Arc<Shared>,
    slot: Arc<Slot>,
    rows: Vec<Leased>,
    mut stop: watch::Receiver<bool>,
) -> (String, Outcome) {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let Some(permit) = turn(&slot, &mut stop).await else {
        return give_back(&shared, &slot, &ids).await;
    };
    let outcome = attempt_digest(&shared, &slot, &rows).await;
    // Given up on from the first row's time; attempts are the rows' (leased together).
    let due = rows
        .iter()
        .map(|r| r.due)
        .min()
        .unwrap_or_else(|| shared.clock.now());
    let attempts = rows.iter().map(|r| r.attempts).max().unwrap_or(1);
    // Marked before the next send of the channel may begin (see `settle`).
    let verdict = settle(&shared, &slot, &ids, due, attempts, outcome).await;
    drop(permit);
    verdict
}

/// Stores the verdict of a send of rows `ids` (one row, or one digest's), first due at
/// `due`, tried `attempts` times. Called with the send's permit still held: between the
/// receiver's acceptance and this mark a crash sends the notice again, and on the daemon's
/// one thread a next send begun in between (its notice parsed and rendered, a few ms in a
/// debug build, more on a loaded host) ran before the mark's commit (bench/subscribers,
/// session 11: 1 to 2 mails twice per kill). Holding the permit costs the next send the
/// mark's own time, about a millisecond.
async fn settle(
    shared: &Shared,
    slot: &Slot,
    ids: &[i64],
    due: jiff::Timestamp,
    attempts: u32,
    outcome: Result<Option<String>, SendError>,
) -> (String, Outcome) {
    let now = shared.clock.now();
    // From the receiver's answer to the row's mark: the window in which a crash sends the
    // notice again (logged, to be measured: bench/subscribers).
    let answered = std::time::Instant::now();
    let owner = &shared.settings.owner;
    let store = shared.store.as_ref();
    // Every row's verdict, stored; None if one of them could not be.
    async fn each<F, Fut>(ids: &[i64], write: F) -> Option<()>
    where
        F: Fn(i64) -> Fut,
        Fut: std::future::Future<Output = Result<bool, upkeep_store::Error>>,
    {
        let mut all = Some(());
        for &id in ids {
            if persist(|| write(id)).await.is_none() {
                all = None;
            }
        }
        all
    }
    let id = ids.first().copied().unwrap_or_default();
    let verdict = match outcome {
        Ok(delivery) => {
            let marked = match ids {
                [one] => persist(|| store.mark_sent(*one, now, delivery.as_deref()))
                    .await
                    .map(|_| ()),
                _ => persist(|| store.mark_sent_all(ids, now, delivery.as_deref()))
                    .await
                    .map(|_| ()),
            };
            let marked_us = answered.elapsed().as_micros() as u64;
            if marked.is_some() && slot.retrying.swap(false, Ordering::Relaxed) {
                // The receiver is back: what waits for a retry goes now.
                if let Some(n) = persist(|| store.hurry(&slot.name, now)).await
                    && n > 0
                {
                    tracing::info!(channel = %slot.name, rows = n, "receiver back: retrying now");
                }
            }
            tracing::debug!(channel = %slot.name, id, rows = ids.len(), attempts, marked_us, "notice sent");
            marked.map(|_| Outcome::Sent)
        }
        Err(e) if e.is_permanent() => {
            let text = with_causes(&e);
            tracing::warn!(channel = %slot.name, id, rows = ids.len(), "notice refused for good: {text}");
            each(ids, |id| store.mark_failed(id, owner, &text))
                .await
                .map(|_| Outcome::Failed)
        }
        Err(e) if retry::gives_up(due, now, shared.settings.give_up_after) => {
            let text = format!(
                "given up after {attempts} attempts since {due}: {}",
                with_causes(&e)
            );
            tracing::warn!(channel = %slot.name, id, rows = ids.len(), "{text}");
            each(ids, |id| store.mark_failed(id, owner, &text))
                .await
                .map(|_| Outcome::Failed)
        }
        Err(e) => {
            let next = retry::next_attempt(attempts, e.retry_delay(), now, fastrand::f64());
            let text = with_causes(&e);
            tracing::info!(channel = %slot.name, id, rows = ids.len(), attempts, next = %next, "notice to retry: {text}");
            slot.retrying.store(true, Ordering::Relaxed);
            each(ids, |id| store.mark_retry(id, owner, next, &text))
                .await
                .map(|_| Outcome::Retry)
        }
    };
    (slot.name.clone(), verdict.unwrap_or(Outcome::Unmarked))
}

/// Reads, renders and sends the row once.
async fn attempt(shared: &Shared, slot: &Slot, row: &Leased) -> Result<Option<String>, SendError> {
    let notice: Notice = serde_json::from_str(&row.notice)
        .map_err(|e| SendError::permanent("the stored notice cannot be read").caused_by(e))?;
    let key = IdempotencyKey::new(row.key.clone())
        .map_err(|e| SendError::permanent("the stored key is not valid").caused_by(e))?;
    let rendered = shared
        .templates
        .render(&notice)
        .map_err(|e| SendError::permanent("the notice cannot be rendered").caused_by(e))?;
    let to = if row.recipient.is_empty() {
        Recipient::group()
    } else {
        Recipient {
            address: row.recipient.clone(),
            // A subscriber's row: its mail gets RFC 8058's one-click unsubscribe headers.
            unsubscribe: notice.unsubscribe.clone(),
        }
    };
    let delivery = slot.channel.send(&to, &rendered, &key).await?;
    Ok(delivery.id)
}

/// Reads and renders one recipient's digest and sends it once, keyed by its rows' keys.
async fn attempt_digest(
    shared: &Shared,
    slot: &Slot,
    rows: &[Leased],
) -> Result<Option<String>, SendError> {
    let notices = rows
        .iter()
        .map(|r| serde_json::from_str::<Notice>(&r.notice))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            SendError::permanent("a stored notice of the digest cannot be read").caused_by(e)
        })?;
    let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
    let recipient = rows
        .first()
        .map(|r| r.recipient.clone())
        .unwrap_or_default();
    let key = IdempotencyKey::new(crate::plan::keyed(
        "upk-",
        "digest",
        &keys.join(" "),
        &slot.name,
        &recipient,
    ))
    .map_err(|e| SendError::permanent("the digest's key is not valid").caused_by(e))?;
    let rendered = shared
        .templates
        .render_digest(&notices)
        .map_err(|e| SendError::permanent("the digest cannot be rendered").caused_by(e))?;
    let to = Recipient {
        address: recipient,
        unsubscribe: None,
    };
    let delivery = slot.channel.send(&to, &rendered, &key).await?;
    Ok(delivery.id)
}

/// Runs a store write, trying a few times over a few seconds (a busy SQLite, a PostgreSQL
/// fail-over); None if it never went through (the lease then hands the row on).
async fn persist<F, Fut, T>(write: F) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, upkeep_store::Error>>,
{
    let mut wait = Duration::from_millis(100);
    for left in (0..5).rev() {
        match write().await {
            Ok(v) => return Some(v),
            Err(e) if left == 0 => {
                tracing::warn!("cannot store a notice's verdict: {}", e.with_causes());
            }
            Err(_) => {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }
    None
}

/// An error and its causes on one line (stored with the row and shown by `notify ls`).
fn with_causes(e: &SendError) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
