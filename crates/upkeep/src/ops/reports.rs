//! The record, read: the availability report of a period beside the one before it, stored
//! events, incidents and one incident's timeline. Each read first waits (briefly) until the
//! store holds every event state has seen, so a report never lags the status just shown.
//! Figures come from the store's rollups and the raw events at a period's edges
//! (`upkeep_store::rollup::tallies`), computed once (`upkeep_state::report`).

use upkeep_core::ServiceName;
use upkeep_core::api::{Incident, IncidentDetail, StoredEvent};
use upkeep_core::report::{PeriodReport, Report};

use crate::control::Daemon;

/// Why a read of the record failed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no incident number {0}")]
    UnknownIncident(i64),
    /// The period, doubled to compare it with the one before, reaches past the calendar.
    #[error("the period before {from} is out of range")]
    Period {
        from: jiff::Timestamp,
        #[source]
        source: jiff::Error,
    },
    #[error(transparent)]
    Away(#[from] crate::ops::StoreAway),
    #[error("reading {what} from the store")]
    Store {
        what: &'static str,
        #[source]
        source: upkeep_store::Error,
    },
}

fn store(what: &'static str) -> impl FnOnce(upkeep_store::Error) -> ReportError {
    move |source| ReportError::Store { what, source }
}

/// The report of `[from, to)` beside the period of the same length before it.
pub async fn report(
    daemon: &Daemon,
    from: jiff::Timestamp,
    to: jiff::Timestamp,
) -> Result<Report, ReportError> {
    daemon.history_ready().await?;
    let len = to.duration_since(from);
    let before = from
        .checked_sub(len)
        .map_err(|source| ReportError::Period { from, source })?;
    // Each period from the rollups and the raw edges: the same cost after a year as after a
    // day.
    let tallies = async |from, to| {
        upkeep_store::rollup::tallies(daemon.store.as_ref(), from, to)
            .await
            .map_err(store("the report's figures"))
    };
    let book = &daemon.wiring.probe_deps.latency;
    let latency = async |from, to| {
        upkeep_store::rollup::latency(daemon.store.as_ref(), book, from, to)
            .await
            .map_err(store("probe latency"))
    };
    Ok(Report {
        current: PeriodReport::from_tallies(from, to, &tallies(from, to).await?)
            .with_latency(&latency(from, to).await?),
        previous: PeriodReport::from_tallies(before, from, &tallies(before, from).await?)
            .with_latency(&latency(before, from).await?),
    })
}

/// Stored events, newest first, of one service or all.
pub async fn events(
    daemon: &Daemon,
    service: Option<&ServiceName>,
    limit: u32,
) -> Result<Vec<StoredEvent>, ReportError> {
    daemon.history_ready().await?;
    daemon
        .store
        .events(service, limit)
        .await
        .map_err(store("events"))
}

/// The most recent incidents, newest first, of one service or all.
pub async fn incidents(
    daemon: &Daemon,
    service: Option<&ServiceName>,
    limit: u32,
) -> Result<Vec<Incident>, ReportError> {
    daemon.history_ready().await?;
    daemon
        .store
        .incidents(service, limit)
        .await
        .map_err(store("incidents"))
}

/// One incident with its timeline.
pub async fn incident(daemon: &Daemon, id: i64) -> Result<IncidentDetail, ReportError> {
    daemon.history_ready().await?;
    daemon
        .store
        .incident(id, 1000)
        .await
        .map_err(store("an incident"))?
        .ok_or(ReportError::UnknownIncident(id))
}
