//! Maintenance by hand: begin (or change) a service's maintenance, or end it. Input: the
//! operator's request through `control.rs`; output: a `maintenance_started` or
//! `maintenance_ended` event naming who asked, recorded through state before the answer.

use upkeep_core::api::{ActionResult, MaintenanceRequest};
use upkeep_core::{Actor, EventKind, Principal, ServiceName};

use super::OpsError;
use crate::control::Daemon;

/// Puts `name` in maintenance as `req` says, or ends its maintenance when `req` is `None`.
pub async fn set(
    daemon: &Daemon,
    name: &ServiceName,
    req: Option<MaintenanceRequest>,
    by: &Principal,
) -> Result<ActionResult, OpsError> {
    if !daemon.live.lock().await.config.services.contains_key(name) {
        return Err(OpsError::UnknownService(name.clone()));
    }
    // A window's maintenance is the window's: ended or changed by hand, the window would
    // still say it runs.
    let window = daemon
        .snapshot
        .borrow()
        .services
        .get(name)
        .and_then(|st| st.maintenance.as_ref()?.window);
    if let Some(window) = window {
        return Err(OpsError::InWindow {
            name: name.clone(),
            window,
        });
    }
    let actor = Actor::Principal(by.clone());
    let (kind, action) = match req {
        Some(r) => (
            EventKind::MaintenanceStarted {
                reason: r.reason,
                until: r.until,
                by: actor,
                window: None,
            },
            "maintenance",
        ),
        None if daemon
            .snapshot
            .borrow()
            .services
            .get(name)
            .is_none_or(|st| st.maintenance.is_none()) =>
        {
            return Err(OpsError::NotInMaintenance(name.clone()));
        }
        None => (EventKind::MaintenanceEnded { by: actor }, "end maintenance"),
    };
    tracing::info!(service = %name, action, by = %by, "maintenance asked");
    daemon.record(daemon.clock.event(name, kind)).await;
    // Kept in the data dir as state holds it, for a next start with the store away (the
    // store has it as events).
    let now = daemon
        .snapshot
        .borrow()
        .services
        .get(name)
        .and_then(|s| s.maintenance.clone());
    if let Err(e) = daemon.intent.set_maintenance(name, now).await {
        tracing::error!(service = %name, "{:#}", anyhow::Error::new(e));
    }
    Ok(ActionResult {
        action: action.into(),
        services: vec![name.clone()],
        by: Some(by.clone()),
        still_running: Vec::new(),
        waiting: Vec::new(),
    })
}
