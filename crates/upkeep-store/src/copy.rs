//! Copying one node's history from one store to another: `upkeep store copy --to
//! postgres://...` moves a SQLite history to PostgreSQL (any engine to any works the same).
//!
//! Everything of the node is copied (desired states, events with their numbers, incidents with
//! what people wrote about them, config revisions, consumer cursors, maintenance windows and
//! their steps, rollups and probe latency, subscribers, feedback, admin users and the outbox)
//! in one transaction on the target, so a copy that fails leaves nothing half-done. Events keep
//! their sequence numbers (what the API shows as their ids); incidents, their updates,
//! windows and revisions get new numbers in the target, since a shared database numbers them
//! across nodes. Admin sessions are not copied: people sign in again. The target must hold
//! nothing of this node yet. The daemon must not run meanwhile (the CLI checks its lock): this
//! reads a still history.

use sqlx::{Any, Row};

use crate::sql::{SqlStore, col, flag, q};
use crate::{Error, EventLog};
use Ty::{Int, MaybeInt, MaybeText, Text};

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
    /// Updates people wrote to incidents.
    pub updates: u64,
    pub subscribers: u64,
    pub feedback: u64,
    /// Admin users (with their password hashes).
    pub users: u64,
    /// Outbox rows: notices sent, failed and still to send.
    pub notices: u64,
}

/// A column's type, for copying it as it is (a NULL is bound with its column's type).
#[derive(Clone, Copy)]
enum Ty {
    Int,
    Text,
    MaybeInt,
    MaybeText,
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

        let (incidents, updates) = self.copy_incidents(&mut tx).await?;
        copied.incidents = incidents;
        copied.updates = updates;

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
        let rollups: [(&str, &[(&str, Ty)]); 3] = [
            (
                "rollup_marks",
                &[("rolled_until_ms", Int), ("raw_since_ms", Int)],
            ),
            (
                "rollups",
                &[
                    ("span", Text),
                    ("start_ms", Int),
                    ("service", Text),
                    ("available_ms", Int),
                    ("outage_ms", Int),
                    ("maintenance_ms", Int),
                    ("unknown_ms", Int),
                    ("drills", Int),
                    ("drill_ms", Int),
                    ("incidents", Int),
                    ("repaired", Int),
                    ("repair_ms", Int),
                    ("heals", Int),
                    ("interventions", Int),
                ],
            ),
            (
                "latency",
                &[("service", Text), ("hour_ms", Int), ("counts", Text)],
            ),
        ];
        for (table, columns) in rollups {
            copied.rollups += self.copy_rows(&mut tx, table, columns, "1").await?;
        }
        copied.subscribers = self
            .copy_rows(
                &mut tx,
                "subscribers",
                &[
                    ("email", Text),
                    ("services", Text),
                    ("lang", Text),
                    ("created_ms", Int),
                    ("confirmed_ms", MaybeInt),
                ],
                "id",
            )
            .await?;
        copied.feedback = self
            .copy_rows(
                &mut tx,
                "feedback",
                &[
                    ("message", Text),
                    ("email", MaybeText),
                    ("service", MaybeText),
                    ("lang", Text),
                    ("address", MaybeText),
                    ("created_ms", Int),
                ],
                "id",
            )
            .await?;
        copied.users = self
            .copy_rows(
                &mut tx,
                "users",
                &[("name", Text), ("password", Text), ("created_ms", Int)],
                "id",
            )
            .await?;
        // Sent rows too: their idempotency keys keep a notice planned again from going twice.
        copied.notices = self
            .copy_rows(
                &mut tx,
                "outbox",
                &[
                    ("channel", Text),
                    ("recipient", Text),
                    ("kind", Text),
                    ("subject", Text),
                    ("notice", Text),
                    ("idem_key", Text),
                    ("state", Text),
                    ("attempts", Int),
                    ("takeovers", Int),
                    ("due_ms", Int),
                    ("next_ms", Int),
                    ("lease_owner", MaybeText),
                    ("lease_until_ms", MaybeInt),
                    ("last_error", MaybeText),
                    ("delivery", MaybeText),
                    ("created_ms", Int),
                    ("sent_ms", MaybeInt),
                    ("digest", Int),
                ],
                "id",
            )
            .await?;
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

