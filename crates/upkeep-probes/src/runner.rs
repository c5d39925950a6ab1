//! Scheduling: one task per probe.
//!
//! Each probe's first check comes at a random point within its first `every` (so probes
//! configured together do not fire together: no thundering herd), then every `every` (every
//! `every / 4` while it has no up verdict, so recoveries are seen promptly). A check
//! runs inside its own task's timeout, so a slow probe delays only itself. Missed ticks are
//! skipped, not bunched.

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use upkeep_config::ProbeConfig;
use upkeep_core::{Event, EventKind, Health, ServiceName};
use upkeep_sys::Reaper;

use crate::kinds::{HttpClients, Probe};
use crate::probe::{ProbeOutcome, Target, Verdict};

/// The shortest interval of the fast checks before a verdict.
const FAST_FLOOR: std::time::Duration = std::time::Duration::from_millis(50);

/// What probes share across services.
#[derive(Clone)]
pub struct ProbeDeps {
    pub http: HttpClients,
    pub reaper: Reaper,
    pub lag: std::sync::Arc<crate::LagHistogram>,
}

/// The probes of one service. Dropping it does not stop them; [`ProbeRunner::stop`] does.
pub struct ProbeRunner {
    cancel: CancellationToken,
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
        let started = jiff::Timestamp::now();
        for cfg in probes {
            let task = ProbeTask {
                service: service.clone(),
                probe: Probe::build(cfg, deps),
                cfg: cfg.clone(),
                target: target.clone(),
                lag: deps.lag.clone(),
                events: events.clone(),
                started,
            };
            let span = tracing::info_span!("probe", service = %service, probe = %cfg.name);
            tasks.spawn(task.run(cancel.clone()).instrument(span));
        }
        ProbeRunner { cancel }
    }

    pub fn stop(&self) {
        self.cancel.cancel();
    }
}

struct ProbeTask {
    service: ServiceName,
    probe: Probe,
    cfg: ProbeConfig,
    /// The process to look at; a change wakes the task (a new process is checked at once).
    target: watch::Receiver<Target>,
    events: mpsc::Sender<Event>,
    lag: std::sync::Arc<crate::LagHistogram>,
    /// For an external service, grace counts from here.
    started: jiff::Timestamp,
}

impl ProbeTask {
    async fn run(mut self, cancel: CancellationToken) {
        let every = self.cfg.every;
        let mut next = Instant::now() + every.mul_f64(fastrand::f64());
        let mut verdict = Verdict::default();
        let mut pgid = self.target.borrow_and_update().pgid;
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
                        next = Instant::now();
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(next) => {}
            }
            self.lag
                .record(Instant::now().saturating_duration_since(next));
            // Until a probe has an up verdict (a fresh process, or one that is down) it checks
            // four times as often, at least every 50 ms apart: recovery is seen promptly
            // instead of at the next regular tick. Steady state costs nothing extra.
            let interval = match verdict.health {
                Health::Up | Health::Degraded => every,
                Health::Unknown | Health::Down => (every / 4).max(FAST_FLOOR).min(every),
            };
            next += interval;
            let now = Instant::now();
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
            let since = target.since.unwrap_or(self.started);
            let in_grace =
                jiff::Timestamp::now().duration_since(since).unsigned_abs() < self.cfg.grace;
            tracing::trace!(healthy = outcome.healthy, reason = %outcome.reason, "probe result");
            if let Some(health) = verdict.observe(&outcome, in_grace, &self.cfg) {
                let kind = EventKind::ProbeChanged {
                    probe: self.cfg.name.clone(),
                    health,
                    reason: outcome.reason,
                };
                if self
                    .events
                    .send(Event::now(&self.service, kind))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}
