//! Rollups on every engine: rolled-up hours and days plus raw edges give exactly the figures
//! one pass over the raw events gives, for any period; events about rolled hours (a drained
//! journal, an incident resolved later) roll them again; `retain` removes raw events and the
//! figures of whole hours stay.

mod engines;

use std::collections::BTreeMap;
use std::time::Duration;

use engines::*;
use jiff::Timestamp;
use upkeep_core::report::Tally;
use upkeep_core::{Actor, Event, EventKind, ServiceName, State, TestClock};
use upkeep_store::{Store, rollup};

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// A seeded, irregular history of two services over `days` days: status changes every few
/// minutes to an hour and a half, incidents across hour and day boundaries, heals,
/// interventions, and a drill.
fn history(days: i64, seed: u64) -> Vec<Event> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Vec::new();
    let states = [
        State::Up,
        State::Degraded,
        State::Down,
        State::Recovering,
        State::Maintenance,
        State::Stopped,
        State::Unknown,
        State::Starting,
    ];
    for name in ["web", "db"] {
        let s = svc(name);
        let mut now = rng.i64(0..30 * MIN);
        let mut state = State::Up;
        let mut outage: Option<i64> = None;
        out.push(at(
            now,
            &s,
            EventKind::StatusChanged {
                from: State::Unknown,
                to: state,
            },
        ));
        while now < days * DAY {
            now += rng.i64(MIN..90 * MIN);
            let to = states[rng.usize(..states.len())];
            out.push(at(now, &s, EventKind::StatusChanged { from: state, to }));
            let down = matches!(to, State::Down | State::Recovering);
            match (outage, down) {
                (None, true) => {
                    outage = Some(now);
                    let since = jiff::Timestamp::from_millisecond(1_800_000_000_000 + now).unwrap();
                    out.push(at(
                        now + 1,
                        &s,
                        EventKind::RestartScheduled {
                            attempt: 1,
                            delay_ms: 0,
                        },
                    ));
                    out.push(at(
                        now + 2,
                        &s,
                        EventKind::IncidentOpened {
                            since,
                            reason: "down".into(),
                            drill: false,
                        },
                    ));
                }
                (Some(since_ms), false) => {
                    outage = None;
                    let since = t(since_ms);
                    out.push(at(
                        now,
                        &s,
                        EventKind::IncidentResolved {
                            since,
                            duration_ms: (now - since_ms) as u64,
                        },
                    ));
                }
                _ => {}
            }
            if rng.u8(..10) == 0 {
                out.push(at(
                    now + 3,
                    &s,
                    EventKind::RestartRequested {
                        by: Actor::Operator,
                    },
                ));
            }
            state = to;
        }
    }
    // A drill on web across an hour boundary: 10 minutes from 1 h 55 min.
    out.push(at(
        2 * HOUR + 5 * MIN,
        &svc("web"),
        EventKind::DrillCompleted {
            fault: "kill".into(),
            injected_at: t(HOUR + 55 * MIN),
            detected_ms: 1000,
            recovered_ms: (10 * MIN) as u64,
        },
    ));
    out.sort_by_key(|e| e.at);
    out
}

async fn raw(store: &dyn Store, from: Timestamp, to: Timestamp) -> BTreeMap<ServiceName, Tally> {
    let inputs = store.report_inputs(from, to).await.unwrap();
    upkeep_state::report::tallies(&inputs, from, to)
}

/// Periods with edges on and off hour and day boundaries.
fn periods(days: i64) -> Vec<(i64, i64)> {
    vec![
        (17 * MIN, days * DAY - 5 * MIN),
        (DAY, 2 * DAY),
        (30 * MIN, 50 * MIN),
        (-HOUR, days * DAY + HOUR),
        (HOUR + 1, 3 * HOUR - 1),
        (23 * HOUR + 59 * MIN, 2 * DAY + 7 * MIN),
    ]
}

async fn assert_rollups_match_raw(store: &dyn Store, days: i64, what: &str) {
    for (from, to) in periods(days) {
        let rolled = rollup::tallies(store, t(from), t(to)).await.unwrap();
        assert_eq!(
            rolled,
            raw(store, t(from), t(to)).await,
            "{what}: period {from}..{to}"
        );
    }
}

