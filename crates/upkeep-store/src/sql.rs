//! The one implementation of [`Store`] over both engines: every query is written once, in SQL
//! that SQLite and PostgreSQL both understand (`$1` parameters, BIGINT milliseconds,
//! `ON CONFLICT`, `RETURNING`, no JSON functions), and run through sqlx's `Any` driver.
//!
//! It does not open databases (`sqlite.rs` and `postgres.rs` do, each with its own options and
//! migrations) and does not decide what an event changes (`derive.rs` does). Every query is
//! scoped to this daemon's node. Rows are read with `try_get`: a bad row is skipped and logged,
//! never a panic (with `panic = "abort"` one bad row would end every service, issue 14).

use std::collections::BTreeMap;

use async_trait::async_trait;
use sqlx::AnyPool;
use sqlx::any::AnyRow;
use sqlx::{Any, Row};
use upkeep_core::api::{Incident, IncidentDetail, StoredEvent};
use upkeep_core::report::{DrillSpan, IncidentSpan, ReportInputs, Transition};
use upkeep_core::{Committed, Desired, Event, EventKind, ServiceName, State, Unfinished};

use crate::derive::{self, IncidentChange};
use crate::{Engine, Error, EventLog, Node, ServiceRecord, Store};

pub struct SqlStore {
    pub(crate) pool: AnyPool,
    pub(crate) engine: Engine,
    /// This daemon's node id: every row it writes carries it, every query reads only its own.
    pub(crate) node: String,
    /// At least the stored rollup mark (milliseconds): `append` moves the mark back only for
    /// events before it, so the usual batch (about now) costs no extra statement.
    pub(crate) rolled_until: std::sync::atomic::AtomicI64,
    /// The daemon's hold on its node id (PostgreSQL; see `hold.rs`), let go when dropped.
    pub(crate) hold: Option<crate::hold::NodeHold>,
}

/// Most rows in one INSERT: 8 parameters each, well under both engines' limits (SQLite's
/// 32,766, PostgreSQL's 65,535). A power of two (see [`chunks`]).
const INSERT_ROWS: usize = 512;

/// `0..n` cut into runs whose lengths are powers of two up to [`INSERT_ROWS`], longest first:
/// the row counts a multi-row statement is written for. A statement's text is then one of a
/// few (ten), and each is prepared once per connection (sqlx caches prepared statements by
/// their text) instead of parsed again for nearly every batch, as one text per batch length
/// was (a fifth of a cold start's samples were SQLite parsing and binding them).
fn chunks(n: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        let left = n - at;
        if left == 0 {
            return None;
        }
        let len = INSERT_ROWS.min(1 << left.ilog2());
        at += len;
        Some(at - len..at)
    })
}

