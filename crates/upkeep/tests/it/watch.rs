//! `watch` against hostile trees and services (break-it session 11, items 1 and 5), on the
//! real daemon: folders linking to each other, a tree past the cap, a pseudo-file system, and
//! a service that writes into the folder it watches.

use std::process::Child;

use upkeep_testkit::TestDaemon;

use crate::{BIN, LONG, stdout};

/// Waits (at most LONG) for a CLI started with `cli_spawn` to end; its stdout.
fn finished(d: &TestDaemon, mut child: Child, what: &str) -> String {
    d.wait_until(what, LONG, || child.try_wait().ok().flatten());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{what}: {}", crate::stderr(&out));
    stdout(&out)
}

fn watch_failed(d: &TestDaemon, name: &str, path_end: &str) -> Option<String> {
    d.events(name).into_iter().find_map(|(k, v)| {
        (k == "watch_failed" && v["path"].as_str()?.ends_with(path_end))
            .then(|| v["error"].as_str().unwrap_or_default().to_owned())
    })
}

fn planned(d: &TestDaemon, name: &str) -> Vec<String> {
    d.events(name)
        .into_iter()
        .filter(|(k, _)| k == "restart_planned")
        .map(|(_, v)| v["reason"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Item 1: a watched folder of 8 folders each linking to every other (the walk went through
/// every path of links, and the daemon froze: no reload, no `ls`, no restart of a killed
/// service). The reload answers, `ls` answers, a killed service is restarted, and a change
/// in the tree restarts the watching service.
#[test]
fn a_watched_tree_of_folders_linking_to_each_other_leaves_the_daemon_supervising() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web");
    upkeep_testkit::symlink_mesh(&web, 8);
    let d = TestDaemon::start(BIN, "[services.app]\ncommand = \"sleep 100000\"\n");
    d.wait_state("app", "up", LONG);
    let toml = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        format!(
            "{toml}\n[services.dev]\ncommand = \"sleep 100000\"\ncwd = \"{}\"\nwatch = [\"web\"]\nwatch_debounce = \"100ms\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    finished(&d, d.cli_spawn(&["reload"]), "upkeep reload to answer");
    let ls = finished(&d, d.cli_spawn(&["ls"]), "upkeep ls to answer");
    assert!(ls.contains("dev"), "{ls}");
    let app = d.pid("app").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(app as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_new_pid("app", app, LONG);
    d.wait_state("dev", "up", LONG);
    d.wait_until("dev's watcher to start", LONG, || {
        d.daemon_log().contains("watching files").then_some(())
    });
    let dev = d.pid("dev").unwrap();
    std::fs::write(web.join("d3/app.js"), "x").unwrap();
    d.wait_new_pid("dev", dev, LONG);
    assert_eq!(planned(&d, "dev"), ["file changed: d3/app.js"]);
}

/// Item 1: a path past the cap of folders and a pseudo-file system are not watched, each said
/// in a `watch_failed` event; the service runs and its other path is watched.
#[test]
fn a_tree_past_the_cap_and_proc_are_refused_and_the_other_paths_watched() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    for i in 0..=8192 {
        std::fs::create_dir_all(big.join(format!("{}/{i}", i % 64))).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("src")).unwrap();
    let d = TestDaemon::start(
        BIN,
        &format!(
            "[services.dev]\ncommand = \"sleep 100000\"\ncwd = \"{}\"\nwatch = [\"/proc\", \"big\", \"src\"]\nwatch_debounce = \"100ms\"\n",
            dir.path().display()
        ),
    );
    d.wait_state("dev", "up", LONG);
    let e = d.wait_until("big to be refused", LONG, || watch_failed(&d, "dev", "big"));
    assert!(e.contains("more than 8192 folders"), "{e}");
    let e = d.wait_until("/proc to be refused", LONG, || {
        watch_failed(&d, "dev", "/proc")
    });
    assert!(e.contains("procfs"), "{e}");
    d.wait_until("dev's watcher to start", LONG, || {
        d.daemon_log().contains("watching files").then_some(())
    });
    let pid = d.pid("dev").unwrap();
    std::fs::write(dir.path().join("src/app.js"), "x").unwrap();
    d.wait_new_pid("dev", pid, LONG);
    assert_eq!(planned(&d, "dev"), ["file changed: app.js"]);
}

/// Item 5: a service that writes a file into its watched folder as it starts restarted for
/// good (three times a second). The file is found to be its own after one more restart and
/// said; another change still restarts it.
#[test]
fn a_service_writing_into_its_watched_folder_does_not_restart_for_good() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let d = TestDaemon::start(
        BIN,
        &format!(
            "[services.dev]\ncommand = \"sh -c 'date +%N > app/started.txt; exec sleep 100000'\"\ncwd = \"{}\"\nwatch = [\"app\"]\nwatch_debounce = \"100ms\"\n",
            dir.path().display()
        ),
    );
    d.wait_state("dev", "up", LONG);
    d.wait_until("dev's watcher to start", LONG, || {
        d.daemon_log().contains("watching files").then_some(())
    });
    std::fs::write(dir.path().join("app/main.js"), "x").unwrap();
    let e = d.wait_until("started.txt to be found the service's own", LONG, || {
        watch_failed(&d, "dev", "started.txt")
    });
    assert!(e.contains("watch_ignore"), "{e}");
    // A change that counts still restarts it, once.
    let pid = d.pid("dev").unwrap();
    std::fs::write(dir.path().join("app/other.js"), "x").unwrap();
    d.wait_until("other.js to restart dev", LONG, || {
        planned(&d, "dev")
            .iter()
            .any(|r| r.ends_with("other.js"))
            .then_some(())
    });
    d.wait_new_pid("dev", pid, LONG);
    let reasons = planned(&d, "dev");
    let own = reasons
        .iter()
        .filter(|r| r.ends_with("started.txt"))
        .count();
    assert!(own <= 2, "{reasons:?}");
    assert_eq!(
        reasons.last().unwrap(),
        "file changed: other.js",
        "{reasons:?}"
    );
}

/// Item 5: a service writing a new file each start is not caught as writing its own, but
/// restarts from changes obey `max_restarts` within `window`: past them, said once, and no
/// more restarts.
#[test]
fn restarts_from_changes_stop_at_max_restarts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let d = TestDaemon::start(
        BIN,
        &format!(
            "[services.dev]\ncommand = \"sh -c 'date +%s%N > app/$(date +%s%N).txt; exec sleep 100000'\"\ncwd = \"{}\"\nwatch = [\"app\"]\nwatch_debounce = \"100ms\"\nmax_restarts = 3\nwindow = \"1h\"\n",
            dir.path().display()
        ),
    );
    d.wait_state("dev", "up", LONG);
    d.wait_until("dev's watcher to start", LONG, || {
        d.daemon_log().contains("watching files").then_some(())
    });
    std::fs::write(dir.path().join("app/main.js"), "x").unwrap();
    let e = d.wait_until("the restart budget to be spent", LONG, || {
        d.events("dev").into_iter().find_map(|(k, v)| {
            let e = v["error"].as_str()?;
            (k == "watch_failed" && e.contains("max_restarts")).then(|| e.to_owned())
        })
    });
    assert!(e.contains("3 times within 3600s"), "{e}");
    let reasons = planned(&d, "dev");
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    let status = stdout(&d.cli(&["status", "dev"]));
    assert!(status.contains("watch_failed"), "{status}");
}

/// Issue 18: restarts from changes kept a budget of their own and were not counted in `ls`'s
/// restart column. They are restarts like a crash's: counted, and in the one crash-loop
/// window of the service. One change and two crashes spend `max_restarts = 3`: a change then
/// restarts nothing (said), and the next crash fails the service.
#[test]
fn restarts_from_changes_and_crashes_share_one_count_and_window() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("app")).unwrap();
    let d = TestDaemon::start(
        BIN,
        &format!(
            "[services.dev]\ncommand = \"sleep 100000\"\ncwd = \"{}\"\nwatch = [\"app\"]\nwatch_debounce = \"100ms\"\nrestart = \"always\"\nbackoff_min = \"0s\"\nmax_restarts = 3\nwindow = \"1h\"\n",
            dir.path().display()
        ),
    );
    d.wait_state("dev", "up", LONG);
    d.wait_until("dev's watcher to start", LONG, || {
        d.daemon_log().contains("watching files").then_some(())
    });
    let restarts = || d.service("dev")["info"]["restarts"].as_u64();
    let pid = d.pid("dev").unwrap();
    std::fs::write(dir.path().join("app/one.js"), "x").unwrap();
    let pid = d.wait_new_pid("dev", pid, LONG);
    assert_eq!(planned(&d, "dev"), ["file changed: one.js"]);
    d.wait_state("dev", "up", LONG);
    assert_eq!(restarts(), Some(1), "{}", d.service("dev"));
    let mut pid = pid;
    for n in 2..=3 {
        kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
        pid = d.wait_new_pid("dev", pid, LONG);
        d.wait_state("dev", "up", LONG);
        assert_eq!(restarts(), Some(n), "{}", d.service("dev"));
    }
    std::fs::write(dir.path().join("app/two.js"), "x").unwrap();
    let e = d.wait_until("the change to be refused", LONG, || {
        watch_failed(&d, "dev", "two.js")
    });
    assert!(e.contains("restarted 3 times within 3600s"), "{e}");
    assert_eq!(d.pid("dev"), Some(pid), "restarted by the refused change");
    assert_eq!(planned(&d, "dev").len(), 1);
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
    d.wait_state("dev", "failed", LONG);
}
