//! Drills: inject a fault into a running service and measure how long upkeep takes to notice
//! and to recover (up again, probes green). MTTR proved, not claimed.
//!
//! Recovery means: the service is up (or degraded) again as a new process. The times are then
//! read from the stored events (the exit, the probe verdicts, the state changes), so they are
//! the same figures the report and the incident timeline show. Each result is stored as a
//! `drill_completed` event; the `drill_started` event names who asked. Errors are
//! [`DrillError`]s, which `control.rs` maps to HTTP answers.

use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use upkeep_core::api::{DrillRequest, DrillResult, Fault};
use upkeep_core::{Actor, EventKind, Principal, ServiceName, State};
use upkeep_supervisor::SupervisorCommand;

use crate::control::Daemon;

/// Why a drill did not run, or did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    #[error("no service named `{0}` is configured")]
    UnknownService(ServiceName),
    #[error("service `{0}` is external: upkeep can inject no fault into it")]
    External(ServiceName),
    #[error("a {} drill of `{name}` would not be healed: {why}", fault.as_str())]
    WouldNotHeal {
        name: ServiceName,
        fault: Fault,
        why: &'static str,
    },
    #[error("a drill of `{0}` is already running; wait for it to finish")]
    AlreadyRunning(ServiceName),
    #[error("service `{name}` must be up for a drill (it is {state})")]
    NotUp { name: ServiceName, state: String },
    #[error("service `{0}` has no process to inject a fault into yet; try again")]
    NoProcess(ServiceName),
    #[error("a {} drill needs a probe on `{name}`: without one nothing can notice it", fault.as_str())]
    NeedsProbe { name: ServiceName, fault: Fault },
    #[error("`{0}` restarted while the drill waited for it to settle; try again")]
    Unsettled(ServiceName),
    #[error("no process of `{0}` listens on a TCP port")]
    NoListener(ServiceName),
    #[error("could not inject the fault into `{name}` ({message}); it may have just exited")]
    NotInjected { name: ServiceName, message: String },
    #[error("`{name}` did not recover within {secs}s of the {} fault", fault.as_str())]
    NotRecovered {
        name: ServiceName,
        fault: Fault,
        secs: u64,
    },
    #[error("`{0}` recovered but no event shows the fault being noticed")]
    NeverNoticed(ServiceName),
    #[error("reading the drill's events")]
    Events(#[source] upkeep_store::Error),
    #[error("a blocking task of the daemon failed")]
    Task(#[from] tokio::task::JoinError),
}

/// Longest a drill waits for the service to be up before injecting.
const UP_WAIT: Duration = Duration::from_secs(30);

/// Longest a drill waits for recovery.
const DRILL_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(
    daemon: &Daemon,
    req: DrillRequest,
    by: &Principal,
) -> Result<DrillResult, DrillError> {
    let name = &req.service;
    // One drill at a time per service: two at once would both take the one fault for theirs.
    let _one = DrillGuard::take(daemon, name)?;
    let (has_probes, grace) = {
        let live = daemon.live.lock().await;
        let cfg = live
            .config
            .services
            .get(name)
            .ok_or_else(|| DrillError::UnknownService(name.clone()))?;
        let Some(managed) = &cfg.managed else {
            return Err(DrillError::External(name.clone()));
        };
        // A fault nothing would heal is an outage, not a drill: refused up front.
        let unhealed = match req.fault {
            Fault::Hang => (cfg.on_unhealthy != upkeep_config::OnUnhealthy::Restart).then_some(
                "its probes only alert (on_unhealthy = \"alert\"): it would stay frozen",
            ),
            Fault::Crash | Fault::ClosePort => (managed.restart
                == upkeep_config::RestartPolicy::Never)
                .then_some("it is never restarted (restart = \"never\"): it would stay down"),
        };
        if let Some(why) = unhealed {
            return Err(DrillError::WouldNotHeal {
                name: name.clone(),
                fault: req.fault,
                why,
            });
        }
        // Settle time: past the probes' grace and the restart policy's min_uptime, so each
        // drill measures a first failure, not a backed-off repeat.
        let grace = cfg.probes.iter().map(|p| p.grace).max().unwrap_or_default();
        let min_uptime = cfg
            .managed
            .as_ref()
            .map(|m| m.min_uptime)
            .unwrap_or_default();
        (!cfg.probes.is_empty(), grace.max(min_uptime))
    };
    // A service that is starting (just after `upkeep up`, say) gets a moment to come up.
    let mut rx = daemon.snapshot.clone();
    let up = rx.wait_for(|s| {
        s.services
            .get(name)
            .is_some_and(|st| st.state.is_available())
    });
    let status = match tokio::time::timeout(UP_WAIT, up).await {
        Ok(Ok(snap)) => snap.services[name].clone(),
        _ => {
            let state = daemon
                .snapshot
                .borrow()
                .services
                .get(name)
                .map_or("unknown".into(), |s| s.state.to_string());
            return Err(DrillError::NotUp {
                name: name.clone(),
                state,
            });
        }
    };
    let Some(pid) = status.pid else {
        return Err(DrillError::NoProcess(name.clone()));
    };
    if req.fault != Fault::Crash && !has_probes {
        return Err(DrillError::NeedsProbe {
            name: name.clone(),
            fault: req.fault,
        });
    }

    // Measure the steady state: a fault within the probes' grace after a start would not be
    // counted until grace ends, and a crash within min_uptime of the last one backs off.
    if let Some(since) = status.since {
        let up_for = daemon.clock.now().duration_since(since).unsigned_abs();
        if up_for < grace {
            daemon.clock.sleep(grace - up_for).await;
        }
    }
    let pid = match daemon
        .snapshot
        .borrow()
        .services
        .get(name)
        .and_then(|s| s.pid)
    {
        Some(p) if p == pid => p,
        _ => {
            return Err(DrillError::Unsettled(name.clone()));
        }
    };

    // Where the fault goes, found before anything is armed, so that a drill that cannot
    // inject leaves nothing behind.
    let target = match req.fault {
        Fault::Crash | Fault::Hang => pid,
        Fault::ClosePort => {
            let holders = tokio::task::spawn_blocking(move || {
                upkeep_supervisor::procfs::listening_in_group(pid)
            })
            .await?;
            let Some((holder, _)) = holders.first().copied() else {
                return Err(DrillError::NoListener(name.clone()));
            };
            holder
        }
    };

    // The supervisor restarts the drill's casualty at once and keeps it out of the crash-loop
    // count, so drills back to back do not fail the service. And state, so that the incident
    // it opens is marked as the drill's. Both are disarmed if the drill gives up.
    tracing::info!(service = %name, fault = req.fault.as_str(), by = %by, "drill asked");
    let armed = Armed::arm(daemon, name, req.fault, by).await;
    let injected_at = daemon.clock.now();
    let injected = match req.fault {
        Fault::Crash | Fault::ClosePort => kill(Pid::from_raw(target as i32), Signal::SIGKILL),
        Fault::Hang => killpg(Pid::from_raw(target as i32), Signal::SIGSTOP),
    };
    if let Err(e) = injected {
        let message = format!("injecting {}: {e}", req.fault.as_str());
        armed.disarm(&message).await;
        return Err(DrillError::NotInjected {
            name: name.clone(),
            message,
        });
    }
    tracing::info!(service = %name, fault = req.fault.as_str(), "drill: fault injected");

    // Recovered: up again, as a new process.
    let mut rx = daemon.snapshot.clone();
    let recovered = rx.wait_for(|s| {
        s.services
            .get(name)
            .is_some_and(|st| st.state.is_available() && st.pid.is_some_and(|p| p != pid))
    });
    if tokio::time::timeout(DRILL_TIMEOUT, recovered)
        .await
        .is_err()
    {
        // Undo what can be undone: a frozen service is let go on.
        if req.fault == Fault::Hang {
            let _ = killpg(Pid::from_raw(target as i32), Signal::SIGCONT);
        }
        armed.disarm("no recovery in time").await;
        return Err(DrillError::NotRecovered {
            name: name.clone(),
            fault: req.fault,
            secs: DRILL_TIMEOUT.as_secs(),
        });
    }
    daemon.store_caught_up().await;
    let mut events = daemon
        .store
        .events(Some(name), 1000)
        .await
        .map_err(DrillError::Events)?;
    events.retain(|e| e.at >= injected_at);
    events.reverse();
    let detection = events.iter().find(|e| match e.kind.as_str() {
        "exited" | "heal_requested" => true,
        "probe_changed" => e.detail["health"] == "down",
        "status_changed" => {
            serde_json::from_value::<State>(e.detail["to"].clone()).is_ok_and(|s| !s.is_available())
        }
        _ => false,
    });
    let Some(detection) = detection else {
        armed.disarm("the fault was never noticed").await;
        return Err(DrillError::NeverNoticed(name.clone()));
    };
    let recovery = events.iter().filter(|e| e.at >= detection.at).find(|e| {
        e.kind == "status_changed"
            && serde_json::from_value::<State>(e.detail["to"].clone())
                .is_ok_and(|s| s.is_available())
    });
    let recovered_at = recovery.map_or_else(|| daemon.clock.now(), |e| e.at);
    // In whole milliseconds of both ends, as the store keeps event times, so that the report's
    // drill span ends exactly where the recovery's status change is.
    let ms = |t: jiff::Timestamp| (t.as_millisecond() - injected_at.as_millisecond()).max(0) as u64;
    let detected_by = match detection.kind.as_str() {
        "probe_changed" => format!(
            "probe {}: {}",
            detection.detail["probe"].as_str().unwrap_or("?"),
            detection.detail["reason"].as_str().unwrap_or("")
        ),
        other => other.to_owned(),
    };
    let result = DrillResult {
        service: name.clone(),
        fault: req.fault,
        injected_at,
        detected_ms: ms(detection.at),
        recovered_ms: ms(recovered_at),
        detected_by,
        by: Some(by.clone()),
    };
    let kind = EventKind::DrillCompleted {
        fault: req.fault.as_str().into(),
        injected_at,
        detected_ms: result.detected_ms,
        recovered_ms: result.recovered_ms,
    };
    // Answer once the record is stored, so `status` right after shows it.
    armed.complete();
    daemon.record(daemon.clock.event(name, kind)).await;
    daemon.store_caught_up().await;
    Ok(result)
}

/// Marks a service as being drilled for as long as the drill runs (see [`run`]).
struct DrillGuard<'a> {
    daemon: &'a Daemon,
    name: ServiceName,
}

