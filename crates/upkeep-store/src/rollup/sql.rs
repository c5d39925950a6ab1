//! The rollup tables' queries (`rollup_marks`, `rollups`), in SQL both engines run, as
//! [`SqlStore`] methods that the `Store` implementation calls. What goes in a row is decided
//! above, in `rollup/mod.rs`; what moves the mark back when old events arrive is `append`'s
//! (see [`SqlStore::mark_dirty`]).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use jiff::Timestamp;
use sqlx::Any;
use upkeep_core::ServiceName;
use upkeep_core::latency::{HourLatency, Latency};
use upkeep_core::report::Tally;

use super::{DAY_MS, HOUR_MS, RollupMark};
use crate::Error;
use crate::sql::{SqlStore, col, q};

/// Raw events removed per statement by `retain`.
const DELETE_ROWS: i64 = 5000;

/// The tally columns, in the order [`tally_values`] gives them.
const COLUMNS: [&str; 11] = [
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
];

fn tally_values(t: &Tally) -> [i64; 11] {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    [
        n(t.available_ms),
        n(t.outage_ms),
        n(t.maintenance_ms),
        n(t.unknown_ms),
        i64::from(t.drills),
        n(t.drill_ms),
        i64::from(t.incidents),
        i64::from(t.repaired),
        n(t.repair_ms),
        i64::from(t.heals),
        i64::from(t.interventions),
    ]
}

fn tally_of(r: &sqlx::any::AnyRow) -> Option<Tally> {
    let v = |name: &str| col::<i64>(r, name).map(|v| v.max(0) as u64);
    let c = |name: &str| v(name).map(|v| u32::try_from(v).unwrap_or(u32::MAX));
    Some(Tally {
        available_ms: v("available_ms")?,
        outage_ms: v("outage_ms")?,
        maintenance_ms: v("maintenance_ms")?,
        unknown_ms: v("unknown_ms")?,
        drills: c("drills")?,
        drill_ms: v("drill_ms")?,
        incidents: c("incidents")?,
        repaired: c("repaired")?,
        repair_ms: v("repair_ms")?,
        heals: c("heals")?,
        interventions: c("interventions")?,
    })
}

fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl SqlStore {
    pub(crate) async fn read_mark(&self) -> Result<Option<RollupMark>, Error> {
        let row =
            sqlx::query("SELECT rolled_until_ms, raw_since_ms FROM rollup_marks WHERE node = $1")
                .bind(&self.node)
                .fetch_optional(&self.pool)
                .await
                .map_err(q("read the rollup mark"))?;
        let mark = row.and_then(|r| {
            Some(RollupMark {
                rolled_until: ts(col(&r, "rolled_until_ms")?),
                raw_since: ts(col(&r, "raw_since_ms")?),
            })
        });
        // Read with no raise in flight (only the rollup task raises it, and it is the one
        // reading): an upper bound for `mark_dirty` from now on.
        let known = mark.map_or(i64::MAX, |m| m.rolled_until.as_millisecond());
        self.rolled_until.store(known, Ordering::SeqCst);
        Ok(mark)
    }

    pub(crate) async fn begin_rollups(&self, now: Timestamp) -> Result<RollupMark, Error> {
        // From the hour of this node's first event: a database from before rollups is rolled
        // up from its beginning, in the background.
        sqlx::query(
            "INSERT INTO rollup_marks (node, rolled_until_ms, raw_since_ms)
             SELECT $1, (COALESCE(MIN(at_ms), $2) / $3) * $3, 0 FROM events WHERE node = $1
             ON CONFLICT (node) DO NOTHING",
        )
        .bind(&self.node)
        .bind(now.as_millisecond())
        .bind(HOUR_MS)
        .execute(&self.pool)
        .await
        .map_err(q("begin rollups"))?;
        self.read_mark().await?.ok_or(Error::Query {
            what: "read the rollup mark",
            source: sqlx::Error::RowNotFound,
        })
    }

    /// In `append`'s transaction: events about times before `at_ms`'s hour arrived, so hours
    /// from there on are rolled again (never before `raw_since`: those raw events are gone,
    /// and the rollups are all that is left of them).
    pub(crate) async fn mark_dirty(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
        at_ms: i64,
    ) -> Result<(), Error> {
        let hour = at_ms.div_euclid(HOUR_MS) * HOUR_MS;
        if hour >= self.rolled_until.load(Ordering::SeqCst) {
            return Ok(());
        }
        sqlx::query(
            "UPDATE rollup_marks SET rolled_until_ms =
                 CASE WHEN $1 > raw_since_ms THEN $1 ELSE raw_since_ms END
             WHERE node = $2 AND rolled_until_ms > $1",
        )
        .bind(hour)
        .bind(&self.node)
        .execute(&mut **tx)
        .await
        .map_err(q("move the rollup mark back"))?;
        Ok(())
    }

    pub(crate) async fn write_rollup(
        &self,
        hour: Timestamp,
        tallies: &BTreeMap<ServiceName, Tally>,
    ) -> Result<bool, Error> {
        let start = hour.as_millisecond();
        let end = start + HOUR_MS;
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        let moved = sqlx::query(
            "UPDATE rollup_marks SET rolled_until_ms = $1
             WHERE node = $2 AND rolled_until_ms = $3",
        )
        .bind(end)
        .bind(&self.node)
        .bind(start)
        .execute(&mut *tx)
        .await
        .map_err(q("move the rollup mark on"))?
        .rows_affected();
        if moved == 0 {
            // Events about an earlier hour arrived meanwhile: the caller reads the mark again.
            return Ok(false);
        }
        self.replace_rows(&mut tx, "hour", start, tallies).await?;
        if end % DAY_MS == 0 {
            self.roll_day(&mut tx, end - DAY_MS).await?;
        }
        // Before the commit, so that `mark_dirty` never trusts a bound below the stored mark.
        self.rolled_until.fetch_max(end, Ordering::SeqCst);
        tx.commit().await.map_err(q("commit a rollup"))?;
        Ok(true)
    }

    async fn replace_rows(
        &self,
        tx: &mut sqlx::Transaction<'_, Any>,
        span: &str,
        start: i64,
        tallies: &BTreeMap<ServiceName, Tally>,
    ) -> Result<(), Error> {
        sqlx::query("DELETE FROM rollups WHERE node = $1 AND span = $2 AND start_ms = $3")
            .bind(&self.node)
            .bind(span)
            .bind(start)
            .execute(&mut **tx)
            .await
            .map_err(q("replace a rollup"))?;
        let params: Vec<String> = (5..5 + COLUMNS.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "INSERT INTO rollups (node, span, start_ms, service, {}) VALUES ($1, $2, $3, $4, {})",
            COLUMNS.join(", "),
            params.join(", ")
        );
        for (service, tally) in tallies {
            let mut insert = sqlx::query(&sql)
                .bind(&self.node)
                .bind(span)
                .bind(start)
                .bind(service.as_str());
            for v in tally_values(tally) {
                insert = insert.bind(v);
            }
            insert
                .execute(&mut **tx)
                .await
                .map_err(q("store a rollup"))?;
        }
        Ok(())
    }

    /// The day starting at `day` from its hours (all rolled now).
    async fn roll_day(&self, tx: &mut sqlx::Transaction<'_, Any>, day: i64) -> Result<(), Error> {
        sqlx::query("DELETE FROM rollups WHERE node = $1 AND span = 'day' AND start_ms = $2")
            .bind(&self.node)
            .bind(day)
            .execute(&mut **tx)
            .await
            .map_err(q("replace a day's rollup"))?;
        let sums: Vec<String> = COLUMNS
            .iter()
            .map(|c| format!("CAST(SUM({c}) AS BIGINT)"))
            .collect();
        sqlx::query(&format!(
            "INSERT INTO rollups (node, span, start_ms, service, {})
             SELECT node, 'day', $2, service, {} FROM rollups
             WHERE node = $1 AND span = 'hour' AND start_ms >= $2 AND start_ms < $3
             GROUP BY node, service",
            COLUMNS.join(", "),
            sums.join(", ")
        ))
        .bind(&self.node)
        .bind(day)
        .bind(day + DAY_MS)
        .execute(&mut **tx)
        .await
        .map_err(q("roll up a day"))?;
        Ok(())
    }

    pub(crate) async fn read_rollups(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<BTreeMap<ServiceName, Tally>, Error> {
        let (lo, hi) = (from.as_millisecond(), to.as_millisecond());
        // Whole days from day rows, the hours on either side from hour rows.
        let (day_lo, day_hi) = (
            lo.div_euclid(DAY_MS) * DAY_MS + if lo % DAY_MS == 0 { 0 } else { DAY_MS },
            hi.div_euclid(DAY_MS) * DAY_MS,
        );
        let (day_lo, day_hi) = if day_lo < day_hi {
            (day_lo, day_hi)
        } else {
            (hi, hi)
        };
        let sums: Vec<String> = COLUMNS
            .iter()
            .map(|c| format!("CAST(SUM({c}) AS BIGINT) AS {c}"))
            .collect();
        let rows = sqlx::query(&format!(
            "SELECT service, {} FROM rollups WHERE node = $1 AND (
                 (span = 'hour' AND ((start_ms >= $2 AND start_ms < $3)
                                     OR (start_ms >= $4 AND start_ms < $5)))
                 OR (span = 'day' AND start_ms >= $3 AND start_ms < $4))
             GROUP BY service",
            sums.join(", ")
        ))
        .bind(&self.node)
        .bind(lo)
        .bind(day_lo.min(hi))
        .bind(day_hi)
        .bind(hi)
        .fetch_all(&self.pool)
        .await
        .map_err(q("read rollups"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let name = ServiceName::new(col::<String>(r, "service")?).ok()?;
                Some((name, tally_of(r)?))
            })
            .collect())
    }

    pub(crate) async fn delete_raw_before(&self, before: Timestamp) -> Result<u64, Error> {
        let Some(mark) = self.read_mark().await? else {
            return Ok(0);
        };
        // Never past what is rolled up: those events are still the only record.
        let until = before
            .as_millisecond()
            .min(mark.rolled_until.as_millisecond())
            .div_euclid(HOUR_MS)
            * HOUR_MS;
        if until <= mark.raw_since.as_millisecond() {
            return Ok(0);
        }
        // First the mark, and only if nothing moved it back below `until` meanwhile (events
        // about those hours arrived: they are rolled again from raw events). From then on
        // `mark_dirty` never goes below it. On PostgreSQL the row stays locked until the
        // commit, so a concurrent `mark_dirty` waits and then sees it.
        let claimed = sqlx::query(
            "UPDATE rollup_marks SET raw_since_ms = $1 WHERE node = $2 AND rolled_until_ms >= $1",
        )
        .bind(until)
        .bind(&self.node)
        .execute(&self.pool)
        .await
        .map_err(q("record what is removed"))?
        .rows_affected();
        if claimed == 0 {
            return Ok(0);
        }
        // Then at most a few thousand rows at a time: short transactions, so the writer never
        // waits long. Kept: each service's last status change (its state where the kept
        // history begins) and last maintenance event (maintenance in progress).
        let mut deleted = 0;
        loop {
            let n = sqlx::query(
                "DELETE FROM events WHERE id IN (
                     SELECT id FROM events WHERE node = $1 AND at_ms < $2 AND id NOT IN (
                         SELECT MAX(id) FROM events WHERE node = $1 AND at_ms < $2
                             AND kind = 'status_changed' GROUP BY service
                         UNION ALL
                         SELECT MAX(id) FROM events WHERE node = $1
                             AND kind IN ('maintenance_started', 'maintenance_ended')
                             GROUP BY service)
                     LIMIT $3)",
            )
            .bind(&self.node)
            .bind(until)
            .bind(DELETE_ROWS)
            .execute(&self.pool)
            .await
            .map_err(q("remove old events"))?
            .rows_affected();
            deleted += n;
            if n < DELETE_ROWS as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
        Ok(deleted)
    }

    pub(crate) async fn merge_latency(&self, hours: &[HourLatency]) -> Result<(), Error> {
        if hours.is_empty() {
            return Ok(());
        }
        // Read, add, write: histograms add, and SQL cannot add these. One writer per node
        // (this daemon's rollup task), so nothing is added twice or lost between the two.
        let mut tx = self.pool.begin().await.map_err(q("begin"))?;
        for (hour, service, latency) in hours {
            // A write first: on SQLite a transaction that reads and then writes fails when
            // another writer (the event writer) committed in between.
            sqlx::query(
                "INSERT INTO latency (node, service, hour_ms, counts) VALUES ($1, $2, $3, '')
                 ON CONFLICT (node, service, hour_ms) DO NOTHING",
            )
            .bind(&self.node)
            .bind(service.as_str())
            .bind(hour.as_millisecond())
            .execute(&mut *tx)
            .await
            .map_err(q("store probe latency"))?;
            let stored = sqlx::query(
                "SELECT counts FROM latency WHERE node = $1 AND service = $2 AND hour_ms = $3",
            )
            .bind(&self.node)
            .bind(service.as_str())
            .bind(hour.as_millisecond())
            .fetch_optional(&mut *tx)
            .await
            .map_err(q("read probe latency"))?;
            let mut sum = stored
                .and_then(|r| col::<String>(&r, "counts"))
                .and_then(|c| Latency::decode(&c))
                .unwrap_or_default();
            sum.add(latency);
            sqlx::query(
                "UPDATE latency SET counts = $4 WHERE node = $1 AND service = $2 AND hour_ms = $3",
            )
            .bind(&self.node)
            .bind(service.as_str())
            .bind(hour.as_millisecond())
            .bind(sum.encode())
            .execute(&mut *tx)
            .await
            .map_err(q("store probe latency"))?;
        }
        tx.commit().await.map_err(q("commit probe latency"))
    }

    pub(crate) async fn read_latency(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HourLatency>, Error> {
        let rows = sqlx::query(
            "SELECT service, hour_ms, counts FROM latency
             WHERE node = $1 AND hour_ms >= $2 AND hour_ms < $3 ORDER BY hour_ms, service",
        )
        .bind(&self.node)
        .bind(from.as_millisecond().div_euclid(HOUR_MS) * HOUR_MS)
        .bind(to.as_millisecond())
        .fetch_all(&self.pool)
        .await
        .map_err(q("read probe latency"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let name = ServiceName::new(col::<String>(r, "service")?).ok()?;
                let hour = Timestamp::from_millisecond(col(r, "hour_ms")?).ok()?;
                let counts = Latency::decode(&col::<String>(r, "counts")?).or_else(|| {
                    tracing::warn!(service = %name, "skipping a bad latency row");
                    None
                })?;
                Some((hour, name, counts))
            })
            .collect())
    }
}
