//! Drills against the example service (examples/upkeep.toml, loaded as shipped but for its
//! port, folders and data dir): detection and recovery are measured and stored.

use crate::{daemon, stdout};

/// The example config's services, on a free port, with absolute paths.
fn example_services() -> (String, u16) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let text = std::fs::read_to_string(root.join("upkeep.toml")).unwrap();
    // Drop the [daemon] table: the testkit writes its own (data dir in a temp dir).
    let services = &text[text.find("[services.").expect("the example has services")..];
    let port = upkeep_testkit::free_port();
    let root = root.canonicalize().unwrap();
    let services = services.replace("18080", &port.to_string()).replace(
        "cwd = \"demo\"",
        &format!("cwd = \"{}/demo\"", root.display()),
    );
    (services, port)
}

#[test]
fn drills_on_the_example_service_record_detection_and_recovery() {
    let (services, _port) = example_services();
    // Three drills back to back, with a crash-loop limit of two restarts: drills must not
    // count towards it.
    let services = services.replace(
        "restart = \"always\"",
        "max_restarts = 2\nrestart = \"always\"",
    );
    let d = daemon(&services);
    for (fault, detected_by) in [("crash", "exited"), ("hang", "probe http")] {
        let out = d.cli(&["drill", "demo", "--fault", fault, "--json"]);
        assert!(out.status.success(), "{fault}: {}", crate::stderr(&out));
        let r: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let r = &r[0];
        let (det, rec) = (
            r["detected_ms"].as_u64().unwrap(),
            r["recovered_ms"].as_u64().unwrap(),
        );
        assert!(det <= rec && rec < 30_000, "{fault}: {r}");
        assert!(
            r["detected_by"].as_str().unwrap().starts_with(detected_by),
            "{fault}: {r}"
        );
    }
    let drills: Vec<_> = d
        .events("demo")
        .into_iter()
        .filter(|e| e.0 == "drill_completed")
        .collect();
    assert_eq!(drills.len(), 2, "{drills:?}");
    assert_eq!(drills[1].1["fault"], "hang");
    // The text form: a table and a summary line.
    let out = d.cli(&["drill", "demo", "--fault", "close-port"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    assert!(stdout(&out).contains("recovery: mean"), "{}", stdout(&out));
    // The report counts the three drills apart: no outage, no incident, no heal on record.
    let out = d.cli(&["report", "--json"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let r: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let all = &r["current"]["overall"];
    assert_eq!(all["drills"], 3, "{all}");
    assert!(all["drill_ms"].as_u64().unwrap() > 0, "{all}");
    assert_eq!(
        (
            &all["outage_ms"],
            &all["incidents"],
            &all["automatic_heals"]
        ),
        (&0.into(), &0.into(), &0.into()),
        "{all}"
    );
    assert_eq!(all["availability"], 1.0, "{all}");
    // Each drill's incident is on record, marked as the drill's.
    let incidents: serde_json::Value =
        serde_json::from_str(&stdout(&d.cli(&["incidents", "demo", "--json"]))).unwrap();
    let incidents = incidents.as_array().unwrap();
    assert_eq!(incidents.len(), 3, "{incidents:?}");
    assert!(
        incidents.iter().all(|i| i["drill"] == true),
        "{incidents:?}"
    );
    // Refused with a reason: no probes for a hang, or an external service.
    let d2 = daemon("[services.bare]\ncommand = \"sleep 1000\"\n");
    let out = d2.cli(&["drill", "bare", "--fault", "hang"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::stderr(&out).contains("needs a probe"),
        "{}",
        crate::stderr(&out)
    );
}

/// Issue 14, B7: a drill that gives up leaves nothing armed (the next real crash is a real
/// incident, not the drill's), and two drills of one service at once are refused, not both
/// credited with one fault.
#[test]
fn issue_14_a_drill_that_gives_up_leaves_nothing_armed_and_drills_do_not_overlap() {
    let d = daemon(
        "[services.s]\ncommand = \"sleep 1000\"\nincident_after = \"0s\"\nbackoff_min = \"300ms\"\nprobes = [{ kind = \"process\", every = \"1s\", failures = 3, grace = \"0s\" }]\n",
    );
    d.wait_state("s", "up", crate::LONG);
    // No listener: refused before anything is armed.
    let out = d.cli(&["drill", "s", "--fault", "close-port"]);
    assert_eq!(out.status.code(), Some(2), "{}", crate::stderr(&out));
    assert!(crate::stderr(&out).contains("listens on a TCP port"));
    // A real crash now is a real incident.
    let pid = d.pid("s").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_new_pid("s", pid, crate::LONG);
    d.wait_state("s", "up", crate::LONG);
    let incidents: serde_json::Value =
        serde_json::from_str(&stdout(&d.cli(&["incidents", "s", "--json"]))).unwrap();
    let incidents = incidents.as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0]["drill"], false, "{incidents:?}");

    // A drill while another runs on the same service is refused. A hang takes the probe's
    // three checks a second apart to notice: the second drill comes well within it.
    let a = d.cli_spawn(&["drill", "s", "--fault", "hang", "--json"]);
    d.wait_until("the first drill to begin", crate::LONG, || {
        d.events("s")
            .iter()
            .any(|e| e.0 == "drill_started")
            .then_some(())
    });
    let b = d.cli(&["drill", "s", "--fault", "crash"]);
    let a = a.wait_with_output().unwrap();
    assert!(a.status.success(), "{}", crate::stderr(&a));
    assert_eq!(b.status.code(), Some(2), "{}", crate::stderr(&b));
    assert!(
        crate::stderr(&b).contains("already running"),
        "{}",
        crate::stderr(&b)
    );
}

/// Issue 14, B7: a drill whose client goes away mid-drill leaves nothing armed either.
#[test]
fn issue_14_a_drill_cancelled_by_its_client_disarms() {
    let d = daemon(
        "[services.s]\ncommand = \"sleep 1000\"\nincident_after = \"0s\"\nprobes = [{ kind = \"process\", every = \"1s\", failures = 3, grace = \"0s\" }]\n",
    );
    d.wait_state("s", "up", crate::LONG);
    let mut client = d.cli_spawn(&["drill", "s", "--fault", "hang"]);
    d.wait_until("the drill to begin", crate::LONG, || {
        d.events("s")
            .iter()
            .any(|e| e.0 == "drill_started")
            .then_some(())
    });
    client.kill().unwrap();
    client.wait().unwrap();
    d.wait_until("the drill to be disarmed", crate::LONG, || {
        d.events("s")
            .iter()
            .any(|e| e.0 == "drill_aborted")
            .then_some(())
    });
}

/// A drill nothing would heal is refused up front instead of leaving the service frozen or
/// dead (found by a fresh-eyes tester: the drill hung and the outage counted as real).
#[test]
fn issue_14_a_drill_nothing_would_heal_is_refused() {
    let d = daemon(
        "[services.al]\ncommand = \"sleep 1000\"\non_unhealthy = \"alert\"\nprobes = [{ kind = \"process\", every = \"200ms\" }]\n\n\
         [services.np]\ncommand = \"sleep 1000\"\nrestart = \"never\"\nprobes = [{ kind = \"process\", every = \"200ms\" }]\n",
    );
    d.wait_state("al", "up", crate::LONG);
    d.wait_state("np", "up", crate::LONG);
    for (name, fault) in [("al", "hang"), ("np", "crash"), ("np", "close-port")] {
        let pid = d.pid(name).unwrap();
        let out = d.cli(&["drill", name, "--fault", fault]);
        assert_eq!(out.status.code(), Some(2), "{name} {fault}");
        assert!(
            crate::stderr(&out).contains("would not be healed"),
            "{}",
            crate::stderr(&out)
        );
        assert_eq!(d.pid(name), Some(pid), "nothing was injected");
        assert_eq!(d.state(name), "up");
    }
}
