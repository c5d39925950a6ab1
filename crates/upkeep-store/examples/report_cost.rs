//! What a 30-day report costs as history grows (issue 15, item 3: "a report costs the same
//! after a year as after a day"). Run by `bench/store report`. For histories of 30, 180 and
//! 365 days (20 services, a status change each every 10 minutes, rolled up), times the last 30
//! days' figures from the rollups (what reports and /metrics read) and from raw events alone
//! (the old way), on SQLite in a temp dir. Prints one table; asserts nothing.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use upkeep_core::{Event, EventKind, ServiceName, State, TestClock};
use upkeep_store::{EventLog, Location, Node, Store, rollup};

const SERVICES: usize = 20;
const EVERY_MIN: i64 = 10;

fn history(from: Timestamp, days: i64) -> Vec<Event> {
    let mut out = Vec::new();
    let steps = days * 24 * 60 / EVERY_MIN;
    for i in 0..steps {
        for s in 0..SERVICES {
            let at = from + SignedDuration::from_mins(i * EVERY_MIN + s as i64 % EVERY_MIN);
            let (f, t) = if i % 2 == 0 {
                (State::Up, State::Degraded)
            } else {
                (State::Degraded, State::Up)
            };
            out.push(Event {
                at,
                service: Some(ServiceName::new(format!("svc-{s}")).unwrap()),
                kind: EventKind::StatusChanged { from: f, to: t },
            });
        }
    }
    out
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    sqlx::any::install_default_drivers();
    println!("history  events     rolled-up 30d report  raw-events 30d report  (median of 5, ms)");
    for days in [30, 180, 365] {
        let dir = tempfile::tempdir().unwrap();
        let node = Node {
            id: "bench".into(),
            name: "bench".into(),
        };
        let store = upkeep_store::open(&Location::Sqlite(dir.path().join("u.db")), &node)
            .await
            .unwrap();
        let start = Timestamp::from_second(1_700_000_000 - 1_700_000_000 % 86_400).unwrap();
        let events = history(start, days);
        for (i, chunk) in events.chunks(512).enumerate() {
            store.append((i * 512) as u64 + 1, chunk).await.unwrap();
        }
        let end = start + SignedDuration::from_hours(days * 24);
        let clock = TestClock::frozen(end + SignedDuration::from_mins(90));
        rollup::pass(&store, &clock.clock(), None).await.unwrap();
        // Edges off the hour, as a real "last 30 days" has.
        let to = end + SignedDuration::from_mins(37);
        let from = to - SignedDuration::from_hours(30 * 24);
        let (mut rolled, mut raw) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let t = Instant::now();
            let a = rollup::tallies(&store, from, to).await.unwrap();
            rolled.push(t.elapsed());
            let t = Instant::now();
            let inputs = store.report_inputs(from, to).await.unwrap();
            let b = upkeep_state::report::tallies(&inputs, from, to);
            raw.push(t.elapsed());
            assert_eq!(a, b, "rollups and raw events agree");
        }
        println!(
            "{days:>4} d  {:>9}  {:>21.1}  {:>21.1}",
            events.len(),
            median(rolled),
            median(raw)
        );
    }
}
