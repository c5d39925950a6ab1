//! Supervision: crashes restart, groups stop whole, crash loops end in `failed`.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use upkeep_testkit::{TestDaemon, alive, group_members, zombie_children};

use crate::{LONG, daemon, stderr};

/// Members of group `pgid` running `sleep` (the shell in front of them may or may not have
/// replaced itself with the last command, depending on the shell).
fn sleeps_in(pgid: u32) -> usize {
    group_members(pgid)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sleep")
        })
        .count()
}

fn sigkill(pid: u32) {
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).expect("kill");
}

#[test]
fn kill_9_restarts_with_new_pid_and_stores_exit_and_restart() {
    let d = daemon("[services.s]\ncommand = \"sleep 1000\"\n");
    d.wait_state("s", "up", LONG);
    let old = d.pid("s").unwrap();
    sigkill(old);
    let new = d.wait_new_pid("s", old, LONG);
    assert!(alive(new) && !alive(old));
    let kinds: Vec<String> = d.events("s").into_iter().map(|e| e.0).collect();
    // The supervisor's facts, in order...
    let lifecycle: Vec<&str> = kinds
        .iter()
        .map(String::as_str)
        .filter(|k| ["started", "exited", "restart_scheduled"].contains(k))
        .collect();
    assert_eq!(
        lifecycle,
        ["started", "exited", "restart_scheduled", "started"],
        "{kinds:?}"
    );
    // ...and the crash accounted for, though the restart took a millisecond: an incident,
    // opened and resolved.
    let resolved = d.wait_until("the incident to be resolved", LONG, || {
        let inc = d.service("s")["incidents"][0].clone();
        (!inc["resolved"].is_null()).then_some(inc)
    });
    assert!(
        resolved["duration_ms"].as_u64().unwrap() < 5_000,
        "{resolved}"
    );
    let exited = d
        .events("s")
        .into_iter()
        .find(|e| e.0 == "exited")
        .unwrap()
        .1;
    assert_eq!(exited["status"]["signal"], 9);
    assert_eq!(exited["pid"], old);
    assert_eq!(d.service("s")["info"]["restarts"], 1);
}

/// A daemon running service `g`, a shell with two background sleeps; returns its group id.
fn two_sleeps() -> (upkeep_testkit::TestDaemon, u32) {
    let d = daemon("[services.g]\ncommand = \"sleep 1000 & sleep 1000\"\nstop_timeout = \"5s\"\n");
    d.wait_state("g", "up", LONG);
    let pgid = d.pid("g").unwrap();
    d.wait_until("both sleeps to run", LONG, || {
        (sleeps_in(pgid) == 2).then_some(())
    });
    (d, pgid)
}

