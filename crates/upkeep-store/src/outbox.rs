//! The outbox in the store: one row per notice, channel and recipient, and the leases that let
//! several dispatchers share the rows without sending one twice.
//!
//! Rows are inserted in the transaction that decides their notice: [`crate::Windows::take_step`]
//! inserts a window step's rows only when the step is new, and [`Outbox::plan_damped`] inserts
//! an incident's rows and moves its planner's cursor together, so each notice is planned once
//! across restarts. What a notice says and who it goes to is decided above (upkeep-outbox);
//! this file keeps rows and their states.
//!
//! Leasing is one statement: a conditional `UPDATE … RETURNING` over the due rows, which on
//! PostgreSQL picks them with `FOR UPDATE SKIP LOCKED` (two dispatchers never wait on, nor
//! take, the same row) and on SQLite runs alone anyway (SQLite has one writer at a time). A
//! lease ends at `lease_until`: a dispatcher that dies or hangs hands its rows on, and taking
//! a row whose lease ran out is counted (`takeovers`: each one a possible resend). A row is
//! marked sent only after its channel confirmed; marking is conditional on the lease where
//! that matters (a late retry or failure never overwrites another dispatcher's verdict).

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use crate::Engine;
use crate::Error;
use crate::sql::{SqlStore, col, q};

/// A row to insert: one notice to one recipient over one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotice {
    /// The channel's name in the config.
    pub channel: String,
    /// An address or chat id; empty for a group bot.
    pub recipient: String,
    /// The notice's kind (`announced`, `incident_opened`), for lists.
    pub kind: String,
    /// What the notice is about (`window:3:<occurrence>`, `incident:web:<since>`): an
    /// incident's notices are damped by it.
    pub subject: String,
    /// The notice, as JSON.
    pub notice: String,
    /// The idempotency key every attempt carries (unique: a row planned twice is stored once).
    pub key: String,
    /// Some(time): a row of the daily digest, due then (the next `digest_at`) whenever it is
    /// planned, and sent with the other digest rows of its channel and recipient as one
    /// message ([`Outbox::lease_digest`]). None: due when planned, sent alone.
    pub digest: Option<Timestamp>,
}

/// Where a row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutboxState {
    /// Waiting for its time (`next`): new, or to be retried.
    Pending,
    /// Leased by a dispatcher, which is sending it.
    Sending,
    /// The channel confirmed it.
    Sent,
    /// Refused for good, or given up on; `upkeep notify retry` puts it back.
    Failed,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sending => "sending",
            OutboxState::Sent => "sent",
            OutboxState::Failed => "failed",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => OutboxState::Pending,
            "sending" => OutboxState::Sending,
            "sent" => OutboxState::Sent,
            "failed" => OutboxState::Failed,
            _ => return None,
        })
    }
}

/// A stored row, as `upkeep notify ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub channel: String,
    pub recipient: String,
    pub kind: String,
    pub subject: String,
    pub notice: String,
    pub key: String,
    pub state: OutboxState,
    pub attempts: u32,
    pub takeovers: u32,
    pub due: Timestamp,
    pub next: Timestamp,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub last_error: Option<String>,
    /// The receiver's id for it (the mail's Message-ID), once sent.
    pub delivery: Option<String>,
    pub created: Timestamp,
    pub sent: Option<Timestamp>,
    /// A row of the daily digest: while pending and never tried, it waits for `next`.
    pub digest: bool,
}

/// A row a dispatcher leased: what it needs to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    pub id: i64,
    pub channel: String,
    pub recipient: String,
    pub notice: String,
    pub key: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// When it was due first (a row retried for too long is given up).
    pub due: Timestamp,
}

/// An incident's notice, damped with the others of its subject (see [`Outbox::plan_damped`]).
#[derive(Clone, Copy)]
pub struct Damped<'a> {
    pub subject: &'a str,
    pub kind: &'a str,
    pub now: Timestamp,
    /// At most one notice of a subject within this (milliseconds).
    pub interval_ms: i64,
    pub rows: &'a [NewNotice],
    /// The planner's cursor, moved to this event in the same transaction.
    pub cursor: (&'a str, u64),
    /// The confirmed subscribers' rows, made in the same transaction and due with `rows`.
    pub fanout: Option<&'a dyn crate::SubscriberRows>,
}

