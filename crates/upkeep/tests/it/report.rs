//! The availability report over real events (the exact arithmetic is unit-tested in
//! `upkeep_state::report` on a scripted timeline).

use std::net::TcpListener;
use std::time::Duration;

use crate::{LONG, daemon, stdout};

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
