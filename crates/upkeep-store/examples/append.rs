//! Event append throughput and latency on SQLite and PostgreSQL (issue 15's benchmark).
//! Run by `bench/store`, which starts a PostgreSQL server on loopback; without
//! `UPKEEP_TEST_POSTGRES` it measures SQLite only. Prints one table; asserts nothing.
//!
//! single: one event a transaction (the writer when events trickle in), latency p50/p99;
//! batch: 512 events a transaction (the writer under load), events a second.

use std::time::{Duration, Instant};

use upkeep_core::{Actor, Event, EventKind, ServiceName, State};
use upkeep_store::{Location, Node, PgLocation, Store};

const SINGLES: usize = 2_000;
const BATCHES: usize = 100;
const BATCH: usize = 512;

fn event(i: usize) -> Event {
    let web = ServiceName::new(format!("svc-{}", i % 100)).unwrap();
    let kind = match i % 3 {
        0 => EventKind::StatusChanged {
            from: State::Up,
            to: State::Down,
        },
        1 => EventKind::Started {
            pid: i as u32,
            start_ticks: i as u64,
            by: Actor::Upkeep,
        },
        _ => EventKind::RestartRequested {
            by: Actor::Operator,
        },
    };
    Event::now(&web, kind)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn measure(name: &str, store: &dyn Store) {
    let mut seq = store.last_seq().await.unwrap() + 1;
    let mut lat = Vec::with_capacity(SINGLES);
    let t0 = Instant::now();
    for i in 0..SINGLES {
        let e = [event(i)];
        let t = Instant::now();
        store.append(seq, &e).await.unwrap();
        lat.push(t.elapsed());
        seq += 1;
    }
    let single_rate = SINGLES as f64 / t0.elapsed().as_secs_f64();
    lat.sort();
    let mut blat = Vec::with_capacity(BATCHES);
    let t0 = Instant::now();
    for b in 0..BATCHES {
        let events: Vec<Event> = (0..BATCH).map(|i| event(b * BATCH + i)).collect();
        let t = Instant::now();
        store.append(seq, &events).await.unwrap();
        blat.push(t.elapsed());
        seq += BATCH as u64;
    }
    let batch_rate = (BATCHES * BATCH) as f64 / t0.elapsed().as_secs_f64();
    blat.sort();
    println!(
        "{name:<10} single: {single_rate:>8.0} events/s  p50 {:>6.3} ms  p99 {:>6.3} ms | batch of {BATCH}: {batch_rate:>8.0} events/s  p50 {:>7.2} ms  p99 {:>7.2} ms",
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&blat, 0.5),
        pct(&blat, 0.99),
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let node = Node {
        id: format!("bench-{:08x}", std::process::id()),
        name: "bench".into(),
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = upkeep_store::open(&Location::Sqlite(dir.path().join("upkeep.db")), &node)
        .await
        .unwrap();
    measure("sqlite", &sqlite).await;
    match std::env::var("UPKEEP_TEST_POSTGRES") {
        Ok(url) => {
            let at = PgLocation {
                url: url.parse().unwrap(),
                password: std::env::var("PGPASSWORD").ok(),
            };
            let pg = upkeep_store::open(&Location::Postgres(at), &node)
                .await
                .unwrap();
            measure("postgres", &pg).await;
        }
        Err(_) => println!("postgres   (UPKEEP_TEST_POSTGRES not set: skipped)"),
    }
}
