//! Subscribers in the store: the addresses people gave the public API, confirmed or not, and
//! the fan-out of a notice to every confirmed one, in the transaction that decides it.
//!
//! What a subscriber's mail says, and who among them a notice concerns (their services), is
//! decided above (upkeep-outbox, through [`SubscriberRows`]); tokens and addresses are checked
//! above too. This file keeps rows: an unconfirmed row is made by a subscription, confirmed
//! by its link, and deleted (never flagged) by an unsubscribe, an operator's `rm`, or, still
//! unconfirmed, once its link has expired. Deleting a subscriber also deletes the subscriber
//! rows still waiting in the outbox for that address (keys `sub-…`), so an unsubscribe holds
//! from the next send.
//!
//! An address is one subscriber whatever its case (`Ann@X.org` and `ann@x.org`: break-it,
//! session 11): every lookup compares `lower(email)`, and a unique index on it (migrations
//! `*_subscribers_nocase.sql`, which merged the rows stored before) keeps two subscriptions at
//! once from both inserting. The address is mailed as first written.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::Any;
use sqlx::any::AnyRow;
use upkeep_core::Principal;
use upkeep_core::window::Step;

use crate::Error;
use crate::sql::{SqlStore, col, q};

/// Outbox keys of rows meant for subscribers start with this (the confirmation mail and every
/// fanned-out notice), so that an unsubscribe can drop the ones still waiting.
pub const SUBSCRIBER_KEY_PREFIX: &str = "sub-";

/// One subscriber as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    pub id: i64,
    pub email: String,
    /// The services it follows; empty: all of them.
    pub services: Vec<String>,
    /// The language of its mails (`en`, `zh-CN`).
    pub lang: String,
    /// When it subscribed (the confirmation link's lifetime counts from here).
    pub created: Timestamp,
    /// When it confirmed; None until then (it gets nothing but the confirmation mail).
    pub confirmed: Option<Timestamp>,
}

/// Makes the outbox rows of one notice for the confirmed subscribers it concerns. Called
/// inside the transaction that decides the notice, with every confirmed subscriber.
pub trait SubscriberRows: Send + Sync {
    fn rows(&self, subscribers: &[Subscriber]) -> Vec<crate::NewNotice>;
}

/// A window's step to take (see [`crate::Windows::take_step`]), with its subscribers' rows.
#[derive(Clone, Copy)]
pub struct StepTake<'a> {
    pub id: i64,
    pub occurrence: Timestamp,
    pub step: Step,
    pub at: Timestamp,
    pub by: Option<&'a Principal>,
    /// The routes' rows (operators, chat groups).
    pub notices: &'a [crate::NewNotice],
    /// The subscribers' rows, made from the confirmed subscribers read in the transaction.
    pub fanout: Option<&'a dyn SubscriberRows>,
}

/// What a subscription did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscribed {
    /// A new or still unconfirmed subscriber (its services, language and lifetime renewed):
    /// a confirmation mail is due.
    Pending(Subscriber),
    /// The address is confirmed already: nothing changes.
    Confirmed(Subscriber),
    /// Unconfirmed, and its confirmation mail is recent: nothing changes, no mail is due.
    Waiting(Subscriber),
}

#[async_trait]
pub trait Subscribers: Send + Sync {
    /// Records a subscription of `email` (already checked). Unconfirmed rows created before
    /// `expired_before` are deleted first (their links no longer work). An unconfirmed row
    /// created at or after `renew_before` is left as it is ([`Subscribed::Waiting`]): its
    /// confirmation mail went out a moment ago, and asking again must not mail again.
    async fn subscribe(
        &self,
        email: &str,
        services: &[String],
        lang: &str,
        now: Timestamp,
        expired_before: Timestamp,
        renew_before: Timestamp,
    ) -> Result<Subscribed, Error>;
    /// Confirms subscriber `id` if it still has address `email` and was created at
    /// `created` (a link of an earlier, renewed subscription no longer confirms); None if
    /// no such row is left.
    async fn confirm_subscriber(
        &self,
        id: i64,
        email: &str,
        created: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Subscriber>, Error>;
    /// Deletes the subscriber with this address (and `id`, when given), and its rows still
    /// waiting in the outbox; false if there was none.
    async fn unsubscribe(&self, id: Option<i64>, email: &str) -> Result<bool, Error>;
    /// Every subscriber, oldest first.
    async fn subscribers(&self) -> Result<Vec<Subscriber>, Error>;
    /// [`crate::Windows::take_step`] with the subscribers' rows in the same transaction.
    async fn take_step_fanned(&self, take: StepTake<'_>) -> Result<bool, Error>;
    /// Rows of channels no longer configured that still wait (pending or leased) are marked
    /// failed, saying so: nothing would ever send them. Returns how many.
    async fn fail_orphaned_notices(&self, channels: &[String]) -> Result<u64, Error>;
}

pub(crate) const COLUMNS: &str = "id, email, services, lang, created_ms, confirmed_ms";

pub(crate) fn subscriber(r: &AnyRow) -> Option<Subscriber> {
    Some(Subscriber {
        id: col(r, "id")?,
        email: col(r, "email")?,
        services: serde_json::from_str(&col::<String>(r, "services")?).ok()?,
        lang: col(r, "lang")?,
        created: Timestamp::from_millisecond(col(r, "created_ms")?).ok()?,
        confirmed: col::<Option<i64>>(r, "confirmed_ms")?
            .and_then(|ms| Timestamp::from_millisecond(ms).ok()),
    })
}

/// Every confirmed subscriber of `node`, read in `tx` (the fan-out's transaction).
pub(crate) async fn confirmed_in(
    tx: &mut sqlx::Transaction<'_, Any>,
    node: &str,
) -> Result<Vec<Subscriber>, Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM subscribers WHERE node = $1 AND confirmed_ms IS NOT NULL
         ORDER BY id"
    ))
    .bind(node)
    .fetch_all(&mut **tx)
    .await
    .map_err(q("read the confirmed subscribers"))?;
    Ok(rows.iter().filter_map(subscriber).collect())
}