/// `head`, then `rows` rows of `columns` parameters, then `tail`: `?` on SQLite (bound by
/// position: SQLite looks a named parameter up in a list, once per parameter bound), `$n` on
/// PostgreSQL (which takes nothing else).
fn values_sql(engine: Engine, head: &str, columns: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 6);
    sql.push_str(head);
    for row in 0..rows {
        sql.push_str(if row == 0 { " (" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            match engine {
                Engine::Sqlite => sql.push('?'),
                Engine::Postgres => {
                    use std::fmt::Write;
                    let _ = write!(sql, "${}", row * columns + c + 1);
                }
            }
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// The texts of one multi-row statement, for each engine and each length [`chunks`] makes:
/// written once, at their first use.
struct Texts {
    head: &'static str,
    columns: usize,
    tail: &'static str,
    made: std::sync::OnceLock<[Vec<String>; 2]>,
}

impl Texts {
    const fn new(head: &'static str, columns: usize, tail: &'static str) -> Self {
        Self {
            head,
            columns,
            tail,
            made: std::sync::OnceLock::new(),
        }
    }

    /// The text for `rows` rows, a length [`chunks`] makes.
    fn get(&self, engine: Engine, rows: usize) -> &str {
        let made = self.made.get_or_init(|| {
            [Engine::Sqlite, Engine::Postgres].map(|engine| {
                (0..=INSERT_ROWS.ilog2())
                    .map(|k| values_sql(engine, self.head, self.columns, 1 << k, self.tail))
                    .collect()
            })
        });
        debug_assert!(rows.is_power_of_two() && rows <= INSERT_ROWS);
        let texts = match engine {
            Engine::Sqlite => &made[0],
            Engine::Postgres => &made[1],
        };
        &texts[rows.ilog2() as usize]
    }
}

static INSERT_EVENTS: Texts = Texts::new(
    "INSERT INTO events (node, seq, at_ms, service, kind, intervention, detail, to_state) VALUES",
    8,
    "ON CONFLICT (node, seq) DO NOTHING RETURNING seq",
);

static UPSERT_RUNNING: Texts = Texts::new(
    "INSERT INTO services (node, name, pid, start_ticks, updated_ms) VALUES",
    5,
    "ON CONFLICT (node, name) DO UPDATE SET pid = excluded.pid,
         start_ticks = excluded.start_ticks, updated_ms = excluded.updated_ms",
);

impl Engine {
    /// Inserts `rows` events (a length [`chunks`] makes), answering the numbers of the new.
    fn insert_events(self, rows: usize) -> &'static str {
        INSERT_EVENTS.get(self, rows)
    }

    /// Records the last process of `rows` services (a length [`chunks`] makes).
    fn upsert_running(self, rows: usize) -> &'static str {
        UPSERT_RUNNING.get(self, rows)
    }
}

pub(crate) fn q(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Query { what, source }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl SqlStore {
    /// This node's last config revision: its id, path and text.
    async fn last_revision_row(&self) -> Result<Option<(i64, String, String)>, Error> {
        let last = sqlx::query(
            "SELECT id, path, source FROM config_revisions WHERE node = $1 ORDER BY id DESC LIMIT 1",
        )
        .bind(&self.node)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("select the last config revision"))?;
        Ok(last.and_then(|r| Some((col(&r, "id")?, col(&r, "path")?, col(&r, "source")?))))
    }

    /// Records this node (its name may have changed) and claims rows stored before rows had
    /// nodes (SQLite's migration 0005 gives them node ''; the file is in this node's data dir).
    pub(crate) async fn claim(pool: AnyPool, engine: Engine, node: &Node) -> Result<Self, Error> {
        let mut tx = pool.begin().await.map_err(q("begin"))?;
        sqlx::query(
            "INSERT INTO nodes (id, name, seen_ms) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, seen_ms = excluded.seen_ms",
        )
        .bind(&node.id)
        .bind(&node.name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(q("record this node"))?;
        for table in ["services", "events", "incidents", "config_revisions"] {
            sqlx::query(&format!("UPDATE {table} SET node = $1 WHERE node = ''"))
                .bind(&node.id)
                .execute(&mut *tx)
                .await
                .map_err(q("claim rows stored before nodes"))?;
        }
        tx.commit().await.map_err(q("commit"))?;
        Ok(Self {
            pool,
            engine,
            node: node.id.clone(),
            rolled_until: std::sync::atomic::AtomicI64::new(i64::MAX),
            hold: None,
        })
    }

    async fn apply(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
        change: IncidentChange<'_>,
    ) -> Result<(), Error> {
        let node = self.node.as_str();
        let query = match change {
            IncidentChange::Open {
                service,
                since_ms,
                opened_ms,
                reason,
                drill,
            } => sqlx::query(
                "INSERT INTO incidents (node, service, started_ms, opened_ms, reason, drill)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (node, service, started_ms) DO NOTHING",
            )
            .bind(node)
            .bind(service)
            .bind(since_ms)
            .bind(opened_ms)
            .bind(reason)
            .bind(drill),
            IncidentChange::Resolve {
                service,
                since_ms,
                at_ms,
            } => sqlx::query(
                "UPDATE incidents SET resolved_ms = $1
                 WHERE node = $2 AND service = $3 AND started_ms = $4 AND resolved_ms IS NULL
                     AND opened_by IS NULL",
            )
            .bind(at_ms)
            .bind(node)
            .bind(service)
            .bind(since_ms),
            // One a person resolved stays resolved: the probes' reopening of that outage
            // changes nothing (their next outage is an incident of its own).
            IncidentChange::Reopen { service, since_ms } => sqlx::query(
                "UPDATE incidents SET resolved_ms = NULL
                 WHERE node = $1 AND service = $2 AND started_ms = $3 AND resolved_by IS NULL",
            )
            .bind(node)
            .bind(service)
            .bind(since_ms),
        };
        query
            .execute(&mut **tx)
            .await
            .map_err(q("record what an event changed"))?;
        Ok(())
    }
}

#[async_trait]
impl EventLog for SqlStore {
    async fn append(&self, first_seq: u64, events: &[Event]) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        // A retried batch whose first try was stored after all (the answer was lost) is
        // stored once: its numbers are there already, and `RETURNING` names only the rows
        // that are new, so nothing is changed twice.
        let mut new = std::collections::HashSet::new();
        for rows in chunks(events.len()) {
            let part = &events[rows.clone()];
            let first = first_seq + rows.start as u64;
            let mut insert = sqlx::query(self.engine.insert_events(part.len()));
            for (i, e) in part.iter().enumerate() {
                insert = insert
                    .bind(&self.node)
                    .bind((first + i as u64) as i64)
                    .bind(e.at.as_millisecond())
                    .bind(e.service.as_ref().map(ServiceName::as_str))
                    .bind(e.kind.tag())
                    .bind(e.kind.is_intervention())
                    .bind(serde_json::to_string(&e.kind).expect("events serialise"))
                    .bind(derive::to_state(e));
            }
            let rows = insert
                .fetch_all(&mut *tx)
                .await
                .map_err(q("insert events"))?;
            new.extend(rows.iter().filter_map(|r| col::<i64>(r, "seq")));
        }
        let fresh = events
            .iter()
            .enumerate()
            .filter(|(i, _)| new.contains(&((first_seq + *i as u64) as i64)))
            .map(|(_, e)| e);
        let earliest = fresh.clone().map(derive::earliest_ms).min();
        if let Some(earliest) = earliest {
            self.mark_dirty(&mut tx, earliest).await?;
        }
        let changes = derive::changes(fresh);
        for change in changes.incidents {
            self.apply(&mut tx, change).await?;
        }
        // Each service's last process in a few statements (`changes` keeps one per service:
        // a row may be updated once per statement). A cold start of 100 services wrote 100.
        for rows in chunks(changes.running.len()) {
            let mut upsert = sqlx::query(self.engine.upsert_running(rows.len()));
            for r in &changes.running[rows] {
                upsert = upsert
                    .bind(&self.node)
                    .bind(r.service)
                    .bind(r.process.map(|p| p.0))
                    .bind(r.process.map(|p| p.1))
                    .bind(r.at_ms);
            }
            upsert
                .execute(&mut *tx)
                .await
                .map_err(q("record what an event changed"))?;
        }
        tx.commit().await.map_err(q("commit events"))
    }

    async fn last_seq(&self) -> Result<u64, Error> {
        let row = sqlx::query("SELECT MAX(seq) AS seq FROM events WHERE node = $1")
            .bind(&self.node)
            .fetch_one(&self.pool)
            .await
            .map_err(q("read the last sequence number"))?;
        let seq: Option<i64> = row
            .try_get("seq")
            .map_err(q("read the last sequence number"))?;
        Ok(seq.unwrap_or(0).max(0) as u64)
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn events(
        &self,
        service: Option<&ServiceName>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, Error> {
        let rows = sqlx::query(
            "SELECT seq AS id, at_ms, service, kind, intervention, detail FROM events
             WHERE node = $1 AND ($2 IS NULL OR service = $2) ORDER BY seq DESC LIMIT $3",
        )
        .bind(&self.node)
        .bind(service.map(ServiceName::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(q("select events"))?;
        Ok(rows.iter().filter_map(stored_event).collect())
    }

    async fn incidents(
        &self,
        service: Option<&ServiceName>,
        limit: u32,
    ) -> Result<Vec<Incident>, Error> {
        let rows = sqlx::query(
            "SELECT id, service, started_ms, resolved_ms, reason, drill, title FROM incidents
             WHERE node = $1 AND ($2 IS NULL OR service = $2) ORDER BY started_ms DESC LIMIT $3",
        )
        .bind(&self.node)
        .bind(service.map(ServiceName::as_str))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(q("select incidents"))?;
        let now = now_ms();
        Ok(rows.iter().filter_map(|r| incident(r, now)).collect())
    }

    async fn incident(&self, id: i64, limit: u32) -> Result<Option<IncidentDetail>, Error> {
        let row = sqlx::query(
            "SELECT id, service, started_ms, resolved_ms, reason, drill FROM incidents
             WHERE node = $1 AND id = $2",
        )
        .bind(&self.node)
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(q("select an incident"))?;
        let now = now_ms();
        let Some(incident) = row.as_ref().and_then(|r| incident(r, now)) else {
            return Ok(None);
        };
        let end = incident.resolved.map_or(now, |t| t.as_millisecond());
        let timeline = sqlx::query(
            "SELECT seq AS id, at_ms, service, kind, intervention, detail FROM events
             WHERE node = $1 AND service = $2 AND at_ms >= $3 AND at_ms <= $4 ORDER BY seq LIMIT $5",
        )
        .bind(&self.node)
        .bind(incident.service.as_str())
        .bind(incident.started.as_millisecond())
        .bind(end)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(q("select an incident's timeline"))?
        .iter()
        .filter_map(stored_event)
        .collect();
        let notes = crate::Notes::incident_notes(self, id)
            .await?
            .unwrap_or_default();
        Ok(Some(IncidentDetail {
            incident,
            timeline,
            notes,
        }))
    }

    async fn report_inputs(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<ReportInputs, Error> {
        let (from, to) = (from.as_millisecond(), to.as_millisecond());
        let node = self.node.as_str();
        let ts = |ms: i64| jiff::Timestamp::from_millisecond(ms).ok();
        let name = |s: String| ServiceName::new(s).ok();
        // Each service's state at `from` (its last change before it: one index seek per
        // service, the services found by a loose index scan), then every change within the
        // period, by time (a change stored late, as the unwatched time a daemon that started
        // without its store records once it is back, goes where it happened). What came
        // before is never read, so a report costs the same after a year.
        let rows = sqlx::query(
            "WITH RECURSIVE s(name) AS (
                 SELECT MIN(service) FROM events WHERE node = $3 AND kind = 'status_changed'
                 UNION ALL
                 SELECT (SELECT MIN(service) FROM events
                         WHERE node = $3 AND kind = 'status_changed' AND service > s.name)
                 FROM s WHERE s.name IS NOT NULL)
             SELECT e.id, e.service, e.at_ms, e.to_state FROM s JOIN events e ON e.id = (
                 SELECT id FROM events
                 WHERE node = $3 AND kind = 'status_changed' AND service = s.name AND at_ms < $1
                 ORDER BY at_ms DESC, id DESC LIMIT 1)
             UNION ALL
             SELECT id, service, at_ms, to_state FROM events
             WHERE node = $3 AND kind = 'status_changed' AND at_ms >= $1 AND at_ms < $2
                 AND service IS NOT NULL
             ORDER BY at_ms, id",
        )
        .bind(from)
        .bind(to)
        .bind(node)
        .fetch_all(&self.pool)
        .await
        .map_err(q("select status changes"))?;
        let transitions = rows
            .into_iter()
            .filter_map(|r| {
                let to: State =
                    serde_json::from_value(serde_json::Value::String(col(&r, "to_state")?)).ok()?;
                Some(Transition {
                    service: name(col(&r, "service")?)?,
                    at: ts(col(&r, "at_ms")?)?,
                    to,
                })
            })
            .collect();
        let incidents = sqlx::query(
            "SELECT service, started_ms, resolved_ms FROM incidents
             WHERE node = $3 AND started_ms >= $1 AND started_ms < $2",
        )
        .bind(from)
        .bind(to)
        .bind(node)
        .fetch_all(&self.pool)
        .await
        .map_err(q("select incidents"))?
        .into_iter()
        .filter_map(|r| {
            Some(IncidentSpan {
                service: name(col(&r, "service")?)?,
                started: ts(col(&r, "started_ms")?)?,
                resolved: col::<Option<i64>>(&r, "resolved_ms")?.and_then(ts),
            })
        })
        .collect();
        let times = |sql: &'static str, what: &'static str| async move {
            Ok::<_, Error>(
                sqlx::query(sql)
                    .bind(from)
                    .bind(to)
                    .bind(node)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q(what))?
                    .into_iter()
                    .filter_map(|r| Some((name(col(&r, "service")?)?, ts(col(&r, "at_ms")?)?)))
                    .collect::<Vec<_>>(),
            )
        };
        let heals = times(
            "SELECT service, at_ms FROM events WHERE node = $3 AND kind = 'restart_scheduled'
                 AND at_ms >= $1 AND at_ms < $2 AND service IS NOT NULL",
            "select automatic restarts",
        )
        .await?;
        let interventions = times(
            "SELECT service, at_ms FROM events WHERE node = $3 AND intervention = TRUE
                 AND at_ms >= $1 AND at_ms < $2 AND service IS NOT NULL",
            "select interventions",
        )
        .await?;
        // Drills that end after `from` (a drill is recorded when it ends) and began before
        // `to`. Few rows, so their times are read from the event's JSON here, not in SQL.
        let drills = sqlx::query(
            "SELECT service, at_ms, detail FROM events
             WHERE node = $2 AND kind = 'drill_completed' AND at_ms >= $1 AND service IS NOT NULL",
        )
        .bind(from)
        .bind(node)
        .fetch_all(&self.pool)
        .await
        .map_err(q("select drills"))?
        .into_iter()
        .filter_map(|r| {
            let detail: serde_json::Value = serde_json::from_str(&col::<String>(&r, "detail")?)
                .inspect_err(|e| tracing::warn!("skipping a drill with bad detail: {e}"))
                .ok()?;
            let recovered = jiff::SignedDuration::from_millis(detail["recovered_ms"].as_i64()?);
            // Whole milliseconds, like every event time here (recovered_ms is counted so).
            let started = match detail["injected_at"].as_str() {
                Some(t) => ts(t.parse::<jiff::Timestamp>().ok()?.as_millisecond())?,
                None => ts(col(&r, "at_ms")?)?.checked_sub(recovered).ok()?,
            };
            Some(DrillSpan {
                service: name(col(&r, "service")?)?,
                started,
                ended: started.checked_add(recovered).ok()?,
            })
        })
        .filter(|d| d.started.as_millisecond() < to)
        .collect();
        Ok(ReportInputs {
            transitions,
            incidents,
            heals,
            interventions,
            drills,
        })
    }

    async fn set_desired(&self, service: &ServiceName, desired: Desired) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO services (node, name, desired, updated_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (node, name) DO UPDATE SET desired = excluded.desired,
                 updated_ms = excluded.updated_ms",
        )
        .bind(&self.node)
        .bind(service.as_str())
        .bind(desired.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(q("set desired state"))?;
        Ok(())
    }

    async fn services(&self) -> Result<Vec<ServiceRecord>, Error> {
        let rows = sqlx::query(
            "SELECT name, desired, pid, start_ticks FROM services WHERE node = $1 ORDER BY name",
        )
        .bind(&self.node)
        .fetch_all(&self.pool)
        .await
        .map_err(q("select services"))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let name = ServiceName::new(col::<String>(&r, "name")?).ok()?;
                let desired =
                    Desired::parse(&col::<String>(&r, "desired")?).unwrap_or(Desired::Running);
                let pid: Option<i64> = col(&r, "pid")?;
                let ticks: Option<i64> = col(&r, "start_ticks")?;
                let running = pid.zip(ticks).map(|(p, t)| (p as u32, t as u64));
                Some(ServiceRecord {
                    name,
                    desired,
                    running,
                })
            })
            .collect())
    }

    async fn running_before(
        &self,
        before: jiff::Timestamp,
    ) -> Result<BTreeMap<ServiceName, (u32, u64)>, Error> {
        // Read from the events, not from `services`: by the time a daemon that started with
        // the store away reads this, its own starts have replaced the row.
        let last = sqlx::query(
            "SELECT service, detail FROM events WHERE id IN (
                 SELECT MAX(id) FROM events
                 WHERE node = $1 AND kind IN ('started', 'exited', 'stale_stopped')
                     AND service IS NOT NULL AND at_ms < $2
                 GROUP BY service)",
        )
        .bind(&self.node)
        .bind(before.as_millisecond())
        .fetch_all(&self.pool)
        .await
        .map_err(q("select the last starts and ends"))?;
        Ok(last
            .iter()
            .filter_map(|r| {
                let name = ServiceName::new(col::<String>(r, "service")?).ok()?;
                match serde_json::from_str(&col::<String>(r, "detail")?).ok()? {
                    EventKind::Started {
                        pid, start_ticks, ..
                    } => Some((name, (pid, start_ticks))),
                    _ => None,
                }
            })
            .collect())
    }

    async fn save_revision(&self, path: &str, source: &str) -> Result<i64, Error> {
        // The same text from the same file as last time is the same revision: a config holds
        // secrets, and 54 reloads used to keep 54 copies of them.
        if let Some((id, last_path, last_source)) = self.last_revision_row().await?
            && last_path == path
            && last_source == source
        {
            return Ok(id);
        }
        let row = sqlx::query(
            "INSERT INTO config_revisions (node, applied_ms, path, source) VALUES ($1, $2, $3, $4)
             RETURNING id",
        )
        .bind(&self.node)
        .bind(now_ms())
        .bind(path)
        .bind(source)
        .fetch_one(&self.pool)
        .await
        .map_err(q("insert config revision"))?;
        row.try_get("id").map_err(q("read the revision id"))
    }

    async fn last_revision(&self) -> Result<Option<(String, String)>, Error> {
        Ok(self
            .last_revision_row()
            .await?
            .map(|(_, path, source)| (path, source)))
    }

    async fn revision_count(&self) -> Result<i64, Error> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM config_revisions WHERE node = $1")
            .bind(&self.node)
            .fetch_one(&self.pool)
            .await
            .map_err(q("count config revisions"))?;
        row.try_get("n").map_err(q("count config revisions"))
    }

    async fn unfinished(&self) -> Result<BTreeMap<ServiceName, Unfinished>, Error> {
        let mut out: BTreeMap<ServiceName, Unfinished> = BTreeMap::new();
        // The probes' incidents only: one a person opened (`opened_by`) is no outage the
        // status machine saw, and only a person resolves it. Taken up, it would be
        // "resolved" (and mailed so) by the next daemon to see its service up: every
        // `upkeep upgrade`, so every package update (issue 16).
        let open = sqlx::query(
            "SELECT service, started_ms, drill FROM incidents
             WHERE node = $1 AND resolved_ms IS NULL AND opened_by IS NULL
             ORDER BY started_ms",
        )
        .bind(&self.node)
        .fetch_all(&self.pool)
        .await
        .map_err(q("select open incidents"))?;
        for r in open {
            let (Some(name), Some(since), Some(drill)) = (
                col::<String>(&r, "service").and_then(|n| ServiceName::new(n).ok()),
                col::<i64>(&r, "started_ms")
                    .and_then(|m| jiff::Timestamp::from_millisecond(m).ok()),
                flag(&r, "drill"),
            ) else {
                continue;
            };
            // The latest, if a crash left several.
            out.entry(name).or_default().incident = Some((since, drill));
        }
        // A probes' incident a person resolved while its outage went on is that outage's
        // last word until the service has been up (or a run of a job, or a run that ended
        // for good, has ended since): only each service's latest, and only if nothing came
        // after it.
        let by_hand = sqlx::query(
            "SELECT i.service, i.started_ms FROM incidents i
             WHERE i.node = $1 AND i.opened_by IS NULL AND i.resolved_by IS NOT NULL
                 AND i.started_ms = (SELECT MAX(j.started_ms) FROM incidents j
                     WHERE j.node = $1 AND j.service = i.service AND j.opened_by IS NULL)
                 AND NOT EXISTS (SELECT 1 FROM events e
                     WHERE e.node = $1 AND e.kind = 'status_changed' AND e.service = i.service
                         AND e.to_state IN ('up', 'degraded', 'exited')
                         AND e.at_ms >= i.resolved_ms)",
        )
        .bind(&self.node)
        .fetch_all(&self.pool)
        .await
        .map_err(q("select incidents resolved by hand"))?;
        for r in by_hand {
            let (Some(name), Some(since)) = (
                col::<String>(&r, "service").and_then(|n| ServiceName::new(n).ok()),
                col::<i64>(&r, "started_ms")
                    .and_then(|m| jiff::Timestamp::from_millisecond(m).ok()),
            ) else {
                continue;
            };
            out.entry(name).or_default().resolved_by_hand = Some(since);
        }
        // Each service's last start, exit, `not_restarted` and `failed`: a run that ended
        // for good after the last start stays ended, and a crash loop given up on stays
        // failed (the daemon decides whether that still holds: the desired state, the
        // restart policy and the service's config now).
        let runs = sqlx::query(
            "SELECT id, service, detail FROM events WHERE id IN (
                 SELECT MAX(id) FROM events
                 WHERE node = $1
                     AND kind IN ('started', 'adopted', 'exited', 'not_restarted', 'failed')
                     AND service IS NOT NULL
                 GROUP BY service, kind)",
        )
        .bind(&self.node)
        .fetch_all(&self.pool)
        .await
        .map_err(q("select the last runs"))?;
        #[derive(Default)]
        struct LastRun {
            start: i64,
            exit: Option<(i64, upkeep_core::ExitStatus)>,
            not_restarted: Option<i64>,
            failed: Option<(i64, u32)>,
        }
        let mut last: BTreeMap<ServiceName, LastRun> = BTreeMap::new();
        for r in &runs {
            let (Some(id), Some(name), Some(kind)) = (
                col::<i64>(r, "id"),
                col::<String>(r, "service").and_then(|n| ServiceName::new(n).ok()),
                col::<String>(r, "detail").and_then(|d| serde_json::from_str(&d).ok()),
            ) else {
                continue;
            };
            let run = last.entry(name).or_default();
            match kind {
                EventKind::Started { .. } | EventKind::Adopted { .. } => {
                    run.start = run.start.max(id)
                }
                EventKind::Exited { status, .. } => run.exit = Some((id, status)),
                EventKind::NotRestarted { .. } => run.not_restarted = Some(id),
                EventKind::Failed { restarts, .. } => run.failed = Some((id, restarts)),
                _ => {}
            }
        }
        for (name, run) in last {
            let exited = run.not_restarted.is_some_and(|id| id > run.start);
            let failed = run.failed.filter(|(id, _)| *id > run.start);
            if exited || failed.is_some() {
                let u = out.entry(name).or_default();
                u.exited = exited && failed.is_none();
                u.failed = failed.map(|(_, restarts)| restarts);
                u.last_exit = run.exit.filter(|(id, _)| *id > run.start).map(|(_, s)| s);
            }
        }
        let last = sqlx::query(
            "SELECT service, at_ms, detail FROM events WHERE id IN (
                 SELECT MAX(id) FROM events
                 WHERE node = $1 AND kind IN ('maintenance_started', 'maintenance_ended')
                     AND service IS NOT NULL
                 GROUP BY service)",
        )
        .bind(&self.node)
        .fetch_all(&self.pool)
        .await
        .map_err(q("select the last maintenance events"))?;
        for r in last {
            let name = col::<String>(&r, "service").and_then(|n| ServiceName::new(n).ok());
            let at =
                col::<i64>(&r, "at_ms").and_then(|m| jiff::Timestamp::from_millisecond(m).ok());
            let kind = col::<String>(&r, "detail").and_then(|d| serde_json::from_str(&d).ok());
            if let (
                Some(name),
                Some(since),
                Some(EventKind::MaintenanceStarted {
                    reason,
                    until,
                    window,
                    ..
                }),
            ) = (name, at, kind)
            {
                out.entry(name).or_default().maintenance = Some(upkeep_core::Maintenance {
                    since,
                    until,
                    reason,
                    window,
                });
            }
        }
        Ok(out)
    }

    async fn events_after(&self, seq: u64, limit: u32) -> Result<Vec<Committed>, Error> {
        let rows = sqlx::query(
            "SELECT seq, at_ms, service, detail FROM events
             WHERE node = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(&self.node)
        .bind(seq as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(q("select events after a cursor"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let kind: EventKind = serde_json::from_str(&col::<String>(r, "detail")?)
                    .inspect_err(|e| tracing::warn!("skipping an event that does not parse: {e}"))
                    .ok()?;
                Some(Committed {
                    seq: col::<i64>(r, "seq")? as u64,
                    event: Event {
                        at: jiff::Timestamp::from_millisecond(col(r, "at_ms")?).ok()?,
                        service: col::<Option<String>>(r, "service")?
                            .and_then(|s| ServiceName::new(s).ok()),
                        kind,
                    },
                })
            })
            .collect())
    }

    async fn cursor(&self, name: &str) -> Result<u64, Error> {
        let row = sqlx::query("SELECT seq FROM cursors WHERE node = $1 AND name = $2")
            .bind(&self.node)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(q("read a cursor"))?;
        Ok(row.and_then(|r| col::<i64>(&r, "seq")).unwrap_or(0).max(0) as u64)
    }

    async fn set_cursor(&self, name: &str, seq: u64) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO cursors (node, name, seq, updated_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (node, name) DO UPDATE SET seq = excluded.seq,
                 updated_ms = excluded.updated_ms",
        )
        .bind(&self.node)
        .bind(name)
        .bind(seq as i64)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(q("move a cursor"))?;
        Ok(())
    }

    async fn rollup_mark(&self) -> Result<Option<crate::RollupMark>, Error> {
        self.read_mark().await
    }

    async fn start_rollups(&self, now: jiff::Timestamp) -> Result<crate::RollupMark, Error> {
        self.begin_rollups(now).await
    }

    async fn save_rollup(
        &self,
        hour: jiff::Timestamp,
        tallies: &BTreeMap<ServiceName, upkeep_core::report::Tally>,
    ) -> Result<bool, Error> {
        self.write_rollup(hour, tallies).await
    }

    async fn rollups(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<BTreeMap<ServiceName, upkeep_core::report::Tally>, Error> {
        self.read_rollups(from, to).await
    }

    async fn forget_before(&self, before: jiff::Timestamp) -> Result<u64, Error> {
        self.delete_raw_before(before).await
    }

    async fn add_latency(&self, hours: &[upkeep_core::latency::HourLatency]) -> Result<(), Error> {
        self.merge_latency(hours).await
    }

    async fn latency(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<Vec<upkeep_core::latency::HourLatency>, Error> {
        self.read_latency(from, to).await
    }

    fn engine(&self) -> Engine {
        self.engine
    }
}

/// A column of a row, or None if it is missing or of another type. A bad row (a database
/// edited by hand, or a file from elsewhere) is skipped, never a panic.
pub(crate) fn col<'r, T>(r: &'r AnyRow, name: &str) -> Option<T>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    r.try_get(name)
        .inspect_err(|e| tracing::warn!(column = name, "skipping a bad row: {e}"))
        .ok()
}

