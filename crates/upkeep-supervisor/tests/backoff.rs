//! A real supervisor, a real crash-looping process and a frozen test clock: the backoff between
//! restarts passes when the test moves the clock, not in real time, and the crash-loop limit
//! fails the service for good.
//!
//! An integration test (its own process), not a unit test beside `supervisor.rs`: the reaper
//! reaps every child of the process, and would take those of other unit tests.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use upkeep_core::{Event, EventKind, ServiceName, TestClock};
use upkeep_supervisor::{Lineage, LogHub, Reaper, Supervisor, SupervisorDeps};

/// Real time to wait for what must happen at once (never reached when it works).
const GUARD: Duration = Duration::from_secs(10);
/// Real time `advance` waits for the sleepers it made due.
const SETTLE: Duration = Duration::from_secs(5);

async fn next(events: &mut mpsc::Receiver<Event>) -> EventKind {
    tokio::time::timeout(GUARD, events.recv())
        .await
        .expect("no event from the supervisor")
        .expect("the supervisor ended")
        .kind
}

#[tokio::test]
async fn a_paused_clock_drives_the_backoff_of_a_crash_looping_service() {
    let dir = tempfile::tempdir().unwrap();
    let toml = "[services.bad]\ncommand = \"false\"\nbackoff_min = \"10s\"\nbackoff_max = \"1m\"\nmax_restarts = 4\nwindow = \"1h\"\n";
    let config = upkeep_config::parse(&dir.path().join("upkeep.toml"), toml).unwrap();
    let cfg = config
        .services
        .into_values()
        .next()
        .unwrap()
        .managed
        .unwrap();

    let tc = TestClock::frozen("2030-01-01T00:00:00Z".parse().unwrap());
    let clock = tc.clock();
    let (tx, mut events) = mpsc::channel(256);
    let deps = SupervisorDeps {
        reaper: Reaper::start().unwrap(),
        logs: LogHub::start(dir.path().join("logs"), tx.clone(), clock.clone()).unwrap(),
        events: tx,
        lineage: Lineage::open(dir.path(), "backoff-test", false).unwrap(),
        clock: clock.clone(),
        notify_dir: dir.path().join("notify"),
        seal: Default::default(),
    };
    let (cancel, tasks) = (CancellationToken::new(), TaskTracker::new());
    let name = ServiceName::new("bad").unwrap();
    // Held: dropping the handle closes the supervisor's commands, which stops it.
    let (_permit, go) = tokio::sync::watch::channel(upkeep_core::Permit::default());
    let _handle = Supervisor::spawn(name, cfg, true, &deps, go, cancel.clone(), &tasks);

    let mut starts = 0;
    let mut delays = Vec::new();
    let restarts = loop {
        match next(&mut events).await {
            EventKind::Started { .. } => starts += 1,
            EventKind::RestartScheduled { delay_ms, .. } if delay_ms > 0 => {
                delays.push(delay_ms);
                let delay = Duration::from_millis(delay_ms);
                // The supervisor waits on the clock, for the delay it announced (in whole
                // milliseconds: the wait itself may be a fraction of one longer).
                let due = clock.instant() + delay;
                let ms = Duration::from_millis(1);
                let waiting = async {
                    while !matches!(tc.pending()[..], [at] if at >= due && at < due + ms) {
                        tokio::task::yield_now().await;
                    }
                };
                tokio::time::timeout(GUARD, waiting)
                    .await
                    .unwrap_or_else(|_| panic!("no sleeper for {due:?}: {:?}", tc.pending()));
                // A millisecond short: nothing happens (`advance` returns after what it made
                // due has woken, and nothing was due).
                assert!(tc.advance(delay - ms, SETTLE).await);
                assert!(
                    events.try_recv().is_err(),
                    "restarted before its backoff ended"
                );
                // Two more, past the announced delay and its fraction: restarted.
                assert!(tc.advance(2 * ms, SETTLE).await);
                assert!(matches!(next(&mut events).await, EventKind::Started { .. }));
                starts += 1;
            }
            EventKind::Failed { restarts, .. } => break restarts,
            _ => {}
        }
    };
    assert_eq!(restarts, 4);
    assert_eq!(starts, 5, "the first start and four restarts");
    // backoff_min × 2^(n-2), ±20%: about 10 s, 20 s, 40 s (the first restart is immediate).
    assert_eq!(delays.len(), 3, "{delays:?}");
    for (d, base) in delays.iter().zip([10_000u64, 20_000, 40_000]) {
        assert!(d * 10 >= base * 8 && d * 10 <= base * 12, "{delays:?}");
    }
    // Failed: nothing waits on the clock any more, and a day later nothing has restarted it.
    assert!(tc.pending().is_empty(), "{:?}", tc.pending());
    assert!(tc.advance(Duration::from_secs(86_400), SETTLE).await);
    assert!(events.try_recv().is_err());

    cancel.cancel();
    tasks.close();
    tokio::time::timeout(GUARD, tasks.wait()).await.unwrap();
}