impl SqlStore {
    async fn subscriber_by_email(&self, email: &str) -> Result<Option<Subscriber>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM subscribers WHERE node = $1 AND lower(email) = lower($2)"
        ))
        .bind(&self.node)
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("read a subscriber"))?;
        Ok(row.as_ref().and_then(subscriber))
    }
}

#[async_trait]
impl Subscribers for SqlStore {
    async fn subscribe(
        &self,
        email: &str,
        services: &[String],
        lang: &str,
        now: Timestamp,
        expired_before: Timestamp,
        renew_before: Timestamp,
    ) -> Result<Subscribed, Error> {
        sqlx::query(
            "DELETE FROM subscribers WHERE node = $1 AND confirmed_ms IS NULL AND created_ms < $2",
        )
        .bind(&self.node)
        .bind(expired_before.as_millisecond())
        .execute(&self.pool)
        .await
        .map_err(q("forget expired subscriptions"))?;
        let services = serde_json::to_string(services).expect("names serialise");
        // A confirmed row is left as it is (changing what it follows would need a new
        // confirmation); an unconfirmed one is renewed, and its earlier link stops working,
        // unless it was made or renewed a moment ago (its mail is on its way).
        sqlx::query(
            "INSERT INTO subscribers (node, email, services, lang, created_ms)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (node, lower(email)) DO UPDATE SET services = excluded.services,
                 lang = excluded.lang, created_ms = excluded.created_ms
             WHERE subscribers.confirmed_ms IS NULL AND subscribers.created_ms < $6",
        )
        .bind(&self.node)
        .bind(email)
        .bind(&services)
        .bind(lang)
        .bind(now.as_millisecond())
        .bind(renew_before.as_millisecond())
        .execute(&self.pool)
        .await
        .map_err(q("record a subscription"))?;
        let Some(s) = self.subscriber_by_email(email).await? else {
            // Deleted between the two statements (an unsubscribe raced it): subscribe again.
            return Err(Error::Query {
                what: "read a subscription back",
                source: sqlx::Error::RowNotFound,
            });
        };
        Ok(if s.confirmed.is_some() {
            Subscribed::Confirmed(s)
        } else if s.created.as_millisecond() != now.as_millisecond() {
            // Not renewed by this call (rows keep milliseconds; `now` may hold more).
            Subscribed::Waiting(s)
        } else {
            Subscribed::Pending(s)
        })
    }

    async fn confirm_subscriber(
        &self,
        id: i64,
        email: &str,
        created: Timestamp,
        now: Timestamp,
    ) -> Result<Option<Subscriber>, Error> {
        sqlx::query(
            "UPDATE subscribers SET confirmed_ms = $1
             WHERE node = $2 AND id = $3 AND lower(email) = lower($4) AND created_ms = $5
                 AND confirmed_ms IS NULL",
        )
        .bind(now.as_millisecond())
        .bind(&self.node)
        .bind(id)
        .bind(email)
        .bind(created.as_millisecond())
        .execute(&self.pool)
        .await
        .map_err(q("confirm a subscriber"))?;
        Ok(self
            .subscriber_by_email(email)
            .await?
            .filter(|s| s.id == id && s.confirmed.is_some()))
    }

