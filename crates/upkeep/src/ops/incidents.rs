//! What people write to incidents (issue 16): open one the probes did not see, write an
//! update (investigating, identified, monitoring, resolved), resolve by hand, set the
//! priority, write the post-mortem. Each is checked (upkeep-core's `incident.rs` limits),
//! stored with its notices in one transaction (upkeep-store's `notes.rs`; the notices are
//! planned by `notices.rs` through the routes, to the incident's subscribers too) and
//! recorded as an `incident_noted` event with the person's name, which wakes the status
//! page. A resolved incident takes nothing but a post-mortem.
//!
//! What this does not do: the state machine keeps its own view of an outage. An incident
//! resolved by hand while its service is still down stays resolved: the `incident_noted`
//! event carries the incident's start, so the machine closes the incident it holds too
//! (no resolution of its own when the service is back, no reopening; the next outage is a
//! new incident). An incident opened by hand is never the machine's: only a person
//! resolves it, and no daemon restart or upgrade takes it up (upkeep-store, `unfinished`).

use upkeep_core::api::IncidentDetail;
use upkeep_core::incident::{IncidentStatus, IncidentWrite, Note, WrittenPostmortem};
use upkeep_core::{Actor, EventKind, Principal, ServiceName};
use upkeep_store::{Noted, OpenByHand, WriteUpdate};

use crate::control::Daemon;

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("no incident number {0}")]
    Unknown(i64),
    #[error("incident {0} is resolved: it takes nothing but a post-mortem")]
    Resolved(i64),
    #[error("no service named {0} in the config")]
    UnknownService(ServiceName),
    #[error(transparent)]
    Away(#[from] crate::ops::StoreAway),
    #[error("{what} in the store")]
    Store {
        what: &'static str,
        #[source]
        source: upkeep_store::Error,
    },
}

fn store(what: &'static str) -> impl FnOnce(upkeep_store::Error) -> IncidentError {
    move |source| IncidentError::Store { what, source }
}

fn invalid(problems: Vec<String>) -> Result<(), IncidentError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(IncidentError::Invalid(problems))
    }
}

fn noted(n: Noted, id: i64) -> Result<(), IncidentError> {
    match n {
        Noted::Done(_) => Ok(()),
        Noted::NotFound => Err(IncidentError::Unknown(id)),
        Noted::Resolved => Err(IncidentError::Resolved(id)),
    }
}

