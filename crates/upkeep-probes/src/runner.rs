//! Scheduling: one task per probe.
//!
//! Each probe's first check comes at a random point within its first `every` (so probes
//! configured together do not fire together: no thundering herd), then every `every` (every
//! `every / 4` while a fresh process has no verdict yet, so recoveries are seen promptly). A check
//! runs inside its own task's timeout, so a slow probe delays only itself, and network checks
//! wait for room at their host's gate, so an overloaded host does not drown the daemon in
//! connections. Missed ticks are skipped, not bunched.
//!
//! Time: the schedule, check timeouts and lag measurements stay on tokio's clock on purpose
//! (latency-critical: probe lag is measured against real time, and a check's timeout bounds
//! a real connection). What state reads (verdict stamps, grace since a start, the last check's
//! time) comes from the injected [`Clock`] in [`ProbeDeps`], like every other stamp, so that a
//! test that moves the daemon's clock sees probe verdicts on the same time line.

use std::collections::BTreeMap;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use upkeep_config::ProbeConfig;
use upkeep_core::{Clock, Event, EventKind, Health, LastCheck, ServiceName};
use upkeep_sys::Reaper;

use crate::kinds::{HttpClients, Probe};
use crate::probe::{ProbeOutcome, Target, Verdict};

/// The runtime probe checks run on: two worker threads of their own, made on the first probe.
///
/// Why not the daemon's runtime: that one is a single thread (supervision is latency-bound and
/// one thread keeps the daemon small), and at thousands of checks a second a burst of due
/// checks, or the thread being preempted, would delay every probe and the supervisor alike.
/// A daemon with no probes never starts these threads. The runtime lives until the process
/// ends (dropping a runtime from async code panics, and it is needed until then).
fn probe_runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("upkeep-probes")
                .enable_all()
                .build()
                .expect("starting the probe runtime")
        })
        .handle()
}

/// Most skipped ticks recorded as lag at once (a probe stalled for an hour does not need a
/// million samples to say so).
const MAX_SKIPPED: u32 = 1000;

/// The shortest interval of the fast checks before a verdict.
const FAST_FLOOR: std::time::Duration = std::time::Duration::from_millis(50);

/// What probes share across services.
#[derive(Clone)]
pub struct ProbeDeps {
    pub http: HttpClients,
    pub gates: crate::HostGates,
    pub reaper: Reaper,
    pub lag: std::sync::Arc<crate::LagHistogram>,
    /// Each answered check's latency, per service and hour, until the store keeps it.
    pub latency: std::sync::Arc<upkeep_core::latency::LatencyBook>,
    /// Stamps verdicts and measures grace (not the schedule: see the module's comment).
    pub clock: Clock,
}

/// Where a probe task leaves its most recent check for the API to read.
type LastSlot = std::sync::Arc<std::sync::Mutex<Option<LastCheck>>>;

/// The probes of one service. Dropping it does not stop them; [`ProbeRunner::stop`] does.
pub struct ProbeRunner {
    cancel: CancellationToken,
    last: Vec<(String, LastSlot)>,
}

impl ProbeRunner {
    /// Starts one task per probe of `service` on `tasks`.
    pub fn spawn(
        service: ServiceName,
        probes: &[ProbeConfig],
        target: watch::Receiver<Target>,
        deps: &ProbeDeps,
        events: mpsc::Sender<Event>,
        cancel: CancellationToken,
        tasks: &TaskTracker,
    ) -> ProbeRunner {
        let started = deps.clock.now();
        let mut last = Vec::with_capacity(probes.len());
        for cfg in probes {
            let slot = LastSlot::default();
            last.push((cfg.name.clone(), slot.clone()));
            let task = ProbeTask {
                last: slot,
                service: service.clone(),
                probe: Probe::build(cfg, deps),
                gate: Probe::host(cfg).map(|h| deps.gates.for_host(&h)),
                cfg: cfg.clone(),
                target: target.clone(),
                lag: deps.lag.clone(),
                latency: deps.latency.clone(),
                events: events.clone(),
                clock: deps.clock.clone(),
                started,
            };
            let span = tracing::info_span!("probe", service = %service, probe = %cfg.name);
            tasks.spawn_on(task.run(cancel.clone()).instrument(span), probe_runtime());
        }
        ProbeRunner { cancel, last }
    }