    async fn unsubscribe(&self, id: Option<i64>, email: &str) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        let mut sql =
            String::from("DELETE FROM subscribers WHERE node = $1 AND lower(email) = lower($2)");
        if id.is_some() {
            sql.push_str(" AND id = $3");
        }
        let mut query = sqlx::query(&sql).bind(&self.node).bind(email);
        if let Some(id) = id {
            query = query.bind(id);
        }
        let gone = query
            .execute(&mut *tx)
            .await
            .map_err(q("delete a subscriber"))?
            .rows_affected()
            > 0;
        if gone {
            sqlx::query(
                "DELETE FROM outbox WHERE node = $1 AND lower(recipient) = lower($2)
                     AND state = 'pending'
                     AND idem_key LIKE $3",
            )
            .bind(&self.node)
            .bind(email)
            .bind(format!("{SUBSCRIBER_KEY_PREFIX}%"))
            .execute(&mut *tx)
            .await
            .map_err(q("drop an unsubscribed address's waiting notices"))?;
        }
        tx.commit().await.map_err(q("commit an unsubscribe"))?;
        Ok(gone)
    }

    async fn subscribers(&self) -> Result<Vec<Subscriber>, Error> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM subscribers WHERE node = $1 ORDER BY id"
        ))
        .bind(&self.node)
        .fetch_all(&self.pool)
        .await
        .map_err(q("read the subscribers"))?;
        Ok(rows.iter().filter_map(subscriber).collect())
    }

    async fn take_step_fanned(&self, take: StepTake<'_>) -> Result<bool, Error> {
        self.step_with_fanout(take).await
    }

    async fn fail_orphaned_notices(&self, channels: &[String]) -> Result<u64, Error> {
        let mut sql = String::from(
            "UPDATE outbox SET state = 'failed', lease_owner = NULL, lease_until_ms = NULL,
                 last_error = 'not sent: its channel is no longer in the config'
             WHERE node = $1 AND state IN ('pending', 'sending')",
        );
        if !channels.is_empty() {
            let params: Vec<String> = (2..channels.len() + 2).map(|i| format!("${i}")).collect();
            sql.push_str(&format!(" AND channel NOT IN ({})", params.join(", ")));
        }
        let mut query = sqlx::query(&sql).bind(&self.node);
        for c in channels {
            query = query.bind(c);
        }
        Ok(query
            .execute(&self.pool)
            .await
            .map_err(q("fail the notices of removed channels"))?
            .rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewNotice, Outbox, OutboxState, Windows};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn who() -> Principal {
        Principal {
            name: "ops".into(),
            via: upkeep_core::Via::Socket,
            from: None,
        }
    }

    struct Everyone;
    impl SubscriberRows for Everyone {
        fn rows(&self, subscribers: &[Subscriber]) -> Vec<NewNotice> {
            subscribers
                .iter()
                .map(|s| NewNotice {
                    channel: "mail".into(),
                    recipient: s.email.clone(),
                    kind: "announced".into(),
                    subject: "window:1:0".into(),
                    notice: "{}".into(),
                    key: format!("{SUBSCRIBER_KEY_PREFIX}{}", s.id),
                    digest: None,
                })
                .collect()
        }
    }

    #[tokio::test]
    async fn subscribe_confirm_fan_out_and_unsubscribe() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let now = t("2026-12-01T00:00:00Z");
        let long_ago = t("2026-11-01T00:00:00Z");
        let Subscribed::Pending(a) = store
            .subscribe("a@example.com", &[], "en", now, long_ago, now)
            .await
            .unwrap()
        else {
            panic!("a new address is pending")
        };
        let Subscribed::Pending(b) = store
            .subscribe("b@example.com", &["db".into()], "zh-CN", now, long_ago, now)
            .await
            .unwrap()
        else {
            panic!("a new address is pending")
        };
        // Asked again a moment later: left as it is, no new mail due.
        let soon = now + jiff::SignedDuration::from_secs(60);
        let Subscribed::Waiting(w) = store
            .subscribe("b@example.com", &[], "en", soon, long_ago, now)
            .await
            .unwrap()
        else {
            panic!("a recent pending subscription waits")
        };
        assert_eq!(w, b, "nothing changed");
        // Later than that: renewed, with a new mail due.
        let later = now + jiff::SignedDuration::from_secs(700);
        let Subscribed::Pending(r) = store
            .subscribe(
                "b@example.com",
                &["db".into()],
                "zh-CN",
                later,
                long_ago,
                soon,
            )
            .await
            .unwrap()
        else {
            panic!("an older pending subscription is renewed")
        };
        assert_eq!(r.created, later);
        // Back as it was for what follows.
        let b = Subscriber { created: now, ..r };
        sqlx::query("UPDATE subscribers SET created_ms = $1 WHERE id = $2")
            .bind(now.as_millisecond())
            .bind(b.id)
            .execute(&store.pool)
            .await
            .unwrap();
        // A confirmation with another creation time (an earlier link) does nothing.
        assert!(
            store
                .confirm_subscriber(a.id, &a.email, long_ago, now)
                .await
                .unwrap()
                .is_none()
        );
        let confirmed = store
            .confirm_subscriber(a.id, &a.email, a.created, now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(confirmed.confirmed, Some(now));
        // Subscribing a confirmed address again changes nothing.
        let again = store
            .subscribe("a@example.com", &["web".into()], "en", now, long_ago, now)
            .await
            .unwrap();
        assert_eq!(again, Subscribed::Confirmed(confirmed.clone()));

        let spec = upkeep_core::window::WindowSpec {
            kind: upkeep_core::window::WindowKind::Upgrade,
            title: "t".into(),
            reason: "r".into(),
            start: now,
            end: t("2026-12-01T01:00:00Z"),
            tz: "UTC".into(),
            repeat: None,
            services: Vec::new(),
            alternative: String::new(),
            follow_up: String::new(),
            priority: None,
        };
        let id = store.add_window(&spec, now, &who(), None).await.unwrap();
        let take = StepTake {
            id,
            occurrence: now,
            step: Step::Announced,
            at: now,
            by: None,
            notices: &[],
            fanout: Some(&Everyone),
        };
        assert!(store.take_step_fanned(take).await.unwrap());
        assert!(!store.take_step_fanned(take).await.unwrap(), "once");
        let rows = store.outbox(None, 10).await.unwrap();
        assert_eq!(rows.len(), 1, "only the confirmed subscriber: {rows:?}");
        assert_eq!(rows[0].recipient, "a@example.com");

        // Unsubscribing deletes the row and what waits for it.
        assert!(store.unsubscribe(None, "a@example.com").await.unwrap());
        assert!(!store.unsubscribe(None, "a@example.com").await.unwrap());
        assert!(store.outbox(None, 10).await.unwrap().is_empty());
        let left: Vec<String> = store
            .subscribers()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.email)
            .collect();
        assert_eq!(left, vec![b.email.clone()]);
        // An expired unconfirmed subscription is forgotten at the next one.
        store
            .subscribe(
                "c@example.com",
                &[],
                "en",
                now,
                now + jiff::SignedDuration::from_secs(1),
                now,
            )
            .await
            .unwrap();
        let left: Vec<String> = store
            .subscribers()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.email)
            .collect();
        assert_eq!(left, vec!["c@example.com".to_owned()]);
    }

    #[tokio::test]
    async fn rows_of_removed_channels_fail_and_cancelled_windows_send_nothing_queued() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        let now = t("2026-12-01T00:00:00Z");
        let row = |channel: &str, subject: &str, key: &str| NewNotice {
            channel: channel.into(),
            recipient: "x@example.com".into(),
            kind: "reminder".into(),
            subject: subject.into(),
            notice: "{}".into(),
            digest: None,
            key: key.into(),
        };
        store
            .add_notices(
                &[
                    row("gone", "test:1", "k1"),
                    row("mail", "window:7:0", "k2"),
                    row("mail", "window:77:0", "k3"),
                ],
                now,
            )
            .await
            .unwrap();
        assert_eq!(
            store.fail_orphaned_notices(&["mail".into()]).await.unwrap(),
            1
        );
        let spec = upkeep_core::window::WindowSpec {
            kind: upkeep_core::window::WindowKind::Upgrade,
            title: "t".into(),
            reason: "r".into(),
            start: now,
            end: t("2026-12-01T01:00:00Z"),
            tz: "UTC".into(),
            repeat: None,
            services: Vec::new(),
            alternative: String::new(),
            follow_up: String::new(),
            priority: None,
        };
        let mut id = 0;
        while id < 7 {
            id = store.add_window(&spec, now, &who(), None).await.unwrap();
        }
        let cancelled = [row("mail", "window:7:0", "k4")];
        assert!(
            store
                .take_step(7, now, Step::Cancelled, now, None, &cancelled)
                .await
                .unwrap()
        );
        let states: std::collections::BTreeMap<String, OutboxState> = store
            .outbox(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.key, r.state))
            .collect();
        assert_eq!(states["k1"], OutboxState::Failed, "its channel is gone");
        assert_eq!(
            states["k2"],
            OutboxState::Failed,
            "its window was cancelled"
        );
        assert_eq!(states["k3"], OutboxState::Pending, "another window's");
        assert_eq!(
            states["k4"],
            OutboxState::Pending,
            "the cancellation itself"
        );
    }
}
