//! Maintenance: no heals, no incidents, time counted apart; ended by hand or at its time.

use std::net::TcpListener;
use std::time::Duration;

use upkeep_testkit::TestDaemon;

use crate::{BIN, LONG, stderr, stdout};

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
    // Not the state read once: on a loaded machine the second can be over by then (CI,
    // session 12). The record says it began and ended.
    d.wait_state("db", "up", LONG);
    let kinds: Vec<String> = d.events("db").into_iter().map(|e| e.0).collect();
    for kind in ["maintenance_started", "maintenance_ended"] {
        assert_eq!(
            kinds.iter().filter(|k| *k == kind).count(),
            2,
            "{kind}: {kinds:?}"
        );
    }
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

    // A maintenance's end is given one way: a time, or a length from the daemon's now.
    let both = serde_json::json!({ "until": "2999-01-01T00:00:00Z", "for": "1h" });
    let (code, body) = d
        .try_api("POST", "/api/v1/services/db/maintenance", Some(&both))
        .unwrap();
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&body));
    assert_eq!(d.state("db"), "up");

    // Without `daemon.test_clock` nobody can move the clock: the route does not exist.
    let advance = serde_json::json!({ "advance": "7d" });
    let (code, _) = d
        .try_api("POST", "/api/v1/test/clock", Some(&advance))
        .unwrap();
    assert_eq!(code, 404);
}

/// A week of maintenance, tested in about a second: the daemon's test clock is moved a week,
/// and the maintenance ends on its own, not a moment before its time. Its end is counted on
/// the daemon's clock, not the CLI's: here the daemon's runs a day ahead.
#[test]
fn a_week_long_maintenance_ends_when_the_clock_has_moved_a_week() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let d = TestDaemon::start_on_test_clock(
        BIN,
        &format!(
            "[services.db]\nprobes = [{{ kind = \"tcp\", addr = \"{addr}\", every = \"100ms\", grace = \"0s\" }}]\n"
        ),
    );
    d.wait_state("db", "up", LONG);
    let ahead = d.advance_clock("1d");
    let out = d.cli(&["maintenance", "db", "--for", "7d", "--reason", "new disks"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(d.state("db"), "maintenance");
    let until: jiff::Timestamp = d.service("db")["info"]["maintenance"]["until"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("a timed maintenance has an until");
    let week = jiff::SignedDuration::from_hours(7 * 24);
    assert!(until >= ahead + week, "{until} is not a week after {ahead}");
    let shown = until.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    assert!(stdout(&out).contains(&shown), "{}", stdout(&out));

    // An hour short of the week: still in maintenance (the move returns once whatever it
    // made due has woken, and nothing was due).
    let now = d.advance_clock("6d 23h");
    assert!(now < until, "{now} {until}");
    assert_eq!(d.state("db"), "maintenance");

    let now = d.advance_clock("1h");
    assert!(now >= until, "{now} {until}");
    d.wait_state("db", "up", Duration::from_secs(1));
    let ended = d
        .events("db")
        .into_iter()
        .rfind(|e| e.0 == "maintenance_ended")
        .expect("maintenance_ended")
        .1;
    assert_eq!(ended["by"], "upkeep", "{ended}");
    assert!(d.service("db")["info"]["maintenance"].is_null());
}
