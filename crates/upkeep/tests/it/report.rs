//! The availability report over real events (the exact arithmetic is unit-tested in
//! `upkeep_state::report` on a scripted timeline).

use std::net::TcpListener;
use std::time::Duration;

use upkeep_testkit::TestDaemon;

use crate::{BIN, LONG, daemon, stdout};

#[test]
fn report_counts_outages_incidents_heals_and_interventions() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let d = daemon(&format!(
        "[services.db]\nprobes = [{{ kind = \"tcp\", addr = \"{addr}\", every = \"50ms\", failures = 1, grace = \"0s\" }}]\n\n\
         [services.app]\ncommand = \"sleep 1000\"\n"
    ));
    d.wait_state("db", "up", LONG);
    d.wait_state("app", "up", LONG);
    // db: an outage of about half a second.
    drop(listener);
    d.wait_state("db", "down", LONG);
    std::thread::sleep(Duration::from_millis(500));
    let _back = TcpListener::bind(addr).unwrap();
    d.wait_state("db", "up", LONG);
    // app: a crash healed by the restart policy, then an operator restart.
    let pid = d.pid("app").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_new_pid("app", pid, LONG);
    assert!(d.cli(&["restart", "app"]).status.success());

    let out = d.cli(&["report", "--since", "1h", "--json"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let r: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let db = &r["current"]["services"]["db"];
    assert_eq!(db["incidents"], 1, "{db}");
    let outage = db["outage_ms"].as_u64().unwrap();
    assert!((400..10_000).contains(&outage), "outage {outage} ms");
    let mttr = db["mttr_ms"].as_u64().unwrap();
    assert!((400..10_000).contains(&mttr), "mttr {mttr} ms");
    let availability = db["availability"].as_f64().unwrap();
    assert!(availability > 0.0 && availability < 1.0, "{availability}");
    let app = &r["current"]["services"]["app"];
    assert_eq!(
        (
            app["automatic_heals"].as_u64(),
            app["manual_interventions"].as_u64()
        ),
        (Some(1), Some(1)),
        "{app}"
    );
    assert_eq!(
        r["current"]["overall"]["incidents"], 2,
        "{}",
        r["current"]["overall"]
    );
    // Nothing happened in the hour before.
    assert_eq!(r["previous"]["overall"]["incidents"], 0);
    // The text table and the Markdown one.
    let text = stdout(&d.cli(&["report", "--since", "1h"]));
    assert!(
        text.contains("availability")
            && text.contains("MTTR")
            && text.contains("manual interventions"),
        "{text}"
    );
    assert!(stdout(&d.cli(&["report", "--since", "1h", "--md"])).contains("|--"));
    let bad = d.cli(&["report", "--since", "last week"]);
    assert_eq!(bad.status.code(), Some(2));
}

fn report(d: &TestDaemon, since: &str) -> serde_json::Value {
    let out = d.cli(&["report", "--since", since, "--json"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// Rollups and `[daemon] retain` (issue 15, item 3): two days of driven time later, the raw
/// events of an outage are gone and the report still counts it, from the hourly rollups.
#[test]
fn an_outage_older_than_retain_is_still_in_the_report() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let d = TestDaemon::start_on_test_clock(
        BIN,
        &format!(
            "retain = \"1d\"\n\n[services.db]\nprobes = [{{ kind = \"tcp\", addr = \"{addr}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\n"
        ),
    );
    d.wait_state("db", "up", LONG);
    drop(listener);
    d.wait_state("db", "down", LONG);
    d.advance_clock("30m");
    let _back = TcpListener::bind(addr).unwrap();
    d.wait_state("db", "up", LONG);
    let before = report(&d, "3d")["current"]["services"]["db"].clone();
    let outage = before["outage_ms"].as_u64().unwrap();
    assert!((1_800_000..1_900_000).contains(&outage), "{before}");
    assert_eq!(before["incidents"], 1, "{before}");
    let opened = |d: &TestDaemon| d.events("db").iter().any(|e| e.0 == "incident_opened");
    assert!(opened(&d));

    d.advance_clock("2d");
    // The rollup task rolls the 48 hours up, then removes what is older than a day.
    d.wait_until("the outage's raw events to be removed", LONG, || {
        (!opened(&d)).then_some(())
    });
    // Probe latency: recorded per hour, the closed hours stored by the rollup task, the
    // rest (the hour in progress) stored at a clean shutdown. A check after the jump may
    // not have come yet when the rollup is done (a loaded CI machine): wait for one.
    let checks = |r: &serde_json::Value| r["probe_latency"]["checks"].as_u64().unwrap_or(0);
    assert!(checks(&before) > 0, "{before}");
    let after = d.wait_until("a probe check counted after the rollup", LONG, || {
        let r = report(&d, "3d")["current"]["services"]["db"].clone();
        (checks(&r) > checks(&before)).then_some(r)
    });
    assert_eq!(after["outage_ms"], before["outage_ms"], "{after}");
    assert_eq!(after["incidents"], 1, "{after}");
    assert_eq!(after["mttr_ms"], before["mttr_ms"], "{after}");
    assert!(after["available_ms"].as_u64() > before["available_ms"].as_u64());
    let p99 = after["probe_latency"]["p99_ms"].as_f64().unwrap();
    assert!(p99 > 0.0 && p99 < 5_000.0, "{after}");
    // (A restarted test daemon's clock starts from real time again: read the store itself.)
    let mut d = d;
    d.signal_daemon(nix::sys::signal::Signal::SIGTERM);
    let stored: u64 = d
        .store_sql("SELECT counts FROM latency WHERE node = '{node}' AND service = 'db'")
        .iter()
        .flat_map(|row| {
            row[0]
                .split(',')
                .map(|c| c.parse::<u64>().unwrap())
                .collect::<Vec<_>>()
        })
        .sum();
    // At least: a check may land between the report and the stop.
    assert!(
        stored >= checks(&after),
        "every check is stored at shutdown: {stored}"
    );
}

/// A clean stop marks the daemon's last watch: the next start counts as unwatched only the
/// time it was really down, not the minute (or a test clock's jump) since the last heartbeat.
#[test]
fn a_clean_restart_turns_no_watched_time_into_unknown() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut d = TestDaemon::start_on_test_clock(
        BIN,
        &format!(
            "[services.db]\nprobes = [{{ kind = \"tcp\", addr = \"{addr}\", every = \"100ms\", grace = \"0s\" }}]\n"
        ),
    );
    d.wait_state("db", "up", LONG);
    d.advance_clock("2d");
    d.signal_daemon(nix::sys::signal::Signal::SIGTERM);
    d.launch();
    d.wait_state("db", "up", LONG);
    let db = report(&d, "3d")["current"]["services"]["db"].clone();
    let unknown = db["unknown_ms"].as_u64().unwrap();
    assert!(unknown < 60_000, "{db}");
    assert!(
        db["available_ms"].as_u64().unwrap() >= 48 * 3_600_000,
        "{db}"
    );
}
