//! The store conformance suite: every test runs over `dyn Store` on SQLite, and on PostgreSQL
//! when `UPKEEP_TEST_POSTGRES` names a database (`postgres://user@127.0.0.1:5432/db`; the
//! password, if any, in `PGPASSWORD`). CI always sets it (`scripts/test` starts a server).
//!
//! Each test is a node of its own (a random id), so tests share one PostgreSQL database and
//! run in parallel without seeing each other's rows: which is also what nodes promise.

use std::path::Path;

use upkeep_core::{Actor, Desired, Event, EventKind, ExitStatus, State};
use upkeep_store::{Engine, EventLog, Location, ServiceRecord, Store, Windows};

mod engines;

use engines::*;

#[tokio::test]
async fn an_unchanged_config_is_stored_once() {
    on_every_engine(async |at, node| {
        let store = open(&at, &node).await;
        let a = store.save_revision("/etc/u.toml", "key = 1").await.unwrap();
        let b = store.save_revision("/etc/u.toml", "key = 1").await.unwrap();
        let c = store.save_revision("/etc/u.toml", "key = 2").await.unwrap();
        let d = store.save_revision("/etc/u.toml", "key = 1").await.unwrap();
        assert_eq!(a, b);
        assert!(c > a && d > c);
        assert_eq!(store.revision_count().await.unwrap(), 3);
    })
    .await;
}

#[tokio::test]
async fn events_incidents_and_running_processes_survive_reopening() {
    on_every_engine(async |location, node| {
        let web = svc("web");
        {
            let s = open(&location, &node).await;
            assert_eq!(s.last_seq().await.unwrap(), 0);
            s.append(
                1,
                &[
                    Event::now(
                        &web,
                        EventKind::Started {
                            pid: 10,
                            start_ticks: 5,
                            by: Actor::Upkeep,
                        },
                    ),
                    Event::now(
                        &web,
                        EventKind::Exited {
                            pid: 10,
                            status: ExitStatus {
                                code: None,
                                signal: Some(9),
                            },
                            uptime_ms: 1,
                        },
                    ),
                    Event::now(
                        &web,
                        EventKind::Started {
                            pid: 11,
                            start_ticks: 6,
                            by: Actor::Operator,
                        },
                    ),
                ],
            )
            .await
            .unwrap();
            s.set_desired(&web, Desired::Stopped).await.unwrap();
            assert_eq!(s.revision_count().await.unwrap(), 0);
            s.save_revision("/x.toml", "a = 1").await.unwrap();
        }
        let s = open(&location, &node).await;
        assert_eq!(s.last_seq().await.unwrap(), 3);
        let ev = s.events(Some(&web), 10).await.unwrap();
        assert_eq!(
            ev.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            ["started", "exited", "started"]
        );
        assert!(ev[0].intervention && !ev[2].intervention);
        assert_eq!(ev[1].detail["status"]["signal"], 9);
        assert_eq!(
            s.services().await.unwrap(),
            [ServiceRecord {
                name: web.clone(),
                desired: Desired::Stopped,
                running: Some((11, 6))
            }]
        );
        assert_eq!(s.revision_count().await.unwrap(), 1);
        // Incidents follow their events, flapping included.
        s.append(
            4,
            &[
                at(
                    5,
                    &web,
                    EventKind::IncidentOpened {
                        since: t(0),
                        reason: "probe http: HTTP 500".into(),
                        drill: false,
                    },
                ),
                at(
                    100,
                    &web,
                    EventKind::IncidentResolved {
                        since: t(0),
                        duration_ms: 100,
                    },
                ),
                at(
                    150,
                    &web,
                    EventKind::IncidentReopened {
                        since: t(0),
                        reason: "again".into(),
                    },
                ),
            ],
        )
        .await
        .unwrap();
        let open_now = s.unfinished().await.unwrap();
        assert_eq!(open_now[&web].incident, Some((t(0), false)));
        s.append(
            7,
            &[at(
                400,
                &web,
                EventKind::IncidentResolved {
                    since: t(0),
                    duration_ms: 400,
                },
            )],
        )
        .await
        .unwrap();
        let inc = s.incidents(Some(&web), 10).await.unwrap();
        assert_eq!(inc.len(), 1);
        assert_eq!(
            (inc[0].duration_ms, inc[0].reason.as_str(), inc[0].drill),
            (400, "probe http: HTTP 500", false)
        );
        let detail = s.incident(inc[0].id, 100).await.unwrap().unwrap();
        assert_eq!(detail.timeline.len(), 4, "{:?}", detail.timeline);
        assert!(s.incident(inc[0].id + 1000, 10).await.unwrap().is_none());
        assert!(!s.unfinished().await.unwrap().contains_key(&web));
        assert!(s.events(Some(&svc("other")), 10).await.unwrap().is_empty());
    })
    .await;
}

/// Issue 15, item 4: a batch retried after its answer was lost is stored once, and what it
/// changes is changed once.
#[tokio::test]
async fn a_retried_batch_is_stored_once() {
    on_every_engine(async |location, node| {
        let s = open(&location, &node).await;
        let web = svc("web");
        let batch = [
            at(
                0,
                &web,
                EventKind::IncidentOpened {
                    since: t(0),
                    reason: "down".into(),
                    drill: true,
                },
            ),
            at(1, &web, EventKind::StaleStopped { pid: 4 }),
        ];
        s.append(1, &batch).await.unwrap();
        s.append(1, &batch).await.unwrap();
        // A retry from the middle (its first event stored, the second new).
        s.append(
            2,
            &[
                batch[1].clone(),
                at(2, &web, EventKind::StaleStopped { pid: 5 }),
            ],
        )
        .await
        .unwrap();
        assert_eq!(s.events(None, 100).await.unwrap().len(), 3);
        assert_eq!(s.last_seq().await.unwrap(), 3);
        let inc = s.incidents(None, 10).await.unwrap();
        assert_eq!(inc.len(), 1);
        assert!(inc[0].drill);
    })
    .await;
}

