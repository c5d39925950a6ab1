//! A store the daemon does not wait for: [`LazyStore::open`] tries once and, if the store
//! cannot be reached (PostgreSQL away, its host down, a wrong password, SQLite locked), hands
//! back a store that is not open yet and keeps trying in the background, with backoff, running
//! the migrations once it gets through. A supervisor that cannot start its services because a
//! database on another host is away would fail at its one job.
//!
//! Until it is open, every call fails at once with [`Error::NotOpen`], which says why the last
//! attempt failed: the event writer journals meanwhile, history reads answer 503, and the
//! writer's health report (`upkeep ls`) carries the reason. A config error (a URL the driver
//! cannot use) is not retried: [`LazyStore::open`] returns it.
//!
//! A wrong password is retried too, and said plainly in the log and in `upkeep ls`: it is the
//! server's answer, and the server's side (the role's password, `pg_hba.conf`) may be what is
//! mended, with no daemon restart. The password itself is read once, at start: a corrected
//! password file takes a restart.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use upkeep_core::api::{Incident, IncidentDetail, StoredEvent};
use upkeep_core::report::ReportInputs;
use upkeep_core::{Committed, Desired, Event, ServiceName, Unfinished};

use crate::{Engine, Error, EventLog, Location, Node, ServiceRecord, SqlStore, Store};

/// How long start-up waits for the first attempt before it goes on without the store: a
/// host that drops packets is seen only at the connection timeout (5 s), and services wait
/// meanwhile. The attempts after it, in the background, take as long as they take.
const FIRST_TRY: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

pub struct LazyStore {
    engine: Engine,
    /// Where the store is, for messages (never a password).
    shown: String,
    open: OnceLock<SqlStore>,
    /// Tells waiters the store is open.
    opened: tokio::sync::watch::Sender<bool>,
    /// Why the last attempt failed, with its causes. A std Mutex: never held across an await.
    last_error: Mutex<String>,
}

impl LazyStore {
    /// Opens the store at `location` for `node`, or, if it cannot be reached now, returns it
    /// unopened and keeps trying in a task of its own (on the current runtime) until it is.
    /// Fails only for what retrying cannot mend (see [`Error::is_config`]).
    pub async fn open(location: Location, node: Node) -> Result<Arc<LazyStore>, Error> {
        let (engine, shown) = match &location {
            Location::Sqlite(path) => (Engine::Sqlite, path.display().to_string()),
            Location::Postgres(at) => (Engine::Postgres, at.url.to_string()),
        };
        let store = Arc::new(LazyStore {
            engine,
            shown,
            open: OnceLock::new(),
            opened: tokio::sync::watch::channel(false).0,
            last_error: Mutex::new("not tried yet".into()),
        });
        match tokio::time::timeout(FIRST_TRY, crate::open_as(&location, &node, true)).await {
            Ok(Ok(s)) => {
                store.set(s);
                return Ok(store);
            }
            Ok(Err(e)) if e.is_config() => return Err(e),
            Ok(Err(e)) => store.failed(e.with_causes(), 1),
            Err(_) => store.failed(format!("no answer within {FIRST_TRY:?}"), 1),
        }
        tokio::spawn(store.clone().keep_trying(location, node));
        Ok(store)
    }

    /// True once the store is open (it stays open: connections are made again as needed).
    pub fn is_open(&self) -> bool {
        self.open.get().is_some()
    }

    /// Waits until the store is open.
    pub async fn opened(&self) {
        let _ = self.opened.subscribe().wait_for(|open| *open).await;
    }

    /// Why the store is not open (None once it is).
    pub fn why_not_open(&self) -> Option<String> {
        if self.is_open() {
            return None;
        }
        Some(self.last_error.lock().expect("not poisoned").clone())
    }

    fn set(&self, store: SqlStore) {
        let _ = self.open.set(store);
        self.opened.send_replace(true);
    }