    /// Incidents, with their titles, priorities, post-mortems and who opened and resolved
    /// them, and their updates (which follow the incidents' new numbers).
    async fn copy_incidents(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
    ) -> Result<(u64, u64), Error> {
        let node = self.node.as_str();
        let (mut incidents, mut updates) = (0, 0);
        for r in self
            .rows(
                "SELECT id, service, started_ms, opened_ms, resolved_ms, reason, drill, title,
                     priority, opened_by, resolved_by, postmortem
                 FROM incidents WHERE node = $1 ORDER BY id",
            )
            .await?
        {
            let (Some(old), Some(service), Some(started), Some(opened), Some(reason), Some(drill)) = (
                col::<i64>(&r, "id"),
                col::<String>(&r, "service"),
                col::<i64>(&r, "started_ms"),
                col::<i64>(&r, "opened_ms"),
                col::<String>(&r, "reason"),
                flag(&r, "drill"),
            ) else {
                continue;
            };
            let text = |c: &str| col::<Option<String>>(&r, c).flatten();
            let new: i64 = sqlx::query(
                "INSERT INTO incidents (node, service, started_ms, opened_ms, resolved_ms, reason,
                     drill, title, priority, opened_by, resolved_by, postmortem)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
            )
            .bind(node)
            .bind(service)
            .bind(started)
            .bind(opened)
            .bind(col::<Option<i64>>(&r, "resolved_ms").flatten())
            .bind(reason)
            .bind(drill)
            .bind(text("title"))
            .bind(text("priority"))
            .bind(text("opened_by"))
            .bind(text("resolved_by"))
            .bind(text("postmortem"))
            .fetch_one(&mut **tx)
            .await
            .map_err(q("copy an incident"))?
            .try_get("id")
            .map_err(q("read the copied incident's id"))?;
            incidents += 1;
            let written = sqlx::query(
                "SELECT at_ms, status, message, by_who FROM incident_updates
                 WHERE incident_id = $1 ORDER BY id",
            )
            .bind(old)
            .fetch_all(&self.pool)
            .await
            .map_err(q("read incident updates to copy"))?;
            for u in written {
                sqlx::query(
                    "INSERT INTO incident_updates (node, incident_id, at_ms, status, message, by_who)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(node)
                .bind(new)
                .bind(col::<i64>(&u, "at_ms"))
                .bind(col::<String>(&u, "status"))
                .bind(col::<String>(&u, "message"))
                .bind(col::<String>(&u, "by_who"))
                .execute(&mut **tx)
                .await
                .map_err(q("copy an incident update"))?;
                updates += 1;
            }
        }
        Ok((incidents, updates))
    }

