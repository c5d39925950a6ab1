//! Scheduled runs and watched files (issue 18, items 4 and 7), on the real daemon: jobs on a
//! driven test clock (runs, skips instead of overlapping, history with exit codes, durations
//! and output, incidents opened by a failed run and resolved by the next good one, runs
//! missed while no daemon ran), `restart_at` in its zone, and `watch` with its debounce and
//! what it ignores.
//!
//! The test clock also follows real time, so a minute boundary may pass on its own while a
//! test runs: assertions hold whatever extra runs that brings (each due time once, runs never
//! overlapping), rather than counting on none.

use serde_json::Value;
use upkeep_testkit::TestDaemon;

use crate::{BIN, LONG, stdout};

/// The jobs API's entry for `name`.
fn job(d: &TestDaemon, name: &str) -> Value {
    let list = d.api_get(&format!("/api/v1/jobs?service={name}&limit=1000"));
    list.as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or_else(|| panic!("no job {name} in {list}"))
}

fn runs(d: &TestDaemon, name: &str) -> Vec<Value> {
    job(d, name)["runs"].as_array().cloned().unwrap_or_default()
}

fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {v}"))
}

/// Waits until `name` has at least `n` recorded runs; returns them, newest first.
fn wait_runs(d: &TestDaemon, name: &str, n: usize) -> Vec<Value> {
    d.wait_until(&format!("{n} runs of {name}"), LONG, || {
        let r = runs(d, name);
        (r.len() >= n).then_some(r)
    })
}