/// A batch is written in statements of a few lengths (powers of two): one of any length is
/// stored whole and in order, each service keeps its last process (whichever statement wrote
/// its earlier ones), and a retry from the middle stores and changes nothing twice.
#[tokio::test]
async fn a_batch_of_any_length_is_stored_whole_with_each_services_last_process() {
    on_every_engine(async |location, node| {
        let s = open(&location, &node).await;
        // 700 = 512 + 128 + 32 + 16 + 8 + 4: every service's runs span several statements.
        let services = 150;
        let batch: Vec<Event> = (0..700)
            .map(|i| {
                let kind = match i % 7 {
                    6 => EventKind::Exited {
                        pid: i,
                        status: ExitStatus {
                            code: Some(1),
                            signal: None,
                        },
                        uptime_ms: 1,
                    },
                    _ => EventKind::Started {
                        pid: i,
                        start_ticks: u64::from(i) + 1000,
                        by: Actor::Upkeep,
                    },
                };
                at(i64::from(i), &svc(&format!("s{}", i % services)), kind)
            })
            .collect();
        s.append(1, &batch).await.unwrap();
        s.append(301, &batch[300..]).await.unwrap();
        s.append(701, &batch[..3]).await.unwrap();
        assert_eq!(s.last_seq().await.unwrap(), 703);
        let stored = s.events(None, 1000).await.unwrap();
        assert_eq!(stored.len(), 703);
        let ids: Vec<i64> = stored.iter().rev().map(|e| e.id).collect();
        assert_eq!(ids, (1..=703).collect::<Vec<i64>>());
        let times: Vec<i64> = stored.iter().rev().map(|e| e.at.as_millisecond()).collect();
        let sent: Vec<i64> = batch
            .iter()
            .chain(&batch[..3])
            .map(|e| e.at.as_millisecond())
            .collect();
        assert_eq!(times, sent);
        let running: std::collections::BTreeMap<String, Option<(u32, u64)>> = s
            .services()
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.name.to_string(), r.running))
            .collect();
        assert_eq!(running.len(), services as usize);
        for k in 0..services {
            // The service's last event of all, the three appended again at the end included.
            let last = (0..700).chain(0..3).rfind(|i| i % services == k).unwrap();
            let want = (last % 7 != 6).then_some((last, u64::from(last) + 1000));
            assert_eq!(running[&format!("s{k}")], want, "s{k}");
        }
    })
    .await;
}

/// Rows belong to their node: two daemons sharing one database never see each other's
/// services, events, incidents or revisions, and number their events apart.
#[tokio::test]
async fn nodes_sharing_a_database_see_only_their_own_rows() {
    on_every_engine(async |location, a| {
        let b = node();
        let (sa, sb) = (open(&location, &a).await, open(&location, &b).await);
        let web = svc("web");
        sa.append(
            1,
            &[
                at(
                    0,
                    &web,
                    EventKind::StatusChanged {
                        from: State::Up,
                        to: State::Down,
                    },
                ),
                at(
                    0,
                    &web,
                    EventKind::IncidentOpened {
                        since: t(0),
                        reason: "down".into(),
                        drill: false,
                    },
                ),
            ],
        )
        .await
        .unwrap();
        sa.set_desired(&web, Desired::Stopped).await.unwrap();
        sa.save_revision("/a.toml", "a").await.unwrap();
        sb.append(1, &[at(5, &web, EventKind::StaleStopped { pid: 1 })])
            .await
            .unwrap();
        assert_eq!(sa.events(None, 10).await.unwrap().len(), 2);
        assert_eq!(sb.events(None, 10).await.unwrap().len(), 1);
        assert_eq!(sb.last_seq().await.unwrap(), 1);
        assert!(sb.incidents(None, 10).await.unwrap().is_empty());
        assert!(sb.unfinished().await.unwrap().is_empty());
        assert_eq!(sb.revision_count().await.unwrap(), 0);
        assert_eq!(sb.services().await.unwrap()[0].desired, Desired::Running);
        let report = sb.report_inputs(t(-10), t(10)).await.unwrap();
        assert!(report.transitions.is_empty() && report.incidents.is_empty());
        let id = sa.incidents(None, 1).await.unwrap()[0].id;
        assert!(sb.incident(id, 10).await.unwrap().is_none());
    })
    .await;
}

/// Issue 14, C13: a report reads each service's last change before its period and the
/// changes within it, never the whole history.
#[tokio::test]
async fn a_report_reads_the_state_at_its_start_and_its_period_only() {
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        let s = |sec: i64| sec * 1000;
        let change = |svc_name: &str, sec: i64, from: State, to: State| {
            at(
                s(sec),
                &svc(svc_name),
                EventKind::StatusChanged { from, to },
            )
        };
        let mut events = Vec::new();
        // A long history: web flaps a thousand times, db goes down once and stays down.
        for i in 0..1000 {
            events.push(change("web", i * 2, State::Up, State::Down));
            events.push(change("web", i * 2 + 1, State::Down, State::Up));
        }
        events.push(change("db", 5, State::Up, State::Down));
        events.push(change("web", 3000, State::Up, State::Degraded));
        events.push(at(
            s(3001),
            &svc("web"),
            EventKind::RestartRequested {
                by: Actor::Operator,
            },
        ));
        // Stored late, dated earlier (the unwatched time a daemon that started without its
        // store records once it is back): read where it happened.
        events.push(change("web", 2999, State::Up, State::Unknown));
        store.append(1, &events).await.unwrap();
        let inputs = store.report_inputs(t(s(2500)), t(s(4000))).await.unwrap();
        let seen: Vec<(String, i64, State)> = inputs
            .transitions
            .iter()
            .map(|tr| {
                (
                    tr.service.to_string(),
                    (tr.at.as_millisecond() - t(0).as_millisecond()) / 1000,
                    tr.to,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("db".to_owned(), 5, State::Down),
                ("web".to_owned(), 1999, State::Up),
                ("web".to_owned(), 2999, State::Unknown),
                ("web".to_owned(), 3000, State::Degraded),
            ],
        );
        assert_eq!(inputs.interventions, [(svc("web"), t(s(3001)))]);
    })
    .await;
}

/// Only SQLite can hold a row of the wrong type (PostgreSQL refuses it): such a row is
/// skipped, never a panic.
#[tokio::test]
async fn a_bad_row_is_skipped_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upkeep.db");
    let node = node();
    let store = upkeep_store::open(&Location::Sqlite(path.clone()), &node)
        .await
        .unwrap();
    assert_eq!(store.engine(), Engine::Sqlite);
    let raw = raw_sqlite(&path).await;
    for sql in [
        "INSERT INTO services (node, name, desired, pid, start_ticks, updated_ms) VALUES ($1, 'web', 'running', 'not a pid', x'00', 0)",
        "INSERT INTO services (node, name, desired, updated_ms) VALUES ($1, 'ok', 'stopped', 0)",
        "INSERT INTO events (node, seq, at_ms, service, kind, detail) VALUES ($1, 1, 'soon', 'web', 'started', '{}')",
        "INSERT INTO incidents (node, service, started_ms, opened_ms, reason) VALUES ($1, 'web', 'x', 0, 'r')",
    ] {
        sqlx::query(sql).bind(&node.id).execute(&raw).await.unwrap();
    }
    let services = store.services().await.unwrap();
    assert_eq!(services.len(), 1, "{services:?}");
    assert_eq!(services[0].name.as_str(), "ok");
    assert!(store.events(None, 100).await.unwrap().is_empty());
    assert!(store.incidents(None, 100).await.unwrap().is_empty());
}

async fn raw_sqlite(path: &Path) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

