//! What every store test target shares: each test runs on every engine available (SQLite
//! always; PostgreSQL when `UPKEEP_TEST_POSTGRES` names a database), as a node of its own.
#![allow(dead_code)]

use std::future::Future;

use upkeep_core::{Event, EventKind, ServiceName};
use upkeep_store::{Location, Node, PgLocation, Store};

/// Where the PostgreSQL suite runs, if anywhere.
pub fn postgres() -> Option<PgLocation> {
    let url = std::env::var("UPKEEP_TEST_POSTGRES").ok()?;
    Some(PgLocation {
        url: url.parse().expect("UPKEEP_TEST_POSTGRES is a URL"),
        password: std::env::var("PGPASSWORD").ok(),
    })
}

pub fn node() -> Node {
    let id = format!("test-{:016x}", fastrand::u64(..));
    Node {
        name: id.clone(),
        id,
    }
}

/// Runs `test` on every engine available, each with a fresh node (and, for SQLite, a fresh
/// file). It gets a way to open the store again, as a restarted daemon would.
pub async fn on_every_engine<F, Fut>(test: F)
where
    F: Fn(Location, Node) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    test(Location::Sqlite(dir.path().join("upkeep.db")), node()).await;
    match postgres() {
        Some(pg) => test(Location::Postgres(pg), node()).await,
        None => eprintln!("UPKEEP_TEST_POSTGRES is not set: SQLite only"),
    }
}

pub async fn open(at: &Location, node: &Node) -> Box<dyn Store> {
    Box::new(upkeep_store::open(at, node).await.unwrap())
}

pub fn svc(name: &str) -> ServiceName {
    ServiceName::new(name).unwrap()
}

pub fn t(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(1_800_000_000_000 + ms).unwrap()
}

pub fn at(ms: i64, service: &ServiceName, kind: EventKind) -> Event {
    Event {
        at: t(ms),
        service: Some(service.clone()),
        kind,
    }
}