fn clock_at(ms: i64) -> TestClock {
    TestClock::frozen(t(ms))
}

#[tokio::test]
async fn rolled_hours_and_days_give_the_figures_of_the_raw_events() {
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        let events = history(3, 7);
        store.append(1, &events).await.unwrap();
        let clock = clock_at(3 * DAY + 2 * HOUR);
        rollup::pass(store.as_ref(), &clock.clock(), None)
            .await
            .unwrap();
        let mark = store.rollup_mark().await.unwrap().unwrap();
        // Every hour that closed a minute ago: the first event's hour on, up to 3 d 1 h.
        assert_eq!(mark.rolled_until, t(3 * DAY + HOUR));
        // Rows exist, and the figures they give are the raw events' exactly.
        let days = store.rollups(t(0), t(3 * DAY)).await.unwrap();
        assert!(days[&svc("web")].available_ms > 0);
        assert!(days[&svc("web")].incidents > 0, "the history has incidents");
        assert_eq!(days[&svc("web")].drills, 1);
        assert_rollups_match_raw(store.as_ref(), 3, "rolled").await;
    })
    .await;
}

#[tokio::test]
async fn events_about_rolled_hours_roll_them_again() {
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        let events = history(2, 11);
        store.append(1, &events).await.unwrap();
        let clock = clock_at(2 * DAY + 2 * HOUR);
        rollup::pass(store.as_ref(), &clock.clock(), None)
            .await
            .unwrap();
        let before = store.rollup_mark().await.unwrap().unwrap().rolled_until;
        let day_before = store.rollups(t(0), t(DAY)).await.unwrap();
        // A daemon's journal drained late: db was unknown for three hours on the first day,
        // and an incident of web that began at 5 h is resolved only now.
        let db = svc("db");
        let late = [
            at(
                10 * HOUR + 30 * MIN,
                &db,
                EventKind::StatusChanged {
                    from: State::Up,
                    to: State::Unknown,
                },
            ),
            at(
                13 * HOUR + 30 * MIN,
                &db,
                EventKind::StatusChanged {
                    from: State::Unknown,
                    to: State::Up,
                },
            ),
        ];
        store.append(events.len() as u64 + 1, &late).await.unwrap();
        let mark = store.rollup_mark().await.unwrap().unwrap();
        assert_eq!(
            mark.rolled_until,
            t(10 * HOUR),
            "moved back to the late event's hour"
        );
        // Reads are right before the task catches up (the rest comes from raw events)...
        assert_rollups_match_raw(store.as_ref(), 2, "moved back").await;
        rollup::pass(store.as_ref(), &clock.clock(), None)
            .await
            .unwrap();
        assert_eq!(
            store.rollup_mark().await.unwrap().unwrap().rolled_until,
            before
        );
        // ...and after.
        assert_rollups_match_raw(store.as_ref(), 2, "rolled again").await;
        let day = store.rollups(t(0), t(DAY)).await.unwrap();
        assert_ne!(
            day[&db], day_before[&db],
            "the first day of db is rolled again"
        );
        assert_eq!(day[&svc("web")], day_before[&svc("web")]);
    })
    .await;
}