fn incidents(d: &TestDaemon, name: &str) -> Vec<Value> {
    d.api_get(&format!("/api/v1/incidents?service={name}"))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_job_runs_on_schedule_never_overlaps_and_keeps_each_runs_record() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("release");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let once = dir.path().join("done");
    let ok = dir.path().join("ok");
    // `slow` blocks on its first run until the test releases it: longer than its period.
    // `flaky` fails until the file `ok` exists.
    let d = TestDaemon::start_on_test_clock(
        BIN,
        &format!(
            "[services.slow]\nschedule = \"* * * * *\"\n\
             command = \"sh -c 'echo begin; echo to-stderr >&2; if [ ! -e {once} ]; then read l < {fifo}; touch {once}; fi; echo end'\"\n\n\
             [services.flaky]\nschedule = \"* * * * *\"\ncommand = \"sh -c 'echo checking; test -e {ok}'\"\n",
            once = once.display(),
            fifo = fifo.display(),
            ok = ok.display(),
        ),
    );
    // A job does not run because the daemon started.
    assert_eq!(d.state("slow"), "stopped");
    assert!(runs(&d, "slow").is_empty());
    let next = ts(&job(&d, "slow")["next"]);

    // Its minute comes: both run; slow goes on, flaky fails and opens an incident.
    d.advance_clock("60s");
    d.wait_until("slow to run", LONG, || d.pid("slow"));
    let first_flaky = wait_runs(&d, "flaky", 1);
    assert_eq!(first_flaky[0]["status"]["code"], 1, "{first_flaky:?}");
    assert_eq!(first_flaky[0]["output"][0], "checking");
    assert!(ts(&first_flaky[0]["due"]) >= next);
    d.wait_until("an incident for flaky", LONG, || {
        incidents(&d, "flaky")
            .first()
            .filter(|i| i["resolved"].is_null())
            .cloned()
    });
    assert_eq!(d.state("flaky"), "down");

    // The next minute: slow is still running, so that run is skipped and recorded.
    d.advance_clock("60s");
    let skipped = d.wait_until("a skipped run of slow", LONG, || {
        let s = job(&d, "slow")["skipped"].as_array().cloned()?;
        (!s.is_empty()).then_some(s)
    });
    assert!(ts(&skipped[0]) > next, "{skipped:?}");
    assert!(runs(&d, "slow").is_empty(), "no second run began");
    wait_runs(&d, "flaky", 2);
    assert_eq!(
        incidents(&d, "flaky").len(),
        1,
        "one incident while the runs fail"
    );

    // Released: slow's run ends after more than a minute of the daemon's clock.
    std::fs::write(&ok, "").unwrap();
    std::fs::write(&fifo, "go\n").unwrap();
    let slow = wait_runs(&d, "slow", 1);
    let run = &slow[0];
    assert_eq!(run["status"]["code"], 0);
    assert!(run["duration_ms"].as_u64().unwrap() >= 60_000, "{run}");
    let output: Vec<&str> = run["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for line in ["begin", "stderr| to-stderr", "end"] {
        assert!(output.contains(&line), "{output:?}");
    }
    assert_eq!(run["by"], "upkeep");
    d.wait_state("slow", "exited", LONG);

    // The next minute: both run again; flaky's good run resolves its incident.
    d.advance_clock("60s");
    let slow = wait_runs(&d, "slow", 2);
    assert_eq!(slow[0]["status"]["code"], 0);
    d.wait_until("flaky's incident to resolve", LONG, || {
        incidents(&d, "flaky")
            .first()
            .filter(|i| !i["resolved"].is_null())
            .cloned()
    });
    assert_eq!(incidents(&d, "flaky").len(), 1);
    d.wait_state("flaky", "exited", LONG);

    // Never two runs at once: each run ended before the next began, each due time once.
    for name in ["slow", "flaky"] {
        let mut r = runs(&d, name);
        r.reverse();
        for pair in r.windows(2) {
            assert!(
                ts(&pair[0]["ended"]) <= ts(&pair[1]["started"]),
                "{name}: {pair:?}"
            );
        }
        let mut dues: Vec<String> = r.iter().map(|x| x["due"].to_string()).collect();
        dues.extend(
            job(&d, name)["skipped"]
                .as_array()
                .unwrap()
                .iter()
                .map(Value::to_string),
        );
        let all = dues.len();
        dues.sort();
        dues.dedup();
        assert_eq!(dues.len(), all, "{name}: a due time ran twice");
    }
    // Restarts are not a job's business, and a job's exit is not a crash.
    let events = d.events("flaky");
    assert!(!events.iter().any(|(k, _)| k == "restart_scheduled"));

    // `upkeep start` runs one now, by the operator; `upkeep jobs` shows the history.
    let out = d.cli(&["start", "slow"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let slow = wait_runs(&d, "slow", 3);
    assert!(slow[0]["due"].is_null());
    assert!(slow[0]["by"]["principal"].is_object(), "{}", slow[0]);
    let table = stdout(&d.cli(&["jobs"]));
    assert!(
        table.contains("slow") && table.contains("* * * * *"),
        "{table}"
    );
    let detail = stdout(&d.cli(&["jobs", "slow"]));
    assert!(detail.contains("output of the run"), "{detail}");
    assert!(
        detail.contains("skipped (the last run was still going)"),
        "{detail}"
    );

    // Stopped by an operator, a job waits: its minute passes (flaky runs), it does not run.
    let out = d.cli(&["stop", "slow"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    // (Starts are counted, not runs: a start would be stored long before flaky's run ends.)
    let starts = |d: &TestDaemon| {
        d.events("slow")
            .iter()
            .filter(|(k, _)| k == "started")
            .count()
    };
    let (slow_starts, flaky_runs) = (starts(&d), runs(&d, "flaky").len());
    d.advance_clock("60s");
    wait_runs(&d, "flaky", flaky_runs + 1);
    assert_eq!(starts(&d), slow_starts);
    assert_eq!(d.state("slow"), "stopped");
}

#[test]
fn a_run_missed_while_no_daemon_ran_is_made_up_once_at_start() {
    let mut d = TestDaemon::start_on_test_clock(
        BIN,
        "[services.hourly]\nschedule = \"0 * * * *\"\ncommand = \"echo hi\"\n",
    );
    d.advance_clock("1h");
    let first = wait_runs(&d, "hourly", 1);
    let status = d.signal_daemon(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success());
    // Two hours pass with no daemon (the test clock's offset, kept in the data dir).
    let file = d.data_dir.join("test-clock-offset-ms");
    let ahead: i64 = std::fs::read_to_string(&file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::write(&file, (ahead + 2 * 3_600_000).to_string()).unwrap();
    d.launch();
    let after = wait_runs(&d, "hourly", 2);
    let made_up = &after[0];
    // For the last hour it missed, once (not once per missed hour).
    let due = ts(&made_up["due"]);
    assert!(due > ts(&first[0]["due"]) + jiff::SignedDuration::from_hours(1));
    assert_eq!(due.as_second() % 3600, 0);
    d.wait_state("hourly", "exited", LONG);
    assert!(
        d.daemon_log()
            .contains("a run was missed while no daemon ran")
    );
}

#[test]
fn restart_at_restarts_at_its_time_in_its_zone_and_counts_no_crash() {
    let d = TestDaemon::start_on_test_clock(
        BIN,
        "[services.web]\ncommand = \"sleep 100000\"\nrestart_at = \"0 4 * * * Asia/Shanghai\"\n",
    );
    d.wait_state("web", "up", LONG);
    let pid = d.pid("web").unwrap();
    let now = d.advance_clock("1ms");
    let zone = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let local = now.to_zoned(zone.clone());
    let mut four = local.date().at(4, 0, 0, 0).to_zoned(zone).unwrap();
    if four <= local {
        four = four.tomorrow().unwrap();
    }
    let wait = now.duration_until(four.timestamp());
    // A minute before: nothing.
    let before = wait - jiff::SignedDuration::from_secs(60);
    d.advance_clock(&format!("{}ms", before.as_millis()));
    assert_eq!(d.pid("web"), Some(pid));
    d.advance_clock("61s");
    let new = d.wait_new_pid("web", pid, LONG);
    assert_ne!(new, pid);
    let events = d.events("web");
    let planned: Vec<&Value> = events
        .iter()
        .filter(|(k, _)| k == "restart_planned")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(planned.len(), 1, "{events:?}");
    assert_eq!(planned[0]["reason"], "restart_at 0 4 * * * Asia/Shanghai");
    let stored = d.api_get("/api/v1/events?service=web&limit=100");
    let at = stored
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "restart_planned")
        .map(|e| ts(&e["at"]))
        .unwrap();
    assert!(at >= four.timestamp(), "{at} before {four}");
    assert_eq!(
        at.to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap())
            .hour(),
        4
    );
    // Not a crash: no backoff, no restart counted, never down.
    assert!(!events.iter().any(|(k, _)| k == "restart_scheduled"));
    assert_eq!(d.service("web")["info"]["restarts"], 0);
    assert!(
        !events
            .iter()
            .any(|(k, v)| k == "status_changed" && v["to"] == "down"),
        "{events:?}"
    );
    d.wait_state("web", "up", LONG);
}

#[test]
fn a_burst_of_writes_to_a_watched_file_restarts_once_and_node_modules_never() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join("node_modules/dep")).unwrap();
    std::fs::write(root.join("src/app.js"), "1").unwrap();
    let d = TestDaemon::start(
        BIN,
        &format!(
            "[services.dev]\ncommand = \"sleep 100000\"\ncwd = \"{}\"\nwatch = [\".\"]\nwatch_debounce = \"300ms\"\n",
            root.display()
        ),
    );
    d.wait_state("dev", "up", LONG);
    d.wait_until("the watcher to start", LONG, || {
        d.daemon_log().contains("watching files").then_some(())
    });
    let planned = |d: &TestDaemon| -> Vec<String> {
        d.events("dev")
            .into_iter()
            .filter(|(k, _)| k == "restart_planned")
            .map(|(_, v)| v["reason"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let pid0 = d.pid("dev").unwrap();
    // node_modules first, then one write that counts: only the second restarts.
    for i in 0..5 {
        std::fs::write(root.join("node_modules/dep/index.js"), i.to_string()).unwrap();
    }
    std::fs::write(root.join("src/other.js"), "x").unwrap();
    let pid1 = d.wait_new_pid("dev", pid0, LONG);
    assert_eq!(planned(&d), ["file changed: src/other.js"]);

    // 20 writes in a burst: one restart. A later write proves nothing more came of it.
    for i in 0..20 {
        std::fs::write(root.join("src/app.js"), i.to_string()).unwrap();
    }
    let pid2 = d.wait_new_pid("dev", pid1, LONG);
    // One more change, after the burst's restart: were the burst to restart twice, its second
    // would come before this one's.
    std::fs::write(root.join("src/last.js"), "x").unwrap();
    d.wait_new_pid("dev", pid2, LONG);
    d.wait_until("the last change recorded", LONG, || {
        planned(&d)
            .iter()
            .any(|r| r.ends_with("src/last.js"))
            .then_some(())
    });
    assert_eq!(
        planned(&d),
        [
            "file changed: src/other.js",
            "file changed: src/app.js",
            "file changed: src/last.js"
        ]
    );
    // Each counts as a restart (issue 18: restarts from changes were left out of `ls`).
    assert_eq!(d.service("dev")["info"]["restarts"], 3);
}

/// How many events of `kind` `name` has stored.
fn count(d: &TestDaemon, name: &str, kind: &str) -> usize {
    d.events(name).iter().filter(|(k, _)| k == kind).count()
}

/// Issue 18 (found by a break-it test): a run cut short by a kill -9 of the daemon is stopped
/// by the next daemon and recorded once, as interrupted (not a failure), and its run record
/// is cleared: the start after that finds nothing left running.
#[test]
fn issue_18_a_run_cut_by_a_killed_daemon_is_recorded_once_as_interrupted() {
    let mut d = TestDaemon::start_on_test_clock(
        BIN,
        "[services.long]\nschedule = \"0 4 * * *\"\ncommand = \"sleep 100000\"\n",
    );
    let out = d.cli(&["start", "long"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let pid = d.wait_until("long to run", LONG, || d.pid("long"));
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    d.launch();
    let cut = wait_runs(&d, "long", 1);
    assert_eq!(cut[0]["interrupted"], true, "{cut:?}");
    assert!(cut[0]["status"]["code"].is_null(), "{cut:?}");
    assert!(cut[0]["by"]["principal"].is_object(), "{cut:?}");
    assert!(!upkeep_testkit::alive(pid), "the cut run was stopped");
    // Not a failure: no incident, not down.
    assert_ne!(d.state("long"), "down");
    let detail = stdout(&d.cli(&["jobs", "long"]));
    assert!(
        detail.contains("interrupted: the daemon was killed"),
        "{detail}"
    );
    assert_eq!(count(&d, "long", "stale_stopped"), 1);

    // A clean restart: nothing is left running, nothing recorded again.
    assert!(d.signal_daemon(nix::sys::signal::Signal::SIGTERM).success());
    d.launch();
    // A start after the take-over: its events come after whatever the take-over sent.
    let out = d.cli(&["start", "long"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    d.wait_until("long to run again", LONG, || {
        (count(&d, "long", "started") == 2).then_some(())
    });
    assert_eq!(
        count(&d, "long", "stale_stopped"),
        1,
        "{:?}",
        d.events("long")
    );
    assert_eq!(runs(&d, "long").len(), 1);
    assert!(incidents(&d, "long").is_empty());
}

/// Issue 18: catch-up follows systemd's `Persistent=`: a job that never ran is made up for
/// the last time it missed since a daemon first knew it; a job an operator stopped is not.
#[test]
fn issue_18_a_job_that_never_ran_is_made_up_and_a_stopped_one_is_not() {
    let mut d = TestDaemon::start_on_test_clock(
        BIN,
        "[services.fresh]\nschedule = \"0 * * * *\"\ncommand = \"echo hi\"\n\n\
         [services.held]\nschedule = \"0 * * * *\"\ncommand = \"echo hi\"\n",
    );
    let out = d.cli(&["stop", "held"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    d.wait_until("held's stop stored", LONG, || {
        (count(&d, "held", "stopped") > 0).then_some(())
    });
    // Known to the daemon before it stops: its first day on the schedule is stored.
    d.wait_until("fresh's job_scheduled", LONG, || {
        (count(&d, "fresh", "job_scheduled") == 1).then_some(())
    });
    assert!(d.signal_daemon(nix::sys::signal::Signal::SIGTERM).success());
    // (The clock was never moved: no offset kept yet.)
    let file = d.data_dir.join("test-clock-offset-ms");
    let ahead: i64 = std::fs::read_to_string(&file).map_or(0, |t| t.trim().parse().unwrap());
    std::fs::write(&file, (ahead + 2 * 3_600_000).to_string()).unwrap();
    d.launch();
    let made_up = wait_runs(&d, "fresh", 1);
    assert_eq!(ts(&made_up[0]["due"]).as_second() % 3600, 0, "{made_up:?}");
    d.wait_until("held's catch-up decided", LONG, || {
        d.daemon_log()
            .contains("stopped by an operator: no run made up")
            .then_some(())
    });
    assert!(runs(&d, "held").is_empty());
    assert_eq!(count(&d, "held", "started"), 0);
    assert_eq!(
        count(&d, "fresh", "job_scheduled"),
        1,
        "once, not at each start"
    );
}

/// Issue 18: `upkeep start JOB` while its run is going starts nothing, and says so (a job
/// never overlaps), in English and Chinese, with a non-zero exit.
#[test]
fn issue_18_starting_a_job_whose_run_is_going_says_so() {
    let d = TestDaemon::start(
        BIN,
        "[services.long]\nschedule = \"0 4 1 1 *\"\ncommand = \"sleep 100000\"\n",
    );
    let out = d.cli(&["start", "long"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let pid = d.wait_until("long to run", LONG, || d.pid("long"));
    let out = d.cli(&["start", "long"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let said = stdout(&out);
    assert!(
        said.contains("long: not started: its last run is still going (since "),
        "{said}"
    );
    assert!(!said.contains("long: started"), "{said}");
    let zh = std::process::Command::new(BIN)
        .arg("-c")
        .arg(&d.config)
        .args(["start", "long"])
        .env("UPKEEP_LANG", "zh_CN.UTF-8")
        .output()
        .unwrap();
    assert_eq!(zh.status.code(), Some(1));
    assert!(
        stdout(&zh).contains("未启动：上次运行尚未结束"),
        "{}",
        stdout(&zh)
    );
    assert_eq!(d.pid("long"), Some(pid), "the run goes on");
    assert_eq!(count(&d, "long", "started"), 1);
    // `start all` says the same, and is not an error: every service is running.
    let out = d.cli(&["start", "all"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    assert!(stdout(&out).contains("not started"), "{}", stdout(&out));
}

/// Issue 18: a watched folder that goes away is said (`watch_failed`, in `upkeep status`),
/// and the other watched paths still restart the service.
#[test]
fn issue_18_a_removed_watch_path_is_said_and_the_others_are_still_watched() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::create_dir_all(root.join("gen")).unwrap();
    let d = TestDaemon::start(
        BIN,
        &format!(
            "[services.dev]\ncommand = \"sleep 100000\"\ncwd = \"{}\"\nwatch = [\"src\", \"gen\"]\nwatch_debounce = \"100ms\"\n",
            root.display()
        ),
    );
    d.wait_state("dev", "up", LONG);
    d.wait_until("the watcher to start", LONG, || {
        d.daemon_log().contains("watching files").then_some(())
    });
    std::fs::remove_dir_all(root.join("gen")).unwrap();
    let failed = d.wait_until("gen's watch to be said gone", LONG, || {
        d.events("dev")
            .into_iter()
            .find(|(k, _)| k == "watch_failed")
            .map(|(_, v)| v)
    });
    assert!(
        failed["path"].as_str().unwrap().ends_with("gen"),
        "{failed}"
    );
    assert!(
        failed["error"].as_str().unwrap().contains("removed"),
        "{failed}"
    );
    let status = stdout(&d.cli(&["status", "dev"]));
    assert!(status.contains("watch_failed"), "{status}");
    std::fs::write(root.join("src/app.js"), "x").unwrap();
    d.wait_until("src's change to restart dev", LONG, || {
        d.events("dev")
            .iter()
            .any(|(k, v)| k == "restart_planned" && v["reason"] == "file changed: app.js")
            .then_some(())
    });
}

/// Break-it, session 12: a failed job, its incident open, came back from a restart of the
/// daemon `stopped`. It is down until a run ends well, as before the restart.
#[test]
fn a_failed_job_is_still_down_after_a_restart_of_the_daemon() {
    let mut d = TestDaemon::start_on_test_clock(
        BIN,
        "[services.failing]\nschedule = \"* * * * *\"\ncommand = \"sh -c 'exit 4'\"\n",
    );
    d.advance_clock("60s");
    wait_runs(&d, "failing", 1);
    d.wait_until("an incident for failing", LONG, || {
        incidents(&d, "failing")
            .first()
            .filter(|i| i["resolved"].is_null())
            .cloned()
    });
    d.wait_state("failing", "down", LONG);
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    d.launch();
    assert_eq!(d.state("failing"), "down");
    assert!(runs(&d, "failing").len() == 1, "no run since");
}