    /// The most recent check of each probe that has checked yet, by probe name.
    pub fn last_checks(&self) -> BTreeMap<String, LastCheck> {
        self.last
            .iter()
            .filter_map(|(name, slot)| {
                let last = slot.lock().expect("probe slot poisoned").clone()?;
                Some((name.clone(), last))
            })
            .collect()
    }

    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

struct ProbeTask {
    service: ServiceName,
    probe: Probe,
    /// Its host's gate, for network checks (see `gate.rs`).
    gate: Option<std::sync::Arc<tokio::sync::Semaphore>>,
    cfg: ProbeConfig,
    /// The process to look at; a change wakes the task (a new process is checked at once).
    target: watch::Receiver<Target>,
    events: mpsc::Sender<Event>,
    last: LastSlot,
    lag: std::sync::Arc<crate::LagHistogram>,
    latency: std::sync::Arc<upkeep_core::latency::LatencyBook>,
    /// For an external service, grace counts from here.
    started: jiff::Timestamp,
    clock: Clock,
}

impl ProbeTask {
    async fn run(mut self, cancel: CancellationToken) {
        let every = self.cfg.every;
        let mut next = Instant::now() + every.mul_f64(fastrand::f64());
        let mut verdict = Verdict::default();
        let mut pgid = self.target.borrow_and_update().pgid;
        // Set when the process changes under a running probe (a restart): until the new
        // process has a verdict the probe checks faster. Not at start-up, where every probe
        // beginning at once would multiply the first burst.
        let mut fresh = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = self.target.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let now_pgid = self.target.borrow_and_update().pgid;
                    if now_pgid != pgid {
                        // A new process: judge it afresh (state has reset its probes too), and
                        // look at once rather than at the next tick.
                        pgid = now_pgid;
                        verdict = Verdict::default();
                        fresh = true;
                        next = Instant::now();
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(next) => {}
            }
            // A check starts once its host has room; waiting for it is lag like any other.
            let permit = match &self.gate {
                Some(gate) => tokio::select! {
                    _ = cancel.cancelled() => return,
                    permit = gate.clone().acquire_owned() => permit.ok(),
                },
                None => None,
            };
            self.lag
                .record(Instant::now().saturating_duration_since(next));
            // Until a fresh process has a verdict, check four times as often (at least 50 ms
            // apart), so a recovery is seen promptly rather than at the next regular tick.
            // Only then: a probe that is down keeps its pace, or an overloaded service would get
            // four times the load and never recover.
            if verdict.health != Health::Unknown {
                fresh = false;
            }
            let interval = if fresh {
                (every / 4).max(FAST_FLOOR).min(every)
            } else {
                every
            };
            next += interval;
            let now = Instant::now();
            // A tick the schedule could not keep is late, not forgotten: each one skipped
            // counts as lag (issue 14, F26: they used to vanish, flattering the histogram),
            // then the schedule starts afresh from now.
            let mut skipped = 0;
            while next < now && skipped < MAX_SKIPPED {
                self.lag.record(now - next);
                next += interval;
                skipped += 1;
            }
            if next < now {
                next = now + interval;
            }
            let target = *self.target.borrow();
            let outcome =
                match tokio::time::timeout(self.cfg.timeout, self.probe.check(&target)).await {
                    Ok(Some(o)) => o,
                    Ok(None) => continue,
                    Err(_) => ProbeOutcome::down(
                        format!("no answer within {} ms", self.cfg.timeout.as_millis()),
                        self.cfg.timeout,
                    ),
                };
            drop(permit);
            let since = target.since.unwrap_or(self.started);
            let checked = self.clock.now();
            let in_grace = checked.duration_since(since).unsigned_abs() < self.cfg.grace;
            tracing::trace!(healthy = outcome.healthy, reason = %outcome.reason, "probe result");
            let latency_ms = outcome.latency.as_secs_f64() * 1000.0;
            // Response times of answers only: a timeout says nothing about how fast it is.
            if outcome.healthy || outcome.degraded {
                self.latency.record(&self.service, checked, latency_ms);
            }
            *self.last.lock().expect("probe slot poisoned") = Some(LastCheck {
                at: checked,
                healthy: outcome.healthy,
                degraded: outcome.degraded,
                reason: outcome.reason.clone(),
                latency_ms,
            });
            if let Some(health) = verdict.observe(&outcome, in_grace, &self.cfg) {
                let kind = EventKind::ProbeChanged {
                    probe: self.cfg.name.clone(),
                    health,
                    reason: outcome.reason,
                };
                if self
                    .events
                    .send(self.clock.event(&self.service, kind))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}