#[async_trait]
pub trait Outbox: Send + Sync {
    /// Inserts rows due at `at` (a row whose key is stored already is skipped); returns how
    /// many were new.
    async fn add_notices(&self, rows: &[NewNotice], at: Timestamp) -> Result<u64, Error>;
    /// Plans an incident's notice in one transaction with its planner's cursor. Rows of the
    /// subject held back by damping (due later, never tried) are dropped: the news they
    /// carried is stale. Then, unless the
    /// latest remaining notice of the subject is of the same kind (nothing new to say), the
    /// rows are inserted, due no sooner than `interval_ms` after the latest remaining one.
    /// Returns when they are due, if they were inserted.
    async fn plan_damped(&self, plan: Damped<'_>) -> Result<Option<Timestamp>, Error>;
    /// Leases up to `limit` rows of `channel` that are due at `now` (or whose lease, another
    /// dispatcher's, ran out), for `owner` until `until`: those whose lease ran out first, then
    /// the oldest due. Digest rows are left to [`Outbox::lease_digest`].
    async fn lease(
        &self,
        channel: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Leased>, Error>;
    /// Leases, like [`Outbox::lease`], every due digest row of `channel` for one recipient
    /// (the one whose digest is due first; at most [`DIGEST_ROWS`]), in the order they were
    /// planned: one digest message. Empty when no digest is due.
    async fn lease_digest(
        &self,
        channel: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<Leased>, Error>;
    /// The channel confirmed the digest of rows `ids`: all sent, in one statement (so one
    /// transaction). Returns how many were not sent already.
    async fn mark_sent_all(
        &self,
        ids: &[i64],
        at: Timestamp,
        delivery: Option<&str>,
    ) -> Result<u64, Error>;
    /// The channel confirmed row `id`: sent (whoever holds it now: a confirmed send is the
    /// truth). False if it was marked sent already.
    async fn mark_sent(
        &self,
        id: i64,
        at: Timestamp,
        delivery: Option<&str>,
    ) -> Result<bool, Error>;
    /// Row `id` is to be tried again at `next`, if `owner` still holds it.
    async fn mark_retry(
        &self,
        id: i64,
        owner: &str,
        next: Timestamp,
        error: &str,
    ) -> Result<bool, Error>;
    /// Row `id` failed for good, if `owner` still holds it.
    async fn mark_failed(&self, id: i64, owner: &str, error: &str) -> Result<bool, Error>;
    /// The digest rows still waiting for a digest other than `at` (pending, never tried, due
    /// after `now`) wait for `at` instead: `digest_at` or the zone changed, and one digest
    /// goes, at the new time. Returns how many moved.
    async fn move_digests(&self, now: Timestamp, at: Timestamp) -> Result<u64, Error>;
    /// Rows `ids`, leased by `owner` and not sent (a dispatcher stopping), are pending again
    /// as they were: due when they were, the attempt not counted. Returns how many.
    async fn unlease(&self, ids: &[i64], owner: &str) -> Result<u64, Error>;
    /// Rows of `channel` waiting for a retry become due at `now` (the receiver is back).
    async fn hurry(&self, channel: &str, now: Timestamp) -> Result<u64, Error>;
    /// When the next row of `channels` is due, or a lease other than `owner`'s runs out.
    async fn next_due(&self, channels: &[String], owner: &str) -> Result<Option<Timestamp>, Error>;
    /// Every row this node's earlier daemon left leased becomes pending at `now` (a node runs
    /// one daemon: its leases are dead); counted as takeovers. Returns how many.
    async fn release_leases(&self, now: Timestamp) -> Result<u64, Error>;
    /// Rows, newest first, of one state or all.
    async fn outbox(&self, state: Option<OutboxState>, limit: u32)
    -> Result<Vec<OutboxRow>, Error>;
    async fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>, Error>;
    /// A failed row is tried again from `now` (attempts start over). False if it was not failed.
    async fn retry_notice(&self, id: i64, now: Timestamp) -> Result<bool, Error>;
    /// When the `n`th newest row of `kind` this node planned after `since` was planned, if
    /// there are `n` such rows. A budget of `n` in any hour (`confirmations_per_hour`) is spent
    /// while this answers, and is free again an hour after the time it gives: the budget is
    /// kept here, in rows both engines hold, so a restart or an upgrade does not refill it.
    async fn nth_newest_planned(
        &self,
        kind: &str,
        since: Timestamp,
        n: u32,
    ) -> Result<Option<Timestamp>, Error>;
}

/// Most rows in one INSERT: 11 parameters each (SQLite allows 32,766).
const INSERT_ROWS: usize = 200;

/// Most rows in one digest: a mail of 500 notices is long enough; the rest, still due, make
/// the next one at once.
pub const DIGEST_ROWS: u32 = 500;

/// Inserts `rows` due at `due` in `tx`; returns how many were new.
pub(crate) async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, Any>,
    node: &str,
    rows: &[NewNotice],
    due: Timestamp,
    now: Timestamp,
) -> Result<u64, Error> {
    let mut new = 0;
    for chunk in rows.chunks(INSERT_ROWS) {
        let mut sql = String::from(
            "INSERT INTO outbox (node, channel, recipient, kind, subject, notice, idem_key, state,
                 due_ms, next_ms, created_ms, digest) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 11;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, 'pending', ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7,
                b + 8,
                b + 9,
                b + 10,
                b + 11
            ));
        }
        sql.push_str(" ON CONFLICT (idem_key) DO NOTHING");
        let mut query = sqlx::query(&sql);
        for r in chunk {
            // A digest row waits for its digest, whatever the notice's own due time.
            let due = r.digest.unwrap_or(due);
            query = query
                .bind(node)
                .bind(&r.channel)
                .bind(&r.recipient)
                .bind(&r.kind)
                .bind(&r.subject)
                .bind(&r.notice)
                .bind(&r.key)
                .bind(due.as_millisecond())
                .bind(due.as_millisecond())
                .bind(now.as_millisecond())
                .bind(i64::from(r.digest.is_some()));
        }
        new += query
            .execute(&mut **tx)
            .await
            .map_err(q("insert outbox rows"))?
            .rows_affected();
    }
    Ok(new)
}