    /// Every row of this node in `table`, its `columns` as they are, in `order` (row ids
    /// are the target's own, in the same order).
    async fn copy_rows(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
        table: &str,
        columns: &[(&str, Ty)],
        order: &str,
    ) -> Result<u64, Error> {
        let list = columns
            .iter()
            .map(|(c, _)| *c)
            .collect::<Vec<_>>()
            .join(", ");
        let params: Vec<String> = (2..columns.len() + 2).map(|i| format!("${i}")).collect();
        let insert = format!(
            "INSERT INTO {table} (node, {list}) VALUES ($1, {})",
            params.join(", ")
        );
        let mut n = 0;
        for r in self
            .rows(&format!(
                "SELECT {list} FROM {table} WHERE node = $1 ORDER BY {order}"
            ))
            .await?
        {
            let mut query = sqlx::query(&insert).bind(&self.node);
            for &(c, ty) in columns {
                query = match ty {
                    Int => query.bind(col::<i64>(&r, c)),
                    Text => query.bind(col::<String>(&r, c)),
                    MaybeInt => query.bind(col::<Option<i64>>(&r, c).flatten()),
                    MaybeText => query.bind(col::<Option<String>>(&r, c).flatten()),
                };
            }
            query.execute(&mut **tx).await.map_err(q("copy a row"))?;
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

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use upkeep_core::incident::{IncidentPriority, IncidentStatus, Postmortem, WrittenPostmortem};
    use upkeep_core::{Principal, ServiceName, Via};

    use crate::{
        Accounts, Feedback, NewFeedback, NewNotice, Notes, OpenByHand, Outbox, Planned, Store,
        Subscribers, WriteUpdate,
    };

    fn nothing(_: i64) -> Planned {
        Planned {
            notices: Vec::new(),
            fanout: None,
        }
    }

    /// What people wrote and what the daemon owes them travels too: an incident's title,
    /// updates and post-mortem, subscribers (confirmed or not), feedback, admin users and
    /// the outbox, with its NULLs.
    #[tokio::test]
    async fn what_people_wrote_and_the_outbox_are_copied() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let from = crate::test_store(a.path()).await;
        let into = crate::test_store(b.path()).await;
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let web = ServiceName::new("web").unwrap();
        let alice = Principal {
            name: "alice".into(),
            via: Via::Socket,
            from: None,
        };
        let id = from
            .open_by_hand(OpenByHand {
                service: &web,
                title: "payments provider down",
                priority: Some(IncidentPriority::P2),
                message: Some("their API answers 503"),
                at: t(0),
                by: &alice,
                plan: &nothing,
            })
            .await
            .unwrap();
        from.write_update(WriteUpdate {
            incident: id,
            at: t(60),
            status: IncidentStatus::Resolved,
            message: Some("they fixed it"),
            by: &alice,
            plan: &nothing,
        })
        .await
        .unwrap();
        let pm = WrittenPostmortem {
            postmortem: Postmortem {
                summary: "s".into(),
                root_cause: "r".into(),
                whys: vec!["w".into(); 5],
                actions: vec!["a".into()],
            },
            at: t(90),
            by: alice.clone(),
        };
        from.set_postmortem(id, &pm).await.unwrap();
        for email in ["a@example.com", "b@example.com"] {
            from.subscribe(email, &["web".into()], "zh-CN", t(0), t(-1), t(-1))
                .await
                .unwrap();
        }
        let first = from.subscribers().await.unwrap()[0].clone();
        from.confirm_subscriber(first.id, &first.email, first.created, t(5))
            .await
            .unwrap();
        from.add_feedback(
            NewFeedback {
                message: "<b>slow</b>",
                email: None,
                service: Some("web"),
                lang: "en",
                address: None,
            },
            t(7),
        )
        .await
        .unwrap();
        from.add_user("alice", "$argon2id$fake", t(8))
            .await
            .unwrap();
        from.add_notices(
            &[NewNotice {
                channel: "mail".into(),
                recipient: "ops@example.com".into(),
                kind: "incident_opened".into(),
                subject: "incident:web:0".into(),
                notice: "{}".into(),
                key: "k1".into(),
                digest: None,
            }],
            t(9),
        )
        .await
        .unwrap();

        let copied = from.copy_into(&into).await.unwrap();
        assert_eq!(
            (
                copied.incidents,
                copied.updates,
                copied.subscribers,
                copied.feedback,
                copied.users,
                copied.notices
            ),
            (1, 2, 2, 1, 1, 1),
            "{copied:?}"
        );
        let moved = into.incidents(None, 10).await.unwrap();
        assert_eq!(moved.len(), 1, "{moved:?}");
        let notes = into.incident_notes(moved[0].id).await.unwrap().unwrap();
        let before = from.incident_notes(id).await.unwrap().unwrap();
        assert_eq!(notes, before);
        assert_eq!(notes.postmortem, Some(pm));
        assert_eq!(
            notes.updates.len(),
            2,
            "the opening message and the resolution: {notes:?}"
        );
        let strip = |v: Vec<crate::Subscriber>| {
            v.into_iter()
                .map(|s| (s.email, s.services, s.lang, s.created, s.confirmed))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            strip(into.subscribers().await.unwrap()),
            strip(from.subscribers().await.unwrap())
        );
        let said = into.feedback(10).await.unwrap();
        assert_eq!(said[0].message, "<b>slow</b>");
        assert_eq!(said[0].email, None);
        assert_eq!(
            into.password_hash("alice").await.unwrap().as_deref(),
            Some("$argon2id$fake")
        );
        let rows = into.outbox(None, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].key, "k1");
        assert_eq!(rows[0].recipient, "ops@example.com");
    }
}
