//! Pages of the admin lists (issue 17, item 4): incidents, feedback, the outbox, subscribers
//! and who did what, each newest first, read with an offset so that any page is one query,
//! however far back; and every open incident, however old.
//!
//! Why apart from the lists `sql.rs`, `outbox.rs` and friends already have: those read the
//! latest N rows for the API and the CLI (`--limit`), and the admin pages sliced page `p` out
//! of the latest `p × 50 + 1`, stopping at page 200; open incidents were looked for among the
//! latest 500 only. Offsets are enough here: an admin list is read by a person, a page at a
//! time, and each query is ordered by a key with an index (`id`, `seq`, `started_ms`).
//!
//! Who did what: the events a person caused, that is interventions and every event whose
//! detail records a principal (`"by": {"principal": {...}}`, `upkeep_core::EventKind::by`).
//! The detail is JSON text on both engines and the queries use no JSON functions, so the
//! principal is found by its key: `"principal":{` can only be a key in serde_json's output (a
//! quote inside a string value is escaped).

use async_trait::async_trait;
use upkeep_core::api::{Incident, StoredEvent};
use upkeep_core::feedback::FeedbackItem;

use crate::sql::{SqlStore, q};
use crate::{Error, OutboxRow, Subscriber};

/// One page: skip `offset` rows of the list, read at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: u32,
    pub limit: u32,
}

#[async_trait]
pub trait Paging: Send + Sync {
    /// Incidents (drills too), newest first (by start, then id), with their titles.
    async fn incidents_page(&self, span: Span) -> Result<Vec<Incident>, Error>;
    /// Every incident not resolved yet, newest first, however old.
    async fn open_incidents(&self) -> Result<Vec<Incident>, Error>;
    /// Feedback messages, newest first.
    async fn feedback_page(&self, span: Span) -> Result<Vec<FeedbackItem>, Error>;
    /// The outbox, newest first.
    async fn outbox_page(&self, span: Span) -> Result<Vec<OutboxRow>, Error>;
    /// Subscribers, newest first.
    async fn subscribers_page(&self, span: Span) -> Result<Vec<Subscriber>, Error>;
    /// The events a person caused (see the module's comment), newest first.
    async fn actions_page(&self, span: Span) -> Result<Vec<StoredEvent>, Error>;
}

const INCIDENT_COLUMNS: &str = "id, service, started_ms, resolved_ms, reason, drill, title";

#[async_trait]
impl Paging for SqlStore {
    async fn incidents_page(&self, span: Span) -> Result<Vec<Incident>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE node = $1
             ORDER BY started_ms DESC, id DESC LIMIT $2 OFFSET $3"
        ))
        .bind(&self.node)
        .bind(i64::from(span.limit))
        .bind(i64::from(span.offset))
        .fetch_all(&self.pool)
        .await
        .map_err(q("select a page of incidents"))?;
        let now = jiff::Timestamp::now().as_millisecond();
        Ok(rows
            .iter()
            .filter_map(|r| crate::sql::incident(r, now))
            .collect())
    }

    async fn open_incidents(&self) -> Result<Vec<Incident>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE node = $1 AND resolved_ms IS NULL
             ORDER BY started_ms DESC, id DESC"
        ))
        .bind(&self.node)
        .fetch_all(&self.pool)
        .await
        .map_err(q("select the open incidents"))?;
        let now = jiff::Timestamp::now().as_millisecond();
        Ok(rows
            .iter()
            .filter_map(|r| crate::sql::incident(r, now))
            .collect())
    }

    async fn feedback_page(&self, span: Span) -> Result<Vec<FeedbackItem>, Error> {
        let rows = sqlx::query(
            "SELECT id, message, email, service, lang, address, created_ms FROM feedback
             WHERE node = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        )
        .bind(&self.node)
        .bind(i64::from(span.limit))
        .bind(i64::from(span.offset))
        .fetch_all(&self.pool)
        .await
        .map_err(q("read a page of feedback"))?;
        Ok(rows.iter().filter_map(crate::feedback::item).collect())
    }

    async fn outbox_page(&self, span: Span) -> Result<Vec<OutboxRow>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM outbox WHERE node = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
            crate::outbox::ROW_COLUMNS
        ))
        .bind(&self.node)
        .bind(i64::from(span.limit))
        .bind(i64::from(span.offset))
        .fetch_all(&self.pool)
        .await
        .map_err(q("read a page of the outbox"))?;
        Ok(rows.iter().filter_map(crate::outbox::outbox_row).collect())
    }

    async fn subscribers_page(&self, span: Span) -> Result<Vec<Subscriber>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM subscribers WHERE node = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
            crate::subscribers::COLUMNS
        ))
        .bind(&self.node)
        .bind(i64::from(span.limit))
        .bind(i64::from(span.offset))
        .fetch_all(&self.pool)
        .await
        .map_err(q("read a page of subscribers"))?;
        Ok(rows
            .iter()
            .filter_map(crate::subscribers::subscriber)
            .collect())
    }

    async fn actions_page(&self, span: Span) -> Result<Vec<StoredEvent>, Error> {
        let rows = sqlx::query(
            "SELECT seq AS id, at_ms, service, kind, intervention, detail FROM events
             WHERE node = $1 AND (intervention = TRUE OR detail LIKE $4)
             ORDER BY seq DESC LIMIT $2 OFFSET $3",
        )
        .bind(&self.node)
        .bind(i64::from(span.limit))
        .bind(i64::from(span.offset))
        .bind("%\"principal\":{%")
        .fetch_all(&self.pool)
        .await
        .map_err(q("select a page of operator actions"))?;
        Ok(rows.iter().filter_map(crate::sql::stored_event).collect())
    }
}
