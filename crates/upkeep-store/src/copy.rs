//! Copying one node's history from one store to another: `upkeep store copy --to
//! postgres://...` moves a SQLite history to PostgreSQL (any engine to any works the same).
//!
//! Everything of the node is copied (desired states, events with their numbers, incidents,
//! config revisions, consumer cursors, maintenance windows and their steps, rollups and probe
//! latency) in one transaction on the target, so a copy that fails
//! leaves nothing half-done. Events keep their sequence numbers (what the API shows as their
//! ids); incidents and revisions get new numbers in the target, since a shared database numbers
//! them across nodes. The target must hold nothing of this node yet. The daemon must not run
//! meanwhile (the CLI checks its lock): this reads a still history.

use sqlx::{Any, Row};

use crate::sql::{SqlStore, col, flag, q};
use crate::{Error, EventLog};

/// Rows read and written at a time.
const CHUNK: i64 = 2_000;

/// What a copy moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Copied {
    pub services: u64,
    pub events: u64,
    pub incidents: u64,
    pub revisions: u64,
    pub cursors: u64,
    pub windows: u64,
    /// Rows of rollups, their mark and probe latency.
    pub rollups: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("the target already holds {0} events of this node: copy into an empty database")]
    TargetNotEmpty(u64),
    #[error("source and target must be stores of the same node")]
    OtherNode,
    #[error(transparent)]
    Store(#[from] Error),
}