/// A database made by the schema before nodes (migrations 0001 to 0004) opens, keeps its
/// history, and its rows become this node's.
#[tokio::test]
async fn a_database_from_the_previous_schema_keeps_its_history() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upkeep.db");
    std::fs::File::create(&path).unwrap();
    let raw = raw_sqlite(&path).await;
    let mut old = sqlx::migrate::Migrator::new(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite"),
    )
    .await
    .unwrap();
    old.migrations = old
        .migrations
        .iter()
        .filter(|m| m.version <= 4)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    old.run(&raw).await.unwrap();
    for sql in [
        "INSERT INTO services (name, desired, pid, start_ticks, updated_ms) VALUES ('web', 'stopped', 42, 7, 0)",
        r#"INSERT INTO events (at_ms, service, kind, detail, to_state) VALUES (1800000000000, 'web', 'status_changed', '{"kind":"status_changed","from":"up","to":"down"}', 'down')"#,
        r#"INSERT INTO events (at_ms, service, kind, intervention, detail) VALUES (1800000000500, 'web', 'stopped', 1, '{"kind":"stopped","by":"operator"}')"#,
        "INSERT INTO incidents (service, started_ms, opened_ms, reason, drill) VALUES ('web', 1800000000000, 1800000000000, 'down', 0)",
        "INSERT INTO config_revisions (applied_ms, path, source) VALUES (0, '/u.toml', 'x = 1')",
    ] {
        sqlx::query(sql).execute(&raw).await.unwrap();
    }
    raw.close().await;
    let node = node();
    let store = upkeep_store::open(&Location::Sqlite(path.clone()), &node)
        .await
        .unwrap();
    let web = svc("web");
    assert_eq!(
        store.services().await.unwrap(),
        [ServiceRecord {
            name: web.clone(),
            desired: Desired::Stopped,
            running: Some((42, 7)),
        }]
    );
    let events = store.events(Some(&web), 10).await.unwrap();
    assert_eq!(events.len(), 2);
    assert!(events[0].intervention);
    assert_eq!(store.last_seq().await.unwrap(), 2);
    assert_eq!(store.incidents(None, 10).await.unwrap().len(), 1);
    assert_eq!(
        store.unfinished().await.unwrap()[&web].incident,
        Some((t(0), false))
    );
    assert_eq!(store.revision_count().await.unwrap(), 1);
    let report = store.report_inputs(t(0), t(1000)).await.unwrap();
    assert_eq!(report.transitions.len(), 1);
    // New events go on from the old ones' numbers.
    store
        .append(3, &[at(600, &web, EventKind::StaleStopped { pid: 42 })])
        .await
        .unwrap();
    assert_eq!(store.events(None, 10).await.unwrap().len(), 3);
}

/// Issue 15, item 9: what durable consumers read: events after a number, and cursors kept per
/// node and consumer.
#[tokio::test]
async fn events_after_a_cursor_come_back_whole_and_cursors_are_kept() {
    on_every_engine(async |location, node| {
        let s = open(&location, &node).await;
        let web = svc("web");
        let events: Vec<Event> = (1..=5)
            .map(|pid| at(pid, &web, EventKind::StaleStopped { pid: pid as u32 }))
            .collect();
        s.append(1, &events).await.unwrap();
        let after = s.events_after(2, 2).await.unwrap();
        assert_eq!(after.iter().map(|c| c.seq).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(after[0].event, events[2]);
        assert_eq!(s.cursor("outbox").await.unwrap(), 0);
        s.set_cursor("outbox", 4).await.unwrap();
        s.set_cursor("other", 1).await.unwrap();
        let again = open(&location, &node).await;
        assert_eq!(again.cursor("outbox").await.unwrap(), 4);
        assert_eq!(again.events_after(4, 100).await.unwrap().len(), 1);
        let stranger = open(&location, &self::node()).await;
        assert_eq!(stranger.cursor("outbox").await.unwrap(), 0);
        assert!(stranger.events_after(0, 100).await.unwrap().is_empty());
    })
    .await;
}

/// `upkeep store copy`: a node's whole history moves from SQLite to any engine, keeps its
/// event numbers, and refuses a target that already holds some of it.
#[tokio::test]
async fn a_history_is_copied_whole_and_only_into_an_empty_target() {
    let dir = tempfile::tempdir().unwrap();
    let node = node();
    let from = upkeep_store::open(&Location::Sqlite(dir.path().join("from.db")), &node)
        .await
        .unwrap();
    let web = svc("web");
    let mut events = vec![
        at(
            0,
            &web,
            EventKind::Started {
                pid: 4,
                start_ticks: 9,
                by: Actor::Upkeep,
            },
        ),
        at(
            1,
            &web,
            EventKind::IncidentOpened {
                since: t(1),
                reason: "down".into(),
                drill: true,
            },
        ),
        at(
            2,
            &web,
            EventKind::RestartRequested {
                by: Actor::Operator,
            },
        ),
    ];
    events.extend((0..4500).map(|i| at(10 + i, &web, EventKind::StaleStopped { pid: 7 })));
    from.append(1, &events).await.unwrap();
    from.set_desired(&web, Desired::Stopped).await.unwrap();
    from.save_revision("/u.toml", "a = 1").await.unwrap();
    from.set_cursor("outbox", 2).await.unwrap();
    // A window with a step, an hour rolled up and its probe latency.
    let spec = upkeep_core::window::WindowSpec {
        kind: upkeep_core::window::WindowKind::Repair,
        title: "disk".into(),
        reason: String::new(),
        start: t(3_600_000),
        end: t(7_200_000),
        tz: "UTC".into(),
        repeat: None,
        services: vec![],
        alternative: String::new(),
        follow_up: String::new(),
        priority: None,
    };
    let by = upkeep_core::Principal {
        name: "alice".into(),
        via: upkeep_core::Via::Socket,
        from: None,
    };
    let w = from.add_window(&spec, t(0), &by, None).await.unwrap();
    let step = upkeep_core::window::Step::Announced;
    from.take_step(w, spec.start, step, t(1), None, &[])
        .await
        .unwrap();
    from.start_rollups(t(0)).await.unwrap();
    let mut latency = upkeep_core::latency::Latency::default();
    latency.record(3.0);
    from.add_latency(&[(t(0), web.clone(), latency.clone())])
        .await
        .unwrap();
    let mut targets = vec![Location::Sqlite(dir.path().join("to.db"))];
    targets.extend(postgres().map(Location::Postgres));
    for to in targets {
        let target = upkeep_store::open(&to, &node).await.unwrap();
        let copied = from.copy_into(&target).await.unwrap();
        assert_eq!(
            (
                copied.events,
                copied.incidents,
                copied.revisions,
                copied.services,
                copied.cursors
            ),
            (4503, 1, 1, 1, 1)
        );
        assert_eq!(target.last_seq().await.unwrap(), 4503);
        assert_eq!(
            target
                .events(None, 3)
                .await
                .unwrap()
                .iter()
                .map(|e| e.id)
                .collect::<Vec<_>>(),
            [4503, 4502, 4501]
        );
        assert!(
            target.events_after(2, 1).await.unwrap()[0]
                .event
                .kind
                .is_intervention()
        );
        assert_eq!(
            target.services().await.unwrap(),
            from.services().await.unwrap()
        );
        assert_eq!(
            target.services().await.unwrap()[0].desired,
            Desired::Stopped
        );
        assert!(target.incidents(None, 5).await.unwrap()[0].drill);
        assert_eq!(target.cursor("outbox").await.unwrap(), 2);
        assert_eq!(target.revision_count().await.unwrap(), 1);
        let windows = target.windows(true).await.unwrap();
        assert_eq!(
            (windows.len(), windows[0].taken.len()),
            (1, 1),
            "{windows:?}"
        );
        assert_eq!(windows[0].spec, spec);
        assert_eq!(
            target.rollup_mark().await.unwrap(),
            from.rollup_mark().await.unwrap()
        );
        assert_eq!(
            target.latency(t(0), t(1)).await.unwrap(),
            [(t(0), web.clone(), latency.clone())]
        );
        // Twice is refused, and changes nothing.
        assert!(matches!(
            from.copy_into(&target).await,
            Err(upkeep_store::CopyError::TargetNotEmpty(4503))
        ));
        assert_eq!(target.events(None, 10_000).await.unwrap().len(), 4503);
    }
}

#[tokio::test]
async fn windows_and_their_steps_are_kept_once_per_node() {
    use upkeep_core::window::{AffectedService, Impact, Step, WindowKind, WindowSpec};
    use upkeep_core::{Principal, Via};
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        let alice = Principal {
            name: "alice".into(),
            via: Via::Socket,
            from: None,
        };
        let spec = WindowSpec {
            kind: WindowKind::Upgrade,
            title: "PostgreSQL 17".into(),
            reason: "security fixes; 数据库升级".into(),
            start: t(3_600_000),
            end: t(7_200_000),
            tz: "Asia/Shanghai".into(),
            repeat: None,
            services: vec![AffectedService {
                service: svc("db"),
                impact: Impact::Outage,
            }],
            alternative: "the read replica".into(),
            follow_up: "https://status.example.com".into(),
            priority: None,
        };
        let id = store
            .add_window(&spec, t(0), &alice, Some("the vendor's deadline"))
            .await
            .unwrap();
        let w = store.window(id).await.unwrap().unwrap();
        assert_eq!(
            (&w.spec, &w.created_by, w.forced_why.as_deref(), w.revision),
            (&spec, &alice, Some("the vendor's deadline"), 0)
        );
        // A step is kept once, whoever decides it again.
        let occ = spec.start;
        assert!(
            store
                .take_step(
                    id,
                    occ,
                    Step::Announced,
                    t(1),
                    None,
                    &[notice("announced-1")]
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .take_step(
                    id,
                    occ,
                    Step::Announced,
                    t(2),
                    None,
                    &[notice("announced-2")]
                )
                .await
                .unwrap()
        );
        let r = Step::Reminder { before_s: 3600 };
        assert!(
            store
                .take_step(id, occ, r, t(3), Some(&alice), &[])
                .await
                .unwrap()
        );
        let w = store.window(id).await.unwrap().unwrap();
        assert_eq!(w.taken.len(), 2);
        // The step's notice went in with it, and only with the step that was new.
        let rows = store.outbox(None, 10).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert!(rows[0].key.starts_with("announced-1-"), "{rows:?}");
        assert_eq!((w.taken[1].step, w.taken[1].by.as_ref()), (r, Some(&alice)));
        // An edit counts; cancelling marks it cancelled and done.
        let mut later = spec.clone();
        later.end = t(9_000_000);
        assert!(store.edit_window(id, &later, t(4), None).await.unwrap());
        assert!(
            !store
                .edit_window(id + 1000, &later, t(4), None)
                .await
                .unwrap()
        );
        assert_eq!(store.window(id).await.unwrap().unwrap().revision, 1);
        assert_eq!(store.windows(false).await.unwrap().len(), 1);
        assert!(
            store
                .take_step(id, occ, Step::Cancelled, t(5), Some(&alice), &[])
                .await
                .unwrap()
        );
        let w = store.window(id).await.unwrap().unwrap();
        assert!(w.cancelled && w.done);
        assert!(store.windows(false).await.unwrap().is_empty());
        assert_eq!(store.windows(true).await.unwrap().len(), 1);
        // Another node sharing the database sees none of it and can step none of it.
        if let Location::Postgres(_) = location {
            let other = open(&location, &engines::node()).await;
            assert!(other.windows(true).await.unwrap().is_empty());
            assert!(other.window(id).await.unwrap().is_none());
            assert!(
                !other
                    .take_step(id, occ, Step::Started, t(6), None, &[])
                    .await
                    .unwrap()
            );
        }
    })
    .await;
}