#[tokio::test]
async fn retain_removes_old_raw_events_and_whole_hours_keep_their_figures() {
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        let events = history(4, 3);
        store.append(1, &events).await.unwrap();
        let clock = clock_at(4 * DAY + 2 * HOUR);
        rollup::pass(store.as_ref(), &clock.clock(), None)
            .await
            .unwrap();
        let whole = [(0, DAY), (DAY + 5 * HOUR, 3 * DAY), (0, 4 * DAY)];
        let mut expected = Vec::new();
        for (from, to) in whole {
            expected.push(
                rollup::tallies(store.as_ref(), t(from), t(to))
                    .await
                    .unwrap(),
            );
        }
        let stored_before = store.events(None, 100_000).await.unwrap().len();
        // Keep two days of raw events.
        let keep = Duration::from_secs(2 * 86_400);
        rollup::pass(store.as_ref(), &clock.clock(), Some(keep))
            .await
            .unwrap();
        let mark = store.rollup_mark().await.unwrap().unwrap();
        assert_eq!(mark.raw_since, t(2 * DAY + 2 * HOUR));
        let kept = store.events(None, 100_000).await.unwrap();
        assert!(kept.len() < stored_before, "old events are gone");
        let old = kept.iter().filter(|e| e.at < t(2 * DAY + 2 * HOUR)).count();
        assert!(
            old <= 2,
            "at most each service's last state before the cut: {old}"
        );
        for ((from, to), want) in whole.into_iter().zip(expected) {
            let got = rollup::tallies(store.as_ref(), t(from), t(to))
                .await
                .unwrap();
            assert_eq!(got, want, "period {from}..{to} after retain");
        }
        // An event about a time whose raw events are gone does not roll those hours again
        // (from nothing): the mark stops at what is kept.
        let late = [at(
            HOUR,
            &svc("db"),
            EventKind::StatusChanged {
                from: State::Up,
                to: State::Down,
            },
        )];
        store.append(events.len() as u64 + 1, &late).await.unwrap();
        let mark = store.rollup_mark().await.unwrap().unwrap();
        assert_eq!(mark.rolled_until, t(2 * DAY + 2 * HOUR));
        // A second pass removes nothing more and changes no figure.
        rollup::pass(store.as_ref(), &clock.clock(), Some(keep))
            .await
            .unwrap();
        let got = rollup::tallies(store.as_ref(), t(0), t(DAY)).await.unwrap();
        assert!(got[&svc("web")].available_ms > 0);
    })
    .await;
}

#[tokio::test]
async fn a_report_of_months_reads_day_rows_and_matches_the_raw_pass() {
    // 100 days with an hour's outage each: rolled up, then three months' figures come from day
    // rows, hour rows and raw edges, and match the raw pass.
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        let web = svc("web");
        let mut events = Vec::new();
        let mut state = State::Up;
        for h in 0..100 * 24 {
            let to = if h % 24 == 3 { State::Down } else { State::Up };
            if to != state {
                events.push(at(
                    h * HOUR + 7 * MIN,
                    &web,
                    EventKind::StatusChanged { from: state, to },
                ));
                state = to;
            }
        }
        for (i, chunk) in events.chunks(500).enumerate() {
            store.append((i * 500) as u64 + 1, chunk).await.unwrap();
        }
        let clock = clock_at(100 * DAY + 2 * HOUR);
        rollup::pass(store.as_ref(), &clock.clock(), None)
            .await
            .unwrap();
        let (from, to) = (t(5 * DAY + 13 * MIN), t(95 * DAY + 3 * HOUR));
        let year = rollup::tallies(store.as_ref(), from, to).await.unwrap();
        assert_eq!(year, raw(store.as_ref(), from, to).await);
        assert_eq!(year[&web].outage_ms, 90 * HOUR as u64);
    })
    .await;
}

#[tokio::test]
async fn probe_latency_adds_up_per_hour_and_a_bad_row_is_skipped() {
    use upkeep_core::latency::Latency;
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        let hist = |ms: &[f64]| {
            let mut l = Latency::default();
            for m in ms {
                l.record(*m);
            }
            l
        };
        let (web, db) = (svc("web"), svc("db"));
        store
            .add_latency(&[
                (t(0), web.clone(), hist(&[1.0, 2.0])),
                (t(HOUR), db.clone(), hist(&[9.0])),
            ])
            .await
            .unwrap();
        // The same hour again (a restarted daemon's rest of the hour): added, not replaced.
        store
            .add_latency(&[(t(0), web.clone(), hist(&[100.0]))])
            .await
            .unwrap();
        let got = store.latency(t(30 * MIN), t(2 * HOUR)).await.unwrap();
        assert_eq!(got.len(), 2, "hours overlapping the period, whole: {got:?}");
        assert_eq!(got[0], (t(0), web.clone(), hist(&[1.0, 2.0, 100.0])));
        assert_eq!(got[1], (t(HOUR), db.clone(), hist(&[9.0])));
        assert!(
            store
                .latency(t(2 * HOUR), t(3 * HOUR))
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}
