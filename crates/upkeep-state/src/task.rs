//! The state task: the single writer of service statuses.
//!
//! Events come in from supervisors and probe runners; each is folded into its service's model,
//! the new snapshot is published on a `watch` channel (the latest value is all readers need),
//! and every event (the inputs, and what the machine produced) goes on to the store writer, in
//! order. Heal requests go out on their own channel. The task ends when every event sender is
//! gone or `drain` is cancelled, after passing everything on, so nothing in flight is lost.
//!
//! Time (ticks for incident deadlines and maintenance ends, and what control changes are
//! settled at) comes from the injected [`Clock`], so tests move it instead of sleeping.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use upkeep_core::{Clock, Event, EventKind, ServiceName, ServiceStatus, Unfinished};

use crate::machine::{CarriedModel, Output, ServiceModel, ServiceSpec};

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
    /// The model the last image of this daemon handed over (`upkeep upgrade`; start-up only,
    /// right after its `Configure`, instead of `Resume`).
    TakeOver(ServiceName, Box<CarriedModel>),
}

/// A request to restart a service because its probes say down.
#[derive(Debug, Clone, PartialEq)]
pub struct Heal {
    pub service: ServiceName,
    pub reason: String,
}

pub struct StateTask {
    models: BTreeMap<ServiceName, ServiceModel>,
    /// Services whose model may have changed since the last snapshot: only their statuses
    /// are copied into the next (a cold start of 100 services published hundreds of
    /// snapshots, each with a copy of every status).
    changed: BTreeSet<ServiceName>,
    seq: u64,
    events: mpsc::Receiver<Event>,
    control: mpsc::Receiver<StateControl>,
    store: mpsc::Sender<Event>,
    heals: mpsc::Sender<Heal>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    draining: bool,
    clock: Clock,
}

/// The channels a [`StateTask`] works between.
pub struct StateChannels {
    /// Facts from supervisors, probe runners and operations.
    pub events: mpsc::Receiver<Event>,
    /// Config changes from the daemon.
    pub control: mpsc::Receiver<StateControl>,
    /// Every event, in order, to the store writer.
    pub store: mpsc::Sender<Event>,
    /// Heal requests, to the daemon.
    pub heals: mpsc::Sender<Heal>,
}

impl StateTask {
    pub fn new(channels: StateChannels, clock: Clock) -> (Self, watch::Receiver<Arc<Snapshot>>) {
        let StateChannels {
            events,
            control,
            store,
            heals,
        } = channels;
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let task = Self {
            models: BTreeMap::new(),
            changed: BTreeSet::new(),
            seq: 0,
            events,
            control,
            store,
            heals,
            snapshot: tx,
            draining: false,
            clock,
        };
        (task, rx)
    }