/// An outbox row of channel `mail`, keyed `key`, about `subject` `s`.
fn row(key: &str, channel: &str, subject: &str, kind: &str) -> upkeep_store::NewNotice {
    upkeep_store::NewNotice {
        channel: channel.into(),
        recipient: "ops@example.com".into(),
        kind: kind.into(),
        subject: subject.into(),
        notice: format!("{{\"key\":\"{key}\"}}"),
        key: format!("{key}-{:08x}", fastrand::u32(..)),
        digest: None,
    }
}

fn notice(key: &str) -> upkeep_store::NewNotice {
    row(key, "mail", "window:1", "announced")
}

#[tokio::test]
async fn outbox_rows_are_leased_by_one_dispatcher_and_marked_by_their_holder() {
    use upkeep_store::OutboxState;
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        let rows: Vec<_> = (0..5)
            .map(|i| row(&format!("r{i}"), "mail", "test", "announced"))
            .collect();
        assert_eq!(store.add_notices(&rows, t(0)).await.unwrap(), 5);
        // Planned again (same keys): stored once.
        assert_eq!(store.add_notices(&rows, t(0)).await.unwrap(), 0);
        let hook = row("h", "hook", "test", "announced");
        store
            .add_notices(std::slice::from_ref(&hook), t(100))
            .await
            .unwrap();
        let mail = ["mail".to_owned()];
        assert_eq!(store.next_due(&mail, "a").await.unwrap(), Some(t(0)));
        // Nothing is due before its time; a lease takes only its channel's rows.
        assert!(
            store
                .lease("hook", "a", t(99), t(1000), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let a = store.lease("mail", "a", t(0), t(1000), 3).await.unwrap();
        assert_eq!(a.len(), 3);
        assert!(a.iter().all(|l| l.attempts == 1 && l.channel == "mail"));
        let b = store.lease("mail", "b", t(10), t(1010), 10).await.unwrap();
        assert_eq!(b.len(), 2, "b takes only what a does not hold");
        assert!(
            store
                .lease("mail", "c", t(20), t(1020), 10)
                .await
                .unwrap()
                .is_empty()
        );
        // What each holds is its own to mark; a late verdict from someone else changes nothing.
        assert!(
            store
                .mark_sent(a[0].id, t(30), Some("<r0@example.com>"))
                .await
                .unwrap()
        );
        assert!(!store.mark_sent(a[0].id, t(31), None).await.unwrap());
        assert!(
            store
                .mark_retry(a[1].id, "a", t(500), "451 busy")
                .await
                .unwrap()
        );
        assert!(
            !store
                .mark_retry(b[0].id, "a", t(500), "not mine")
                .await
                .unwrap()
        );
        assert!(
            store
                .mark_failed(a[2].id, "a", "550 no such user")
                .await
                .unwrap()
        );
        // A receiver back: waiting retries become due now.
        assert_eq!(store.hurry("mail", t(100)).await.unwrap(), 1);
        let c = store.lease("mail", "c", t(100), t(2000), 10).await.unwrap();
        assert_eq!((c.len(), c[0].id, c[0].attempts), (1, a[1].id, 2));
        // b's lease runs out (b hung): a takes its rows over, and that is counted.
        assert_eq!(store.next_due(&mail, "a").await.unwrap(), Some(t(1010)));
        let taken = store
            .lease("mail", "a", t(1010), t(2000), 10)
            .await
            .unwrap();
        assert_eq!(taken.len(), 2, "{taken:?}");
        assert!(taken.iter().all(|l| l.attempts == 2));
        let r = store.outbox_row(taken[0].id).await.unwrap().unwrap();
        assert_eq!(
            (r.state, r.takeovers, r.lease_owner.as_deref()),
            (OutboxState::Sending, 1, Some("a"))
        );
        // b comes back and confirms: a confirmed send is the truth, whoever holds the row.
        assert!(store.mark_sent(b[0].id, t(1020), None).await.unwrap());
        assert!(
            !store
                .mark_retry(b[0].id, "a", t(3000), "late")
                .await
                .unwrap()
        );
        // A failed row goes back to pending on `retry`, once.
        assert!(store.retry_notice(a[2].id, t(200)).await.unwrap());
        assert!(!store.retry_notice(a[2].id, t(200)).await.unwrap());
        let r = store.outbox_row(a[2].id).await.unwrap().unwrap();
        assert_eq!(
            (r.state, r.attempts, r.last_error.as_deref()),
            (OutboxState::Pending, 0, Some("550 no such user"))
        );
        // A daemon killed while sending: its successor takes every lease back at once.
        assert_eq!(store.release_leases(t(300)).await.unwrap(), 2);
        let sent = store.outbox(Some(OutboxState::Sent), 10).await.unwrap();
        assert_eq!(sent.len(), 2);
        assert_eq!(
            sent.iter()
                .find(|r| r.id == a[0].id)
                .unwrap()
                .delivery
                .as_deref(),
            Some("<r0@example.com>")
        );
        assert_eq!(store.outbox(None, 100).await.unwrap().len(), 6);
        // Another node sharing the database sees and leases none of it.
        if let Location::Postgres(_) = location {
            let other = open(&location, &engines::node()).await;
            assert!(other.outbox(None, 100).await.unwrap().is_empty());
            assert!(
                other
                    .lease("mail", "x", t(9999), t(99999), 100)
                    .await
                    .unwrap()
                    .is_empty()
            );
            assert!(!other.mark_sent(a[1].id, t(1), None).await.unwrap());
        }
    })
    .await;
}

