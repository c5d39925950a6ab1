//! Maintenance: no heals, no incidents, time counted apart; ended by hand or at its time.

use std::net::TcpListener;
use std::time::Duration;

use crate::{LONG, stderr, stdout};

#[test]
fn maintenance_holds_off_incidents_and_ends_by_hand_or_at_its_time() {
    let (d, listener) = crate::external_tcp(1);
    let addr = listener.local_addr().unwrap();

    let out = d.cli(&["maintenance", "db", "--reason", "disk swap"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("in maintenance"), "{}", stdout(&out));
    assert_eq!(d.state("db"), "maintenance");
    // The database goes away for the work: no incident, still in maintenance.
    drop(listener);
    // Not a fixed sleep: the probe has checked (and failed) for half a second.
    d.wait_probe_checked_for("db", "tcp", Duration::from_millis(500));
    assert_eq!(d.state("db"), "maintenance");
    let detail = d.service("db");
    assert_eq!(detail["info"]["maintenance"]["reason"], "disk swap");
    assert!(
        detail["incidents"].as_array().unwrap().is_empty(),
        "{detail}"
    );
    let status = stdout(&d.cli(&["status", "db"]));
    assert!(status.contains("disk swap"), "{status}");

    // Ended by hand while the database is still gone: down now, and an incident.
    let out = d.cli(&["maintenance", "db", "--end"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_state("db", "down", LONG);
    d.wait_until("an incident", LONG, || {
        (!d.service("db")["incidents"].as_array()?.is_empty()).then_some(())
    });
    // Ending it again is refused with a reason.
    let out = d.cli(&["maintenance", "db", "--end"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not in maintenance"),
        "{}",
        stderr(&out)
    );

    // A timed maintenance ends by itself; back up, the report counts it apart.
    let _back = TcpListener::bind(addr).unwrap();
    let out = d.cli(&["maintenance", "db", "--for", "1s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("until"), "{}", stdout(&out));
    assert_eq!(d.state("db"), "maintenance");
    d.wait_state("db", "up", LONG);
    let kinds: Vec<String> = d.events("db").into_iter().map(|e| e.0).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "maintenance_ended").count(),
        2,
        "{kinds:?}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&stdout(&d.cli(&["report", "--json"]))).unwrap();
    let all = &r["current"]["overall"];
    assert!(all["maintenance_ms"].as_u64().unwrap() >= 1000, "{all}");
    assert_eq!(all["manual_interventions"], 0, "{all}");

    // Bad input: a clear error (a usage error: exit 2), nothing changed.
    let out = d.cli(&["maintenance", "db", "--for", "soon"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a duration"), "{}", stderr(&out));
    let out = d.cli(&["maintenance", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(d.state("db"), "up");
}
