//! Maintenance windows in the store: the windows operators scheduled and the steps of their
//! lives taken so far. Deciding which step is due is `upkeep-maintenance`'s; this file keeps
//! each step once (its primary key), so that a step decided twice (a daemon killed between
//! deciding and answering) is stored, and sent, once: a step's outbox rows are inserted in
//! the transaction that stores it, only when it is new.

use async_trait::async_trait;
use jiff::Timestamp;
use sqlx::Row;
use sqlx::any::AnyRow;
use upkeep_core::Principal;
use upkeep_core::window::{Step, StepTaken, WindowSpec};

use crate::Error;
use crate::sql::{SqlStore, col, flag, q};

/// A stored window with the steps taken, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWindow {
    pub id: i64,
    pub spec: WindowSpec,
    pub created: Timestamp,
    pub created_by: Principal,
    pub forced_why: Option<String>,
    pub cancelled: bool,
    pub done: bool,
    /// How many times it was edited.
    pub revision: i64,
    /// Its last edit (or its creation).
    pub updated: Timestamp,
    pub taken: Vec<StepTaken>,
}

#[async_trait]
pub trait Windows: Send + Sync {
    /// Stores a new window; returns its id.
    async fn add_window(
        &self,
        spec: &WindowSpec,
        created: Timestamp,
        by: &Principal,
        forced_why: Option<&str>,
    ) -> Result<i64, Error>;
    /// This node's windows, oldest start first: all of them, or only those not done.
    async fn windows(&self, all: bool) -> Result<Vec<StoredWindow>, Error>;
    async fn window(&self, id: i64) -> Result<Option<StoredWindow>, Error>;
    /// Replaces a window's spec (an edit; `forced_why`, if the edit needed forcing past the
    /// lead-time policy, replaces the recorded reason); false if there is no such window.
    async fn edit_window(
        &self,
        id: i64,
        spec: &WindowSpec,
        at: Timestamp,
        forced_why: Option<&str>,
    ) -> Result<bool, Error>;
    /// Records `step` of the occurrence starting at `occurrence`, unless it is recorded
    /// already (false then), with its notices (outbox rows, due at `at`) in the same
    /// transaction, so a step's notices are planned exactly when the step is new. A
    /// `Cancelled` step cancels the window in the same transaction.
    async fn take_step(
        &self,
        id: i64,
        occurrence: Timestamp,
        step: Step,
        at: Timestamp,
        by: Option<&Principal>,
        notices: &[crate::NewNotice],
    ) -> Result<bool, Error>;
    /// Marks a window done (no occurrence left): the planner no longer reads it.
    async fn window_done(&self, id: i64) -> Result<(), Error>;
}

fn json<T: serde::de::DeserializeOwned>(r: &AnyRow, name: &str) -> Option<T> {
    serde_json::from_str(&col::<String>(r, name)?)
        .inspect_err(|e| tracing::warn!(column = name, "skipping a bad row: {e}"))
        .ok()
}

fn ts(r: &AnyRow, name: &str) -> Option<Timestamp> {
    Timestamp::from_millisecond(col(r, name)?).ok()
}