/// The daily digest (issue 16, item 5): digest rows wait for their time whatever else is
/// due, are leased whole per recipient (in the order they were planned) and marked sent in
/// one go; a dead dispatcher's digest is taken over whole; damping never drops nor waits
/// for them.
#[tokio::test]
async fn a_digest_is_leased_whole_per_recipient_and_marked_sent_together() {
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        let digest = |key: &str, to: &str, at: i64| upkeep_store::NewNotice {
            recipient: to.into(),
            digest: Some(t(at)),
            ..row(key, "mail", &format!("window:{key}"), "announced")
        };
        let rows = [
            digest("a1", "a@example.com", 1000),
            digest("b1", "b@example.com", 1000),
            digest("a2", "a@example.com", 1000),
            digest("a3", "a@example.com", 1000),
            digest("a-tomorrow", "a@example.com", 2000),
            row("now", "mail", "window:now", "announced"),
        ];
        assert_eq!(store.add_notices(&rows, t(0)).await.unwrap(), 6);
        // Before the digest's time only the row of its own goes, and by `lease` alone.
        assert!(
            store
                .lease_digest("mail", "a", t(999), t(5000))
                .await
                .unwrap()
                .is_empty()
        );
        let alone = store.lease("mail", "a", t(999), t(5000), 10).await.unwrap();
        assert_eq!(alone.len(), 1, "{alone:?}");
        assert!(store.mark_sent(alone[0].id, t(999), None).await.unwrap());
        let mail = ["mail".to_owned()];
        assert_eq!(store.next_due(&mail, "a").await.unwrap(), Some(t(1000)));
        // Due: the digest rows never come out of `lease`, only whole, per recipient.
        assert!(
            store
                .lease("mail", "a", t(1000), t(5000), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let a = store
            .lease_digest("mail", "a", t(1000), t(1100))
            .await
            .unwrap();
        let keys: Vec<&str> = a.iter().map(|l| &l.key[..2]).collect();
        assert_eq!(keys, ["a1", "a2", "a3"], "{a:?}");
        assert!(
            a.iter()
                .all(|l| l.recipient == "a@example.com" && l.due == t(1000))
        );
        let b = store
            .lease_digest("mail", "b", t(1000), t(1100))
            .await
            .unwrap();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].recipient, "b@example.com");
        assert!(
            store
                .lease_digest("mail", "c", t(1000), t(1100))
                .await
                .unwrap()
                .is_empty(),
            "tomorrow's row waits for tomorrow"
        );
        let ids: Vec<i64> = a.iter().map(|l| l.id).collect();
        assert_eq!(
            store
                .mark_sent_all(&ids, t(1010), Some("<d@x>"))
                .await
                .unwrap(),
            3
        );
        assert_eq!(store.mark_sent_all(&ids, t(1011), None).await.unwrap(), 0);
        let sent = store.outbox_row(ids[0]).await.unwrap().unwrap();
        assert!(sent.digest);
        assert_eq!(sent.delivery.as_deref(), Some("<d@x>"));
        // b's dispatcher died: its lease runs out and the digest is taken over whole.
        let again = store
            .lease_digest("mail", "c", t(1200), t(1300))
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].id, b[0].id);
        assert_eq!(again[0].attempts, 2);
        let row_b = store.outbox_row(b[0].id).await.unwrap().unwrap();
        assert_eq!(row_b.takeovers, 1);
        // An incident's digest row is neither dropped as stale nor a reason to hold back
        // its next notice to the other routes.
        let inc = upkeep_store::NewNotice {
            subject: "incident:web:9".into(),
            ..digest("i1", "a@example.com", 9000)
        };
        store.add_notices(&[inc], t(3000)).await.unwrap();
        let due = store
            .plan_damped(upkeep_store::Damped {
                subject: "incident:web:9",
                kind: "incident_resolved",
                now: t(4000),
                interval_ms: 600_000,
                rows: &[row("r", "hook", "incident:web:9", "incident_resolved")],
                cursor: ("notices", 1),
                fanout: None,
            })
            .await
            .unwrap();
        assert_eq!(due, Some(t(4000)));
        let kept = store.outbox(None, 20).await.unwrap();
        assert!(kept.iter().any(|r| r.key.starts_with("i1") && r.digest));
    })
    .await;
}

