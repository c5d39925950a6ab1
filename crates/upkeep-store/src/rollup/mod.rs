//! Rollups (issue 15, item 3): each service's [`Tally`] per hour and per day, kept as events
//! are stored, so that a report, a scrape or a status page over a period costs the same after a
//! year of history as after a day.
//!
//! How: [`run`] is one task that rolls up each hour once it has closed (a minute after, on the
//! injected clock), by the same computation a report makes over raw events
//! (`upkeep_state::report::tallies`), and the day once its last hour is rolled. Storing an
//! event about an hour already rolled up (a journal drained after an outage, the time no
//! daemon watched, an incident resolved hours after it began) moves the mark back in the
//! same transaction (`append`), and those hours are rolled again. Reads never depend on the
//! task being prompt: [`tallies`] takes whole rolled hours and days from the rollups and the
//! rest (the partial hours at a period's edges, and anything not rolled yet) from raw events.
//!
//! `[daemon] retain` removes raw events older than that, never beyond what is rolled up;
//! periods older than the kept raw history are then counted in whole hours.
//!
//! Layout: this file (the task and the read), `sql.rs` (the queries).

mod sql;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use upkeep_core::latency::{Latency, LatencyBook};
use upkeep_core::report::{Tally, add_tallies};
use upkeep_core::{Clock, ServiceName};

use crate::{Error, Store};

pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;

/// An hour is rolled up this long after it ends: what its last events need to arrive.
/// (Later ones still count: they move the mark back.)
const GRACE: SignedDuration = SignedDuration::from_secs(60);

/// Where the rollups stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupMark {
    /// Every hour before this is rolled up.
    pub rolled_until: Timestamp,
    /// Raw events before this were removed (`[daemon] retain`).
    pub raw_since: Timestamp,
}

fn floor_hour(t: Timestamp) -> Timestamp {
    let ms = t.as_millisecond().div_euclid(HOUR_MS) * HOUR_MS;
    Timestamp::from_millisecond(ms).unwrap_or(t)
}

fn ceil_hour(t: Timestamp) -> Timestamp {
    let floor = floor_hour(t);
    if floor == t {
        t
    } else {
        floor
            .checked_add(SignedDuration::from_hours(1))
            .unwrap_or(t)
    }
}

/// Each service's tally over `[from, to)`: whole rolled-up hours and days from the rollups,
/// the rest from raw events.
pub async fn tallies(
    store: &dyn Store,
    from: Timestamp,
    to: Timestamp,
) -> Result<BTreeMap<ServiceName, Tally>, Error> {
    if from >= to {
        return Ok(BTreeMap::new());
    }
    let Some(mark) = store.rollup_mark().await? else {
        return raw(store, from, to).await;
    };
    let mut lo = ceil_hour(from);
    let mut hi = floor_hour(to).min(mark.rolled_until);
    // Raw events before `raw_since` are gone: whole hours from the rollups instead.
    if from < mark.raw_since {
        lo = floor_hour(from);
    }
    if to < mark.raw_since {
        hi = ceil_hour(to).min(mark.rolled_until);
    }
    if lo >= hi {
        return raw(store, from, to).await;
    }
    let mut sum = store.rollups(lo, hi).await?;
    if from < lo {
        add_tallies(&mut sum, &raw(store, from, lo).await?);
    }
    if hi < to {
        add_tallies(&mut sum, &raw(store, hi, to).await?);
    }
    Ok(sum)
}

async fn raw(
    store: &dyn Store,
    from: Timestamp,
    to: Timestamp,
) -> Result<BTreeMap<ServiceName, Tally>, Error> {
    let inputs = store.report_inputs(from, to).await?;
    Ok(upkeep_state::report::tallies(&inputs, from, to))
}

/// Each service's probe latency over the hours that overlap `[from, to)` (whole hours: a
/// histogram cannot be cut), stored or still in `book`.
pub async fn latency(
    store: &dyn Store,
    book: &LatencyBook,
    from: Timestamp,
    to: Timestamp,
) -> Result<BTreeMap<ServiceName, Latency>, Error> {
    let mut out: BTreeMap<ServiceName, Latency> = BTreeMap::new();
    let stored = store.latency(from, to).await?;
    for (_, name, l) in stored.into_iter().chain(book.peek(from, to)) {
        out.entry(name).or_default().add(&l);
    }
    Ok(out)
}

