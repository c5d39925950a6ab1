//! The store: the only place with SQL. It keeps what operators want (desired state per
//! service), everything that happened (events) and every applied config (revisions).
//!
//! [`Store`] is the one interface, on two engines: SQLite in the data dir (the default) and
//! PostgreSQL (for hosts that outgrow one, or share one database). Both run the same queries;
//! each has its own migrations. What an event changes besides its own row (incidents, the
//! running process) is decided once, in `derive.rs`. Every row that belongs to a host carries
//! its [`Node`] id. The [`writer`] task is the single writer of events: sources send events
//! down a channel and never wait for the disk.
//!
//! Start at [`open`]. Layout: `sql.rs` (the queries), `derive.rs` (what events change),
//! `sqlite.rs` and `postgres.rs` (opening each engine), `writer.rs` (batching event writer),
//! `journal.rs` (events kept while the store is away), `numbers.rs` (the last sequence numbers,
//! kept in the data dir), `lazy.rs` (a store the daemon starts without, opened in the
//! background), `fanout.rs` (committed events to observers), `copy.rs` (a node's history from
//! one store to another), `rollup/` (hourly and daily tallies, retain), `windows.rs`
//! (maintenance windows and their steps), `outbox.rs` (notices to send, their leases and
//! states), `subscribers.rs` (subscribers and the fan-out of notices to them), `feedback.rs`
//! (what people wrote in the status page's form), `paging.rs` (pages of the admin lists, with
//! an offset), `notes.rs` (what people
//! write about incidents: updates, resolutions by hand, priorities, post-mortems), `accounts.rs`
//! (admin users and their sessions),
//! `migrations/{sqlite,postgres}/`.

mod accounts;
mod copy;
mod derive;
pub mod fanout;
mod feedback;
mod hold;
mod journal;
mod lazy;
mod notes;
mod numbers;
mod outbox;
mod paging;
mod postgres;
pub mod rollup;
mod sql;
mod sqlite;
mod subscribers;
mod windows;
pub mod writer;

use std::path::PathBuf;

use async_trait::async_trait;
use upkeep_core::api::{Incident, StoredEvent};
use upkeep_core::{Desired, Event, ServiceName};

pub use accounts::{Accounts, NewSession, SessionRow, UserRow};
pub use copy::{Copied, CopyError};
pub use feedback::{Feedback, NewFeedback};
pub use lazy::LazyStore;
pub use notes::{Noted, Notes, OpenByHand, Plan, Planned, WriteUpdate};
pub use numbers::start_numbering;
pub use outbox::{DIGEST_ROWS, Damped, Leased, NewNotice, Outbox, OutboxRow, OutboxState};
pub use paging::{Paging, Span};
pub use postgres::PgLocation;
pub use rollup::RollupMark;
pub use sql::SqlStore;
pub use subscribers::{
    SUBSCRIBER_KEY_PREFIX, StepTake, Subscribed, Subscriber, SubscriberRows, Subscribers,
};
pub use windows::{StoredWindow, Windows};

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Where the store is.
#[derive(Debug, Clone)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(PgLocation),
}

/// The host a daemon runs on: `id` is kept in its data dir (so renaming or cloning the host
/// orphans nothing) and marks every row it writes; `name` is what people see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub name: String,
}

/// Opens the store at `location` for `node`, creating it or bringing its schema up to date.
pub async fn open(location: &Location, node: &Node) -> Result<SqlStore, Error> {
    open_as(location, node, false).await
}

/// Opens the store as [`open`] does, for the daemon of `node`: on PostgreSQL it also holds the
/// node's lock for as long as the store is open, and fails with [`Error::NodeTaken`] while
/// another daemon holds it (see `hold.rs`).
pub(crate) async fn open_as(
    location: &Location,
    node: &Node,
    exclusive: bool,
) -> Result<SqlStore, Error> {
    sqlx::any::install_default_drivers();
    match location {
        Location::Sqlite(path) => sqlite::open(path, node).await,
        Location::Postgres(at) => postgres::open(at, node, exclusive).await,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the database at {path}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot bring the database schema up to date{}", newer_hint(.0))]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("database query failed: {what}")]
    Query {
        what: &'static str,
        #[source]
        source: sqlx::Error,
    },
    /// The store has not been opened since the daemon started (see [`LazyStore`]).
    #[error("the store at {store} has not answered since the daemon started: {last}")]
    NotOpen { store: String, last: String },
    /// Another daemon with this node id uses the database (see `hold.rs`).
    #[error(
        "another upkeep daemon with node id {id} is using this database (it last ran on host {name}); \
         is this data dir a copy of its? Stop one of them, or give this one a new id by removing its data dir's node-id file"
    )]
    NodeTaken { id: String, name: String },
}

/// A database migrated by a newer upkeep says so, rather than only sqlx's "missing".
fn newer_hint(e: &sqlx::migrate::MigrateError) -> String {
    match e {
        sqlx::migrate::MigrateError::VersionMissing(v) => format!(
            ": it was migrated by a newer upkeep (its migration {v} is unknown to this one); upgrade upkeep on this host"
        ),
        _ => String::new(),
    }
}

