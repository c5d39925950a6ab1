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

/// Kills the daemon (kill -9: systemd leaves its services, `KillMode=process`) and starts the
/// next with what the fd store kept, as systemd does.
fn crash_and_restart(d: &mut TestDaemon, peer: &FdStorePeer) {
    d.signal_daemon(Signal::SIGKILL);
    d.hand_fds(peer.stored());
    d.launch();
}

/// The kinds of `name`'s stored events, oldest first.
fn kinds(d: &TestDaemon, name: &str) -> Vec<String> {
    let mut all: Vec<(i64, String)> = d
        .api_get(&format!("/api/v1/events?service={name}&limit=10000"))
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["id"].as_i64().unwrap_or_default(),
                e["kind"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    all.sort();
    all.into_iter().map(|(_, k)| k).collect()
}

/// Waits until `name`'s `adopted` event is stored: by then state has taken it in.
fn wait_adopted(d: &TestDaemon, name: &str) {
    d.wait_until(&format!("{name}'s adopted event"), LONG, || {
        kinds(d, name).iter().any(|k| k == "adopted").then_some(())
    });
}

/// A forking service's run is its daemon, which its start command forked; the pipes were
/// named by the start command and never matched the run record's pid, so the run was stopped
/// and started again; and a daemon that closed its output (nginx does) had its pipes let go
/// of at once. Now both are adopted: same pid, what one writes meanwhile read on.
#[test]
fn a_forking_services_daemon_is_adopted_after_a_crash() {
    let peer = FdStorePeer::start();
    let tmp = tempfile::tempdir().unwrap();
    let (go, pid_file) = (tmp.path().join("go"), tmp.path().join("fork.pid"));
    let quiet_pid = tmp.path().join("quiet.pid");
    nix::unistd::mkfifo(&go, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut d = TestDaemon::prepare(
        BIN,
        &format!(
            "[services.fork]\ntype = \"forking\"\npid_file = \"{}\"\nrestart = \"always\"\n\
             command = \"sh -c '(echo forked; read x < {}; echo after the crash; exec sleep 1000) & echo $! > {}'\"\n\n\
             [services.quiet]\ntype = \"forking\"\npid_file = \"{}\"\n\
             command = \"sh -c 'sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > {}'\"\n",
            pid_file.display(),
            go.display(),
            pid_file.display(),
            quiet_pid.display(),
            quiet_pid.display()
        ),
    );
    d.set_env("NOTIFY_SOCKET", peer.path().to_str().unwrap());
    d.launch();
    d.wait_state("fork", "up", LONG);
    let pid = d.pid("fork").expect("fork runs");
    d.wait_until("its first line in the log", LONG, || {
        std::fs::read_to_string(d.data_dir.join("logs/fork.out.log"))
            .ok()?
            .contains(" forked\n")
            .then_some(())
    });
    d.wait_state("quiet", "up", LONG);
    let quiet = d.pid("quiet").expect("quiet runs");

    crash_and_restart(&mut d, &peer);
    wait_adopted(&d, "fork");
    wait_adopted(&d, "quiet");
    assert_eq!(d.pid("fork"), Some(pid), "{}", d.daemon_log());
    assert_eq!(d.pid("quiet"), Some(quiet), "{}", d.daemon_log());
    assert_eq!(d.state("fork"), "up");
    assert_eq!(d.service("fork")["info"]["restarts"].as_u64(), Some(0));
    let seen = kinds(&d, "fork");
    assert!(
        !seen
            .iter()
            .any(|k| k == "stale_stopped" || k == "restart_scheduled"),
        "{seen:?}"
    );
    assert_eq!(
        seen.iter().filter(|k| *k == "started").count(),
        1,
        "{seen:?}"
    );
    // Its pipes were kept: what it writes now is read by this daemon.
    std::fs::write(&go, "go\n").unwrap();
    d.wait_until("its line after the crash in the log", LONG, || {
        std::fs::read_to_string(d.data_dir.join("logs/fork.out.log"))
            .ok()?
            .contains(" after the crash\n")
            .then_some(())
    });
    let out = d.cli(&["stop", "all"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    assert!(
        !upkeep_testkit::alive(pid),
        "the adopted daemon was stopped"
    );
    assert!(
        !upkeep_testkit::alive(quiet),
        "the adopted daemon was stopped"
    );
    // Their pipes are let go of once their runs ended.
    peer.wait_names("no pipe of either", LONG, |n| {
        !n.iter()
            .any(|n| n.starts_with("fork.") || n.starts_with("quiet."))
    });
}

/// A run still starting when the daemon was killed (`ready = "notify"`, no READY=1 yet) was
/// adopted as ready, and what depends on it started too early. Now it is adopted starting,
/// its dependent waits, and its READY=1 to the new daemon's socket makes it up.
#[test]
fn a_run_not_yet_ready_is_adopted_starting_and_its_dependents_wait() {
    let peer = FdStorePeer::start();
    let tmp = tempfile::tempdir().unwrap();
    let go = tmp.path().join("go");
    let mut d = TestDaemon::prepare(
        BIN,
        &format!(
            "[services.svc]\n{}ready = \"notify\"\n\n[services.after]\ncommand = \"sleep 1000\"\ndepends_on = [\"svc\"]\n",
            crate::deps::notifier(&["--wait-for", &go.display().to_string()])
        ),
    );
    d.set_env("NOTIFY_SOCKET", peer.path().to_str().unwrap());
    d.launch();
    let pid = d.wait_running_not_ready("svc");
    assert_eq!(d.state("after"), "starting");

    crash_and_restart(&mut d, &peer);
    wait_adopted(&d, "svc");
    assert_eq!(d.pid("svc"), Some(pid), "{}", d.daemon_log());
    assert_eq!(d.state("svc"), "starting");
    assert_eq!(d.state("after"), "starting");
    assert!(
        !kinds(&d, "after").iter().any(|k| k == "started"),
        "after started before svc was ready"
    );
    std::fs::write(&go, "").unwrap();
    d.wait_state("after", "up", LONG);
    assert_eq!(d.state("svc"), "up");
    assert_eq!(d.pid("svc"), Some(pid));
}

/// A crash loop's restart count and window went back to nothing when its run was adopted:
/// `upkeep ls` said 0 restarts and it had a fresh budget. Now both go on: with
/// `max_restarts = 3` and two restarts before the crash, the next crash restarts it (the
/// third) and the one after fails it.
#[test]
fn an_adopted_run_keeps_its_restart_count_and_crash_loop_window() {
    let peer = FdStorePeer::start();
    let tmp = tempfile::tempdir().unwrap();
    let count = tmp.path().join("count");
    // Runs 1 and 2 fail at once; later runs stay up until killed.
    let mut d = TestDaemon::prepare(
        BIN,
        &format!(
            "[services.loop]\nrestart = \"always\"\nbackoff_min = \"0s\"\nmax_restarts = 3\nwindow = \"1h\"\n\
             command = \"sh -c 'n=$(cat {0} 2>/dev/null || echo 0); echo $((n+1)) > {0}; [ $n -ge 2 ] && exec sleep 1000; exit 3'\"\n",
            count.display()
        ),
    );
    d.set_env("NOTIFY_SOCKET", peer.path().to_str().unwrap());
    d.launch();
    let pid = d.wait_until("loop to be up after two restarts", LONG, || {
        let info = d.service("loop")["info"].clone();
        (info["state"] == "up" && info["restarts"] == 2)
            .then(|| info["pid"].as_u64())
            .flatten()
    }) as u32;

    crash_and_restart(&mut d, &peer);
    wait_adopted(&d, "loop");
    assert_eq!(d.pid("loop"), Some(pid), "{}", d.daemon_log());
    assert_eq!(d.service("loop")["info"]["restarts"].as_u64(), Some(2));
    // The third restart within the window is allowed...
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    let next = d.wait_new_pid("loop", pid, LONG);
    assert_eq!(d.service("loop")["info"]["restarts"].as_u64(), Some(3));
    // ...and the fourth is one too many.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(next as i32), Signal::SIGKILL).unwrap();
    d.wait_state("loop", "failed", LONG);
}

/// A job's run going on when the daemon was killed was adopted with no record of its own: its
/// end was a plain `exited`, missing from `upkeep jobs`. Now its due time and who asked go
/// with the run's note, and its end is recorded as a run of the job (its output from after
/// the crash; what was read before is in its log). Issue 18: no child of the next daemon, its
/// exit status is not known (another process reaps it): it was recorded as a failure (the job
/// down, an incident opened); it is recorded as unknown, shown so, and the job is not down.
#[test]
fn a_jobs_run_across_a_crash_is_recorded_as_a_run_of_the_job() {
    let peer = FdStorePeer::start();
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("release");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let mut d = TestDaemon::prepare_on_test_clock(
        BIN,
        &format!(
            "[services.slow]\nschedule = \"* * * * *\"\ncatch_up = false\nincident_after = \"0s\"\n\
             command = \"sh -c 'echo before; read l < {}; echo after; exit 3'\"\n",
            fifo.display()
        ),
    );
    d.set_env("NOTIFY_SOCKET", peer.path().to_str().unwrap());
    d.launch();
    let due: jiff::Timestamp = d.api_get("/api/v1/jobs?service=slow")[0]["next"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    d.advance_clock("60s");
    let pid = d.wait_until("slow to run", LONG, || d.pid("slow"));
    d.wait_until("slow's first line", LONG, || {
        std::fs::read_to_string(d.data_dir.join("logs/slow.out.log"))
            .ok()?
            .contains("before")
            .then_some(())
    });

    crash_and_restart(&mut d, &peer);
    wait_adopted(&d, "slow");
    assert_eq!(d.pid("slow"), Some(pid), "{}", d.daemon_log());
    std::fs::write(&fifo, "go\n").unwrap();
    let runs = d.wait_until("slow's run to be recorded", LONG, || {
        let job = d.api_get("/api/v1/jobs?service=slow");
        let runs = job[0]["runs"].as_array()?.clone();
        (!runs.is_empty()).then_some(runs)
    });
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run["output"], serde_json::json!(["after"]), "{run}");
    assert_eq!(
        run["due"]
            .as_str()
            .map(str::parse::<jiff::Timestamp>)
            .and_then(Result::ok),
        Some(due),
        "{run}"
    );
    assert_ne!(run["interrupted"], true, "{run}");
    assert_eq!(
        run["status"],
        serde_json::json!({"code": null, "signal": null}),
        "{run}"
    );
    d.wait_state("slow", "exited", LONG);
    let kinds = kinds(&d, "slow");
    assert_eq!(kinds.iter().filter(|k| *k == "job_ran").count(), 1);
    assert!(!kinds.iter().any(|k| k == "incident_opened"), "{kinds:?}");
    let jobs = d.cli(&["jobs", "slow"]);
    let shown = String::from_utf8_lossy(&jobs.stdout);
    assert!(
        shown.contains("unknown: the daemon was restarted while it ran"),
        "{shown}"
    );
}

/// s6's notification fd (`ready = { fd = 3 }`): its pipe's read end died with the daemon, so a
/// run adopted still starting could never say it was ready. It is kept in the fd store until
/// the run is ready: the newline written after the crash makes it up, and its dependent starts.
#[test]
fn a_run_not_yet_ready_on_its_notification_fd_says_so_to_the_next_daemon() {
    let peer = FdStorePeer::start();
    let tmp = tempfile::tempdir().unwrap();
    let go = tmp.path().join("go");
    nix::unistd::mkfifo(&go, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut d = TestDaemon::prepare(
        BIN,
        &format!(
            "[services.s6]\ncommand = [\"sh\", \"-c\", \"read x < {}; echo >&3; exec sleep 1000\"]\nready = {{ fd = 3 }}\n\n\
             [services.after]\ncommand = \"sleep 1000\"\ndepends_on = [\"s6\"]\n",
            go.display()
        ),
    );
    d.set_env("NOTIFY_SOCKET", peer.path().to_str().unwrap());
    d.launch();
    let pid = d.wait_running_not_ready("s6");
    peer.wait_names("its readiness pipe", LONG, |n| {
        n.contains(&format!("s6.ready.{pid}"))
    });

    crash_and_restart(&mut d, &peer);
    wait_adopted(&d, "s6");
    assert_eq!(d.pid("s6"), Some(pid), "{}", d.daemon_log());
    assert_eq!(d.state("s6"), "starting");
    assert_eq!(d.state("after"), "starting");
    std::fs::write(&go, "go\n").unwrap();
    d.wait_state("after", "up", LONG);
    assert_eq!(d.state("s6"), "up");
    assert_eq!(d.pid("s6"), Some(pid));
    peer.wait_names("the readiness pipe let go once ready", LONG, |n| {
        !n.contains(&format!("s6.ready.{pid}"))
    });
}