/// Stores the latency `book` holds for the hours before `before` (all of it with None); what
/// cannot be stored goes back, to be tried with the next.
pub async fn store_latency(
    store: &dyn Store,
    book: &LatencyBook,
    before: Option<Timestamp>,
) -> Result<(), Error> {
    let taken = book.take(before);
    if let Err(e) = store.add_latency(&taken).await {
        book.put_back(taken);
        return Err(e);
    }
    Ok(())
}

/// Rolls up every closed hour and stores its probe latency, then removes raw events older
/// than `retain`; again each hour. Runs until aborted (it holds nothing that a dropped
/// transaction does not undo; the daemon stores the latency still in the book at shutdown).
/// A store that is away is tried again with backoff: reads go on from raw events meanwhile.
pub async fn run(
    store: Arc<dyn Store>,
    clock: Clock,
    retain: Option<Duration>,
    book: Arc<LatencyBook>,
) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let latency = store_latency(store.as_ref(), &book, Some(floor_hour(clock.now()))).await;
        match latency.and(pass(store.as_ref(), &clock, retain).await) {
            Ok(()) => {
                backoff = Duration::from_secs(1);
                let next = floor_hour(clock.now())
                    .checked_add(SignedDuration::from_hours(1))
                    .and_then(|t| t.checked_add(GRACE));
                match next {
                    Ok(next) => clock.sleep_until_time(next).await,
                    Err(_) => return,
                }
            }
            Err(e) => {
                tracing::warn!("rollups: {} (trying again in {backoff:?})", e.with_causes());
                clock.sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(300));
            }
        }
    }
}

/// One pass: every hour that closed at least [`GRACE`] ago, then retention.
pub async fn pass(store: &dyn Store, clock: &Clock, retain: Option<Duration>) -> Result<(), Error> {
    let now = clock.now();
    let target = floor_hour(now.checked_sub(GRACE).unwrap_or(now));
    let mut hour = match store.rollup_mark().await? {
        Some(mark) => mark.rolled_until,
        None => store.start_rollups(now).await?.rolled_until,
    };
    'chunks: while hour < target {
        // One read per day (or what is left of it) for its hours: catching up on a year takes
        // 365 reads, not 8,760.
        let day_end =
            Timestamp::from_millisecond((hour.as_millisecond().div_euclid(DAY_MS) + 1) * DAY_MS)
                .unwrap_or(target)
                .min(target);
        let inputs = store.report_inputs(hour, day_end).await?;
        while hour < day_end {
            let next = hour
                .checked_add(SignedDuration::from_hours(1))
                .unwrap_or(target);
            let tallies = upkeep_state::report::tallies(&inputs, hour, next);
            if !store.save_rollup(hour, &tallies).await? {
                // Moved back by events about an earlier hour: from there again.
                match store.rollup_mark().await? {
                    Some(mark) => hour = mark.rolled_until,
                    None => return Ok(()),
                }
                continue 'chunks;
            }
            hour = next;
        }
        // Catching up on a year of history yields to supervision between days.
        tokio::task::yield_now().await;
    }
    if let Some(keep) = retain {
        let horizon = SignedDuration::try_from(keep)
            .ok()
            .and_then(|k| now.checked_sub(k).ok());
        if let Some(horizon) = horizon {
            let removed = store.forget_before(horizon).await?;
            if removed > 0 {
                tracing::info!(removed, "removed raw events older than `retain`");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_round_down_and_up_and_whole_hours_stay() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        assert_eq!(
            floor_hour(t("2026-11-26T10:59:59.999Z")),
            t("2026-11-26T10:00:00Z")
        );
        assert_eq!(
            ceil_hour(t("2026-11-26T10:00:00.001Z")),
            t("2026-11-26T11:00:00Z")
        );
        assert_eq!(
            ceil_hour(t("2026-11-26T10:00:00Z")),
            t("2026-11-26T10:00:00Z")
        );
        assert_eq!(
            floor_hour(t("1969-12-31T23:30:00Z")),
            t("1969-12-31T23:00:00Z")
        );
    }
}
