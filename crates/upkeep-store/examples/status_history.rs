//! Writes 90 days of history for the status page's benchmark (`bench/statuspage`), through
//! the store as the daemon writes it: for each of N services (`svc-0`…), up from 90 days ago,
//! then one outage every few days (down, an incident opened and resolved, up again) lasting
//! 2 to 40 minutes, and a day of probe latency per hour. Usage:
//!
//!     status_history DATA_DIR SERVICES
//!
//! DATA_DIR is a data dir a daemon has used already (its `node-id` and `upkeep.db`); the
//! events are numbered after its last. Prints what it wrote; asserts nothing.

use jiff::{SignedDuration, Timestamp};
use upkeep_core::latency::Latency;
use upkeep_core::{Event, EventKind, ServiceName, State};
use upkeep_store::{EventLog, Location, Node, Store};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    sqlx::any::install_default_drivers();
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: status_history DATA_DIR N"));
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let id = std::fs::read_to_string(dir.join("node-id"))
        .expect("a data dir a daemon has used")
        .trim()
        .to_owned();
    let node = Node {
        id: id.clone(),
        name: id,
    };
    let store = upkeep_store::open(&Location::Sqlite(dir.join("upkeep.db")), &node)
        .await
        .expect("opening the store");
    let now = Timestamp::now();
    let start = now - SignedDuration::from_hours(90 * 24);
    let mut events = Vec::new();
    for s in 0..n {
        let service = Some(ServiceName::new(format!("svc-{s}")).unwrap());
        let ev = |at: Timestamp, kind: EventKind| Event {
            at,
            service: service.clone(),
            kind,
        };
        events.push(ev(
            start,
            EventKind::StatusChanged {
                from: State::Starting,
                to: State::Up,
            },
        ));
        // An outage every 3 to 9 days, at a different hour for each service.
        let mut day = 1 + (s % 7) as i64;
        while day < 89 {
            let since = start
                + SignedDuration::from_hours(day * 24 + (s as i64 * 5) % 24)
                + SignedDuration::from_mins((s as i64 * 13) % 60);
            let minutes = 2 + ((s as i64 + day) * 7) % 39;
            let back = since + SignedDuration::from_mins(minutes);
            events.push(ev(
                since,
                EventKind::StatusChanged {
                    from: State::Up,
                    to: State::Down,
                },
            ));
            events.push(ev(
                since + SignedDuration::from_secs(1),
                EventKind::IncidentOpened {
                    since,
                    reason: "HTTP 503".into(),
                    drill: false,
                },
            ));
            events.push(ev(
                back,
                EventKind::StatusChanged {
                    from: State::Down,
                    to: State::Up,
                },
            ));
            events.push(ev(
                back,
                EventKind::IncidentResolved {
                    since,
                    duration_ms: (minutes * 60_000) as u64,
                },
            ));
            day += 3 + (s as i64 + day) % 7;
        }
    }
    events.sort_by_key(|e| e.at);
    let first = store.last_seq().await.expect("reading the last number") + 1;
    for (i, chunk) in events.chunks(1000).enumerate() {
        store
            .append(first + (i * 1000) as u64, chunk)
            .await
            .expect("appending");
    }
    // A day of probe latency, per hour and service.
    let hour0 = now.as_millisecond().div_euclid(3_600_000) * 3_600_000;
    let mut hours = Vec::new();
    for h in 1..=24 {
        let at = Timestamp::from_millisecond(hour0 - h * 3_600_000).unwrap();
        for s in 0..n {
            let mut l = Latency::default();
            for k in 0..60 {
                l.record(1.0 + ((s as i64 + h * 3 + k) % 17) as f64 * 0.4);
            }
            hours.push((at, ServiceName::new(format!("svc-{s}")).unwrap(), l));
        }
    }
    store.add_latency(&hours).await.expect("adding latency");
    println!(
        "wrote {} events ({} services, 90 days) and {} hours of latency",
        events.len(),
        n,
        hours.len()
    );
}