/// A yes/no column: BOOLEAN on PostgreSQL, an integer on SQLite.
pub(crate) fn flag(r: &AnyRow, name: &str) -> Option<bool> {
    match r.try_get::<bool, _>(name) {
        Ok(b) => Some(b),
        Err(_) => col::<i64>(r, name).map(|i| i != 0),
    }
}

/// A row of `events` as the API shows it; its id is its node's sequence number (the same as
/// the live stream's).
pub(crate) fn stored_event(r: &AnyRow) -> Option<StoredEvent> {
    let mut detail: serde_json::Value =
        serde_json::from_str(&col::<String>(r, "detail")?).unwrap_or(serde_json::Value::Null);
    if let Some(o) = detail.as_object_mut() {
        o.remove("kind");
    }
    Some(StoredEvent {
        id: col(r, "id")?,
        at: jiff::Timestamp::from_millisecond(col(r, "at_ms")?)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        service: col::<Option<String>>(r, "service")?.and_then(|s| ServiceName::new(s).ok()),
        kind: col(r, "kind")?,
        intervention: flag(r, "intervention")?,
        detail,
    })
}

/// A row of `incidents`; an open one lasts until `now_ms`.
pub(crate) fn incident(r: &AnyRow, now_ms: i64) -> Option<Incident> {
    let started: i64 = col(r, "started_ms")?;
    let resolved: Option<i64> = col(r, "resolved_ms")?;
    Some(Incident {
        id: col(r, "id")?,
        service: ServiceName::new(col::<String>(r, "service")?).ok()?,
        started: jiff::Timestamp::from_millisecond(started).ok()?,
        resolved: resolved.and_then(|m| jiff::Timestamp::from_millisecond(m).ok()),
        duration_ms: (resolved.unwrap_or(now_ms) - started).max(0) as u64,
        reason: col(r, "reason")?,
        drill: flag(r, "drill")?,
        // Only where the query reads it (the lists do; an incident's own page has its notes).
        title: r.try_get::<Option<String>, _>("title").ok().flatten(),
    })
}