    fn failed(&self, error: String, attempt: u64) {
        let mut last = self.last_error.lock().expect("not poisoned");
        // The first failure and every new reason in full, then one line per power of two.
        if attempt == 1 || *last != error {
            tracing::error!(store = %self.shown, %error, "cannot open the store; supervision goes on, events are kept in the journal, retrying");
        } else if attempt.is_power_of_two() {
            tracing::warn!(store = %self.shown, %error, attempt, "still cannot open the store; retrying");
        }
        *last = error;
    }

    async fn keep_trying(self: Arc<Self>, location: Location, node: Node) {
        let mut backoff = BACKOFF_MIN;
        for attempt in 2.. {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
            match crate::open_as(&location, &node, true).await {
                Ok(s) => {
                    tracing::info!(store = %self.shown, attempt, "the store is open");
                    self.set(s);
                    return;
                }
                Err(e) => self.failed(e.with_causes(), attempt),
            }
        }
    }

    fn get(&self) -> Result<&SqlStore, Error> {
        self.open.get().ok_or_else(|| Error::NotOpen {
            store: self.shown.clone(),
            last: self.last_error.lock().expect("not poisoned").clone(),
        })
    }
}

/// Implements `$trait` for [`LazyStore`]: each listed method asks the open store, or fails
/// at once with [`Error::NotOpen`]; the block holds the methods written out.
macro_rules! forward {
    ($trait:path { $($own:tt)* }: $(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        #[async_trait]
        impl $trait for LazyStore {
            $($own)*
            $(async fn $name(&self $(, $arg: $ty)*) -> $ret {
                self.get()?.$name($($arg),*).await
            })*
        }
    };
}

forward! { EventLog {}:
    fn append(&self, first_seq: u64, events: &[Event]) -> Result<(), Error>;
    fn last_seq(&self) -> Result<u64, Error>;
}
forward! { Store { fn engine(&self) -> Engine { self.engine } }:
    fn events(&self, service: Option<&ServiceName>, limit: u32) -> Result<Vec<StoredEvent>, Error>;
    fn incidents(&self, service: Option<&ServiceName>, limit: u32) -> Result<Vec<Incident>, Error>;
    fn incident(&self, id: i64, limit: u32) -> Result<Option<IncidentDetail>, Error>;
    fn report_inputs(&self, from: jiff::Timestamp, to: jiff::Timestamp) -> Result<ReportInputs, Error>;
    fn set_desired(&self, service: &ServiceName, desired: Desired) -> Result<(), Error>;
    fn services(&self) -> Result<Vec<ServiceRecord>, Error>;
    fn running_before(&self, before: jiff::Timestamp) -> Result<std::collections::BTreeMap<ServiceName, (u32, u64)>, Error>;
    fn save_revision(&self, path: &str, source: &str) -> Result<i64, Error>;
    fn revision_count(&self) -> Result<i64, Error>;
    fn last_revision(&self) -> Result<Option<(String, String)>, Error>;
    fn unfinished(&self) -> Result<std::collections::BTreeMap<ServiceName, Unfinished>, Error>;
    fn events_after(&self, seq: u64, limit: u32) -> Result<Vec<Committed>, Error>;
    fn cursor(&self, name: &str) -> Result<u64, Error>;
    fn set_cursor(&self, name: &str, seq: u64) -> Result<(), Error>;
    fn rollup_mark(&self) -> Result<Option<crate::RollupMark>, Error>;
    fn start_rollups(&self, now: jiff::Timestamp) -> Result<crate::RollupMark, Error>;
    fn save_rollup(&self, hour: jiff::Timestamp, t: &std::collections::BTreeMap<ServiceName, upkeep_core::report::Tally>) -> Result<bool, Error>;
    fn rollups(&self, from: jiff::Timestamp, to: jiff::Timestamp) -> Result<std::collections::BTreeMap<ServiceName, upkeep_core::report::Tally>, Error>;
    fn forget_before(&self, before: jiff::Timestamp) -> Result<u64, Error>;
    fn add_latency(&self, hours: &[upkeep_core::latency::HourLatency]) -> Result<(), Error>;
    fn latency(&self, from: jiff::Timestamp, to: jiff::Timestamp) -> Result<Vec<upkeep_core::latency::HourLatency>, Error>;
}
forward! { crate::Windows {}:
    fn add_window(&self, spec: &upkeep_core::window::WindowSpec, created: jiff::Timestamp, by: &upkeep_core::Principal, forced_why: Option<&str>) -> Result<i64, Error>;
    fn windows(&self, all: bool) -> Result<Vec<crate::StoredWindow>, Error>;
    fn window(&self, id: i64) -> Result<Option<crate::StoredWindow>, Error>;
    fn edit_window(&self, id: i64, spec: &upkeep_core::window::WindowSpec, at: jiff::Timestamp, forced_why: Option<&str>) -> Result<bool, Error>;
    fn take_step(&self, id: i64, occurrence: jiff::Timestamp, step: upkeep_core::window::Step, at: jiff::Timestamp, by: Option<&upkeep_core::Principal>, notices: &[crate::NewNotice]) -> Result<bool, Error>;
    fn window_done(&self, id: i64) -> Result<(), Error>;
}
forward! { crate::Outbox {}:
    fn add_notices(&self, rows: &[crate::NewNotice], at: jiff::Timestamp) -> Result<u64, Error>;
    fn plan_damped(&self, plan: crate::Damped<'_>) -> Result<Option<jiff::Timestamp>, Error>;
    fn lease(&self, channel: &str, owner: &str, now: jiff::Timestamp, until: jiff::Timestamp, limit: u32) -> Result<Vec<crate::Leased>, Error>;
    fn lease_digest(&self, channel: &str, owner: &str, now: jiff::Timestamp, until: jiff::Timestamp) -> Result<Vec<crate::Leased>, Error>;
    fn mark_sent_all(&self, ids: &[i64], at: jiff::Timestamp, delivery: Option<&str>) -> Result<u64, Error>;
    fn mark_sent(&self, id: i64, at: jiff::Timestamp, delivery: Option<&str>) -> Result<bool, Error>;
    fn mark_retry(&self, id: i64, owner: &str, next: jiff::Timestamp, error: &str) -> Result<bool, Error>;
    fn mark_failed(&self, id: i64, owner: &str, error: &str) -> Result<bool, Error>;
    fn move_digests(&self, now: jiff::Timestamp, at: jiff::Timestamp) -> Result<u64, Error>;
    fn unlease(&self, ids: &[i64], owner: &str) -> Result<u64, Error>;
    fn hurry(&self, channel: &str, now: jiff::Timestamp) -> Result<u64, Error>;
    fn next_due(&self, channels: &[String], owner: &str) -> Result<Option<jiff::Timestamp>, Error>;
    fn release_leases(&self, now: jiff::Timestamp) -> Result<u64, Error>;
    fn outbox(&self, state: Option<crate::OutboxState>, limit: u32) -> Result<Vec<crate::OutboxRow>, Error>;
    fn outbox_row(&self, id: i64) -> Result<Option<crate::OutboxRow>, Error>;
    fn retry_notice(&self, id: i64, now: jiff::Timestamp) -> Result<bool, Error>;
    fn nth_newest_planned(&self, kind: &str, since: jiff::Timestamp, n: u32) -> Result<Option<jiff::Timestamp>, Error>;
}

forward! { crate::Subscribers {}:
    fn subscribe(&self, email: &str, services: &[String], lang: &str, now: jiff::Timestamp, expired_before: jiff::Timestamp, renew_before: jiff::Timestamp) -> Result<crate::Subscribed, Error>;
    fn confirm_subscriber(&self, id: i64, email: &str, created: jiff::Timestamp, now: jiff::Timestamp) -> Result<Option<crate::Subscriber>, Error>;
    fn unsubscribe(&self, id: Option<i64>, email: &str) -> Result<bool, Error>;
    fn subscribers(&self) -> Result<Vec<crate::Subscriber>, Error>;
    fn take_step_fanned(&self, take: crate::StepTake<'_>) -> Result<bool, Error>;
    fn fail_orphaned_notices(&self, channels: &[String]) -> Result<u64, Error>;
}

forward! { crate::Feedback {}:
    fn add_feedback(&self, f: crate::NewFeedback<'_>, at: jiff::Timestamp) -> Result<i64, Error>;
    fn feedback(&self, limit: u32) -> Result<Vec<upkeep_core::feedback::FeedbackItem>, Error>;
    fn nth_newest_feedback(&self, n: u32) -> Result<Option<jiff::Timestamp>, Error>;
}

forward! { crate::Paging {}:
    fn incidents_page(&self, span: crate::Span) -> Result<Vec<Incident>, Error>;
    fn open_incidents(&self) -> Result<Vec<Incident>, Error>;
    fn feedback_page(&self, span: crate::Span) -> Result<Vec<upkeep_core::feedback::FeedbackItem>, Error>;
    fn outbox_page(&self, span: crate::Span) -> Result<Vec<crate::OutboxRow>, Error>;
    fn subscribers_page(&self, span: crate::Span) -> Result<Vec<crate::Subscriber>, Error>;
    fn actions_page(&self, span: crate::Span) -> Result<Vec<StoredEvent>, Error>;
}

forward! { crate::Notes {}:
    fn incident_notes(&self, id: i64) -> Result<Option<upkeep_core::incident::IncidentNotes>, Error>;
    fn write_update(&self, w: crate::WriteUpdate<'_>) -> Result<crate::Noted, Error>;
    fn open_by_hand(&self, o: crate::OpenByHand<'_>) -> Result<i64, Error>;
    fn set_incident_priority(&self, id: i64, priority: upkeep_core::incident::IncidentPriority, at: jiff::Timestamp, plan: crate::Plan<'_>) -> Result<crate::Noted, Error>;
    fn set_postmortem(&self, id: i64, pm: &upkeep_core::incident::WrittenPostmortem) -> Result<crate::Noted, Error>;
    fn recent_updates(&self, limit: u32) -> Result<Vec<upkeep_core::incident::PublicUpdate>, Error>;
}

forward! { crate::Accounts {}:
    fn add_user(&self, name: &str, hash: &str, now: jiff::Timestamp) -> Result<bool, Error>;
    fn set_password(&self, name: &str, hash: &str) -> Result<bool, Error>;
    fn remove_user(&self, name: &str) -> Result<bool, Error>;
    fn users(&self, now: jiff::Timestamp) -> Result<Vec<crate::UserRow>, Error>;
    fn password_hash(&self, name: &str) -> Result<Option<String>, Error>;
    fn open_session(&self, s: crate::NewSession<'_>) -> Result<bool, Error>;
    fn session(&self, hash: &str, now: jiff::Timestamp) -> Result<Option<crate::SessionRow>, Error>;
    fn close_session(&self, hash: &str) -> Result<(), Error>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        Node {
            id: "test".into(),
            name: "test".into(),
        }
    }

    /// A store that cannot be opened yet (here a SQLite file whose folder is missing) is
    /// handed back unopened, fails every call at once saying why, and is used as soon as it
    /// can be opened, with no restart.
    #[tokio::test]
    async fn a_store_away_at_start_is_opened_once_it_can_be() {
        let dir = tempfile::tempdir().unwrap();
        let later = dir.path().join("later");
        let store = LazyStore::open(Location::Sqlite(later.join("u.db")), node())
            .await
            .unwrap();
        assert!(!store.is_open());
        let e = store.last_seq().await.unwrap_err();
        assert!(!e.is_permanent());
        assert!(
            e.with_causes().contains("later/u.db") && store.why_not_open().is_some(),
            "{}",
            e.with_causes()
        );
        std::fs::create_dir(&later).unwrap();
        tokio::time::timeout(Duration::from_secs(30), store.opened())
            .await
            .expect("opened once it could be");
        assert_eq!(store.last_seq().await.unwrap(), 0);
        assert!(store.why_not_open().is_none());
    }

    #[tokio::test]
    async fn a_url_the_driver_cannot_use_is_not_retried() {
        let at = crate::PgLocation {
            url: "postgres://u@127.0.0.1:1/db?sslmode=sometimes"
                .parse()
                .unwrap(),
            password: None,
        };
        let e = LazyStore::open(Location::Postgres(at), node())
            .await
            .err()
            .expect("refused at once");
        assert!(e.is_config(), "{}", e.with_causes());
    }
}
