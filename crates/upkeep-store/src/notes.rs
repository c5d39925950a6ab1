//! What people write about incidents (issue 16), in the store: incidents opened by hand, the
//! updates people write, resolutions by hand, priorities and post-mortems.
//!
//! Each write is one transaction with its notices: the outbox rows of the routes and of the
//! confirmed subscribers are inserted in it ([`Planned`]), so an update is stored and its
//! notices planned together or not at all. What a notice says is upkeep-outbox's; checking
//! what people wrote is upkeep-core's (`incident.rs`). A resolved incident takes nothing but
//! a post-mortem ([`Noted::Resolved`]). The probes' resolution of an outage someone resolved
//! by hand changes nothing (`sql.rs`, `ResolveIncident`).

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::any::AnyRow;
use upkeep_core::incident::{
    IncidentNotes, IncidentPriority, IncidentStatus, IncidentUpdate, PublicUpdate,
    WrittenPostmortem,
};
use upkeep_core::{Principal, ServiceName};

use crate::Error;
use crate::sql::{SqlStore, col, q};

/// The notices of one write, made once its incident's id is known.
pub struct Planned {
    /// The routes' rows (operators, chat groups).
    pub notices: Vec<crate::NewNotice>,
    /// The subscribers' rows, made from the confirmed subscribers read in the transaction.
    pub fanout: Option<Box<dyn crate::SubscriberRows>>,
}

/// Makes a write's notices from its incident's id.
pub type Plan<'a> = &'a (dyn Fn(i64) -> Planned + Send + Sync);

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noted {
    /// Done; the id of what was stored (the update, or the incident).
    Done(i64),
    /// No incident of this node has that id.
    NotFound,
    /// The incident is resolved: only a post-mortem may still be written.
    Resolved,
}

/// An update someone wrote; with `status` resolved, it resolves the incident. `message`
/// None (a resolution without a last word) stores no update, only the resolution.
pub struct WriteUpdate<'a> {
    pub incident: i64,
    pub at: Timestamp,
    pub status: IncidentStatus,
    pub message: Option<&'a str>,
    pub by: &'a Principal,
    pub plan: Plan<'a>,
}

/// An incident opened by hand, with its first update (status investigating) if any.
pub struct OpenByHand<'a> {
    pub service: &'a ServiceName,
    pub title: &'a str,
    pub priority: Option<IncidentPriority>,
    pub message: Option<&'a str>,
    pub at: Timestamp,
    pub by: &'a Principal,
    pub plan: Plan<'a>,
}

