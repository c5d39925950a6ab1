//! The incident planner: a durable consumer of committed events that turns incidents opened,
//! reopened and resolved into notices through the routes.
//!
//! It reads from its cursor in the store ([`Consumer`]), so each incident event is planned
//! once across restarts: an event's rows are inserted and the cursor moved past it in one
//! transaction ([`upkeep_store::Outbox::plan_damped`]). Drill incidents page nobody. Flapping
//! is damped: at most one notice per incident within `flap_interval`; news that is stale
//! before it went out (resolved, then down again) is dropped, and the latest news always goes
//! out, late rather than never. Events older than `give_up_after` when first read (a
//! planner configured long after them) are not news. It writes rows only: the dispatcher
//! sends them. Each event is planned with the routes in force when it is read ([`Planning`],
//! a `watch` a reload of `[notify]` sends anew; none while `[notify]` is gone). Start at
//! [`IncidentPlanner::run`].

use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use tokio::sync::{Notify, watch};
use upkeep_core::{Clock, Committed, EventKind, ServiceName};
use upkeep_store::fanout::{Consumer, Fanout};
use upkeep_store::{Damped, Store};

use crate::plan::{IncidentNews, incident_subject};
use crate::route::NotifyConfig;

/// The planner's cursor name in the store.
pub const CURSOR: &str = "incident-notices";

/// What incident notices are planned with: `[notify]` as of the daemon's start or its last
/// reload, and the key subscribers' links are signed with.
pub struct Planning {
    pub config: Arc<NotifyConfig>,
    /// Subscribers' links are signed with these; None: subscribers get no incident notices.
    pub keys: Option<crate::SubscriptionKeys>,
}

pub struct IncidentPlanner {
    pub store: Arc<dyn Store>,
    pub fanout: Fanout,
    /// Borrowed once per event; None: `[notify]` was removed by a reload (nothing planned).
    pub planning: watch::Receiver<Option<Arc<Planning>>>,
    pub clock: Clock,
    /// This node's id (idempotency keys are unique to it).
    pub node: String,
    /// The dispatcher's: rows were added.
    pub wake: Arc<Notify>,
    /// Subscribers hear of these services' incidents only (not `public = false`).
    pub public: crate::PublicServices,
}

impl IncidentPlanner {
    /// Runs until the event writer (and every fanout) is gone.
    pub async fn run(self) {
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.follow().await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(
                        "incident notices: {} (trying again in {backoff:?})",
                        e.with_causes()
                    );
                    self.clock.sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
        }
    }

    /// Follows committed events from the cursor; Ok once there will be no more.
    async fn follow(&self) -> Result<(), upkeep_store::Error> {
        // A first start begins at the present: history is not news.
        if self.store.cursor(CURSOR).await? == 0 {
            let last = self.store.last_seq().await?;
            self.store.set_cursor(CURSOR, last).await?;
        }
        let mut consumer = Consumer::open(CURSOR, self.store.clone(), &self.fanout).await?;
        while let Some(batch) = consumer.next(256).await? {
            let top = batch.last().map_or(0, |c| c.seq);
            for c in &batch {
                self.plan(c).await?;
            }
            consumer.ack(top).await?;
        }
        Ok(())
    }

    /// Plans the notice of one event, if it is an incident's.
    async fn plan(&self, c: &Committed) -> Result<(), upkeep_store::Error> {
        let Some(service) = &c.event.service else {
            return Ok(());
        };
        let Some(planning) = self.planning.borrow().clone() else {
            return Ok(());
        };
        let config = &planning.config;
        let (since, reason, resolved) = match &c.event.kind {
            EventKind::IncidentOpened { drill: true, .. } => return Ok(()),
            EventKind::IncidentOpened { since, reason, .. }
            | EventKind::IncidentReopened { since, reason } => (*since, reason.clone(), None),
            EventKind::IncidentResolved { since, duration_ms } => (
                *since,
                String::new(),
                Some((c.event.at, SignedDuration::from_millis(*duration_ms as i64))),
            ),
            _ => return Ok(()),
        };
        let now = self.clock.now();
        let stale = SignedDuration::try_from(config.give_up_after).unwrap_or(SignedDuration::MAX);
        if now.duration_since(c.event.at) > stale {
            return Ok(());
        }
        let (id, drill, opened_reason) = self.incident(service, since).await?;
        if drill {
            return Ok(());
        }
        let notes = match id {
            Some(id) => self.store.incident_notes(id).await?.unwrap_or_default(),
            None => Default::default(),
        };
        // Someone resolved it by hand, and their notice said so: the probes seeing the
        // service back is no news.
        if resolved.is_some() && notes.resolved_by.is_some() {
            return Ok(());
        }
        let news = IncidentNews {
            service: service.clone(),
            since,
            reason: if reason.is_empty() {
                opened_reason
            } else {
                reason
            },
            resolved,
            seq: c.seq,
            incident_id: id,
            priority: config.incident_priority(service, notes.priority),
            title: notes.title,
            written: None,
            at: c.event.at,
        };
        let rows = config.incident_rows(&self.node, &news);
        let fanout = planning
            .keys
            .as_ref()
            .and_then(|k| config.incident_fanout(&self.node, &news, k, &self.public.get()));
        let subject = incident_subject(service, since);
        let kind = if resolved.is_some() {
            "incident_resolved"
        } else {
            "incident_opened"
        };
        let due = self
            .store
            .plan_damped(Damped {
                subject: &subject,
                kind,
                now,
                interval_ms: config.flap_interval.as_millis() as i64,
                rows: &rows,
                cursor: (CURSOR, c.seq),
                fanout: fanout
                    .as_ref()
                    .map(|f| f as &dyn upkeep_store::SubscriberRows),
            })
            .await?;
        if let Some(due) = due {
            tracing::info!(service = %service, kind, rows = rows.len(), due = %due, "incident notice planned");
            self.wake.notify_one();
        }
        Ok(())
    }

    /// The stored incident (id, drill, reason) that began at `since`, if it is stored.
    async fn incident(
        &self,
        service: &ServiceName,
        since: jiff::Timestamp,
    ) -> Result<(Option<i64>, bool, String), upkeep_store::Error> {
        let found = self
            .store
            .incidents(Some(service), 50)
            .await?
            .into_iter()
            // Stored in milliseconds; the event's time may be finer.
            .find(|i| i.started.as_millisecond() == since.as_millisecond());
        Ok(match found {
            Some(i) => (Some(i.id), i.drill, i.reason),
            None => (None, false, String::new()),
        })
    }
}
