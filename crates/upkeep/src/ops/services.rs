//! Start, stop and restart, of one managed service or of all: the desired state is kept (in
//! the data dir, and in the store when it answers: `intent.rs`), so a restarted daemon brings
//! each service back to what the operator last asked for, with or without its store; the
//! supervisors carry the command out, and the answer waits until state and the store show it.
//! Every event the action causes names who asked.
//!
//! Starts go to every supervisor at once: each waits for its own dependencies (the gate,
//! `crate::deps`). Stops go dependents first, layer by layer ([`stop_in_order`] at shutdown
//! too), so that nothing loses what it depends on while it still runs.

use std::sync::Arc;
use std::time::Duration;

use upkeep_core::api::{ActionResult, StillRunning, Waiting};
use upkeep_core::{Actor, Desired, Principal, ServiceName, State};
use upkeep_state::Snapshot;
use upkeep_supervisor::{SupervisorCommand, SupervisorHandle};
use upkeep_web::{Action, Target};

use super::OpsError;
use crate::control::{Daemon, Live};

pub async fn act(
    daemon: &Daemon,
    target: Target,
    action: Action,
    by: &Principal,
) -> Result<ActionResult, OpsError> {
    let desired = match action {
        Action::Stop => Desired::Stopped,
        Action::Start | Action::Restart => Desired::Running,
    };
    // A stop or restart is refused once an upgrade's hand-over began (before anything is
    // kept: the next image would start what was asked stopped), and holds the upgrade off
    // until it is done (`upkeep_supervisor::Seal`).
    let doing = match action {
        Action::Stop => Some("stopping"),
        Action::Restart => Some("restarting"),
        Action::Start => None,
    };
    let _inside = match doing {
        Some(doing) => {
            let name = match &target {
                Target::All => "all".to_owned(),
                Target::One(n) => n.to_string(),
            };
            let seal = &daemon.wiring.supervisor.seal;
            Some(seal.enter(format!("{name} ({doing})"))?)
        }
        None => None,
    };
    let mut still_running = Vec::new();
    let handles: Vec<(ServiceName, SupervisorHandle)> = {
        let mut live = daemon.live.lock().await;
        let managed =
            |live: &Live, n: &ServiceName| live.services.get(n).and_then(|h| h.supervisor.clone());
        let names: Vec<ServiceName> = match &target {
            // `all` means every service upkeep runs; external ones have nothing to start.
            Target::All => live
                .services
                .keys()
                .filter(|n| managed(&live, n).is_some())
                .cloned()
                .collect(),
            Target::One(n) if managed(&live, n).is_some() => vec![n.clone()],
            Target::One(n) if live.services.contains_key(n) => {
                return Err(OpsError::External {
                    name: n.clone(),
                    action: action.as_str(),
                });
            }
            Target::One(n) => return Err(OpsError::UnknownService(n.clone())),
        };
        for n in &names {
            live.desired.insert(n.clone(), desired);
        }
        // A job whose run is still going is not started again (it never overlaps): the
        // answer says so, as a due run that falls on it is skipped.
        let names = if action == Action::Start {
            let snapshot = daemon.snapshot.borrow();
            let (going, rest): (Vec<_>, Vec<_>) = names.into_iter().partition(|n| {
                live.config.services.get(n).is_some_and(|c| c.job.is_some())
                    && snapshot.services.get(n).is_some_and(|s| s.pid.is_some())
            });
            still_running = going
                .into_iter()
                .map(|name| StillRunning {
                    since: snapshot.services.get(&name).and_then(|s| s.since),
                    name,
                })
                .collect();
            rest
        } else {
            names
        };
        names
            .into_iter()
            .filter_map(|n| Some((n.clone(), managed(&live, &n)?)))
            .collect()
    };
    // Kept before anything is done: a daemon killed after this answer, even one that then
    // starts with the store away, brings each service back to it.
    let names: Vec<ServiceName> = handles.iter().map(|(n, _)| n.clone()).collect();
    let store = daemon
        .store_ready()
        .is_ok()
        .then_some(daemon.store.as_ref());
    daemon
        .intent
        .set_desired(&names, desired, store)
        .await
        .map_err(OpsError::IntentNotSaved)?;
    tracing::info!(action = action.as_str(), ?target, by = %by, "operator action");
    let actor = Actor::Principal(by.clone());
    match action {
        Action::Stop => stop_layered(daemon, &handles, &actor).await,
        Action::Start | Action::Restart => {
            let runs = handles.iter().map(|(_, h)| {
                let by = actor.clone();
                h.request(move |done| match action {
                    Action::Restart => SupervisorCommand::Restart { by, done },
                    _ => SupervisorCommand::Start { by, done },
                })
            });
            futures_util::future::join_all(runs).await;
        }
    }
    // The supervisors sent their events before acknowledging; wait until state has seen
    // them and the store has written them, so that an `ls` or `status` right after this
    // answer shows the new state and its events.
    let wanted = |s: &Arc<Snapshot>| {
        handles.iter().all(|(n, _)| {
            let st = s.services.get(n).map(|x| x.state);
            match action {
                Action::Stop => st == Some(State::Stopped),
                _ => st != Some(State::Stopping),
            }
        })
    };
    let mut rx = daemon.snapshot.clone();
    let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(wanted)).await;
    daemon.store_caught_up().await;
    let waiting = match action {
        Action::Stop => Vec::new(),
        _ => waiting_of(daemon, &handles).await,
    };
    Ok(ActionResult {
        action: action.as_str().into(),
        services: handles.into_iter().map(|(n, _)| n).collect(),
        by: Some(by.clone()),
        still_running,
        waiting,
    })
}