fn ts(ms: i64) -> Option<Timestamp> {
    Timestamp::from_millisecond(ms).ok()
}

fn count(r: &AnyRow, name: &str) -> Option<u32> {
    col::<i64>(r, name).map(|n| n.clamp(0, u32::MAX as i64) as u32)
}

pub(crate) fn outbox_row(r: &AnyRow) -> Option<OutboxRow> {
    Some(OutboxRow {
        id: col(r, "id")?,
        channel: col(r, "channel")?,
        recipient: col(r, "recipient")?,
        kind: col(r, "kind")?,
        subject: col(r, "subject")?,
        notice: col(r, "notice")?,
        key: col(r, "idem_key")?,
        state: OutboxState::parse(&col::<String>(r, "state")?)?,
        attempts: count(r, "attempts")?,
        takeovers: count(r, "takeovers")?,
        due: ts(col(r, "due_ms")?)?,
        next: ts(col(r, "next_ms")?)?,
        lease_owner: col(r, "lease_owner")?,
        lease_until: col::<Option<i64>>(r, "lease_until_ms")?.and_then(ts),
        last_error: col(r, "last_error")?,
        delivery: col(r, "delivery")?,
        created: ts(col(r, "created_ms")?)?,
        sent: col::<Option<i64>>(r, "sent_ms")?.and_then(ts),
        digest: col::<i64>(r, "digest")? != 0,
    })
}

fn leased(r: &AnyRow) -> Option<Leased> {
    Some(Leased {
        id: col(r, "id")?,
        channel: col(r, "channel")?,
        recipient: col(r, "recipient")?,
        notice: col(r, "notice")?,
        key: col(r, "idem_key")?,
        attempts: count(r, "attempts")?,
        due: ts(col(r, "due_ms")?)?,
    })
}

pub(crate) const ROW_COLUMNS: &str =
    "id, channel, recipient, kind, subject, notice, idem_key, state, attempts,
     takeovers, due_ms, next_ms, lease_owner, lease_until_ms, last_error, delivery, created_ms,
     sent_ms, digest";