impl Error {
    /// The error with its causes, on one line (the database's own message is a cause).
    pub fn with_causes(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        let mut last = String::new();
        while let Some(cause) = source {
            // sqlx's I/O error says what its source says: once is enough.
            let said = cause.to_string();
            if said != last {
                text.push_str(": ");
                text.push_str(&said);
            }
            last = said;
            source = cause.source();
        }
        text
    }

    /// True for a store the config describes wrongly (a URL the driver cannot use): opening
    /// it again cannot help, unlike a server away or a wrong password, which may be mended.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Error::Open {
                source: sqlx::Error::Configuration(_),
                ..
            }
        )
    }

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

/// The part of the store the event writer uses: numbered appends. Narrow on purpose, so that
/// the writer's tests can put a failing store in front of a real one with two methods.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends events in one transaction, numbered from `first_seq` on, with what each
    /// changes (incidents, each service's running process). An event whose number is stored
    /// already is skipped: a batch retried after a lost answer is stored once.
    async fn append(&self, first_seq: u64, events: &[Event]) -> Result<(), Error>;
    /// The number of this node's last stored event (0 if none): the writer goes on from it.
    async fn last_seq(&self) -> Result<u64, Error>;
}

#[async_trait]
pub trait Store:
    EventLog + Windows + Outbox + Subscribers + Feedback + Notes + Paging + Send + Sync
{
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
    /// Each service's last process (pid, start ticks) started before `before` whose end
    /// (`exited`, `stale_stopped`) is not recorded before it: what the daemons before one that
    /// started at `before` left running, as [`ServiceRecord::running`] said at that moment,
    /// whatever that daemon has stored since (see `takeover::later` in the daemon).
    async fn running_before(
        &self,
        before: jiff::Timestamp,
    ) -> Result<std::collections::BTreeMap<ServiceName, (u32, u64)>, Error>;
    /// Stores an applied config, returning its revision number.
    async fn save_revision(&self, path: &str, source: &str) -> Result<i64, Error>;
    /// The number of stored revisions.
    async fn revision_count(&self) -> Result<i64, Error>;
    /// The last applied config: its file's path and text (None before the first).
    async fn last_revision(&self) -> Result<Option<(String, String)>, Error>;
    /// What the last daemon left unfinished, by service: open incidents and maintenance in
    /// progress (see [`upkeep_core::Unfinished`]).
    async fn unfinished(
        &self,
    ) -> Result<std::collections::BTreeMap<ServiceName, upkeep_core::Unfinished>, Error>;
    /// This node's events numbered after `seq`, oldest first, at most `limit`: what a durable
    /// consumer reads from its cursor.
    async fn events_after(
        &self,
        seq: u64,
        limit: u32,
    ) -> Result<Vec<upkeep_core::Committed>, Error>;
    /// The number of the last event the consumer `name` finished (0 if none).
    async fn cursor(&self, name: &str) -> Result<u64, Error>;
    async fn set_cursor(&self, name: &str, seq: u64) -> Result<(), Error>;
    /// Where the rollups stand; None before they begin.
    async fn rollup_mark(&self) -> Result<Option<RollupMark>, Error>;
    /// Begins rollups (if they have not begun): from the hour of this node's first event, or
    /// `now`'s when there is none.
    async fn start_rollups(&self, now: jiff::Timestamp) -> Result<RollupMark, Error>;
    /// Stores each service's tally of the hour starting at `hour` (the mark) and moves the
    /// mark past it, rolling up its day when it is the day's last. False, and nothing stored,
    /// when the mark is no longer `hour` (events about an earlier hour arrived).
    async fn save_rollup(
        &self,
        hour: jiff::Timestamp,
        tallies: &std::collections::BTreeMap<ServiceName, upkeep_core::report::Tally>,
    ) -> Result<bool, Error>;
    /// Each service's tally summed over the rolled-up hours in `[from, to)` (both on hour
    /// boundaries), whole days read from day rows.
    async fn rollups(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<std::collections::BTreeMap<ServiceName, upkeep_core::report::Tally>, Error>;
    /// Removes raw events before `before` (never past the rollup mark), except each
    /// service's last status change and last maintenance event; returns how many went.
    async fn forget_before(&self, before: jiff::Timestamp) -> Result<u64, Error>;
    /// Adds probe latency per hour and service to what is stored (histograms add).
    async fn add_latency(&self, hours: &[upkeep_core::latency::HourLatency]) -> Result<(), Error>;
    /// Stored probe latency of the hours that overlap `[from, to)`, oldest first.
    async fn latency(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<Vec<upkeep_core::latency::HourLatency>, Error>;
    /// The engine it runs on.
    fn engine(&self) -> Engine;
}

/// A SQLite store in `dir` for unit tests.
#[cfg(test)]
pub(crate) async fn test_store(dir: &std::path::Path) -> SqlStore {
    let node = Node {
        id: "test".into(),
        name: "test".into(),
    };
    open(&Location::Sqlite(dir.join("u.db")), &node)
        .await
        .unwrap()
}
