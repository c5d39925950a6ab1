//! The SQLite backend: one file in the data dir, WAL mode, migrations embedded in the binary.

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use upkeep_core::api::{Incident, StoredEvent};
use upkeep_core::report::{DrillSpan, IncidentSpan, ReportInputs, Transition};
use upkeep_core::{Desired, Event, EventKind, ServiceName, State};

use crate::{Error, ServiceRecord, Store};

pub struct SqliteStore {
    pool: SqlitePool,
}

fn q(what: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    move |source| Error::Query { what, source }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self, Error> {
        // Made private before SQLite sees it (its WAL and shared-memory files take the
        // database's mode): the history holds config revisions, and configs hold secrets.
        create_private(path).map_err(|source| Error::Open {
            path: path.display().to_string(),
            source: sqlx::Error::Io(source),
        })?;
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|source| Error::Open {
                path: path.display().to_string(),
                source,
            })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a power cut may lose the last commits, never corrupt the file.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5));
        // Two connections: the event writer and one reader for API queries. SQLite serialises
        // writers anyway, and each connection costs a thread and a page cache.
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .map_err(|source| Error::Open {
                path: path.display().to_string(),
                source,
            })?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(Error::Migrate)?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn append(&self, events: &[Event]) -> Result<(), Error> {
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        for e in events {
            let detail = serde_json::to_string(&e.kind).expect("events serialise");
            // As the JSON holds it, so that the migration's backfill and new rows agree.
            let to_state = match &e.kind {
                EventKind::StatusChanged { to, .. } => serde_json::to_value(to)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned)),
                _ => None,
            };
            sqlx::query("INSERT INTO events (at_ms, service, kind, intervention, detail, to_state) VALUES (?, ?, ?, ?, ?, ?)")
                .bind(e.at.as_millisecond())
                .bind(e.service.as_ref().map(ServiceName::as_str))
                .bind(e.kind.tag())
                .bind(e.kind.is_intervention())
                .bind(detail)
                .bind(to_state)
                .execute(&mut *tx)
                .await
                .map_err(q("insert event"))?;
            let Some(service) = &e.service else { continue };
            let at = e.at.as_millisecond();
            let incident = match &e.kind {
                EventKind::IncidentOpened {
                    since,
                    reason,
                    drill,
                } => Some(
                    sqlx::query("INSERT OR IGNORE INTO incidents (service, started_ms, opened_ms, reason, drill) VALUES (?, ?, ?, ?, ?)")
                        .bind(service.as_str())
                        .bind(since.as_millisecond())
                        .bind(at)
                        .bind(reason)
                        .bind(drill),
                ),
                EventKind::IncidentResolved { since, .. } => Some(
                    sqlx::query("UPDATE incidents SET resolved_ms = ? WHERE service = ? AND started_ms = ?")
                        .bind(at)
                        .bind(service.as_str())
                        .bind(since.as_millisecond()),
                ),
                EventKind::IncidentReopened { since, .. } => Some(
                    sqlx::query("UPDATE incidents SET resolved_ms = NULL WHERE service = ? AND started_ms = ?")
                        .bind(service.as_str())
                        .bind(since.as_millisecond()),
                ),
                _ => None,
            };
            if let Some(query) = incident {
                query
                    .execute(&mut *tx)
                    .await
                    .map_err(q("record incident"))?;
            }
            let running = match &e.kind {
                EventKind::Started {
                    pid, start_ticks, ..
                } => Some((Some(*pid as i64), Some(*start_ticks as i64))),
                EventKind::Exited { .. } | EventKind::StaleStopped { .. } => Some((None, None)),
                _ => None,
            };
            if let Some((pid, ticks)) = running {
                sqlx::query(
                    "INSERT INTO services (name, pid, start_ticks, updated_ms) VALUES (?, ?, ?, ?)
                     ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, start_ticks = excluded.start_ticks, updated_ms = excluded.updated_ms",
                )
                .bind(service.as_str())
                .bind(pid)
                .bind(ticks)
                .bind(e.at.as_millisecond())
                .execute(&mut *tx)
                .await
                .map_err(q("record running process"))?;
            }
        }
        tx.commit().await.map_err(q("commit events"))
    }

    async fn events(
        &self,
        service: Option<&ServiceName>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, Error> {
        let rows = sqlx::query(
            "SELECT id, at_ms, service, kind, intervention, detail FROM events
             WHERE (?1 IS NULL OR service = ?1) ORDER BY id DESC LIMIT ?2",
        )
        .bind(service.map(ServiceName::as_str))
        .bind(limit as i64)
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
            "SELECT id, service, started_ms, resolved_ms, reason, drill FROM incidents
             WHERE (?1 IS NULL OR service = ?1) ORDER BY started_ms DESC LIMIT ?2",
        )
        .bind(service.map(ServiceName::as_str))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(q("select incidents"))?;
        let now = now_ms();
        Ok(rows.iter().filter_map(|r| incident(r, now)).collect())
    }

    async fn incident(
        &self,
        id: i64,
        limit: u32,
    ) -> Result<Option<upkeep_core::api::IncidentDetail>, Error> {
        let row = sqlx::query(
            "SELECT id, service, started_ms, resolved_ms, reason, drill FROM incidents WHERE id = ?",
        )
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
            "SELECT id, at_ms, service, kind, intervention, detail FROM events
             WHERE service = ? AND at_ms >= ? AND at_ms <= ? ORDER BY id LIMIT ?",
        )
        .bind(incident.service.as_str())
        .bind(incident.started.as_millisecond())
        .bind(end)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(q("select an incident's timeline"))?
        .iter()
        .filter_map(stored_event)
        .collect();
        Ok(Some(upkeep_core::api::IncidentDetail {
            incident,
            timeline,
        }))
    }

    async fn report_inputs(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<ReportInputs, Error> {
        let (from, to) = (from.as_millisecond(), to.as_millisecond());
        let ts = |ms: i64| jiff::Timestamp::from_millisecond(ms).ok();
        let name = |s: String| ServiceName::new(s).ok();
        // Each service's state at `from` (its last change before it: one index seek per
        // service, the services found by a loose index scan), then every change within the
        // period. What came before is never read, so a report costs the same after a year.
        let rows = sqlx::query(
            "WITH RECURSIVE s(name) AS (
                 SELECT MIN(service) FROM events WHERE kind = 'status_changed'
                 UNION ALL
                 SELECT (SELECT MIN(service) FROM events
                         WHERE kind = 'status_changed' AND service > s.name)
                 FROM s WHERE s.name IS NOT NULL)
             SELECT e.id, e.service, e.at_ms, e.to_state FROM s JOIN events e ON e.id = (
                 SELECT id FROM events
                 WHERE kind = 'status_changed' AND service = s.name AND at_ms < ?1
                 ORDER BY at_ms DESC, id DESC LIMIT 1)
             UNION ALL
             SELECT id, service, at_ms, to_state FROM events
             WHERE kind = 'status_changed' AND at_ms >= ?1 AND at_ms < ?2 AND service IS NOT NULL
             ORDER BY id",
        )
        .bind(from)
        .bind(to)
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
        let incidents = sqlx::query("SELECT service, started_ms, resolved_ms FROM incidents WHERE started_ms >= ? AND started_ms < ?")
            .bind(from)
            .bind(to)
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
                    .fetch_all(&self.pool)
                    .await
                    .map_err(q(what))?
                    .into_iter()
                    .filter_map(|r| Some((name(col(&r, "service")?)?, ts(col(&r, "at_ms")?)?)))
                    .collect::<Vec<_>>(),
            )
        };
        let heals = times(
            "SELECT service, at_ms FROM events WHERE kind = 'restart_scheduled' AND at_ms >= ? AND at_ms < ? AND service IS NOT NULL",
            "select automatic restarts",
        )
        .await?;
        let interventions = times(
            "SELECT service, at_ms FROM events WHERE intervention = 1 AND at_ms >= ? AND at_ms < ? AND service IS NOT NULL",
            "select interventions",
        )
        .await?;
        // Drills that end after `from` (a drill is recorded when it ends) and began before `to`.
        let drills = sqlx::query(
            "SELECT service, at_ms, json_extract(detail, '$.injected_at') AS injected,
                    json_extract(detail, '$.recovered_ms') AS recovered_ms
             FROM events WHERE kind = 'drill_completed' AND at_ms >= ? AND service IS NOT NULL",
        )
        .bind(from)
        .fetch_all(&self.pool)
        .await
        .map_err(q("select drills"))?
        .into_iter()
        .filter_map(|r| {
            let recovered = jiff::SignedDuration::from_millis(col(&r, "recovered_ms")?);
            // Whole milliseconds, like every event time here (recovered_ms is counted so).
            let started = match col::<Option<String>>(&r, "injected")? {
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
            "INSERT INTO services (name, desired, updated_ms) VALUES (?, ?, ?)
             ON CONFLICT (name) DO UPDATE SET desired = excluded.desired, updated_ms = excluded.updated_ms",
        )
        .bind(service.as_str())
        .bind(desired.as_str())
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(q("set desired state"))?;
        Ok(())
    }

    async fn services(&self) -> Result<Vec<ServiceRecord>, Error> {
        let rows =
            sqlx::query("SELECT name, desired, pid, start_ticks FROM services ORDER BY name")
                .fetch_all(&self.pool)
                .await
                .map_err(q("select services"))?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let name = ServiceName::new(col::<String>(&r, "name")?).ok()?;
                let desired = Desired::parse(col(&r, "desired")?).unwrap_or(Desired::Running);
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

    async fn save_revision(&self, path: &str, source: &str) -> Result<i64, Error> {
        // The same text from the same file as last time is the same revision: a config holds
        // secrets, and 54 reloads used to keep 54 copies of them.
        let last =
            sqlx::query("SELECT id, path, source FROM config_revisions ORDER BY id DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(q("select the last config revision"))?;
        if let Some(r) = last
            && col::<&str>(&r, "path") == Some(path)
            && col::<&str>(&r, "source") == Some(source)
            && let Some(id) = col(&r, "id")
        {
            return Ok(id);
        }
        let row = sqlx::query(
            "INSERT INTO config_revisions (applied_ms, path, source) VALUES (?, ?, ?) RETURNING id",
        )
        .bind(now_ms())
        .bind(path)
        .bind(source)
        .fetch_one(&self.pool)
        .await
        .map_err(q("insert config revision"))?;
        Ok(row.try_get("id").map_err(q("read the revision id"))?)
    }

    async fn unfinished(
        &self,
    ) -> Result<std::collections::BTreeMap<ServiceName, upkeep_core::Unfinished>, Error> {
        let mut out: std::collections::BTreeMap<ServiceName, upkeep_core::Unfinished> =
            Default::default();
        let open = sqlx::query(
            "SELECT service, started_ms, drill FROM incidents WHERE resolved_ms IS NULL ORDER BY started_ms",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(q("select open incidents"))?;
        for r in open {
            let (Some(name), Some(since), Some(drill)) = (
                col::<String>(&r, "service").and_then(|n| ServiceName::new(n).ok()),
                col::<i64>(&r, "started_ms")
                    .and_then(|m| jiff::Timestamp::from_millisecond(m).ok()),
                col::<bool>(&r, "drill"),
            ) else {
                continue;
            };
            // The latest, if a crash left several.
            out.entry(name).or_default().incident = Some((since, drill));
        }
        let last = sqlx::query(
            "SELECT service, at_ms, detail FROM events WHERE id IN (
                 SELECT MAX(id) FROM events
                 WHERE kind IN ('maintenance_started', 'maintenance_ended') AND service IS NOT NULL
                 GROUP BY service)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(q("select the last maintenance events"))?;
        for r in last {
            let name = col::<String>(&r, "service").and_then(|n| ServiceName::new(n).ok());
            let at =
                col::<i64>(&r, "at_ms").and_then(|m| jiff::Timestamp::from_millisecond(m).ok());
            let kind = col::<&str>(&r, "detail").and_then(|d| serde_json::from_str(d).ok());
            if let (
                Some(name),
                Some(since),
                Some(EventKind::MaintenanceStarted { reason, until, .. }),
            ) = (name, at, kind)
            {
                out.entry(name).or_default().maintenance = Some(upkeep_core::Maintenance {
                    since,
                    until,
                    reason,
                });
            }
        }
        Ok(out)
    }

    async fn revision_count(&self) -> Result<i64, Error> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM config_revisions")
            .fetch_one(&self.pool)
            .await
            .map_err(q("count config revisions"))?;
        Ok(row.try_get("n").map_err(q("count config revisions"))?)
    }
}

/// Creates the database file with mode 0600 if it is missing (never through a symlink).
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map(drop)
}

/// A column of a row, or None if it is missing or of another type. A bad row (a database
/// edited by hand, or a file from elsewhere) is skipped, never a panic: with `panic = "abort"`
/// one bad row would end every service (issue 14).
fn col<'r, T>(r: &'r sqlx::sqlite::SqliteRow, name: &str) -> Option<T>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    r.try_get(name)
        .inspect_err(|e| tracing::warn!(column = name, "skipping a bad row: {e}"))
        .ok()
}