#[async_trait]
impl Outbox for SqlStore {
    async fn add_notices(&self, rows: &[NewNotice], at: Timestamp) -> Result<u64, Error> {
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        let new = insert_rows(&mut tx, &self.node, rows, at, at).await?;
        tx.commit().await.map_err(q("commit outbox rows"))?;
        Ok(new)
    }

    async fn plan_damped(&self, plan: Damped<'_>) -> Result<Option<Timestamp>, Error> {
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        // A write first (see `take_step`): the subject's rows held back by damping, not yet
        // due nor tried, are stale news and go. Digest rows are not held back but gathered:
        // each is news of its own in the digest, and damping never looks at them.
        sqlx::query(
            "DELETE FROM outbox WHERE node = $1 AND subject = $2 AND state = 'pending'
                 AND attempts = 0 AND due_ms > $3 AND digest = 0",
        )
        .bind(&self.node)
        .bind(plan.subject)
        .bind(plan.now.as_millisecond())
        .execute(&mut *tx)
        .await
        .map_err(q("drop superseded notices"))?;
        let latest = sqlx::query(
            "SELECT kind, due_ms FROM outbox WHERE node = $1 AND subject = $2 AND digest = 0
             ORDER BY due_ms DESC, id DESC LIMIT 1",
        )
        .bind(&self.node)
        .bind(plan.subject)
        .fetch_optional(&mut *tx)
        .await
        .map_err(q("read an incident's latest notice"))?;
        let latest =
            latest.and_then(|r| Some((col::<String>(&r, "kind")?, col::<i64>(&r, "due_ms")?)));
        let due = match latest {
            Some((kind, _)) if kind == plan.kind => None,
            Some((_, due)) => Some(plan.now.as_millisecond().max(due + plan.interval_ms)),
            None => Some(plan.now.as_millisecond()),
        }
        .and_then(ts);
        if let Some(due) = due {
            insert_rows(&mut tx, &self.node, plan.rows, due, plan.now).await?;
            if let Some(fanout) = plan.fanout {
                let subscribers = crate::subscribers::confirmed_in(&mut tx, &self.node).await?;
                let rows = fanout.rows(&subscribers);
                insert_rows(&mut tx, &self.node, &rows, due, plan.now).await?;
            }
        }
        let (name, seq) = plan.cursor;
        sqlx::query(
            "INSERT INTO cursors (node, name, seq, updated_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (node, name) DO UPDATE SET seq = excluded.seq,
                 updated_ms = excluded.updated_ms",
        )
        .bind(&self.node)
        .bind(name)
        .bind(seq as i64)
        .bind(plan.now.as_millisecond())
        .execute(&mut *tx)
        .await
        .map_err(q("move the notice planner's cursor"))?;
        tx.commit()
            .await
            .map_err(q("commit an incident's notice"))?;
        Ok(due)
    }

    async fn lease(
        &self,
        channel: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
        limit: u32,
    ) -> Result<Vec<Leased>, Error> {
        // Rows whose lease ran out (a dispatcher died or hung) first, then the due ones: each
        // a range of the index `outbox_due_by_digest` read in its order, never the rows sent.
        let lease = |limit: usize| Lease {
            channel,
            owner,
            now,
            until,
            limit: limit as i64,
        };
        let limit = limit as usize;
        let [taken_over, pending] = lease_picks();
        let mut rows = self
            .lease_where(&taken_over, lease(limit), "lease outbox rows")
            .await?;
        if rows.len() < limit {
            let more = self
                .lease_where(&pending, lease(limit - rows.len()), "lease outbox rows")
                .await?;
            rows.extend(more);
            rows.sort_by_key(|l| l.id);
        }
        Ok(rows)
    }