#[test]
fn stop_leaves_no_process_of_the_group() {
    let (d, pgid) = two_sleeps();
    let out = d.cli(&["stop", "g"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    assert!(
        group_members(pgid).is_empty(),
        "left: {:?}",
        group_members(pgid)
    );
    assert_eq!(d.state("g"), "stopped");
    assert_eq!(d.service("g")["info"]["desired"], "stopped");
}

/// The daemon is a child subreaper: a service's orphan comes back to the daemon, not to PID 1
/// (which reaps only every second or two here), and is reaped the moment it exits. (Issue 14,
/// F23: checking for "no zombie children of the daemon" alone passes without a subreaper too,
/// since the orphans then go to PID 1.)
#[test]
fn orphans_of_a_service_come_back_to_the_daemon_and_are_reaped() {
    let t = upkeep_testkit::unique();
    // The subshell starts a sleep in the background and exits: the sleep is an orphan while
    // the service's leader lives on.
    let d = daemon(&format!(
        "[services.o]\ncommand = \"(sleep 700{t} &) ; exec sleep 800{t}\"\n"
    ));
    d.wait_state("o", "up", LONG);
    let daemon_pid = d.daemon_pid().unwrap();
    let orphan = d.wait_until(
        "the orphan",
        LONG,
        || match upkeep_testkit::pids_with_cmdline(&format!("sleep 700{t}")).as_slice() {
            [one] => Some(*one),
            _ => None,
        },
    );
    d.wait_until("the orphan's parent to be the daemon", LONG, || {
        (upkeep_testkit::parent_of(orphan) == Some(daemon_pid)).then_some(())
    });
    sigkill(orphan);
    d.wait_until("the orphan to be reaped by the daemon", LONG, || {
        (!std::path::Path::new(&format!("/proc/{orphan}")).exists()).then_some(())
    });
    assert!(zombie_children(daemon_pid).is_empty());
}

#[test]
fn leader_killed_the_rest_of_its_group_is_gone_before_the_new_one_starts() {
    let (d, old) = two_sleeps();
    let survivors: Vec<u32> = group_members(old)
        .into_iter()
        .filter(|p| *p != old)
        .collect();
    sigkill(old);
    let new = d.wait_new_pid("g", old, LONG);
    assert!(
        group_members(old).is_empty(),
        "old group still has {:?}",
        group_members(old)
    );
    assert!(survivors.iter().all(|p| !alive(*p)));
    // The clean-up is recorded before the new start.
    let kinds: Vec<String> = d.events("g").into_iter().map(|e| e.0).collect();
    let cleaned = kinds
        .iter()
        .rposition(|k| k == "group_cleaned")
        .expect("group_cleaned event");
    let started = kinds.iter().rposition(|k| k == "started").unwrap();
    assert!(cleaned < started, "{kinds:?}");
    // Orphans came back to the daemon (a subreaper) and were reaped: no zombies.
    let daemon_pid = d.daemon_pid().unwrap();
    d.wait_until("no zombie children of the daemon", LONG, || {
        zombie_children(daemon_pid).is_empty().then_some(())
    });
    d.wait_until("both new sleeps to run", LONG, || {
        (sleeps_in(new) == 2).then_some(())
    });
}

#[test]
fn a_port_held_by_an_orphan_is_freed_before_the_restart() {
    // sh → python listening on a port; kill -9 the sh: python must not keep the port, or
    // every restart fails with "address in use".
    let port = upkeep_testkit::free_port();
    let d = daemon(&format!(
        "[services.web]\ncommand = \"python3 -m http.server {port} --bind 127.0.0.1 & wait\"\nbackoff_min = \"50ms\"\n"
    ));
    d.wait_state("web", "up", LONG);
    let up = || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .is_ok()
            .then_some(())
    };
    d.wait_until("the server to listen", LONG, up);
    let old = d.pid("web").unwrap();
    let old_servers: Vec<u32> = group_members(old)
        .into_iter()
        .filter(|p| *p != old)
        .collect();
    assert!(!old_servers.is_empty());
    sigkill(old);
    let new = d.wait_new_pid("web", old, LONG);
    // The old server is gone, so the one listening now is the new group's (no fixed sleep
    // needed: a server that could not bind would not be listening).
    assert!(old_servers.iter().all(|p| !alive(*p)), "{old_servers:?}");
    d.wait_until("the new server to listen", LONG, up);
    assert_eq!(d.pid("web"), Some(new));
    assert_eq!(d.service("web")["info"]["restarts"], 1);
}

#[test]
fn a_service_that_exits_at_once_backs_off_then_fails_at_the_crash_loop_limit() {
    // On a test clock: real time still runs the backoff, and the end moves the clock on.
    let d = TestDaemon::start_on_test_clock(
        crate::BIN,
        "[services.bad]\ncommand = \"false\"\nbackoff_min = \"50ms\"\nbackoff_max = \"10s\"\nmax_restarts = 4\nwindow = \"60s\"\n",
    );
    d.wait_state("bad", "failed", LONG);
    let events = d.events("bad");
    let delays: Vec<u64> = events
        .iter()
        .filter(|e| e.0 == "restart_scheduled")
        .map(|e| e.1["delay_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(delays.len(), 4, "{events:?}");
    assert_eq!(delays[0], 0);
    assert!(
        delays.windows(2).all(|w| w[1] > w[0]),
        "delays must grow: {delays:?}"
    );
    let failed = events
        .iter()
        .rposition(|e| e.0 == "failed")
        .expect("a failed event");
    assert!(
        events[failed..].iter().all(|e| e.0 != "started"),
        "{events:?}"
    );
    // One incident for the whole crash loop, not one per crash.
    assert_eq!(
        events.iter().filter(|e| e.0 == "incident_opened").count(),
        1,
        "{events:?}"
    );
    // Nothing restarts it now, not even an hour later (past backoff_max and the window): the
    // move returns once whatever it made due has woken, and nothing had.
    d.advance_clock("1h");
    assert_eq!(d.state("bad"), "failed");
    // Until an operator acts. A supervisor handles a command only after the wake-up before
    // it, so a restart of upkeep's own would come first, and this start would find it
    // running: the first start after `failed` must be the operator's.
    let out = d.cli(&["start", "bad"]);
    assert!(out.status.success());
    let events = d.events("bad");
    let first = events[failed..]
        .iter()
        .find(|e| e.0 == "started")
        .expect("the operator's start");
    assert!(
        first.1["by"].get("principal").is_some(),
        "restarted by upkeep after failing: {events:?}"
    );
}

#[test]
fn stop_escalates_to_sigkill_after_stop_timeout() {
    let d = daemon(
        "[services.stubborn]\ncommand = \"trap '' TERM; sleep 1000 & wait\"\nstop_timeout = \"300ms\"\n",
    );
    d.wait_state("stubborn", "up", LONG);
    let pgid = d.pid("stubborn").unwrap();
    d.wait_until("the group to have both processes", LONG, || {
        (group_members(pgid).len() >= 2).then_some(())
    });
    let out = d.cli(&["stop", "stubborn"]);
    assert!(out.status.success());
    assert!(group_members(pgid).is_empty());
    // Both ignore TERM (an ignored signal is inherited), so only the KILL ends them.
    let exited = d
        .events("stubborn")
        .into_iter()
        .rfind(|e| e.0 == "exited")
        .unwrap()
        .1;
    assert_eq!(exited["status"]["signal"], 9, "{exited}");
    // And it runs again: a cgroup killed with `cgroup.kill` killed every later process
    // created into it at birth on this kernel, so a service stopped by SIGKILL never ran
    // again (found by a fresh-eyes test).
    let out = d.cli(&["start", "stubborn"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = d.pid("stubborn").unwrap();
    d.wait_until("the new run to live half a second", LONG, || {
        let started = std::fs::metadata(format!("/proc/{pid}"))
            .ok()?
            .modified()
            .ok()?;
        (started.elapsed().ok()? > Duration::from_millis(500)).then_some(())
    });
    assert!(alive(pid), "the new run was killed");
    assert_eq!(d.pid("stubborn"), Some(pid));
    let events = d.events("stubborn");
    let started = events.iter().rposition(|e| e.0 == "started").unwrap();
    assert!(
        !events[started..].iter().any(|e| e.0 == "exited"),
        "{events:?}"
    );
}

#[test]
fn restart_policies_never_and_on_failure() {
    let d = daemon(
        "[services.once]\ncommand = \"true\"\nrestart = \"never\"\n\n\
         [services.ok]\ncommand = \"true\"\nrestart = \"on-failure\"\n\n\
         [services.fails]\ncommand = \"false\"\nrestart = \"on-failure\"\nmax_restarts = 2\nbackoff_min = \"10ms\"\n",
    );
    d.wait_state("once", "exited", LONG);
    d.wait_state("ok", "exited", LONG);
    d.wait_state("fails", "failed", LONG);
    assert_eq!(
        d.events("once").iter().filter(|e| e.0 == "started").count(),
        1
    );
    assert_eq!(
        d.events("fails")
            .iter()
            .filter(|e| e.0 == "started")
            .count(),
        3
    );
}

#[test]
fn a_hung_stopped_process_is_still_stopped_and_restarted() {
    let d = daemon("[services.frozen]\ncommand = \"sleep 1000\"\nstop_timeout = \"2s\"\n");
    d.wait_state("frozen", "up", LONG);
    let pid = d.pid("frozen").unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
    let out = d.cli(&["restart", "frozen"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    let new = d.wait_new_pid("frozen", pid, LONG);
    assert!(!alive(pid) && alive(new));
}

/// The seed's story: `npm run dev` runs npm → sh → node (vite) → esbuild. A kill -9 of npm must
/// not leave node holding the port; with `--strictPort`, any survivor would make every restart
/// fail. Needs `npm ci` in the fixture (scripts/test does it).
#[test]
fn npm_run_dev_tree_is_cleaned_up_when_npm_is_killed() {
    let app = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vite-app");
    assert!(
        app.join("node_modules/.bin/vite").exists(),
        "run `npm ci` in {} (scripts/test does)",
        app.display()
    );
    let port = upkeep_testkit::free_port();
    let d = daemon(&format!(
        "[services.dev]\ncommand = [\"npm\", \"run\", \"dev\", \"--\", \"--port\", \"{port}\", \"--strictPort\", \"--host\", \"127.0.0.1\"]\ncwd = \"{}\"\n",
        app.display()
    ));
    // A GET of the TypeScript module makes vite transform it, which starts esbuild.
    let serving = || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(b"GET /main.ts HTTP/1.0\r\nHost: localhost\r\nAccept: */*\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        // Transformed: the type annotation is gone.
        (body.contains("(running)") && !body.contains("HTMLElement |")).then_some(())
    };
    let comm = |p: &u32| {
        std::fs::read_to_string(format!("/proc/{p}/comm"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    d.wait_until("vite to serve", LONG, serving);
    let npm = d.pid("dev").unwrap();
    let tree = d.wait_until("the whole tree (npm, sh, node, esbuild)", LONG, || {
        let members = group_members(npm);
        let names: Vec<String> = members.iter().map(comm).collect();
        ["npm", "sh", "node", "esbuild"]
            .iter()
            .all(|n| names.iter().any(|m| m.starts_with(n)))
            .then_some(members)
    });
    sigkill(npm);
    let new = d.wait_new_pid("dev", npm, LONG);
    assert!(
        tree.iter().all(|p| !alive(*p)),
        "survivors of the old tree: {:?}",
        tree.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );
    // The new vite serves: so the port was free for it (with --strictPort a survivor holding
    // it would have made it exit instead), and no restart failed.
    d.wait_until("the new vite to serve", LONG, serving);
    assert_eq!(d.pid("dev"), Some(new));
    assert_eq!(d.service("dev")["info"]["restarts"], 1);
    let daemon_pid = d.daemon_pid().unwrap();
    d.wait_until("no zombies", LONG, || {
        zombie_children(daemon_pid).is_empty().then_some(())
    });
}

#[test]
fn cwd_env_env_file_and_user_reach_the_service() {
    // A folder the service's user may enter (`check` refuses one it may not).
    let dir = open_dir();
    std::fs::write(
        dir.path().join("svc.env"),
        "# from the file\nFROM_FILE=file\nBOTH=file\n",
    )
    .unwrap();
    // As root, run it as `nobody`; otherwise as ourselves (the field is then left out).
    let root = nix::unistd::geteuid().is_root();
    let user = if root { "user = \"nobody\"\n" } else { "" };
    let d = daemon(&format!(
        "[services.env]\ncommand = \"echo $FROM_FILE $BOTH $ONLY_ENV $UPKEEP_SERVICE; pwd; id -u; sleep 1000\"\ncwd = \"{}\"\nenv_file = \"svc.env\"\nenv = {{ BOTH = \"env\", ONLY_ENV = \"yes\" }}\n{user}",
        dir.path().display()
    ));
    d.wait_state("env", "up", LONG);
    let out = d.wait_until("three lines of output", LONG, || {
        let o = crate::stdout(&d.cli(&["logs", "env"]));
        (o.lines().count() >= 3).then_some(o)
    });
    let lines: Vec<&str> = out.lines().map(|l| &l[25..]).collect();
    assert_eq!(lines[0], "file env yes env");
    assert_eq!(
        lines[1],
        dir.path().canonicalize().unwrap().display().to_string()
    );
    let uid = if root {
        nix::unistd::User::from_name("nobody")
            .unwrap()
            .unwrap()
            .uid
            .as_raw()
    } else {
        nix::unistd::geteuid().as_raw()
    };
    assert_eq!(lines[2], uid.to_string());
}

/// A folder every user may pass through (a temp dir is its owner's alone).
fn open_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `upkeep check -c FILE` on a config of `services`: its exit code and stderr.
fn check(dir: &std::path::Path, services: &str) -> (Option<i32>, String) {
    let config = dir.join("check.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\ndata_dir = \"{}\"\n\n{services}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(crate::BIN)
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .unwrap();
    (out.status.code(), stderr(&out))
}

/// The error of a failed start of `name` that says `needle`, once there is one.
fn spawn_error(d: &TestDaemon, name: &str, needle: &str) -> String {
    d.wait_until(
        &format!("a failed start of {name} saying {needle:?}"),
        LONG,
        || {
            d.events(name)
                .into_iter()
                .filter(|(k, _)| k == "spawn_failed")
                .map(|(_, v)| v["error"].as_str().unwrap_or_default().to_owned())
                .find(|e| e.contains(needle))
        },
    )
}

/// Break-it (session 11): spawn errors told the wrong story. A `cwd` removed under a running
/// service was "cannot start /usr/bin/sleep: No such file or directory"; a program without
/// its execute bit was "not found" to `check`; a `cwd` its `user` cannot enter passed
/// `check`, then every start failed. Now `check` (at the key's file:line:col) and the failed
/// start name the real cause.
#[test]
fn check_and_a_failed_start_name_the_real_cause() {
    let dir = open_dir();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let app = work.join("app.sh");
    std::fs::write(&app, "#!/bin/sh\nexec sleep 1000\n").unwrap();
    chmod(&app, 0o755);
    // A missing folder: one problem, the folder, at `cwd` (not also "program not found").
    let (code, err) = check(
        dir.path(),
        &format!(
            "[services.a]\ncommand = \"./app.sh\"\ncwd = \"{}/gone\"\n",
            work.display()
        ),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("check.toml:6:7 (services.a.cwd)"), "{err}");
    assert!(err.contains("gone does not exist"), "{err}");
    assert_eq!(err.matches("-->").count(), 1, "{err}");
    // A program with mode 644: not executable, not "not found".
    chmod(&app, 0o644);
    let (code, err) = check(
        dir.path(),
        &format!(
            "[services.a]\ncommand = \"./app.sh\"\ncwd = \"{}\"\n",
            work.display()
        ),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("check.toml:5:11 (services.a.command)"),
        "{err}"
    );
    assert!(
        err.contains("is not executable (mode 644)") && err.contains("chmod +x"),
        "{err}"
    );
    assert!(!err.contains("not found"), "{err}");
    chmod(&app, 0o755);

    let root = nix::unistd::geteuid().is_root();
    let user = if root { "user = \"nobody\"\n" } else { "" };
    std::fs::create_dir(dir.path().join("tmp")).unwrap();
    let d = daemon(&format!(
        "[services.app]\ncommand = \"./app.sh\"\ncwd = \"{}\"\nbackoff_min = \"50ms\"\nbackoff_max = \"1s\"\nmax_restarts = 100\n{user}\n\
         [services.s]\ncommand = \"sleep 1000\"\ncwd = \"{}\"\nbackoff_min = \"50ms\"\nbackoff_max = \"1s\"\nmax_restarts = 100\n",
        work.display(),
        dir.path().join("tmp").display(),
    ));
    d.wait_state("app", "up", LONG);
    d.wait_state("s", "up", LONG);
    // Its folder removed under it: the next start says the folder is gone.
    std::fs::remove_dir(dir.path().join("tmp")).unwrap();
    sigkill(d.pid("s").unwrap());
    let error = spawn_error(&d, "s", "cannot start");
    assert!(
        error.contains(&format!(
            "folder {} does not exist",
            dir.path().join("tmp").display()
        )),
        "{error}"
    );
    // Its program made 644: not executable.
    chmod(&app, 0o644);
    sigkill(d.pid("app").unwrap());
    let error = spawn_error(&d, "app", "mode 644");
    assert!(
        error.contains(&format!("{} is not executable (mode 644)", app.display())),
        "{error}"
    );
    chmod(&app, 0o755);
    if !root {
        return;
    }
    // Its folder closed to its user: permission denied for `nobody`, naming the folder.
    d.wait_state("app", "up", LONG);
    chmod(&work, 0o700);
    sigkill(d.pid("app").unwrap());
    let error = spawn_error(&d, "app", "nobody");
    assert!(
        error.contains(&format!(
            "user `nobody` cannot enter folder {}: permission denied (mode 700, owned by root:root)",
            work.display()
        )),
        "{error}"
    );
    // And `check` says so before any start.
    let (code, err) = check(
        dir.path(),
        &format!(
            "[services.a]\ncommand = \"sleep 1\"\ncwd = \"{}\"\nuser = \"nobody\"\n",
            work.display()
        ),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("check.toml:6:7 (services.a.cwd)"), "{err}");
    assert!(
        err.contains("user `nobody` cannot enter folder") && err.contains("mode 700"),
        "{err}"
    );
}

/// The variables of one process's environment.
fn environ_of(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).expect("read environ");
    raw.split(|b| *b == 0)
        .map(|kv| String::from_utf8_lossy(kv).into_owned())
        .collect()
}

/// Break-it, session 12: the secrets the config names (`secret_env`, `password_env`...)
/// were in every service's environment, even one run as another user. Withheld now, also
/// after a reload that names another; a service that sets one in its own `env` gets it.
#[test]
fn a_service_never_inherits_the_secrets_the_config_names() {
    let hook = |var: &str| {
        format!(
            "[notify.channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nsecret_env = \"{var}\"\n"
        )
    };
    let services = "[services.plain]\ncommand = \"sleep 1000\"\n\n[services.given]\ncommand = \"sleep 1001\"\nenv = { UPKEEP_TEST_S12_SECRET = \"its own\" }\n\n";
    let mut d = TestDaemon::prepare(
        crate::BIN,
        &format!("{services}{}", hook("UPKEEP_TEST_S12_SECRET")),
    );
    d.set_env("UPKEEP_TEST_S12_SECRET", "hunter2");
    d.set_env("UPKEEP_TEST_S12_OTHER", "rotated-in");
    d.set_env("UPKEEP_TEST_S12_PLAIN", "fine");
    d.launch();
    d.wait_state("plain", "up", LONG);
    d.wait_state("given", "up", LONG);
    let env = environ_of(d.pid("plain").unwrap());
    assert!(
        env.contains(&"UPKEEP_TEST_S12_PLAIN=fine".to_string()),
        "{env:?}"
    );
    assert!(
        !env.iter().any(|kv| kv.contains("hunter2")),
        "the secret reached the service: {env:?}"
    );
    let env = environ_of(d.pid("given").unwrap());
    assert!(
        env.contains(&"UPKEEP_TEST_S12_SECRET=its own".to_string()),
        "{env:?}"
    );
    // A reload naming another variable: a service started from then on gets neither.
    d.write_services(&format!("{services}{}", hook("UPKEEP_TEST_S12_OTHER")));
    let out = d.cli(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let old = d.pid("plain").unwrap();
    sigkill(old);
    let new = d.wait_new_pid("plain", old, LONG);
    let env = environ_of(new);
    assert!(
        !env.iter()
            .any(|kv| kv.contains("hunter2") || kv.contains("rotated-in")),
        "a secret reached the restarted service: {env:?}"
    );
}