impl SqlStore {
    /// Copies this store's node into `target` (opened for the same node).
    pub async fn copy_into(&self, target: &SqlStore) -> Result<Copied, CopyError> {
        if self.node != target.node {
            return Err(CopyError::OtherNode);
        }
        let there = target.last_seq().await?;
        if there > 0 {
            return Err(CopyError::TargetNotEmpty(there));
        }
        let mut tx = target.pool.begin().await.map_err(q("begin"))?;
        let mut copied = Copied::default();
        let node = self.node.as_str();

        for r in self
            .rows(
                "SELECT name, desired, pid, start_ticks, updated_ms FROM services WHERE node = $1",
            )
            .await?
        {
            let (Some(name), Some(desired), Some(updated)) = (
                col::<String>(&r, "name"),
                col::<String>(&r, "desired"),
                col::<i64>(&r, "updated_ms"),
            ) else {
                continue;
            };
            sqlx::query(
                "INSERT INTO services (node, name, desired, pid, start_ticks, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(node)
            .bind(name)
            .bind(desired)
            .bind(col::<Option<i64>>(&r, "pid").flatten())
            .bind(col::<Option<i64>>(&r, "start_ticks").flatten())
            .bind(updated)
            .execute(&mut *tx)
            .await
            .map_err(q("copy a service"))?;
            copied.services += 1;
        }

        // Events in chunks by number, so a long history never sits in memory whole.
        let mut after = 0i64;
        loop {
            let rows = sqlx::query(
                "SELECT seq, at_ms, service, kind, intervention, detail, to_state FROM events
                 WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(node)
            .bind(after)
            .bind(CHUNK)
            .fetch_all(&self.pool)
            .await
            .map_err(q("read events to copy"))?;
            let Some(last) = rows.last().and_then(|r| col::<i64>(r, "seq")) else {
                break;
            };
            after = last;
            for r in &rows {
                let (Some(seq), Some(at), Some(kind), Some(intervention), Some(detail)) = (
                    col::<i64>(r, "seq"),
                    col::<i64>(r, "at_ms"),
                    col::<String>(r, "kind"),
                    flag(r, "intervention"),
                    col::<String>(r, "detail"),
                ) else {
                    continue;
                };
                sqlx::query(
                    "INSERT INTO events (node, seq, at_ms, service, kind, intervention, detail, to_state)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(node)
                .bind(seq)
                .bind(at)
                .bind(col::<Option<String>>(r, "service").flatten())
                .bind(kind)
                .bind(intervention)
                .bind(detail)
                .bind(col::<Option<String>>(r, "to_state").flatten())
                .execute(&mut *tx)
                .await
                .map_err(q("copy an event"))?;
                copied.events += 1;
            }
        }

        for r in self
            .rows(
                "SELECT service, started_ms, opened_ms, resolved_ms, reason, drill FROM incidents
                 WHERE node = $1 ORDER BY id",
            )
            .await?
        {
            let (Some(service), Some(started), Some(opened), Some(reason), Some(drill)) = (
                col::<String>(&r, "service"),
                col::<i64>(&r, "started_ms"),
                col::<i64>(&r, "opened_ms"),
                col::<String>(&r, "reason"),
                flag(&r, "drill"),
            ) else {
                continue;
            };
            sqlx::query(
                "INSERT INTO incidents (node, service, started_ms, opened_ms, resolved_ms, reason, drill)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(node)
            .bind(service)
            .bind(started)
            .bind(opened)
            .bind(col::<Option<i64>>(&r, "resolved_ms").flatten())
            .bind(reason)
            .bind(drill)
            .execute(&mut *tx)
            .await
            .map_err(q("copy an incident"))?;
            copied.incidents += 1;
        }

        for r in self
            .rows(
                "SELECT applied_ms, path, source FROM config_revisions WHERE node = $1 ORDER BY id",
            )
            .await?
        {
            let (Some(applied), Some(path), Some(source)) = (
                col::<i64>(&r, "applied_ms"),
                col::<String>(&r, "path"),
                col::<String>(&r, "source"),
            ) else {
                continue;
            };
            sqlx::query(
                "INSERT INTO config_revisions (node, applied_ms, path, source) VALUES ($1, $2, $3, $4)",
            )
            .bind(node)
            .bind(applied)
            .bind(path)
            .bind(source)
            .execute(&mut *tx)
            .await
            .map_err(q("copy a config revision"))?;
            copied.revisions += 1;
        }

        for r in self
            .rows("SELECT name, seq, updated_ms FROM cursors WHERE node = $1")
            .await?
        {
            let (Some(name), Some(seq), Some(updated)) = (
                col::<String>(&r, "name"),
                col::<i64>(&r, "seq"),
                col::<i64>(&r, "updated_ms"),
            ) else {
                continue;
            };
            sqlx::query(
                "INSERT INTO cursors (node, name, seq, updated_ms) VALUES ($1, $2, $3, $4)",
            )
            .bind(node)
            .bind(name)
            .bind(seq)
            .bind(updated)
            .execute(&mut *tx)
            .await
            .map_err(q("copy a cursor"))?;
            copied.cursors += 1;
        }
        copied.windows = self.copy_windows(&mut tx).await?;
        // The rollups, their mark and probe latency, as they are: hours older than `retain`
        // live only there.
        for (table, columns) in [
            ("rollup_marks", &["rolled_until_ms", "raw_since_ms"][..]),
            (
                "rollups",
                &[
                    "span",
                    "start_ms",
                    "service",
                    "available_ms",
                    "outage_ms",
                    "maintenance_ms",
                    "unknown_ms",
                    "drills",
                    "drill_ms",
                    "incidents",
                    "repaired",
                    "repair_ms",
                    "heals",
                    "interventions",
                ][..],
            ),
            ("latency", &["service", "hour_ms", "counts"][..]),
        ] {
            copied.rollups += self.copy_rows(&mut tx, table, columns).await?;
        }
        tx.commit().await.map_err(q("commit the copy"))?;
        Ok(copied)
    }

    /// Maintenance windows and their steps; windows get new numbers in the target (a shared
    /// database numbers them across nodes), and their steps follow them.
    async fn copy_windows(&self, tx: &mut sqlx::Transaction<'_, Any>) -> Result<u64, Error> {
        let node = self.node.as_str();
        let mut n = 0;
        for w in self
            .rows(
                "SELECT id, spec, start_ms, created_ms, created_by, forced_why, cancelled, done,
                     revision, updated_ms FROM windows WHERE node = $1 ORDER BY id",
            )
            .await?
        {
            let (Some(old), Some(spec), Some(start), Some(created), Some(by)) = (
                col::<i64>(&w, "id"),
                col::<String>(&w, "spec"),
                col::<i64>(&w, "start_ms"),
                col::<i64>(&w, "created_ms"),
                col::<String>(&w, "created_by"),
            ) else {
                continue;
            };
            let new: i64 = sqlx::query(
                "INSERT INTO windows (node, spec, start_ms, created_ms, created_by, forced_why,
                     cancelled, done, revision, updated_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            )
            .bind(node)
            .bind(spec)
            .bind(start)
            .bind(created)
            .bind(by)
            .bind(col::<Option<String>>(&w, "forced_why").flatten())
            .bind(flag(&w, "cancelled").unwrap_or(false))
            .bind(flag(&w, "done").unwrap_or(false))
            .bind(col::<i64>(&w, "revision").unwrap_or(0))
            .bind(col::<i64>(&w, "updated_ms").unwrap_or(created))
            .fetch_one(&mut **tx)
            .await
            .map_err(q("copy a window"))?
            .try_get("id")
            .map_err(q("read the copied window's id"))?;
            let steps = sqlx::query(
                "SELECT occurrence_ms, step_key, step, at_ms, by_who FROM window_steps
                 WHERE window_id = $1",
            )
            .bind(old)
            .fetch_all(&self.pool)
            .await
            .map_err(q("read window steps to copy"))?;
            for st in steps {
                sqlx::query(
                    "INSERT INTO window_steps (window_id, occurrence_ms, step_key, step, at_ms, by_who)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(new)
                .bind(col::<i64>(&st, "occurrence_ms"))
                .bind(col::<String>(&st, "step_key"))
                .bind(col::<String>(&st, "step"))
                .bind(col::<i64>(&st, "at_ms"))
                .bind(col::<Option<String>>(&st, "by_who").flatten())
                .execute(&mut **tx)
                .await
                .map_err(q("copy a window step"))?;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Every row of this node in `table`, `columns` as they are (text or integers).
    async fn copy_rows(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
        table: &str,
        columns: &[&str],
    ) -> Result<u64, Error> {
        let list = columns.join(", ");
        let params: Vec<String> = (2..columns.len() + 2).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO {table} (node, {list}) VALUES ($1, {})",
            params.join(", ")
        );
        let mut n = 0;
        for r in self
            .rows(&format!("SELECT {list} FROM {table} WHERE node = $1"))
            .await?
        {
            let mut query = sqlx::query(&insert).bind(&self.node);
            for c in columns {
                // Integers or text: try the one, then the other (no warning for the first).
                query = match r.try_get::<i64, _>(*c) {
                    Ok(v) => query.bind(v),
                    Err(_) => query.bind(col::<String>(&r, c)),
                };
            }
            query.execute(&mut **tx).await.map_err(q("copy rollups"))?;
            n += 1;
        }
        Ok(n)
    }

    /// Every row `sql` (with this node as `$1`) selects; for the small tables.
    async fn rows(&self, sql: &str) -> Result<Vec<sqlx::any::AnyRow>, Error> {
        sqlx::query::<Any>(sql)
            .bind(&self.node)
            .fetch_all(&self.pool)
            .await
            .map_err(q("read rows to copy"))
    }
}