    async fn lease_digest(
        &self,
        channel: &str,
        owner: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Vec<Leased>, Error> {
        // The recipient whose digest is due first, then all of its due rows. On PostgreSQL a
        // second dispatcher may pick the same recipient and skip the rows locked here: it
        // leases what is left, or nothing; never a row twice.
        // The recipient is found as `lease` finds rows: one whose lease ran out first.
        let first = |due: &str| {
            format!(
                "(SELECT recipient FROM outbox WHERE node = $3 AND channel = $4 AND digest = 1
                     AND {due} ORDER BY next_ms, id LIMIT 1)"
            )
        };
        let pick = format!(
            "digest = 1 AND recipient = COALESCE({}, {}) AND {DUE} ORDER BY id LIMIT $6",
            first(TAKEN_OVER),
            first(PENDING)
        );
        let limit = i64::from(DIGEST_ROWS);
        let lease = Lease {
            channel,
            owner,
            now,
            until,
            limit,
        };
        self.lease_where(&pick, lease, "lease a digest's outbox rows")
            .await
    }

    async fn mark_sent_all(
        &self,
        ids: &[i64],
        at: Timestamp,
        delivery: Option<&str>,
    ) -> Result<u64, Error> {
        if ids.is_empty() {
            return Ok(0);
        }
        let params: Vec<String> = (4..ids.len() + 4).map(|i| format!("${i}")).collect();
        let sql = format!(
            "UPDATE outbox SET state = 'sent', sent_ms = $1, delivery = $2, last_error = NULL,
                 lease_owner = NULL, lease_until_ms = NULL
             WHERE node = $3 AND state <> 'sent' AND id IN ({})",
            params.join(", ")
        );
        let mut query = sqlx::query(&sql)
            .bind(at.as_millisecond())
            .bind(delivery)
            .bind(&self.node);
        for id in ids {
            query = query.bind(*id);
        }
        Ok(query
            .execute(&self.pool)
            .await
            .map_err(q("mark a digest's notices sent"))?
            .rows_affected())
    }

