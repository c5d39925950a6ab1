//! A daemon that dies under systemd (`KillMode=process`: a crash, kill -9, a watchdog restart)
//! leaves its services running, and the one systemd starts next adopts them: same pids, the
//! output written meanwhile read on from the pipes systemd's fd store kept, their ends seen.
//!
//! systemd itself does not run here: `FdStorePeer` plays its side of the protocol (the
//! `NOTIFY_SOCKET` that takes `FDSTORE=1`/`FDSTOREREMOVE=1` with SCM_RIGHTS, then the next
//! daemon started with `LISTEN_FDS`/`LISTEN_FDNAMES`/`LISTEN_PID`).

use nix::sys::signal::Signal;
use upkeep_testkit::{FdStorePeer, TestDaemon};

use crate::{BIN, LONG};

/// The service logs a line, waits on a FIFO, then (while no daemon runs) writes 300 lines and
/// one to stderr, and waits on a `sleep` of its group. Its stop timeout is 15 s, far longer
/// than a stop that sees its processes end takes.
fn talker(go: &std::path::Path) -> String {
    format!(
        "[services.talk]\nstop_timeout = \"15s\"\ncommand = \"echo before; read x < {}; i=0; while [ $i -lt 300 ]; do echo after $i; i=$((i+1)); done; echo done >&2; sleep 1000 & wait\"\n",
        go.display()
    )
}

fn log(d: &TestDaemon, stream: &str) -> String {
    std::fs::read_to_string(d.data_dir.join(format!("logs/talk.{stream}.log"))).unwrap_or_default()
}

#[test]
fn a_daemon_killed_under_systemd_leaves_its_services_to_the_next_which_adopts_them() {
    let peer = FdStorePeer::start();
    let fifo_dir = tempfile::tempdir().unwrap();
    let go = fifo_dir.path().join("go");
    nix::unistd::mkfifo(&go, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut d = TestDaemon::prepare(BIN, &talker(&go));
    d.set_env("NOTIFY_SOCKET", peer.path().to_str().unwrap());
    d.launch();
    d.wait_state("talk", "up", LONG);
    let pid = d.pid("talk").expect("talk runs");
    let (out, err) = (format!("talk.out.{pid}"), format!("talk.err.{pid}"));
    peer.wait_names("the run's two pipes", LONG, |n| {
        n.contains(&out) && n.contains(&err)
    });
    d.wait_until("its first line in the log", LONG, || {
        log(&d, "out").contains(" before\n").then_some(())
    });

    // kill -9: with KillMode=process systemd leaves the service; it writes while no daemon
    // reads (the store keeps the pipes open: no SIGPIPE), and is done before the next starts.
    d.signal_daemon(Signal::SIGKILL);
    std::fs::write(&go, "go\n").unwrap();
    d.wait_until(
        "the service to write its lines and start its sleep",
        LONG,
        || {
            upkeep_testkit::pids_with_cmdline("sleep 1000")
                .into_iter()
                .any(|p| upkeep_testkit::parent_of(p) == Some(pid))
                .then_some(())
        },
    );
    d.hand_fds(peer.stored());
    d.launch();

    // Adopted: the same process, no restart, nothing stopped, every line read.
    d.wait_state("talk", "up", LONG);
    assert_eq!(d.pid("talk"), Some(pid), "{}", d.daemon_log());
    assert_eq!(d.service("talk")["info"]["restarts"].as_u64(), Some(0));
    d.wait_until("the last line in the log", LONG, || {
        log(&d, "out").contains(" after 299\n").then_some(())
    });
    let text = log(&d, "out");
    for i in 0..300 {
        let once = text
            .lines()
            .filter(|l| l.ends_with(&format!(" after {i}")))
            .count();
        assert_eq!(once, 1, "line `after {i}` {once} times in:\n{text}");
    }
    d.wait_until("its stderr line in the log", LONG, || {
        log(&d, "err").contains(" done\n").then_some(())
    });
    let kinds: Vec<String> = d.events("talk").into_iter().map(|(k, _)| k).collect();
    assert!(kinds.iter().any(|k| k == "adopted"), "{kinds:?}");
    assert!(
        !kinds
            .iter()
            .any(|k| k == "stale_stopped" || k == "restart_scheduled"),
        "{kinds:?}"
    );

    // Its end is seen (not our child any more: status unknown) and it restarts at once: the
    // rest of its group (the sleep, not our child either, so no SIGCHLD tells of its end) is
    // stopped without waiting out the stop timeout. Its old pipes are let go once read to
    // their end, and the new run's kept.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let new = d.wait_new_pid("talk", pid, LONG);
    let events = d.api_get("/api/v1/events?service=talk&limit=1000");
    let at = |kind: &str, pid: u32| -> Vec<(jiff::Timestamp, serde_json::Value)> {
        let all = events.as_array().unwrap();
        all.iter()
            .filter(|e| e["kind"] == kind && e["detail"]["pid"] == pid)
            .map(|e| {
                (
                    e["at"].as_str().unwrap().parse().unwrap(),
                    e["detail"].clone(),
                )
            })
            .collect()
    };
    let exited = at("exited", pid);
    assert_eq!(exited.len(), 1, "{exited:?}");
    assert_eq!(
        exited[0].1["status"]["code"],
        serde_json::Value::Null,
        "{exited:?}"
    );
    assert_eq!(
        exited[0].1["status"]["signal"],
        serde_json::Value::Null,
        "{exited:?}"
    );
    // Not a deadline of the test's: the sleep's end was seen, not the 15 s stop timeout.
    let restarted = at("started", new)[0].0;
    assert!(
        restarted.duration_since(exited[0].0) < jiff::SignedDuration::from_secs(15),
        "the restart waited out the stop timeout: exited {}, started {restarted}",
        exited[0].0
    );
    let (new_out, new_err) = (format!("talk.out.{new}"), format!("talk.err.{new}"));
    peer.wait_names(
        "the old run's pipes gone and the new run's kept",
        LONG,
        |n| !n.contains(&out) && !n.contains(&err) && n.contains(&new_out) && n.contains(&new_err),
    );
}

/// Without the pipes (a daemon not run by systemd, or a store that lost them), a killed
/// daemon's service is stopped and started anew, as before: never adopted half-blind.
#[test]
fn a_run_whose_pipes_did_not_come_back_is_stopped_not_adopted() {
    let peer = FdStorePeer::start();
    let mut d = TestDaemon::prepare(BIN, "[services.talk]\ncommand = \"sleep 1000\"\n");
    d.set_env("NOTIFY_SOCKET", peer.path().to_str().unwrap());
    d.launch();
    d.wait_state("talk", "up", LONG);
    let pid = d.pid("talk").expect("talk runs");
    peer.wait_names("the run's two pipes", LONG, |n| {
        n.contains(&format!("talk.err.{pid}"))
    });
    d.signal_daemon(Signal::SIGKILL);
    // Only stdout comes back.
    let only_out = peer
        .stored()
        .into_iter()
        .filter(|(n, _)| n.starts_with("talk.out."))
        .collect();
    d.hand_fds(only_out);
    d.launch();
    let new = d.wait_new_pid("talk", pid, LONG);
    assert_ne!(new, pid);
    assert!(!upkeep_testkit::alive(pid), "the old run was stopped");
    let kinds: Vec<String> = d.events("talk").into_iter().map(|(k, _)| k).collect();
    assert!(kinds.iter().any(|k| k == "stale_stopped"), "{kinds:?}");
    assert!(!kinds.iter().any(|k| k == "adopted"), "{kinds:?}");
}