/// Those of `handles` a start left waiting for a dependency, with the dependencies an
/// operator stopped (a start of `s3` whose `s2` was stopped would wait for ever unnoticed:
/// break-it, session 12).
async fn waiting_of(daemon: &Daemon, handles: &[(ServiceName, SupervisorHandle)]) -> Vec<Waiting> {
    let live = daemon.live.lock().await;
    let snapshot = daemon.snapshot.borrow().clone();
    handles
        .iter()
        .filter_map(|(name, _)| {
            let reason = snapshot.services.get(name)?.waiting.clone()?;
            let stopped = live
                .config
                .services
                .get(name)
                .map(|c| c.depends_on.iter())
                .into_iter()
                .flatten()
                .map(|d| d.service.clone())
                .filter(|d| live.desired.get(d) == Some(&Desired::Stopped))
                .collect();
            Some(Waiting {
                name: name.clone(),
                reason,
                stopped,
            })
        })
        .collect()
}

/// Stops `handles` dependents first: each layer once the one before has stopped (a stop's
/// answer comes after its events are sent, so the record shows the order too).
async fn stop_layered(daemon: &Daemon, handles: &[(ServiceName, SupervisorHandle)], by: &Actor) {
    let names: Vec<ServiceName> = handles.iter().map(|(n, _)| n.clone()).collect();
    for layer in daemon.wiring.gates.stop_layers(&names) {
        let stops = handles
            .iter()
            .filter(|(n, _)| layer.contains(n))
            .map(|(_, h)| {
                let by = by.clone();
                h.request(move |done| SupervisorCommand::Stop { by, done })
            });
        futures_util::future::join_all(stops).await;
    }
}

/// Shutdown: every managed service stopped, dependents first (desired states unchanged, so
/// the next daemon starts them again).
pub async fn stop_in_order(daemon: &Daemon) {
    let handles: Vec<(ServiceName, SupervisorHandle)> = {
        let live = daemon.live.lock().await;
        live.services
            .iter()
            .filter_map(|(n, h)| Some((n.clone(), h.supervisor.clone()?)))
            .collect()
    };
    stop_layered(daemon, &handles, &Actor::Upkeep).await;
}