    /// Runs until every event sender is gone or `drain` is cancelled, and answers every model
    /// as it then is, for an upgrade to hand over (see [`CarriedModel`]).
    pub async fn run(mut self, drain: CancellationToken) -> BTreeMap<ServiceName, CarriedModel> {
        let mut batch = Vec::with_capacity(64);
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                // Control first: a service's spec is sent before its supervisor and probes
                // start, so handling it first guarantees no event of the service is folded in
                // without it (a probe verdict for a probe the model does not know yet would
                // be dropped, and an unchanged verdict is never sent again).
                biased;
                Some(control) = self.control.recv() => {
                    self.control(control).await;
                    // What else waits (a start-up sends one per service): one snapshot for
                    // all of it, not one copy of every status per service.
                    while let Ok(control) = self.control.try_recv() {
                        self.control(control).await;
                    }
                    self.publish();
                }
                n = self.events.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break;
                    }
                    self.handle(std::mem::take(&mut batch)).await;
                }
                _ = sleep_until(&self.clock, deadline) => {
                    let now = self.clock.now();
                    let mut outputs = Vec::new();
                    for (name, m) in self.models.iter_mut() {
                        outputs.extend(m.tick(now));
                        self.changed.insert(name.clone());
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
        self.models
            .iter()
            .map(|(n, m)| (n.clone(), m.carry()))
            .collect()
    }

    /// Applies a config change (the caller publishes the snapshot).
    async fn control(&mut self, control: StateControl) {
        let now = self.clock.now();
        let name = match &control {
            StateControl::Configure(name, _)
            | StateControl::Resume(name, _)
            | StateControl::TakeOver(name, _) => name,
        };
        self.changed.insert(name.clone());
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
            StateControl::TakeOver(name, carried) => match self.models.get_mut(&name) {
                Some(m) => {
                    m.take_over(*carried);
                    m.settle(now)
                }
                None => Vec::new(),
            },
        };
        self.emit(outputs).await;
    }

    async fn handle(&mut self, batch: Vec<Event>) {
        for event in batch {
            let mut outputs = Vec::new();
            if let Some(name) = &event.service {
                self.changed.insert(name.clone());
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

    /// Publishes the statuses of the services that changed. The snapshot is changed in place
    /// when no reader holds it still, else copied first.
    fn publish(&mut self) {
        let changed = std::mem::take(&mut self.changed);
        let (models, seq) = (&self.models, self.seq);
        self.snapshot.send_modify(|snapshot| {
            let snapshot = Arc::make_mut(snapshot);
            snapshot.seq = seq;
            for name in changed {
                match models.get(&name) {
                    Some(m) => {
                        snapshot.services.insert(name, m.status.clone());
                    }
                    None => {
                        snapshot.services.remove(&name);
                    }
                }
            }
        });
    }

    fn next_deadline(&self) -> Option<jiff::Timestamp> {
        self.models
            .values()
            .filter_map(ServiceModel::deadline)
            .min()
    }
}

async fn sleep_until(clock: &Clock, deadline: Option<jiff::Timestamp>) {
    match deadline {
        Some(at) => clock.sleep_until_time(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use upkeep_core::{Actor, Health, State, TestClock};

    /// Real time a test waits for something the clock made due (never reached when it works).
    const GUARD: Duration = Duration::from_secs(5);
    /// Real time `advance` waits for the sleepers it made due.
    const SETTLE: Duration = Duration::from_secs(5);

    /// A state task on `clock`, with its inputs and outputs.
    struct Rig {
        events: mpsc::Sender<Event>,
        control: mpsc::Sender<StateControl>,
        stored: mpsc::Receiver<Event>,
        snapshot: watch::Receiver<Arc<Snapshot>>,
        _heals: mpsc::Receiver<Heal>,
    }

    fn rig(clock: Clock) -> Rig {
        let (etx, erx) = mpsc::channel(64);
        let (ctx, crx) = mpsc::channel(16);
        let (stx, srx) = mpsc::channel(256);
        let (htx, hrx) = mpsc::channel(16);
        let channels = StateChannels {
            events: erx,
            control: crx,
            store: stx,
            heals: htx,
        };
        let (task, snapshot) = StateTask::new(channels, clock);
        tokio::spawn(task.run(CancellationToken::new()));
        Rig {
            events: etx,
            control: ctx,
            stored: srx,
            snapshot,
            _heals: hrx,
        }
    }

    impl Rig {
        async fn wait_state(&mut self, name: &ServiceName, state: State) {
            let reached = self
                .snapshot
                .wait_for(|s| s.services.get(name).is_some_and(|st| st.state == state));
            tokio::time::timeout(GUARD, reached)
                .await
                .unwrap_or_else(|_| panic!("{name} never became {state:?}"))
                .unwrap();
        }

        fn state(&self, name: &ServiceName) -> State {
            self.snapshot.borrow().services[name].state
        }

        /// What the task has passed on to the store so far, by kind.
        fn stored(&mut self) -> Vec<Event> {
            std::iter::from_fn(|| self.stored.try_recv().ok()).collect()
        }

        /// Waits until the task stores an event that `pick` chooses.
        async fn wait_stored(&mut self, what: &str, pick: impl Fn(&EventKind) -> bool) -> Event {
            let found = async {
                loop {
                    let e = self.stored.recv().await.expect("the task ended");
                    if pick(&e.kind) {
                        return e;
                    }
                }
            };
            tokio::time::timeout(GUARD, found)
                .await
                .unwrap_or_else(|_| panic!("never stored: {what}"))
        }
    }

    fn t0() -> jiff::Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn external(probe: &str, incident_after: Duration) -> ServiceSpec {
        ServiceSpec {
            managed: false,
            heal: false,
            incident_after,
            probes: vec![probe.into()],
            ..Default::default()
        }
    }

    /// A rig on `clock` with an external service `db` (one tcp probe, `incident_after`), up.
    async fn up_on(clock: &Clock, incident_after: Duration) -> (Rig, ServiceName) {
        let mut r = rig(clock.clone());
        let db = ServiceName::new("db").unwrap();
        let spec = external("tcp", incident_after);
        r.control
            .send(StateControl::Configure(db.clone(), spec))
            .await
            .unwrap();
        r.events
            .send(clock.event(&db, probe(Health::Up)))
            .await
            .unwrap();
        r.wait_state(&db, State::Up).await;
        (r, db)
    }

    fn probe(health: Health) -> EventKind {
        EventKind::ProbeChanged {
            probe: "tcp".into(),
            health,
            reason: format!("{health:?}"),
        }
    }

    /// A maintenance for an hour ends when the clock passes its end, not a second before, and
    /// the test waits no hour.
    #[tokio::test]
    async fn a_timed_maintenance_ends_when_the_clock_passes_its_until() {
        let tc = TestClock::frozen(t0());
        let clock = tc.clock();
        let (mut r, db) = up_on(&clock, Duration::ZERO).await;
        let until = t0() + jiff::SignedDuration::from_hours(1);
        let begin = EventKind::MaintenanceStarted {
            reason: "disk swap".into(),
            until: Some(until),
            by: Actor::Upkeep,
            window: None,
        };
        r.events.send(clock.event(&db, begin)).await.unwrap();
        r.wait_state(&db, State::Maintenance).await;

        // A second short: still in maintenance (`advance` returns after anything due woke).
        assert!(tc.advance(Duration::from_secs(3599), SETTLE).await);
        assert_eq!(r.state(&db), State::Maintenance);
        let ended = |k: &EventKind| matches!(k, EventKind::MaintenanceEnded { .. });
        assert!(!r.stored().iter().any(|e| ended(&e.kind)));

        assert!(tc.advance(Duration::from_secs(1), SETTLE).await);
        let end = r.wait_stored("maintenance_ended", ended).await;
        assert_eq!(end.at, until);
        r.wait_state(&db, State::Up).await;
    }

    /// An outage opens an incident only once it has lasted `incident_after` on the clock.
    #[tokio::test]
    async fn an_incident_opens_only_once_the_clock_passes_incident_after() {
        let tc = TestClock::frozen(t0());
        let clock = tc.clock();
        let (mut r, db) = up_on(&clock, Duration::from_secs(30)).await;
        assert!(tc.advance(Duration::from_secs(10), SETTLE).await);
        let down_at = clock.now();
        r.events
            .send(clock.event(&db, probe(Health::Down)))
            .await
            .unwrap();
        r.wait_state(&db, State::Down).await;
        let opened = |k: &EventKind| matches!(k, EventKind::IncidentOpened { .. });

        assert!(tc.advance(Duration::from_secs(29), SETTLE).await);
        assert!(!r.stored().iter().any(|e| opened(&e.kind)));
        assert!(r.snapshot.borrow().services[&db].incident_since.is_none());

        assert!(tc.advance(Duration::from_secs(1), SETTLE).await);
        let e = r.wait_stored("incident_opened", opened).await;
        assert_eq!(e.at, down_at + jiff::SignedDuration::from_secs(30));
        let EventKind::IncidentOpened { since, .. } = e.kind else {
            unreachable!()
        };
        assert_eq!(since, down_at, "dated from the outage's start");
    }

    /// A snapshot is changed in place only where no reader holds it: one a reader kept stays
    /// as it was, and the next has every service's latest status and none removed.
    #[tokio::test]
    async fn a_snapshot_a_reader_holds_never_changes_under_it() {
        let clock = Clock::system();
        let (mut r, db) = up_on(&clock, Duration::ZERO).await;
        let web = ServiceName::new("web").unwrap();
        r.control
            .send(StateControl::Configure(
                web.clone(),
                external("tcp", Duration::ZERO),
            ))
            .await
            .unwrap();
        r.events
            .send(clock.event(&web, probe(Health::Up)))
            .await
            .unwrap();
        r.wait_state(&web, State::Up).await;
        let kept = r.snapshot.borrow().clone();
        r.events
            .send(clock.event(&db, probe(Health::Down)))
            .await
            .unwrap();
        r.wait_state(&db, State::Down).await;
        r.events
            .send(clock.event(&web, EventKind::Removed))
            .await
            .unwrap();
        let gone = r.snapshot.wait_for(|s| !s.services.contains_key(&web));
        tokio::time::timeout(GUARD, gone)
            .await
            .expect("web was never removed")
            .unwrap();
        assert_eq!(kept.services[&db].state, State::Up);
        assert_eq!(kept.services[&web].state, State::Up);
        assert_eq!(r.state(&db), State::Down);
    }

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
            let channels = StateChannels {
                events: erx,
                control: crx,
                store: stx,
                heals: htx,
            };
            let clock = Clock::system();
            let (task, mut snapshot) = StateTask::new(channels, clock.clone());
            let name = ServiceName::new("db").unwrap();
            ctx.send(StateControl::Configure(
                name.clone(),
                external("tcp", Duration::ZERO),
            ))
            .await
            .unwrap();
            etx.send(clock.event(&name, probe(Health::Up)))
                .await
                .unwrap();
            let drain = CancellationToken::new();
            let run = tokio::spawn(task.run(drain.clone()));
            let up = snapshot.wait_for(|s| {
                s.services
                    .get(&name)
                    .is_some_and(|st| st.state == State::Up)
            });
            tokio::time::timeout(GUARD, up)
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
