//! Feedback in the store: what people wrote in the status page's form, kept for operators to
//! read (`GET /api/v1/feedback`, `upkeep feedback`).
//!
//! Rows only: sizes, addresses and service names are checked above (the daemon's desk), and
//! the rate limit per client address is the web layer's. Nothing here escapes text: every
//! reader escapes what it shows (HTML, the terminal).

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::any::AnyRow;
use upkeep_core::feedback::FeedbackItem;

use crate::Error;
use crate::sql::{SqlStore, col, q};

/// A message to keep (already checked).
#[derive(Debug, Clone, Copy)]
pub struct NewFeedback<'a> {
    pub message: &'a str,
    pub email: Option<&'a str>,
    pub service: Option<&'a str>,
    pub lang: &'a str,
    pub address: Option<&'a str>,
}

#[async_trait]
pub trait Feedback: Send + Sync {
    /// Keeps one message; returns its id.
    async fn add_feedback(&self, f: NewFeedback<'_>, at: Timestamp) -> Result<i64, Error>;
    /// The latest `limit` messages, newest first.
    async fn feedback(&self, limit: u32) -> Result<Vec<FeedbackItem>, Error>;
    /// When this node's `n`th newest message was kept, if it has `n`. A budget of `n` in any
    /// hour is spent while that is less than an hour ago: kept in the rows, so a restart or
    /// an upgrade does not refill it (as `Outbox::nth_newest_planned` for confirmations).
    async fn nth_newest_feedback(&self, n: u32) -> Result<Option<Timestamp>, Error>;
}

pub(crate) fn item(r: &AnyRow) -> Option<FeedbackItem> {
    Some(FeedbackItem {
        id: col(r, "id")?,
        message: col(r, "message")?,
        email: col(r, "email")?,
        service: col(r, "service")?,
        lang: col(r, "lang")?,
        address: col(r, "address")?,
        created: Timestamp::from_millisecond(col(r, "created_ms")?).ok()?,
    })
}

#[async_trait]
impl Feedback for SqlStore {
    async fn add_feedback(&self, f: NewFeedback<'_>, at: Timestamp) -> Result<i64, Error> {
        let row = sqlx::query(
            "INSERT INTO feedback (node, message, email, service, lang, address, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(&self.node)
        .bind(f.message)
        .bind(f.email)
        .bind(f.service)
        .bind(f.lang)
        .bind(f.address)
        .bind(at.as_millisecond())
        .fetch_one(&self.pool)
        .await
        .map_err(q("keep a feedback message"))?;
        col(&row, "id").ok_or(Error::Query {
            what: "read a feedback message's id",
            source: sqlx::Error::RowNotFound,
        })
    }

    async fn feedback(&self, limit: u32) -> Result<Vec<FeedbackItem>, Error> {
        let rows = sqlx::query(
            "SELECT id, message, email, service, lang, address, created_ms FROM feedback
             WHERE node = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(&self.node)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(q("read feedback"))?;
        Ok(rows.iter().filter_map(item).collect())
    }

    async fn nth_newest_feedback(&self, n: u32) -> Result<Option<Timestamp>, Error> {
        let Some(skip) = n.checked_sub(1) else {
            return Ok(None);
        };
        // By id, the primary key: newer messages have larger ids.
        let row = sqlx::query(
            "SELECT created_ms FROM feedback WHERE node = $1 ORDER BY id DESC LIMIT 1 OFFSET $2",
        )
        .bind(&self.node)
        .bind(i64::from(skip))
        .fetch_optional(&self.pool)
        .await
        .map_err(q("count the feedback of the last hour"))?;
        Ok(row
            .as_ref()
            .and_then(|r| col::<i64>(r, "created_ms"))
            .and_then(|ms| Timestamp::from_millisecond(ms).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_nth_newest_message_dates_the_hours_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let at: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        assert_eq!(store.nth_newest_feedback(1).await.unwrap(), None);
        for i in 0..3 {
            let f = NewFeedback {
                message: "slow",
                email: None,
                service: None,
                lang: "en",
                address: None,
            };
            store
                .add_feedback(f, at + jiff::SignedDuration::from_mins(i))
                .await
                .unwrap();
        }
        let nth = |n| store.nth_newest_feedback(n);
        assert_eq!(
            nth(1).await.unwrap(),
            Some(at + jiff::SignedDuration::from_mins(2))
        );
        assert_eq!(nth(3).await.unwrap(), Some(at));
        assert_eq!(nth(4).await.unwrap(), None);
        assert_eq!(nth(0).await.unwrap(), None);
    }

    #[tokio::test]
    async fn messages_are_kept_as_written_and_listed_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let at: Timestamp = "2026-12-01T00:00:00Z".parse().unwrap();
        let first = NewFeedback {
            message: "<script>alert(1)</script> 页面很慢",
            email: None,
            service: None,
            lang: "zh-CN",
            address: Some("192.0.2.7"),
        };
        let a = store.add_feedback(first, at).await.unwrap();
        let b = store
            .add_feedback(
                NewFeedback {
                    message: "checkout fails",
                    email: Some("ann@example.com"),
                    service: Some("web"),
                    lang: "en",
                    address: None,
                },
                at + jiff::SignedDuration::from_secs(1),
            )
            .await
            .unwrap();
        assert!(b > a);
        let list = store.feedback(10).await.unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].id, b);
        assert_eq!(list[0].email.as_deref(), Some("ann@example.com"));
        assert_eq!(list[0].service.as_deref(), Some("web"));
        assert_eq!(list[1].message, first.message, "kept as written, unescaped");
        assert_eq!(list[1].email, None);
        assert_eq!(list[1].address.as_deref(), Some("192.0.2.7"));
        assert_eq!(list[1].created, at);
        assert_eq!(store.feedback(1).await.unwrap().len(), 1);
    }
}