/// Applies one write; answers the incident as it is now.
pub async fn write(
    daemon: &Daemon,
    write: IncidentWrite,
    by: &Principal,
) -> Result<IncidentDetail, IncidentError> {
    daemon.store_ready()?;
    let now = daemon.clock.now();
    let db = daemon.store.as_ref();
    let (id, service, since, note) = match write {
        IncidentWrite::Open(req) => {
            invalid(req.check())?;
            if !daemon
                .live
                .lock()
                .await
                .config
                .services
                .contains_key(&req.service)
            {
                return Err(IncidentError::UnknownService(req.service));
            }
            let plan = daemon
                .notices
                .incident_plan(crate::notices::IncidentWriting {
                    service: req.service.clone(),
                    since: now,
                    priority: req.priority,
                    title: Some(req.title.clone()),
                    status: IncidentStatus::Investigating,
                    message: req.message.clone(),
                    opened: true,
                    at: now,
                });
            let id = db
                .open_by_hand(OpenByHand {
                    service: &req.service,
                    title: &req.title,
                    priority: req.priority,
                    message: req.message.as_deref(),
                    at: now,
                    by,
                    plan: &plan,
                })
                .await
                .map_err(store("opening an incident"))?;
            (id, req.service, now, Note::Opened { title: req.title })
        }
        IncidentWrite::Update(id, req) => {
            invalid(req.check())?;
            let (service, since, notes) = existing(daemon, id).await?;
            let plan = daemon
                .notices
                .incident_plan(crate::notices::IncidentWriting {
                    service: service.clone(),
                    since,
                    priority: notes.priority,
                    title: notes.title,
                    status: req.status,
                    message: Some(req.message.clone()),
                    opened: false,
                    at: now,
                });
            let done = db
                .write_update(WriteUpdate {
                    incident: id,
                    at: now,
                    status: req.status,
                    message: Some(&req.message),
                    by,
                    plan: &plan,
                })
                .await
                .map_err(store("writing an incident update"))?;
            noted(done, id)?;
            let note = if req.status == IncidentStatus::Resolved {
                Note::Resolved
            } else {
                Note::Updated { status: req.status }
            };
            (id, service, since, note)
        }
        IncidentWrite::Resolve(id, req) => {
            if let Some(m) = &req.message {
                invalid(
                    upkeep_core::incident::UpdateRequest {
                        status: IncidentStatus::Resolved,
                        message: m.clone(),
                    }
                    .check(),
                )?;
            }
            let (service, since, notes) = existing(daemon, id).await?;
            let plan = daemon
                .notices
                .incident_plan(crate::notices::IncidentWriting {
                    service: service.clone(),
                    since,
                    priority: notes.priority,
                    title: notes.title,
                    status: IncidentStatus::Resolved,
                    message: req.message.clone(),
                    opened: false,
                    at: now,
                });
            let done = db
                .write_update(WriteUpdate {
                    incident: id,
                    at: now,
                    status: IncidentStatus::Resolved,
                    message: req.message.as_deref(),
                    by,
                    plan: &plan,
                })
                .await
                .map_err(store("resolving an incident"))?;
            noted(done, id)?;
            (id, service, since, Note::Resolved)
        }
        IncidentWrite::Priority(id, req) => {
            let (service, since, notes) = existing(daemon, id).await?;
            // Routes the new priority reaches and the old one did not hear of it now; the
            // subscribers' notices do not depend on priority, so they hear nothing new.
            let plan = daemon
                .notices
                .priority_plan(crate::notices::PriorityChange {
                    service: service.clone(),
                    since,
                    was: notes.priority,
                    now: req.priority,
                    title: notes.title,
                    at: now,
                });
            let done = db
                .set_incident_priority(id, req.priority, now, &plan)
                .await
                .map_err(store("setting an incident's priority"))?;
            noted(done, id)?;
            (
                id,
                service,
                since,
                Note::Priority {
                    priority: req.priority,
                },
            )
        }
        IncidentWrite::Postmortem(id, pm) => {
            invalid(pm.check())?;
            let (service, since, _) = existing(daemon, id).await?;
            let written = WrittenPostmortem {
                postmortem: pm,
                at: now,
                by: by.clone(),
            };
            let done = db
                .set_postmortem(id, &written)
                .await
                .map_err(store("storing a post-mortem"))?;
            noted(done, id)?;
            (id, service, since, Note::Postmortem)
        }
    };
    daemon.notices.added();
    daemon
        .record(daemon.clock.event(
            &service,
            EventKind::IncidentNoted {
                incident: id,
                note,
                by: Actor::Principal(by.clone()),
                since: Some(since),
            },
        ))
        .await;
    db.incident(id, 1000)
        .await
        .map_err(store("reading an incident"))?
        .ok_or(IncidentError::Unknown(id))
}

/// The latest updates of incidents (not drills'), newest first, for the public.
pub async fn recent(
    daemon: &Daemon,
    limit: u32,
) -> Result<Vec<upkeep_core::incident::PublicUpdate>, IncidentError> {
    daemon.store_ready()?;
    daemon
        .store
        .recent_updates(limit)
        .await
        .map_err(store("reading the latest incident updates"))
}

/// Incident `id`'s service, start and notes; Unknown if there is none.
async fn existing(
    daemon: &Daemon,
    id: i64,
) -> Result<
    (
        ServiceName,
        jiff::Timestamp,
        upkeep_core::incident::IncidentNotes,
    ),
    IncidentError,
> {
    let d = daemon
        .store
        .incident(id, 0)
        .await
        .map_err(store("reading an incident"))?
        .ok_or(IncidentError::Unknown(id))?;
    Ok((d.incident.service, d.incident.started, d.notes))
}

impl From<IncidentError> for upkeep_web::ApiError {
    fn from(e: IncidentError) -> Self {
        use upkeep_web::ApiError;
        let message = e.to_string();
        match e {
            IncidentError::Invalid(_) => ApiError::BadRequest {
                message,
                hint: None,
            },
            IncidentError::Unknown(_) | IncidentError::UnknownService(_) => {
                ApiError::NotFound(message)
            }
            IncidentError::Resolved(_) => ApiError::Conflict(message),
            IncidentError::Away(away) => away.into(),
            IncidentError::Store { what, source } => ApiError::Unavailable {
                message: format!("{what} in the store: {}", source.with_causes()),
                hint: Some("try again once the store answers".into()),
            },
        }
    }
}