impl SqlStore {
    async fn steps_of(&self, ids: &[i64]) -> Result<Vec<(i64, StepTaken)>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let params: Vec<String> = (2..ids.len() + 2).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT s.window_id, s.occurrence_ms, s.step, s.at_ms, s.by_who FROM window_steps s
             JOIN windows w ON w.id = s.window_id
             WHERE w.node = $1 AND s.window_id IN ({}) ORDER BY s.at_ms, s.occurrence_ms",
            params.join(", ")
        );
        let mut query = sqlx::query(&sql).bind(&self.node);
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(q("select window steps"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let by = match col::<Option<String>>(r, "by_who")? {
                    Some(text) => Some(serde_json::from_str(&text).ok()?),
                    None => None,
                };
                Some((
                    col(r, "window_id")?,
                    StepTaken {
                        occurrence: ts(r, "occurrence_ms")?,
                        step: json(r, "step")?,
                        at: ts(r, "at_ms")?,
                        by,
                    },
                ))
            })
            .collect())
    }

    async fn read_windows(&self, all: bool, id: Option<i64>) -> Result<Vec<StoredWindow>, Error> {
        let mut sql = String::from(
            "SELECT id, spec, created_ms, created_by, forced_why, cancelled, done, revision,
                 updated_ms
             FROM windows WHERE node = $1",
        );
        if !all {
            sql.push_str(" AND done = FALSE");
        }
        if id.is_some() {
            sql.push_str(" AND id = $2");
        }
        sql.push_str(" ORDER BY start_ms, id");
        let mut query = sqlx::query(&sql).bind(&self.node);
        if let Some(id) = id {
            query = query.bind(id);
        }
        let rows = query
            .fetch_all(&self.pool)
            .await
            .map_err(q("select windows"))?;
        let mut out: Vec<StoredWindow> = rows
            .iter()
            .filter_map(|r| {
                Some(StoredWindow {
                    id: col(r, "id")?,
                    spec: json(r, "spec")?,
                    created: ts(r, "created_ms")?,
                    created_by: json(r, "created_by")?,
                    forced_why: col(r, "forced_why")?,
                    cancelled: flag(r, "cancelled")?,
                    done: flag(r, "done")?,
                    revision: col(r, "revision")?,
                    updated: ts(r, "updated_ms")?,
                    taken: Vec::new(),
                })
            })
            .collect();
        let ids: Vec<i64> = out.iter().map(|w| w.id).collect();
        for (id, step) in self.steps_of(&ids).await? {
            if let Some(w) = out.iter_mut().find(|w| w.id == id) {
                w.taken.push(step);
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Windows for SqlStore {
    async fn add_window(
        &self,
        spec: &WindowSpec,
        created: Timestamp,
        by: &Principal,
        forced_why: Option<&str>,
    ) -> Result<i64, Error> {
        let row = sqlx::query(
            "INSERT INTO windows (node, spec, start_ms, created_ms, created_by, forced_why, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $4) RETURNING id",
        )
        .bind(&self.node)
        .bind(serde_json::to_string(spec).expect("a window serialises"))
        .bind(spec.start.as_millisecond())
        .bind(created.as_millisecond())
        .bind(serde_json::to_string(by).expect("a principal serialises"))
        .bind(forced_why)
        .fetch_one(&self.pool)
        .await
        .map_err(q("insert a window"))?;
        row.try_get("id").map_err(q("read the window id"))
    }

    async fn windows(&self, all: bool) -> Result<Vec<StoredWindow>, Error> {
        self.read_windows(all, None).await
    }

    async fn window(&self, id: i64) -> Result<Option<StoredWindow>, Error> {
        Ok(self.read_windows(true, Some(id)).await?.pop())
    }

    async fn edit_window(
        &self,
        id: i64,
        spec: &WindowSpec,
        at: Timestamp,
        forced_why: Option<&str>,
    ) -> Result<bool, Error> {
        let n = sqlx::query(
            "UPDATE windows SET spec = $1, start_ms = $2, revision = revision + 1, updated_ms = $3,
                 done = FALSE, forced_why = COALESCE($6, forced_why)
             WHERE node = $4 AND id = $5",
        )
        .bind(serde_json::to_string(spec).expect("a window serialises"))
        .bind(spec.start.as_millisecond())
        .bind(at.as_millisecond())
        .bind(&self.node)
        .bind(id)
        .bind(forced_why)
        .execute(&self.pool)
        .await
        .map_err(q("edit a window"))?
        .rows_affected();
        Ok(n > 0)
    }

    async fn take_step(
        &self,
        id: i64,
        occurrence: Timestamp,
        step: Step,
        at: Timestamp,
        by: Option<&Principal>,
        notices: &[crate::NewNotice],
    ) -> Result<bool, Error> {
        self.step_with_fanout(crate::StepTake {
            id,
            occurrence,
            step,
            at,
            by,
            notices,
            fanout: None,
        })
        .await
    }

    async fn window_done(&self, id: i64) -> Result<(), Error> {
        sqlx::query("UPDATE windows SET done = TRUE WHERE node = $1 AND id = $2")
            .bind(&self.node)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(q("mark a window done"))?;
        Ok(())
    }
}

impl SqlStore {
    /// [`Windows::take_step`], with the rows of each confirmed subscriber `fanout` makes, read
    /// and inserted in the same transaction (see `subscribers.rs`).
    pub(crate) async fn step_with_fanout(&self, t: crate::StepTake<'_>) -> Result<bool, Error> {
        let crate::StepTake {
            id,
            occurrence,
            step,
            at,
            by,
            notices,
            fanout,
        } = t;
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        // A write first (SQLite: a transaction that reads, then writes, fails when another
        // writer committed in between), and only for this node's windows.
        let new = sqlx::query(
            "INSERT INTO window_steps (window_id, occurrence_ms, step_key, step, at_ms, by_who)
             SELECT $1, $2, $3, $4, $5, $6
             WHERE EXISTS (SELECT 1 FROM windows WHERE node = $7 AND id = $1)
             ON CONFLICT (window_id, occurrence_ms, step_key) DO NOTHING RETURNING window_id",
        )
        .bind(id)
        .bind(occurrence.as_millisecond())
        .bind(step.key())
        .bind(serde_json::to_string(&step).expect("a step serialises"))
        .bind(at.as_millisecond())
        .bind(by.map(|p| serde_json::to_string(p).expect("a principal serialises")))
        .bind(&self.node)
        .fetch_optional(&mut *tx)
        .await
        .map_err(q("record a window step"))?
        .is_some();
        if new && step == Step::Cancelled {
            sqlx::query("UPDATE windows SET cancelled = TRUE, done = TRUE WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(q("cancel a window"))?;
            // What was queued for the window and not sent yet would announce work that will
            // not happen: only the cancellation goes out. A row being sent now is left to its
            // dispatcher. Subjects are `window:ID:OCCURRENCE`.
            sqlx::query(
                "UPDATE outbox SET state = 'failed',
                     last_error = 'not sent: the window was cancelled first'
                 WHERE node = $1 AND state = 'pending' AND subject LIKE $2",
            )
            .bind(&self.node)
            .bind(format!("window:{id}:%"))
            .execute(&mut *tx)
            .await
            .map_err(q("drop a cancelled window's queued notices"))?;
        }
        if new && !notices.is_empty() {
            crate::outbox::insert_rows(&mut tx, &self.node, notices, at, at).await?;
        }
        if new && let Some(fanout) = fanout {
            let subscribers = crate::subscribers::confirmed_in(&mut tx, &self.node).await?;
            let rows = fanout.rows(&subscribers);
            if !rows.is_empty() {
                crate::outbox::insert_rows(&mut tx, &self.node, &rows, at, at).await?;
            }
        }
        tx.commit().await.map_err(q("commit a window step"))?;
        Ok(new)
    }
}