/// Break-it finding (session 9): the hourly confirmation budget was in memory, refilled by
/// every restart. It is read from the rows planned: the `n`th newest of a kind in the hour,
/// this node's only, whatever their state.
#[tokio::test]
async fn the_nth_newest_row_of_a_kind_is_read_back_per_node() {
    on_every_engine(async |location, me| {
        let store = open(&location, &me).await;
        let other = open(&location, &node()).await;
        for (i, at) in [0, 10, 20].into_iter().enumerate() {
            let r = row(
                &format!("c{i}"),
                "mail",
                &format!("subscription:{i}"),
                "confirm",
            );
            store.add_notices(&[r], t(at)).await.unwrap();
        }
        store
            .add_notices(&[row("x", "mail", "window:1", "announced")], t(30))
            .await
            .unwrap();
        other
            .add_notices(&[row("o", "mail", "subscription:9", "confirm")], t(40))
            .await
            .unwrap();
        // A sent row still counts: it was mailed.
        let leased = store.lease("mail", "a", t(50), t(60), 10).await.unwrap();
        store.mark_sent(leased[0].id, t(51), None).await.unwrap();
        let nth = |since: i64, n: u32| {
            let store = &store;
            async move {
                store
                    .nth_newest_planned("confirm", t(since), n)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(nth(-1, 1).await, Some(t(20)));
        assert_eq!(nth(-1, 3).await, Some(t(0)));
        assert_eq!(
            nth(-1, 4).await,
            None,
            "other kinds and nodes are not counted"
        );
        assert_eq!(nth(0, 2).await, Some(t(10)), "since is exclusive");
        assert_eq!(nth(0, 3).await, None);
        assert_eq!(nth(-1, 0).await, None);
    })
    .await;
}

#[tokio::test]
async fn an_incidents_notices_are_damped_and_planned_with_the_cursor() {
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        let min = 60_000;
        let plan =
            |kind: &'static str, key: &'static str, now: i64, seq: u64| upkeep_store::Damped {
                subject: "incident:web:1",
                kind,
                now: t(now),
                interval_ms: 10 * min,
                rows: Box::leak(Box::new([row(key, "mail", "incident:web:1", kind)])),
                cursor: ("notices", seq),
                fanout: None,
            };
        // Opened: out at once.
        assert_eq!(
            store
                .plan_damped(plan("incident_opened", "o1", 0, 1))
                .await
                .unwrap(),
            Some(t(0))
        );
        assert_eq!(store.cursor("notices").await.unwrap(), 1);
        // Resolved a minute later: held until ten minutes after the first.
        assert_eq!(
            store
                .plan_damped(plan("incident_resolved", "r1", min, 2))
                .await
                .unwrap(),
            Some(t(10 * min))
        );
        // Reopened before that: the held resolution is stale and goes; "opened" is still the
        // latest news, so nothing new is said.
        assert_eq!(
            store
                .plan_damped(plan("incident_opened", "o2", 2 * min, 3))
                .await
                .unwrap(),
            None
        );
        let kinds = |rows: Vec<upkeep_store::OutboxRow>| {
            rows.into_iter().map(|r| r.kind).collect::<Vec<_>>()
        };
        assert_eq!(
            kinds(store.outbox(None, 10).await.unwrap()),
            ["incident_opened"]
        );
        // Resolved for good: held until ten minutes after the opening notice.
        assert_eq!(
            store
                .plan_damped(plan("incident_resolved", "r2", 5 * min, 4))
                .await
                .unwrap(),
            Some(t(10 * min))
        );
        assert_eq!(store.cursor("notices").await.unwrap(), 4);
        // Once it went out, a later reopening waits ten minutes after it.
        let sent = store
            .lease("mail", "a", t(10 * min), t(11 * min), 10)
            .await
            .unwrap();
        assert_eq!(sent.len(), 2, "the opening and the resolution were due");
        for l in &sent {
            store.mark_sent(l.id, t(10 * min), None).await.unwrap();
        }
        assert_eq!(
            store
                .plan_damped(plan("incident_opened", "o3", 12 * min, 5))
                .await
                .unwrap(),
            Some(t(20 * min))
        );
        assert_eq!(
            kinds(store.outbox(None, 10).await.unwrap()),
            ["incident_opened", "incident_resolved", "incident_opened"]
        );
    })
    .await;
}

/// Subscribers on both engines: a subscription renewed while unconfirmed moves its creation
/// (an older link stops confirming), a confirmed one is left alone, the fan-out reads only
/// confirmed subscribers in the step's transaction, and an unsubscribe deletes the row and
/// the subscriber rows still waiting for it.
#[tokio::test]
async fn subscribers_are_confirmed_fanned_out_to_and_deleted() {
    use upkeep_store::{Subscribed, Subscriber, SubscriberRows};
    struct Each;
    impl SubscriberRows for Each {
        fn rows(&self, subs: &[Subscriber]) -> Vec<upkeep_store::NewNotice> {
            subs.iter()
                .map(|s| upkeep_store::NewNotice {
                    recipient: s.email.clone(),
                    ..row(&format!("sub-{}", s.id), "mail", "window:1:0", "announced")
                })
                .collect()
        }
    }
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        // A time finer than the rows' milliseconds is still this call's.
        let fine = t(0) + jiff::SignedDuration::from_nanos(123_456);
        let Subscribed::Pending(a1) = store
            .subscribe("a@example.com", &[], "en", fine, t(-1), fine)
            .await
            .unwrap()
        else {
            panic!("new")
        };
        let Subscribed::Pending(a2) = store
            .subscribe(
                "a@example.com",
                &["db".into()],
                "zh-CN",
                t(10),
                t(-1),
                t(10),
            )
            .await
            .unwrap()
        else {
            panic!("still pending")
        };
        assert_eq!((a2.id, a2.created), (a1.id, t(10)));
        // Asked again before `renew_before` passes its creation: left as it is, no mail due.
        let again = store
            .subscribe("a@example.com", &[], "en", t(20), t(-1), t(5))
            .await
            .unwrap();
        assert_eq!(again, Subscribed::Waiting(a2.clone()));
        assert!(
            store
                .confirm_subscriber(a1.id, &a1.email, a1.created, t(20))
                .await
                .unwrap()
                .is_none(),
            "the first link no longer confirms"
        );
        let ok = store
            .confirm_subscriber(a2.id, &a2.email, a2.created, t(20))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(ok.services, vec!["db".to_owned()]);
        store
            .subscribe("b@example.com", &[], "en", t(30), t(-1), t(30))
            .await
            .unwrap();
        let spec = upkeep_core::window::WindowSpec {
            kind: upkeep_core::window::WindowKind::Upgrade,
            title: "t".into(),
            reason: "r".into(),
            start: t(0),
            end: t(3_600_000),
            tz: "UTC".into(),
            repeat: None,
            services: Vec::new(),
            alternative: String::new(),
            follow_up: String::new(),
            priority: None,
        };
        let by = upkeep_core::Principal {
            name: "ops".into(),
            via: upkeep_core::Via::Socket,
            from: None,
        };
        let id = store.add_window(&spec, t(0), &by, None).await.unwrap();
        assert!(
            store
                .take_step_fanned(upkeep_store::StepTake {
                    id,
                    occurrence: t(0),
                    step: upkeep_core::window::Step::Announced,
                    at: t(40),
                    by: None,
                    notices: &[],
                    fanout: Some(&Each),
                })
                .await
                .unwrap()
        );
        let rows = store.outbox(None, 10).await.unwrap();
        assert_eq!(rows.len(), 1, "only the confirmed: {rows:?}");
        assert_eq!(rows[0].recipient, "a@example.com");
        assert!(
            store
                .unsubscribe(Some(a2.id), "a@example.com")
                .await
                .unwrap()
        );
        assert!(store.outbox(None, 10).await.unwrap().is_empty());
        let left: Vec<String> = store
            .subscribers()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.email)
            .collect();
        assert_eq!(left, vec!["b@example.com".to_owned()]);
    })
    .await;
}