impl<'a> DrillGuard<'a> {
    fn take(daemon: &'a Daemon, name: &ServiceName) -> Result<Self, DrillError> {
        let mut drills = daemon.drills.lock().expect("drills poisoned");
        if !drills.insert(name.clone()) {
            return Err(DrillError::AlreadyRunning(name.clone()));
        }
        Ok(DrillGuard {
            daemon,
            name: name.clone(),
        })
    }
}

impl Drop for DrillGuard<'_> {
    fn drop(&mut self) {
        self.daemon
            .drills
            .lock()
            .expect("drills poisoned")
            .remove(&self.name);
    }
}

/// A drill armed in the supervisor and in state, until it completes or gives up. Dropped
/// without either (the client went away and its request was cancelled mid-drill), it disarms
/// in a task of its own: an armed drill left behind would take the next real crash for its
/// fault, out of the crash-loop count and its incident paging nobody.
struct Armed<'a> {
    daemon: &'a Daemon,
    name: &'a ServiceName,
    fault: Fault,
    supervisor: Option<upkeep_supervisor::SupervisorHandle>,
    settled: bool,
}

impl<'a> Armed<'a> {
    async fn arm(
        daemon: &'a Daemon,
        name: &'a ServiceName,
        fault: Fault,
        by: &Principal,
    ) -> Armed<'a> {
        let supervisor = daemon
            .live
            .lock()
            .await
            .services
            .get(name)
            .and_then(|h| h.supervisor.clone());
        // Armed (and so disarmed on drop) before the first await that could be cancelled.
        let armed = Armed {
            daemon,
            name,
            fault,
            supervisor,
            settled: false,
        };
        if let Some(sup) = &armed.supervisor {
            sup.request(|done| SupervisorCommand::Drill { armed: true, done })
                .await;
        }
        let started = EventKind::DrillStarted {
            fault: fault.as_str().into(),
            by: Actor::Principal(by.clone()),
        };
        daemon.record(daemon.clock.event(name, started)).await;
        armed
    }

    /// The drill completed: its fault was the drill's, and state has its record.
    fn complete(mut self) {
        self.settled = true;
    }

    /// The drill gave up: the next real crash counts, and its incident pages people.
    async fn disarm(mut self, reason: &str) {
        self.settled = true;
        if let Some(sup) = &self.supervisor {
            sup.request(|done| SupervisorCommand::Drill { armed: false, done })
                .await;
        }
        self.daemon
            .record(self.daemon.clock.event(self.name, self.aborted(reason)))
            .await;
    }

    fn aborted(&self, reason: &str) -> EventKind {
        EventKind::DrillAborted {
            fault: self.fault.as_str().into(),
            reason: reason.into(),
        }
    }
}

impl Drop for Armed<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let supervisor = self.supervisor.take();
        let events = self.daemon.wiring.supervisor.events.clone();
        let aborted = self
            .daemon
            .clock
            .event(self.name, self.aborted("the drill's request was cancelled"));
        tokio::spawn(async move {
            if let Some(sup) = supervisor {
                sup.request(|done| SupervisorCommand::Drill { armed: false, done })
                    .await;
            }
            let _ = events.send(aborted).await;
        });
    }
}