#[async_trait]
pub trait Notes: Send + Sync {
    /// What people wrote about incident `id`; None if there is no such incident.
    async fn incident_notes(&self, id: i64) -> Result<Option<IncidentNotes>, Error>;
    async fn write_update(&self, w: WriteUpdate<'_>) -> Result<Noted, Error>;
    /// Opens an incident; returns its id.
    async fn open_by_hand(&self, o: OpenByHand<'_>) -> Result<i64, Error>;
    /// Sets an open incident's priority, with the notices `plan` makes (to the routes the
    /// new priority reaches and the old one did not), in one transaction.
    async fn set_incident_priority(
        &self,
        id: i64,
        priority: IncidentPriority,
        at: Timestamp,
        plan: Plan<'_>,
    ) -> Result<Noted, Error>;
    /// Writes (or rewrites) the post-mortem of incident `id`, resolved or not.
    async fn set_postmortem(&self, id: i64, pm: &WrittenPostmortem) -> Result<Noted, Error>;
    /// The latest updates of every incident but drills', newest first (the Atom feed).
    async fn recent_updates(&self, limit: u32) -> Result<Vec<PublicUpdate>, Error>;
}

fn json<T: serde::de::DeserializeOwned>(r: &AnyRow, name: &str) -> Option<Option<T>> {
    match col::<Option<String>>(r, name)? {
        None => Some(None),
        Some(text) => serde_json::from_str(&text)
            .inspect_err(|e| tracing::warn!(column = name, "skipping a bad value: {e}"))
            .ok()
            .map(Some),
    }
}

fn principal(p: &Principal) -> String {
    serde_json::to_string(p).expect("a principal serialises")
}

impl SqlStore {
    /// Takes the write lock on incident `id` if it is open (SQLite's transactions must write
    /// first, or a later write may fail busy); otherwise says why not.
    async fn hold_open(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: i64,
        resolve: Option<(Timestamp, &Principal)>,
    ) -> Result<Option<Noted>, Error> {
        let done = match resolve {
            Some((at, by)) => sqlx::query(
                "UPDATE incidents SET resolved_ms = $1, resolved_by = $2
                 WHERE node = $3 AND id = $4 AND resolved_ms IS NULL",
            )
            .bind(at.as_millisecond())
            .bind(principal(by))
            .bind(&self.node)
            .bind(id),
            None => sqlx::query(
                "UPDATE incidents SET resolved_ms = resolved_ms
                 WHERE node = $1 AND id = $2 AND resolved_ms IS NULL",
            )
            .bind(&self.node)
            .bind(id),
        }
        .execute(&mut **tx)
        .await
        .map_err(q("write to an incident"))?
        .rows_affected();
        if done > 0 {
            return Ok(None);
        }
        let found = sqlx::query("SELECT id FROM incidents WHERE node = $1 AND id = $2")
            .bind(&self.node)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(q("look an incident up"))?;
        Ok(Some(if found.is_some() {
            Noted::Resolved
        } else {
            Noted::NotFound
        }))
    }

    async fn insert_update(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        incident: i64,
        at: Timestamp,
        status: IncidentStatus,
        message: &str,
        by: &Principal,
    ) -> Result<i64, Error> {
        let row = sqlx::query(
            "INSERT INTO incident_updates (node, incident_id, at_ms, status, message, by_who)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&self.node)
        .bind(incident)
        .bind(at.as_millisecond())
        .bind(status.as_str())
        .bind(message)
        .bind(principal(by))
        .fetch_one(&mut **tx)
        .await
        .map_err(q("store an incident update"))?;
        col(&row, "id").ok_or(Error::Query {
            what: "store an incident update",
            source: sqlx::Error::RowNotFound,
        })
    }

    async fn insert_planned(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        planned: Planned,
        at: Timestamp,
    ) -> Result<(), Error> {
        crate::outbox::insert_rows(tx, &self.node, &planned.notices, at, at).await?;
        if let Some(fanout) = planned.fanout {
            let subscribers = crate::subscribers::confirmed_in(tx, &self.node).await?;
            let rows = fanout.rows(&subscribers);
            crate::outbox::insert_rows(tx, &self.node, &rows, at, at).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Notes for SqlStore {
    async fn incident_notes(&self, id: i64) -> Result<Option<IncidentNotes>, Error> {
        let Some(row) = sqlx::query(
            "SELECT title, priority, opened_by, resolved_by, postmortem FROM incidents
             WHERE node = $1 AND id = $2",
        )
        .bind(&self.node)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("select an incident's notes"))?
        else {
            return Ok(None);
        };
        let updates = sqlx::query(
            "SELECT id, at_ms, status, message, by_who FROM incident_updates
             WHERE node = $1 AND incident_id = $2 ORDER BY id",
        )
        .bind(&self.node)
        .bind(id)
        .fetch_all(&self.pool)
        .await
        .map_err(q("select an incident's updates"))?
        .iter()
        .filter_map(|r| {
            Some(IncidentUpdate {
                id: col(r, "id")?,
                at: Timestamp::from_millisecond(col(r, "at_ms")?).ok()?,
                status: IncidentStatus::parse(&col::<String>(r, "status")?)?,
                message: col(r, "message")?,
                by: json(r, "by_who")??,
            })
        })
        .collect();
        Ok(Some(IncidentNotes {
            title: col(&row, "title").flatten(),
            priority: col::<Option<String>>(&row, "priority")
                .flatten()
                .and_then(|p| IncidentPriority::parse(&p)),
            opened_by: json(&row, "opened_by").flatten(),
            resolved_by: json(&row, "resolved_by").flatten(),
            updates,
            postmortem: json(&row, "postmortem").flatten(),
        }))
    }

    async fn write_update(&self, w: WriteUpdate<'_>) -> Result<Noted, Error> {
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        let resolve = (w.status == IncidentStatus::Resolved).then_some((w.at, w.by));
        if let Some(refused) = self.hold_open(&mut tx, w.incident, resolve).await? {
            return Ok(refused);
        }
        let id = match w.message {
            Some(m) => {
                self.insert_update(&mut tx, w.incident, w.at, w.status, m, w.by)
                    .await?
            }
            None => w.incident,
        };
        self.insert_planned(&mut tx, (w.plan)(w.incident), w.at)
            .await?;
        tx.commit().await.map_err(q("commit an incident update"))?;
        Ok(Noted::Done(id))
    }

    async fn open_by_hand(&self, o: OpenByHand<'_>) -> Result<i64, Error> {
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        let at = o.at.as_millisecond();
        let row = sqlx::query(
            "INSERT INTO incidents (node, service, started_ms, opened_ms, reason, drill, title,
                 priority, opened_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(&self.node)
        .bind(o.service.as_str())
        .bind(at)
        .bind(at)
        .bind(o.title)
        .bind(false)
        .bind(o.title)
        .bind(o.priority.map(|p| p.as_str()))
        .bind(principal(o.by))
        .fetch_one(&mut *tx)
        .await
        .map_err(q("open an incident"))?;
        let id: i64 = col(&row, "id").ok_or(Error::Query {
            what: "open an incident",
            source: sqlx::Error::RowNotFound,
        })?;
        if let Some(m) = o.message {
            self.insert_update(&mut tx, id, o.at, IncidentStatus::Investigating, m, o.by)
                .await?;
        }
        self.insert_planned(&mut tx, (o.plan)(id), o.at).await?;
        tx.commit().await.map_err(q("commit an incident"))?;
        Ok(id)
    }

    async fn set_incident_priority(
        &self,
        id: i64,
        priority: IncidentPriority,
        at: Timestamp,
        plan: Plan<'_>,
    ) -> Result<Noted, Error> {
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        if let Some(refused) = self.hold_open(&mut tx, id, None).await? {
            return Ok(refused);
        }
        sqlx::query("UPDATE incidents SET priority = $1 WHERE node = $2 AND id = $3")
            .bind(priority.as_str())
            .bind(&self.node)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(q("set an incident's priority"))?;
        self.insert_planned(&mut tx, plan(id), at).await?;
        tx.commit()
            .await
            .map_err(q("commit an incident's priority"))?;
        Ok(Noted::Done(id))
    }

    async fn set_postmortem(&self, id: i64, pm: &WrittenPostmortem) -> Result<Noted, Error> {
        let text = serde_json::to_string(pm).expect("a post-mortem serialises");
        let done = sqlx::query("UPDATE incidents SET postmortem = $1 WHERE node = $2 AND id = $3")
            .bind(text)
            .bind(&self.node)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(q("store a post-mortem"))?
            .rows_affected();
        Ok(if done > 0 {
            Noted::Done(id)
        } else {
            Noted::NotFound
        })
    }

    async fn recent_updates(&self, limit: u32) -> Result<Vec<PublicUpdate>, Error> {
        let rows = sqlx::query(
            "SELECT u.id, u.incident_id, i.service, u.at_ms, u.status, u.message
             FROM incident_updates u JOIN incidents i ON i.id = u.incident_id
             WHERE u.node = $1 AND i.drill = $2 ORDER BY u.id DESC LIMIT $3",
        )
        .bind(&self.node)
        .bind(false)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(q("select the latest incident updates"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                Some(PublicUpdate {
                    incident: col(r, "incident_id")?,
                    service: ServiceName::new(col::<String>(r, "service")?).ok()?,
                    id: col(r, "id")?,
                    at: Timestamp::from_millisecond(col(r, "at_ms")?).ok()?,
                    status: IncidentStatus::parse(&col::<String>(r, "status")?)?,
                    message: col(r, "message")?,
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventLog, Store};
    use upkeep_core::incident::Postmortem;
    use upkeep_core::{Event, EventKind, Via};

    fn alice() -> Principal {
        Principal {
            name: "alice".into(),
            via: Via::Socket,
            from: None,
        }
    }

    fn nothing(_: i64) -> Planned {
        Planned {
            notices: Vec::new(),
            fanout: None,
        }
    }

    #[tokio::test]
    async fn updates_resolve_and_a_resolved_incident_takes_only_a_postmortem() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let web = ServiceName::new("web").unwrap();
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let by = alice();
        let id = store
            .open_by_hand(OpenByHand {
                service: &web,
                title: "payments provider down",
                priority: Some(IncidentPriority::P2),
                message: Some("their API answers 503"),
                at: t(0),
                by: &by,
                plan: &nothing,
            })
            .await
            .unwrap();
        let update = |status, message, at| WriteUpdate {
            incident: id,
            at,
            status,
            message,
            by: &by,
            plan: &nothing,
        };
        let done = store
            .write_update(update(
                IncidentStatus::Identified,
                Some("a bad deploy"),
                t(60),
            ))
            .await
            .unwrap();
        assert!(matches!(done, Noted::Done(_)));
        assert_eq!(
            store
                .set_incident_priority(id, IncidentPriority::P1, t(90), &nothing)
                .await
                .unwrap(),
            Noted::Done(id)
        );
        store
            .write_update(update(IncidentStatus::Resolved, None, t(120)))
            .await
            .unwrap();
        // Resolved: no more updates nor priorities; unknown ids are unknown.
        assert_eq!(
            store
                .write_update(update(IncidentStatus::Monitoring, Some("late"), t(130)))
                .await
                .unwrap(),
            Noted::Resolved
        );
        assert_eq!(
            store
                .set_incident_priority(id, IncidentPriority::P4, t(130), &nothing)
                .await
                .unwrap(),
            Noted::Resolved
        );
        assert_eq!(
            store
                .set_incident_priority(id + 100, IncidentPriority::P4, t(130), &nothing)
                .await
                .unwrap(),
            Noted::NotFound
        );
        let pm = WrittenPostmortem {
            postmortem: Postmortem {
                summary: "s".into(),
                root_cause: "r".into(),
                whys: vec!["w".into(); 5],
                actions: vec!["a".into()],
            },
            at: t(200),
            by: by.clone(),
        };
        assert_eq!(
            store.set_postmortem(id, &pm).await.unwrap(),
            Noted::Done(id)
        );
        let notes = store.incident_notes(id).await.unwrap().unwrap();
        assert_eq!(notes.title.as_deref(), Some("payments provider down"));
        assert_eq!(notes.priority, Some(IncidentPriority::P1));
        assert_eq!(notes.opened_by, Some(by.clone()));
        assert_eq!(notes.resolved_by, Some(by.clone()));
        let said: Vec<_> = notes.updates.iter().map(|u| u.status).collect();
        assert_eq!(
            said,
            [IncidentStatus::Investigating, IncidentStatus::Identified]
        );
        assert_eq!(notes.postmortem, Some(pm));
        let recent = store.recent_updates(10).await.unwrap();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent[0].status, IncidentStatus::Identified, "newest first");
        assert_eq!(recent[0].service, web);
        let detail = store.incident(id, 10).await.unwrap().unwrap();
        assert_eq!(detail.incident.resolved, Some(t(120)));
        assert_eq!(detail.notes.updates.len(), 2);
    }

    #[tokio::test]
    async fn the_probes_resolution_leaves_a_hand_resolution_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let web = ServiceName::new("web").unwrap();
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let ev = |at, kind| Event {
            at,
            service: Some(web.clone()),
            kind,
        };
        store
            .append(
                1,
                &[ev(
                    t(10),
                    EventKind::IncidentOpened {
                        since: t(0),
                        reason: "down".into(),
                        drill: false,
                    },
                )],
            )
            .await
            .unwrap();
        let id = store.incidents(None, 1).await.unwrap()[0].id;
        let by = alice();
        store
            .write_update(WriteUpdate {
                incident: id,
                at: t(20),
                status: IncidentStatus::Resolved,
                message: Some("fixed upstream"),
                by: &by,
                plan: &nothing,
            })
            .await
            .unwrap();
        store
            .append(
                2,
                &[ev(
                    t(90),
                    EventKind::IncidentResolved {
                        since: t(0),
                        duration_ms: 90_000,
                    },
                )],
            )
            .await
            .unwrap();
        let i = &store.incidents(None, 1).await.unwrap()[0];
        assert_eq!(i.resolved, Some(t(20)), "resolved when the person said so");
        // Down again within the flap window: the probes' reopening leaves it resolved.
        store
            .append(
                3,
                &[ev(
                    t(100),
                    EventKind::IncidentReopened {
                        since: t(0),
                        reason: "down".into(),
                    },
                )],
            )
            .await
            .unwrap();
        let i = &store.incidents(None, 1).await.unwrap()[0];
        assert_eq!(i.resolved, Some(t(20)), "a hand resolution is not reopened");
    }

    #[tokio::test]
    async fn an_incident_opened_by_hand_is_not_taken_up_by_the_next_daemon() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let web = ServiceName::new("web").unwrap();
        let api = ServiceName::new("api").unwrap();
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let by = alice();
        // The probes' outage of web, then incidents people opened on web and api.
        store
            .append(
                1,
                &[Event {
                    at: t(10),
                    service: Some(web.clone()),
                    kind: EventKind::IncidentOpened {
                        since: t(0),
                        reason: "down".into(),
                        drill: false,
                    },
                }],
            )
            .await
            .unwrap();
        for service in [&web, &api] {
            store
                .open_by_hand(OpenByHand {
                    service,
                    title: "the provider is down",
                    priority: None,
                    message: None,
                    at: t(20),
                    by: &by,
                    plan: &nothing,
                })
                .await
                .unwrap();
        }
        let left = store.unfinished().await.unwrap();
        assert_eq!(
            left.get(&web).and_then(|u| u.incident),
            Some((t(0), false)),
            "the probes' outage, not the later one a person opened"
        );
        assert!(
            left.get(&api).is_none_or(|u| u.incident.is_none()),
            "{left:?}"
        );
        // A resolution the probes send for that start (the same millisecond) leaves it open.
        store
            .append(
                2,
                &[Event {
                    at: t(30),
                    service: Some(api.clone()),
                    kind: EventKind::IncidentResolved {
                        since: t(20),
                        duration_ms: 10_000,
                    },
                }],
            )
            .await
            .unwrap();
        let open: Vec<_> = store
            .incidents(Some(&api), 5)
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.resolved.is_none())
            .collect();
        assert_eq!(open.len(), 1, "only a person resolves it");
    }
}