/// A row of `events` as the API shows it.
fn stored_event(r: &sqlx::sqlite::SqliteRow) -> Option<StoredEvent> {
    let mut detail: serde_json::Value =
        serde_json::from_str(col::<&str>(r, "detail")?).unwrap_or(serde_json::Value::Null);
    if let Some(o) = detail.as_object_mut() {
        o.remove("kind");
    }
    Some(StoredEvent {
        id: col(r, "id")?,
        at: jiff::Timestamp::from_millisecond(col(r, "at_ms")?)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        service: col::<Option<String>>(r, "service")?.and_then(|s| ServiceName::new(s).ok()),
        kind: col(r, "kind")?,
        intervention: col(r, "intervention")?,
        detail,
    })
}

/// A row of `incidents`; an open one lasts until `now_ms`.
fn incident(r: &sqlx::sqlite::SqliteRow, now_ms: i64) -> Option<Incident> {
    let started: i64 = col(r, "started_ms")?;
    let resolved: Option<i64> = col(r, "resolved_ms")?;
    Some(Incident {
        id: col(r, "id")?,
        service: ServiceName::new(col::<String>(r, "service")?).ok()?,
        started: jiff::Timestamp::from_millisecond(started).ok()?,
        resolved: resolved.and_then(|m| jiff::Timestamp::from_millisecond(m).ok()),
        duration_ms: (resolved.unwrap_or(now_ms) - started).max(0) as u64,
        reason: col(r, "reason")?,
        drill: col(r, "drill")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use upkeep_core::{Actor, ExitStatus};

    #[tokio::test]
    async fn the_database_is_private_and_an_unchanged_config_is_stored_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upkeep.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let a = store.save_revision("/etc/u.toml", "key = 1").await.unwrap();
        let b = store.save_revision("/etc/u.toml", "key = 1").await.unwrap();
        let c = store.save_revision("/etc/u.toml", "key = 2").await.unwrap();
        let d = store.save_revision("/etc/u.toml", "key = 1").await.unwrap();
        assert_eq!(a, b);
        assert!(c > a && d > c);
        assert_eq!(store.revision_count().await.unwrap(), 3);
    }

    /// Issue 14, C13: a report reads each service's last change before its period and the
    /// changes within it, never the whole history; and rows stored before the `to_state`
    /// column existed (the migration fills it in) count the same.
    #[tokio::test]
    async fn a_report_reads_the_state_at_its_start_and_its_period_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("u.db")).await.unwrap();
        let t = |s: i64| jiff::Timestamp::from_second(1_800_000_000 + s).unwrap();
        let change = |svc: &str, at: i64, from: State, to: State| Event {
            at: t(at),
            service: Some(ServiceName::new(svc).unwrap()),
            kind: EventKind::StatusChanged { from, to },
        };
        let mut events = Vec::new();
        // A long history: web flaps a thousand times, db goes down once and stays down.
        for i in 0..1000 {
            events.push(change("web", i * 2, State::Up, State::Down));
            events.push(change("web", i * 2 + 1, State::Down, State::Up));
        }
        events.push(change("db", 5, State::Up, State::Down));
        events.push(change("web", 3000, State::Up, State::Degraded));
        store.append(&events).await.unwrap();
        // An old row, as the schema before the column stored it.
        sqlx::query("UPDATE events SET to_state = NULL WHERE service = 'db'")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("UPDATE events SET to_state = json_extract(detail, '$.to') WHERE kind = 'status_changed' AND to_state IS NULL")
            .execute(&store.pool)
            .await
            .unwrap();
        let inputs = store.report_inputs(t(2500), t(4000)).await.unwrap();
        let seen: Vec<(String, i64, State)> = inputs
            .transitions
            .iter()
            .map(|tr| {
                (
                    tr.service.to_string(),
                    tr.at.as_second() - 1_800_000_000,
                    tr.to,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("web".to_owned(), 1999, State::Up),
                ("db".to_owned(), 5, State::Down),
                ("web".to_owned(), 3000, State::Degraded),
            ],
        );
    }

    #[tokio::test]
    async fn a_bad_row_is_skipped_never_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upkeep.db");
        let store = SqliteStore::open(&path).await.unwrap();
        for sql in [
            "INSERT INTO services (name, desired, pid, start_ticks, updated_ms) VALUES ('web', 'running', 'not a pid', x'00', 0)",
            "INSERT INTO services (name, desired, updated_ms) VALUES ('ok', 'stopped', 0)",
            "INSERT INTO events (at_ms, service, kind, detail) VALUES ('soon', 'web', 'started', '{}')",
            "INSERT INTO incidents (service, started_ms, opened_ms, reason) VALUES ('web', 'x', 0, 'r')",
        ] {
            sqlx::query(sql).execute(&store.pool).await.unwrap();
        }
        let services = store.services().await.unwrap();
        assert_eq!(services.len(), 1, "{services:?}");
        assert_eq!(services[0].name.as_str(), "ok");
        assert!(store.events(None, 100).await.unwrap().is_empty());
        assert!(store.incidents(None, 100).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn events_and_running_processes_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upkeep.db");
        let web = ServiceName::new("web").unwrap();
        {
            let s = SqliteStore::open(&path).await.unwrap();
            s.append(&[
                Event::now(
                    &web,
                    EventKind::Started {
                        pid: 10,
                        start_ticks: 5,
                        by: Actor::Upkeep,
                    },
                ),
                Event::now(
                    &web,
                    EventKind::Exited {
                        pid: 10,
                        status: ExitStatus {
                            code: None,
                            signal: Some(9),
                        },
                        uptime_ms: 1,
                    },
                ),
                Event::now(
                    &web,
                    EventKind::Started {
                        pid: 11,
                        start_ticks: 6,
                        by: Actor::Operator,
                    },
                ),
            ])
            .await
            .unwrap();
            s.set_desired(&web, Desired::Stopped).await.unwrap();
            assert_eq!(s.save_revision("/x.toml", "a = 1").await.unwrap(), 1);
        }
        let s = SqliteStore::open(&path).await.unwrap();
        let ev = s.events(Some(&web), 10).await.unwrap();
        assert_eq!(
            ev.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            ["started", "exited", "started"]
        );
        assert!(ev[0].intervention && !ev[2].intervention);
        assert_eq!(ev[1].detail["status"]["signal"], 9);
        assert_eq!(
            s.services().await.unwrap(),
            [ServiceRecord {
                name: web.clone(),
                desired: Desired::Stopped,
                running: Some((11, 6))
            }]
        );
        assert_eq!(s.revision_count().await.unwrap(), 1);
        // Incidents follow their events, flapping included.
        let t = |ms: i64| jiff::Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap();
        let ev = |at: i64, kind: EventKind| Event {
            at: t(at),
            service: Some(web.clone()),
            kind,
        };
        s.append(&[
            ev(
                5,
                EventKind::IncidentOpened {
                    since: t(0),
                    reason: "probe http: HTTP 500".into(),
                    drill: false,
                },
            ),
            ev(
                100,
                EventKind::IncidentResolved {
                    since: t(0),
                    duration_ms: 100,
                },
            ),
            ev(
                150,
                EventKind::IncidentReopened {
                    since: t(0),
                    reason: "again".into(),
                },
            ),
            ev(
                400,
                EventKind::IncidentResolved {
                    since: t(0),
                    duration_ms: 400,
                },
            ),
        ])
        .await
        .unwrap();
        let inc = s.incidents(Some(&web), 10).await.unwrap();
        assert_eq!(inc.len(), 1);
        assert_eq!(
            (inc[0].duration_ms, inc[0].reason.as_str()),
            (400, "probe http: HTTP 500")
        );
        assert!(
            s.events(Some(&ServiceName::new("other").unwrap()), 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