/// Two daemons with one node id on one PostgreSQL database (a data dir copied to a second host):
/// the second is refused, saying which host holds the id, and keeps trying; once the first is
/// gone the second opens, with no restart.
#[tokio::test]
async fn feedback_is_kept_as_written_per_node_newest_first() {
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        let message = "<script>alert(1)</script> 结账很慢 'quoted'";
        let a = store
            .add_feedback(
                upkeep_store::NewFeedback {
                    message,
                    email: None,
                    service: None,
                    lang: "zh-CN",
                    address: Some("192.0.2.7"),
                },
                t(0),
            )
            .await
            .unwrap();
        let b = store
            .add_feedback(
                upkeep_store::NewFeedback {
                    message: "ok",
                    email: Some("ann@example.com"),
                    service: Some("web"),
                    lang: "en",
                    address: None,
                },
                t(1000),
            )
            .await
            .unwrap();
        let list = store.feedback(10).await.unwrap();
        assert_eq!(list.iter().map(|f| f.id).collect::<Vec<_>>(), vec![b, a]);
        assert_eq!(list[1].message, message);
        assert_eq!(list[1].email, None);
        assert_eq!(list[1].address.as_deref(), Some("192.0.2.7"));
        assert_eq!(list[1].created, t(0));
        assert_eq!(list[0].service.as_deref(), Some("web"));
        assert_eq!(store.feedback(1).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_node_id_in_use_on_the_database_is_refused_until_its_daemon_is_gone() {
    let Some(pg) = engines::postgres() else {
        eprintln!("UPKEEP_TEST_POSTGRES is not set: skipped (PostgreSQL only)");
        return;
    };
    let node = engines::node();
    let first = upkeep_store::LazyStore::open(Location::Postgres(pg.clone()), node.clone())
        .await
        .unwrap();
    assert!(first.is_open());
    let second = upkeep_store::LazyStore::open(Location::Postgres(pg.clone()), node.clone())
        .await
        .unwrap();
    assert!(!second.is_open());
    let why = second.why_not_open().unwrap();
    assert!(
        why.contains("another upkeep daemon") && why.contains(&node.name),
        "{why}"
    );
    // Library users (store copy, tests) open without the lock.
    upkeep_store::open(&Location::Postgres(pg), &node)
        .await
        .unwrap();
    drop(first);
    tokio::time::timeout(std::time::Duration::from_secs(30), second.opened())
        .await
        .expect("opened once the first daemon let go");
    assert_eq!(second.last_seq().await.unwrap(), 0);
}

#[tokio::test]
async fn admin_lists_are_paged_with_an_offset_and_every_open_incident_is_found() {
    on_every_engine(async |location, node| {
        use upkeep_store::Span;
        let s = open(&location, &node).await;
        // 120 incidents of services of their own, newest last; the oldest stays open.
        let mut events = Vec::new();
        for i in 0..120i64 {
            let name = svc(&format!("s{i}"));
            let since = t(i * 1000);
            let reason = format!("r{i}");
            let opened = EventKind::IncidentOpened {
                since,
                reason,
                drill: false,
            };
            events.push(at(i * 1000, &name, opened));
            if i > 0 {
                let resolved = EventKind::IncidentResolved {
                    since,
                    duration_ms: 500,
                };
                events.push(at(i * 1000 + 500, &name, resolved));
            }
        }
        s.append(1, &events).await.unwrap();
        let seq = events.len() as u64 + 1;
        let open_now = s.open_incidents().await.unwrap();
        assert_eq!(
            open_now
                .iter()
                .map(|i| i.reason.as_str())
                .collect::<Vec<_>>(),
            vec!["r0"]
        );
        let span = |offset, limit| Span { offset, limit };
        let page = s.incidents_page(span(100, 50)).await.unwrap();
        let reasons: Vec<_> = page.iter().map(|i| i.reason.clone()).collect();
        assert_eq!(reasons.len(), 20, "{reasons:?}");
        assert_eq!((reasons[0].as_str(), reasons[19].as_str()), ("r19", "r0"));
        assert!(s.incidents_page(span(120, 50)).await.unwrap().is_empty());

        // One opened by hand: its title comes with the lists.
        let alice = upkeep_core::Principal {
            name: "alice".into(),
            via: upkeep_core::Via::Socket,
            from: None,
        };
        let nothing = |_: i64| upkeep_store::Planned {
            notices: Vec::new(),
            fanout: None,
        };
        s.open_by_hand(upkeep_store::OpenByHand {
            service: &svc("pay"),
            title: "payments provider down",
            priority: None,
            message: None,
            at: t(500_000),
            by: &alice,
            plan: &nothing,
        })
        .await
        .unwrap();
        let newest = s.incidents_page(span(0, 1)).await.unwrap();
        assert_eq!(newest[0].title.as_deref(), Some("payments provider down"));
        let listed = s.incidents(None, 1).await.unwrap();
        assert_eq!(listed[0].title.as_deref(), Some("payments provider down"));
        assert_eq!(s.open_incidents().await.unwrap().len(), 2);

        // Feedback, the outbox and subscribers: newest first, from the offset.
        for (n, m) in ["one", "two", "three"].into_iter().enumerate() {
            let f = upkeep_store::NewFeedback {
                message: m,
                email: None,
                service: None,
                lang: "en",
                address: None,
            };
            s.add_feedback(f, t(n as i64)).await.unwrap();
        }
        let f = s.feedback_page(span(1, 1)).await.unwrap();
        assert_eq!(
            f.iter().map(|f| f.message.as_str()).collect::<Vec<_>>(),
            vec!["two"]
        );
        let rows = [notice("a"), notice("b"), notice("c")];
        s.add_notices(&rows, t(0)).await.unwrap();
        let o = s.outbox_page(span(2, 5)).await.unwrap();
        assert_eq!(o.len(), 1);
        assert!(o[0].notice.contains("\"a\""), "{:?}", o[0].notice);
        for email in ["x@example.com", "y@example.com"] {
            s.subscribe(email, &[], "en", t(0), t(-1), t(-1))
                .await
                .unwrap();
        }
        let subs = s.subscribers_page(span(0, 1)).await.unwrap();
        assert_eq!(
            subs.iter().map(|s| s.email.as_str()).collect::<Vec<_>>(),
            vec!["y@example.com"]
        );

        // Who did what: what a person did (named or not), not what upkeep did.
        let web = svc("web");
        let mut acts = Vec::new();
        for (i, by) in [
            Actor::Principal(alice.clone()),
            Actor::Upkeep,
            Actor::Operator,
            Actor::Principal(alice.clone()),
        ]
        .into_iter()
        .enumerate()
        {
            acts.push(at(600_000 + i as i64, &web, EventKind::Stopped { by }));
        }
        s.append(seq, &acts).await.unwrap();
        let all = s.actions_page(span(0, 10)).await.unwrap();
        let ats: Vec<i64> = all.iter().map(|e| e.at.as_millisecond()).collect();
        let base = t(600_000).as_millisecond();
        assert!(
            ats.starts_with(&[base + 3, base + 2, base]),
            "newest first, upkeep's own left out: {ats:?}"
        );
        let second = s.actions_page(span(1, 1)).await.unwrap();
        assert_eq!(second[0].at.as_millisecond(), base + 2);
    })
    .await;
}

/// Break-it (session 11): `Ann@x.org` and `ann@X.org` were two subscribers, each mailed. One
/// address in any case is one subscriber on both engines: subscribing again finds it (kept as
/// first written), it confirms and unsubscribes in any case, and the fan-out mails it once.
#[tokio::test]
async fn an_address_in_another_case_is_the_same_subscriber() {
    use upkeep_store::{Subscribed, Subscriber, SubscriberRows};
    struct Each;
    impl SubscriberRows for Each {
        fn rows(&self, subs: &[Subscriber]) -> Vec<upkeep_store::NewNotice> {
            subs.iter()
                .map(|s| upkeep_store::NewNotice {
                    recipient: s.email.clone(),
                    ..row(&format!("sub-{}", s.id), "mail", "window:1:0", "announced")
                })
                .collect()
        }
    }
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        let Subscribed::Pending(ann) = store
            .subscribe("Ann@example.org", &[], "en", t(0), t(-1), t(0))
            .await
            .unwrap()
        else {
            panic!("new")
        };
        let again = store
            .subscribe("ann@example.org", &[], "en", t(1), t(-1), t(0))
            .await
            .unwrap();
        assert_eq!(
            again,
            Subscribed::Waiting(ann.clone()),
            "the same subscriber"
        );
        let ok = store
            .confirm_subscriber(ann.id, "ANN@example.org", ann.created, t(2))
            .await
            .unwrap()
            .expect("confirmed in another case");
        assert_eq!(ok.email, "Ann@example.org", "kept as first written");
        let again = store
            .subscribe("aNN@example.org", &["db".into()], "en", t(3), t(-1), t(3))
            .await
            .unwrap();
        assert!(matches!(again, Subscribed::Confirmed(s) if s.id == ann.id));
        assert_eq!(store.subscribers().await.unwrap().len(), 1);
        let spec = upkeep_core::window::WindowSpec {
            kind: upkeep_core::window::WindowKind::Upgrade,
            title: "t".into(),
            reason: "r".into(),
            start: t(0),
            end: t(3_600_000),
            tz: "UTC".into(),
            repeat: None,
            services: Vec::new(),
            alternative: String::new(),
            follow_up: String::new(),
            priority: None,
        };
        let by = upkeep_core::Principal {
            name: "ops".into(),
            via: upkeep_core::Via::Socket,
            from: None,
        };
        let id = store.add_window(&spec, t(0), &by, None).await.unwrap();
        store
            .take_step_fanned(upkeep_store::StepTake {
                id,
                occurrence: t(0),
                step: upkeep_core::window::Step::Announced,
                at: t(40),
                by: None,
                notices: &[],
                fanout: Some(&Each),
            })
            .await
            .unwrap();
        let rows = store.outbox(None, 10).await.unwrap();
        assert_eq!(rows.len(), 1, "one mail: {rows:?}");
        assert!(store.unsubscribe(None, "ann@EXAMPLE.org").await.unwrap());
        assert!(store.subscribers().await.unwrap().is_empty());
        assert!(store.outbox(None, 10).await.unwrap().is_empty());
    })
    .await;
}