    async fn mark_sent(
        &self,
        id: i64,
        at: Timestamp,
        delivery: Option<&str>,
    ) -> Result<bool, Error> {
        let n = sqlx::query(
            "UPDATE outbox SET state = 'sent', sent_ms = $1, delivery = $2, last_error = NULL,
                 lease_owner = NULL, lease_until_ms = NULL
             WHERE node = $3 AND id = $4 AND state <> 'sent'",
        )
        .bind(at.as_millisecond())
        .bind(delivery)
        .bind(&self.node)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("mark a notice sent"))?
        .rows_affected();
        Ok(n > 0)
    }

    async fn mark_retry(
        &self,
        id: i64,
        owner: &str,
        next: Timestamp,
        error: &str,
    ) -> Result<bool, Error> {
        let n = sqlx::query(
            "UPDATE outbox SET state = 'pending', next_ms = $1, last_error = $2,
                 lease_owner = NULL, lease_until_ms = NULL
             WHERE node = $3 AND id = $4 AND state = 'sending' AND lease_owner = $5",
        )
        .bind(next.as_millisecond())
        .bind(error)
        .bind(&self.node)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(q("schedule a notice's retry"))?
        .rows_affected();
        Ok(n > 0)
    }

    async fn mark_failed(&self, id: i64, owner: &str, error: &str) -> Result<bool, Error> {
        let n = sqlx::query(
            "UPDATE outbox SET state = 'failed', last_error = $1, lease_owner = NULL,
                 lease_until_ms = NULL
             WHERE node = $2 AND id = $3 AND state = 'sending' AND lease_owner = $4",
        )
        .bind(error)
        .bind(&self.node)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(q("mark a notice failed"))?
        .rows_affected();
        Ok(n > 0)
    }

    async fn move_digests(&self, now: Timestamp, at: Timestamp) -> Result<u64, Error> {
        Ok(sqlx::query(
            "UPDATE outbox SET due_ms = $1, next_ms = $1
             WHERE node = $2 AND digest = 1 AND state = 'pending' AND attempts = 0
                 AND next_ms > $3 AND next_ms <> $1",
        )
        .bind(at.as_millisecond())
        .bind(&self.node)
        .bind(now.as_millisecond())
        .execute(&self.pool)
        .await
        .map_err(q("move the digest's notices to its new time"))?
        .rows_affected())
    }

    async fn unlease(&self, ids: &[i64], owner: &str) -> Result<u64, Error> {
        if ids.is_empty() {
            return Ok(0);
        }
        let params: Vec<String> = (3..ids.len() + 3).map(|i| format!("${i}")).collect();
        let sql = format!(
            "UPDATE outbox SET state = 'pending', attempts = attempts - 1, lease_owner = NULL,
                 lease_until_ms = NULL
             WHERE node = $1 AND state = 'sending' AND lease_owner = $2 AND id IN ({})",
            params.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(&self.node).bind(owner);
        for id in ids {
            query = query.bind(*id);
        }
        Ok(query
            .execute(&self.pool)
            .await
            .map_err(q("give back leased notices"))?
            .rows_affected())
    }

    async fn hurry(&self, channel: &str, now: Timestamp) -> Result<u64, Error> {
        Ok(sqlx::query(
            "UPDATE outbox SET next_ms = $1
             WHERE node = $2 AND channel = $3 AND state = 'pending' AND attempts > 0
                 AND next_ms > $1",
        )
        .bind(now.as_millisecond())
        .bind(&self.node)
        .bind(channel)
        .execute(&self.pool)
        .await
        .map_err(q("bring retries forward"))?
        .rows_affected())
    }

    async fn next_due(&self, channels: &[String], owner: &str) -> Result<Option<Timestamp>, Error> {
        if channels.is_empty() {
            return Ok(None);
        }
        let params: Vec<String> = (3..channels.len() + 3).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT MIN(CASE WHEN state = 'pending' THEN next_ms ELSE lease_until_ms END) AS at
             FROM outbox WHERE node = $1
                 AND (state = 'pending' OR (state = 'sending' AND lease_owner <> $2))
                 AND channel IN ({})",
            params.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(&self.node).bind(owner);
        for c in channels {
            query = query.bind(c);
        }
        let row = query
            .fetch_one(&self.pool)
            .await
            .map_err(q("find the next notice due"))?;
        Ok(row
            .try_get::<Option<i64>, _>("at")
            .map_err(q("read the next notice due"))?
            .and_then(ts))
    }

    async fn release_leases(&self, now: Timestamp) -> Result<u64, Error> {
        Ok(sqlx::query(
            "UPDATE outbox SET state = 'pending', next_ms = $1, takeovers = takeovers + 1,
                 lease_owner = NULL, lease_until_ms = NULL
             WHERE node = $2 AND state = 'sending'",
        )
        .bind(now.as_millisecond())
        .bind(&self.node)
        .execute(&self.pool)
        .await
        .map_err(q("release an earlier daemon's leases"))?
        .rows_affected())
    }

    async fn outbox(
        &self,
        state: Option<OutboxState>,
        limit: u32,
    ) -> Result<Vec<OutboxRow>, Error> {
        let mut sql = format!("SELECT {ROW_COLUMNS} FROM outbox WHERE node = $1");
        if state.is_some() {
            sql.push_str(" AND state = $3");
        }
        sql.push_str(" ORDER BY id DESC LIMIT $2");
        let mut query = sqlx::query(&sql).bind(&self.node).bind(i64::from(limit));
        if let Some(s) = state {
            query = query.bind(s.as_str());
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(q("read the outbox"))?;
        Ok(rows.iter().filter_map(outbox_row).collect())
    }

    async fn outbox_row(&self, id: i64) -> Result<Option<OutboxRow>, Error> {
        let row = sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM outbox WHERE node = $1 AND id = $2"
        ))
        .bind(&self.node)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("read an outbox row"))?;
        Ok(row.as_ref().and_then(outbox_row))
    }

    async fn nth_newest_planned(
        &self,
        kind: &str,
        since: Timestamp,
        n: u32,
    ) -> Result<Option<Timestamp>, Error> {
        let Some(skip) = n.checked_sub(1) else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT created_ms FROM outbox WHERE node = $1 AND kind = $2 AND created_ms > $3
             ORDER BY created_ms DESC LIMIT 1 OFFSET $4",
        )
        .bind(&self.node)
        .bind(kind)
        .bind(since.as_millisecond())
        .bind(i64::from(skip))
        .fetch_optional(&self.pool)
        .await
        .map_err(q("count the rows planned in the last hour"))?;
        Ok(row
            .as_ref()
            .and_then(|r| col::<i64>(r, "created_ms"))
            .and_then(ts))
    }

    async fn retry_notice(&self, id: i64, now: Timestamp) -> Result<bool, Error> {
        let n = sqlx::query(
            "UPDATE outbox SET state = 'pending', attempts = 0, due_ms = $1, next_ms = $1
             WHERE node = $2 AND id = $3 AND state = 'failed'",
        )
        .bind(now.as_millisecond())
        .bind(&self.node)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(q("retry a notice"))?
        .rows_affected();
        Ok(n > 0)
    }
}

