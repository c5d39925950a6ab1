//! The store: the only place with SQL. It keeps what operators want (desired state per
//! service), everything that happened (events) and every applied config (revisions).
//!
//! [`Store`] is the one interface; [`SqliteStore`] is the embedded default and a PostgreSQL
//! backend will be a second implementation of the same trait (same tables, its own
//! migrations folder). The [`writer`] task is the single writer of events: sources send
//! events down a channel and never wait for the disk.
//!
//! Layout: `sqlite.rs` (the backend), `writer.rs` (batching event writer), `migrations/`.

mod sqlite;
pub mod writer;

use async_trait::async_trait;
use upkeep_core::api::{Incident, StoredEvent};
use upkeep_core::{Desired, Event, ServiceName};

pub use sqlite::SqliteStore;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the database at {path}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot bring the database schema up to date")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database query failed: {what}")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl Error {
    /// True when retrying cannot help: the database refuses the write itself (a constraint).
    /// Anything else (locked, busy, disk full, connection lost) may pass.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Query {
                source: sqlx::Error::Database(db),
                ..
            } => !matches!(db.kind(), sqlx::error::ErrorKind::Other),
            _ => false,
        }
    }
}

/// What the store remembers about a service between daemon runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    pub name: ServiceName,
    pub desired: Desired,
    /// The process the last daemon started, if it may still run.
    pub running: Option<(u32, u64)>,
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Appends events in one transaction, and keeps each service's last started process
    /// (from `Started` / `Exited` events) for recovery after a daemon crash.
    async fn append(&self, events: &[Event]) -> Result<(), Error>;
    /// The most recent events, newest first; of one service or of all.
    async fn events(
        &self,
        service: Option<&ServiceName>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, Error>;
    /// The most recent incidents, newest first; of one service or of all.
    async fn incidents(
        &self,
        service: Option<&ServiceName>,
        limit: u32,
    ) -> Result<Vec<Incident>, Error>;
    /// One incident and its timeline (at most `limit` events); None if there is no such id.
    async fn incident(
        &self,
        id: i64,
        limit: u32,
    ) -> Result<Option<upkeep_core::api::IncidentDetail>, Error>;
    /// The facts the availability report of `[from, to)` needs (see `upkeep_core::report`).
    async fn report_inputs(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<upkeep_core::report::ReportInputs, Error>;
    async fn set_desired(&self, service: &ServiceName, desired: Desired) -> Result<(), Error>;
    async fn services(&self) -> Result<Vec<ServiceRecord>, Error>;
    /// Stores an applied config, returning its revision number.
    async fn save_revision(&self, path: &str, source: &str) -> Result<i64, Error>;
    /// The number of stored revisions.
    async fn revision_count(&self) -> Result<i64, Error>;
    /// What the last daemon left unfinished, by service: open incidents and maintenance in
    /// progress (see [`upkeep_core::Unfinished`]).
    async fn unfinished(
        &self,
    ) -> Result<std::collections::BTreeMap<ServiceName, upkeep_core::Unfinished>, Error>;
}