/// A dispatcher that stops gives back the rows it leased and has not begun to send: pending
/// again, due as they were, the attempt not counted; another's lease is left alone.
#[tokio::test]
async fn rows_given_back_unsent_are_pending_as_they_were() {
    use upkeep_store::OutboxState;
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        store
            .add_notices(&[notice("a"), notice("b")], t(0))
            .await
            .unwrap();
        let leased = store.lease("mail", "one", t(0), t(1000), 2).await.unwrap();
        assert_eq!(leased.len(), 2);
        let ids: Vec<i64> = leased.iter().map(|l| l.id).collect();
        assert_eq!(
            store.unlease(&ids, "other").await.unwrap(),
            0,
            "not its lease"
        );
        assert_eq!(store.unlease(&ids, "one").await.unwrap(), 2);
        for id in &ids {
            let r = store.outbox_row(*id).await.unwrap().unwrap();
            assert_eq!(
                (r.state, r.attempts, r.next),
                (OutboxState::Pending, 0, t(0))
            );
            assert_eq!(r.lease_owner, None);
        }
        let again = store.lease("mail", "two", t(1), t(1000), 2).await.unwrap();
        assert_eq!(again.len(), 2, "due at once");
        assert!(again.iter().all(|l| l.attempts == 1));
    })
    .await;
}

/// Break-it (session 11): `digest_at` moved by a reload left the queued digest rows at the old
/// time (two digests). The rows waiting (pending, never tried, due later) move to the new
/// time; a sent one, a retried one and a plain row stay.
#[tokio::test]
async fn queued_digest_rows_move_to_the_new_digest_time() {
    on_every_engine(async |location, node| {
        let store = open(&location, &node).await;
        let digest = |key: &str, at: i64| upkeep_store::NewNotice {
            digest: Some(t(at)),
            ..notice(key)
        };
        store
            .add_notices(
                &[digest("d1", 8_000), digest("d2", 8_000), notice("plain")],
                t(0),
            )
            .await
            .unwrap();
        assert_eq!(store.move_digests(t(10), t(9_000)).await.unwrap(), 2);
        assert_eq!(
            store.move_digests(t(10), t(9_000)).await.unwrap(),
            0,
            "once"
        );
        let rows = store.outbox(None, 10).await.unwrap();
        for r in &rows {
            let want = if r.digest { t(9_000) } else { t(0) };
            assert_eq!((r.next, r.due), (want, want), "{r:?}");
        }
        // Due already (being sent, or to be): left alone.
        assert_eq!(store.move_digests(t(9_000), t(20_000)).await.unwrap(), 0);
    })
    .await;
}