/// Due: pending and its time come, or leased by a dispatcher (not `$1`) whose lease ran out
/// (`$5` is now).
const DUE: &str = "((state = 'pending' AND next_ms <= $5)
    OR (state = 'sending' AND lease_until_ms <= $5 AND lease_owner <> $1))";
/// [`DUE`]'s two halves, each an index range (`outbox_due_by_digest`) when picked alone.
const PENDING: &str = "state = 'pending' AND next_ms <= $5";
const TAKEN_OVER: &str = "state = 'sending' AND lease_until_ms <= $5 AND lease_owner <> $1";

/// What [`Outbox::lease`] picks, in turn: rows whose lease ran out, then due ones.
fn lease_picks() -> [String; 2] {
    [TAKEN_OVER, PENDING].map(|due| format!("digest = 0 AND {due} ORDER BY next_ms, id LIMIT $6"))
}

/// Who leases which channel's rows, when, and how many at most.
struct Lease<'a> {
    channel: &'a str,
    owner: &'a str,
    now: Timestamp,
    until: Timestamp,
    limit: i64,
}

impl SqlStore {
    /// Leases the rows of `lease.channel` that `pick` (a condition with its ORDER BY and
    /// LIMIT, over `$1` owner, `$3` node, `$4` channel, `$5` now, `$6` limit) selects, in id
    /// order. Right-hand sides read the row as it was: `takeovers` counts a lease taken from
    /// another dispatcher (whose send may have reached the receiver).
    async fn lease_where(
        &self,
        pick: &str,
        lease: Lease<'_>,
        what: &'static str,
    ) -> Result<Vec<Leased>, Error> {
        let lock = match self.engine {
            Engine::Postgres => "FOR UPDATE SKIP LOCKED",
            Engine::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET state = 'sending', lease_owner = $1, lease_until_ms = $2,
                 attempts = attempts + 1,
                 takeovers = takeovers + CASE WHEN state = 'sending' THEN 1 ELSE 0 END
             WHERE id IN (SELECT id FROM outbox WHERE node = $3 AND channel = $4 AND {pick} {lock})
             RETURNING id, channel, recipient, notice, idem_key, attempts, due_ms"
        );
        let rows = sqlx::query(&sql)
            .bind(lease.owner)
            .bind(lease.until.as_millisecond())
            .bind(&self.node)
            .bind(lease.channel)
            .bind(lease.now.as_millisecond())
            .bind(lease.limit)
            .fetch_all(&self.pool)
            .await
            .map_err(q(what))?;
        let mut out: Vec<Leased> = rows.iter().filter_map(leased).collect();
        // RETURNING keeps no order.
        out.sort_by_key(|l| l.id);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row;

    /// The stall of bench/subscribers (session 12): a lease read every row of its channel,
    /// sent ones too, and sorted the due ones, under the write lock: 64 ms a lease once
    /// 10,000 rows were there (more in a debug build), and every mark waited for it. Each
    /// pick is now a range of an index read in its order, stopping at its limit.
    #[tokio::test]
    async fn a_lease_reads_an_index_range_in_order_not_every_row_of_its_channel() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::test_store(dir.path()).await;
        for pick in super::lease_picks() {
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT id FROM outbox WHERE node = 'test' AND channel = 'mail' AND {}",
                pick.replace("$1", "'me'")
                    .replace("$5", "1000")
                    .replace("$6", "16")
            );
            let plan: Vec<String> = sqlx::query(&sql)
                .fetch_all(&store.pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String, _>("detail").unwrap())
                .collect();
            assert!(
                plan.len() == 1
                    && plan[0].contains("INDEX outbox_due_by_digest")
                    && plan[0].contains("state=?"),
                "{pick}: {plan:?}"
            );
        }
    }
}
