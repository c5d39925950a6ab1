//! `upkeep upgrade` (issue 18, item 8): the daemon re-executes itself in place and adopts its
//! services: same pids, no line of log lost, no restart counted; a binary that cannot be run
//! is refused with the old daemon still serving.

use std::time::Duration;

use upkeep_testkit::TestDaemon;

use crate::{BIN, LONG, daemon, stderr, stdout};

const SERVICES: [&str; 3] = ["a", "b", "c"];

/// Three services each writing numbered lines fast (stdout, and every tenth to stderr too),
/// each with a process probe every 50 ms.
fn loaded() -> TestDaemon {
    let script = "import sys, time\\ni = 0\\nwhile True:\\n    sys.stdout.write('n %d\\\\n' % i)\\n    sys.stdout.flush()\\n    if i % 10 == 0:\\n        sys.stderr.write('e %d\\\\n' % i)\\n        sys.stderr.flush()\\n    i += 1\\n    time.sleep(0.0002)\\n";
    let mut toml = String::new();
    for s in SERVICES {
        toml.push_str(&format!(
            "[services.{s}]\ncommand = [\"python3\", \"-u\", \"-c\", \"{script}\"]\nprobes = [{{ kind = \"process\", every = \"50ms\", grace = \"0s\" }}]\n"
        ));
    }
    let d = daemon(&toml);
    for s in SERVICES {
        d.wait_state(s, "up", LONG);
    }
    d
}

/// The numbers logged in `<data_dir>/logs/NAME.{out,err}.log`, in file order.
fn numbers(d: &TestDaemon, name: &str, suffix: &str, tag: &str) -> Vec<u64> {
    let path = d.data_dir.join("logs").join(format!("{name}.{suffix}.log"));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.get(25..)?.strip_prefix(tag)?.parse().ok())
        .collect()
}

/// Every number from 0 to the last, once, in order (`step` apart).
fn assert_complete(name: &str, got: &[u64], step: u64) {
    assert!(!got.is_empty(), "{name}: nothing logged");
    let want: Vec<u64> = (0..=*got.last().unwrap()).step_by(step as usize).collect();
    if got != want {
        let missing: Vec<_> = want.iter().filter(|n| !got.contains(n)).take(10).collect();
        let twice = got
            .windows(2)
            .filter(|w| w[0] >= w[1])
            .take(10)
            .collect::<Vec<_>>();
        panic!(
            "{name}: {} numbers logged, {} expected; missing {missing:?}, out of order or twice {twice:?}",
            got.len(),
            want.len()
        );
    }
}

/// Waits until every service has logged past `past` on stdout.
fn wait_logged_past(d: &TestDaemon, past: u64) {
    d.wait_until("every service to log on", LONG, || {
        SERVICES
            .iter()
            .all(|s| numbers(d, s, "out", "n ").last().is_some_and(|n| *n > past))
            .then_some(())
    });
}

fn upgrade(d: &TestDaemon, args: &[&str]) -> String {
    let mut all = vec!["upgrade"];
    all.extend_from_slice(args);
    let out = d.cli(&all);
    assert!(
        out.status.success(),
        "upgrade failed: {}{}\n{}",
        stdout(&out),
        stderr(&out),
        d.daemon_log()
    );
    stdout(&out)
}

#[test]
fn upgrade_under_load_keeps_every_pid_every_log_line_and_the_restart_counts() {
    let d = loaded();
    let daemon_pid = d.daemon_pid().unwrap();
    let pids: Vec<u32> = SERVICES.iter().map(|s| d.pid(s).unwrap()).collect();
    wait_logged_past(&d, 1000);

    // To the same binary, twice in a row, then to a copy at another path.
    let copy = d.dir.path().join("upkeep-copy");
    std::fs::copy(BIN, &copy).unwrap();
    let first = upgrade(&d, &[]);
    assert!(
        first.contains(&format!(
            "upgraded from {v} to {v}",
            v = env!("CARGO_PKG_VERSION")
        )) && first.contains(&format!("pid {daemon_pid}")),
        "{first}"
    );
    assert!(first.contains("3 service(s) kept running"), "{first}");
    let before = SERVICES.map(|s| numbers(&d, s, "out", "n ").last().copied().unwrap_or(0));
    upgrade(&d, &[]);
    upgrade(&d, &["--binary", copy.to_str().unwrap()]);
    let exe = std::fs::read_link(format!("/proc/{daemon_pid}/exe")).unwrap();
    assert_eq!(exe, copy, "the daemon runs the copy now");
    assert_eq!(d.daemon_pid(), Some(daemon_pid));

    // Same processes, logging on through the upgrades, no restart counted, probes running.
    for (s, pid) in SERVICES.iter().zip(&pids) {
        assert_eq!(d.pid(s), Some(*pid), "{s} keeps its pid");
        let info = &d.service(s)["info"];
        assert_eq!(info["restarts"].as_u64(), Some(0), "{s}: {info}");
    }
    wait_logged_past(&d, before.iter().max().unwrap() + 2000);
    for s in SERVICES {
        d.wait_state(s, "up", LONG);
        d.wait_probe_checked_for(s, "process", Duration::from_millis(200));
    }
    let ls = d.cli(&["ls"]);
    assert!(ls.status.success(), "{}", stderr(&ls));

    // Stop (the pipes' last lines are read to the end), then every number once, in order.
    for s in SERVICES {
        let out = d.cli(&["stop", s]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    for s in SERVICES {
        assert_complete(&format!("{s} stdout"), &numbers(&d, s, "out", "n "), 1);
        assert_complete(&format!("{s} stderr"), &numbers(&d, s, "err", "e "), 10);
        let kinds: Vec<String> = d.events(s).into_iter().map(|(k, _)| k).collect();
        let started = kinds.iter().filter(|k| *k == "started").count();
        let adopted = kinds.iter().filter(|k| *k == "adopted").count();
        assert_eq!((started, adopted), (1, 3), "{s}: {kinds:?}");
        assert!(
            !kinds
                .iter()
                .any(|k| k == "restart_scheduled" || k == "stale_stopped"),
            "{s}: {kinds:?}"
        );
    }
    let upgraded = d.api_get("/api/v1/events?limit=1000");
    let upgraded: Vec<_> = upgraded
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "daemon_upgraded")
        .collect();
    assert_eq!(upgraded.len(), 3, "{upgraded:?}");
    assert_eq!(upgraded[0]["detail"]["adopted"], 3, "{:?}", upgraded[0]);

    // Start and stop still work, under the new image.
    let out = d.cli(&["start", "a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_state("a", "up", LONG);
    assert_ne!(d.pid("a"), Some(pids[0]));
}

#[test]
fn upgrade_to_a_binary_that_cannot_run_is_refused_and_the_daemon_keeps_serving() {
    let d = loaded();
    let daemon_pid = d.daemon_pid().unwrap();
    let pid = d.pid("a").unwrap();
    let missing = d.dir.path().join("no-such-upkeep");
    let out = d.cli(&["upgrade", "--binary", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no-such-upkeep") && stderr(&out).contains("keeps running"),
        "{}",
        stderr(&out)
    );
    // Not an upkeep: refused on its hand-over check, nothing else done.
    let out = d.cli(&["upgrade", "--binary", "/bin/true"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not an upkeep binary"),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.daemon_pid(), Some(daemon_pid));
    assert_eq!(d.pid("a"), Some(pid));
    let ls = d.cli(&["ls"]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    assert!(
        !d.events("a").iter().any(|(k, _)| k == "adopted"),
        "nothing was handed over"
    );
}

/// A forking daemon (nginx, followed by its PID file) is handed over like the rest: same
/// master, same workers, still stopped whole afterwards; and a daemon killed after the
/// upgrade still finds it (its run record names the master).
#[test]
fn a_forking_nginx_keeps_its_master_and_workers_through_an_upgrade() {
    use crate::signals::{answers, masters, nginx_conf, nginx_dir, workers};
    let port = upkeep_testkit::free_port();
    let d = TestDaemon::prepare(BIN, "");
    let dir = nginx_dir(&d);
    let cmd = nginx_conf(&dir, port, true);
    let conf = dir.join("nginx.conf").display().to_string();
    d.write_services(&format!(
        "[services.nginx]\ncommand = \"{cmd}\"\ntype = \"forking\"\npid_file = \"{}\"\nstop_signal = \"SIGQUIT\"\n",
        dir.join("nginx.pid").display()
    ));
    let mut d = d;
    d.launch();
    d.wait_state("nginx", "up", LONG);
    let master = d.pid("nginx").unwrap();
    let crew = d.wait_until("nginx's two workers", LONG, || {
        let w = workers(master);
        (w.len() == 2).then_some(w)
    });
    let out = upgrade(&d, &[]);
    assert!(out.contains("1 service(s) kept running"), "{out}");
    assert_eq!(d.pid("nginx"), Some(master));
    assert_eq!(workers(master), crew);
    assert_eq!(masters(&conf), [master]);
    assert!(answers(port));
    let kinds: Vec<String> = d.events("nginx").into_iter().map(|(k, _)| k).collect();
    assert!(kinds.iter().any(|k| k == "adopted"), "{kinds:?}");

    // Killed now, the next daemon stops the adopted nginx before it starts one of its own.
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    d.launch();
    d.wait_state("nginx", "up", LONG);
    let new = d.pid("nginx").unwrap();
    assert_ne!(new, master);
    assert_eq!(masters(&conf), [new]);
    d.wait_until("nginx to answer", LONG, || answers(port).then_some(()));

    // And stopped whole: master and workers.
    let tree: Vec<u32> = workers(new).into_iter().chain([new]).collect();
    let out = d.cli(&["stop", "nginx"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for p in tree {
        assert!(
            !upkeep_testkit::alive(p),
            "nginx process {p} outlived the stop"
        );
    }
}

/// A script, made executable in the test's dir.
/// A daemon running one service `s`, up: (daemon, the daemon's pid, s's pid).
fn one_service() -> (TestDaemon, u32, u32) {
    let d = daemon("[services.s]\ncommand = \"sleep 1000\"\n");
    d.wait_state("s", "up", LONG);
    let (daemon_pid, pid) = (d.daemon_pid().unwrap(), d.pid("s").unwrap());
    (d, daemon_pid, pid)
}

/// After refused upgrades: the same daemon runs on, and `s` kept its pid and adopted nothing.
fn assert_not_upgraded(d: &TestDaemon, daemon_pid: u32, pid: u32) {
    assert_eq!(d.daemon_pid(), Some(daemon_pid));
    assert_eq!(d.pid("s"), Some(pid));
    assert!(!d.events("s").iter().any(|(k, _)| k == "adopted"));
}

/// An upgrade that goes ahead: `kept` services kept running, `s` among them with its pid.
fn assert_upgrades_keeping(d: &TestDaemon, kept: usize, pid: u32) {
    let out = upgrade(d, &[]);
    assert!(
        out.contains(&format!("{kept} service(s) kept running")),
        "{out}"
    );
    assert_eq!(d.pid("s"), Some(pid));
}

fn script(d: &TestDaemon, name: &str, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = d.dir.path().join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Issue 17: `upkeep upgrade` ran any script that printed `upkeep 0.1.0`, and the daemon that
/// executed it was gone. Now a binary must answer a fresh challenge as upkeep's code does and
/// be a regular file no one else may replace; each refusal leaves the daemon and its service
/// as they were.
#[test]
fn issue_17_a_binary_that_only_says_it_is_upkeep_is_refused_and_the_daemon_stays() {
    use std::os::unix::fs::PermissionsExt;
    let (d, daemon_pid, pid) = one_service();
    let started = d.api_get("/api/v1/daemon")["started"].clone();
    let version = env!("CARGO_PKG_VERSION");
    let fake = script(&d, "fake", &format!("echo \"upkeep {version}\""));
    let crash = script(
        &d,
        "fakecrash",
        &format!("[ \"$1\" = --version ] && echo \"upkeep {version}\"; exit 1"),
    );
    // Answers the challenge's words with a made-up proof.
    let guess = script(
        &d,
        "guess",
        &format!("echo \"upkeep-handover 1 {version} 00\""),
    );
    let open = d.dir.path().join("upkeep-anyone");
    std::fs::copy(BIN, &open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    // Writable by a group of ordinary users (break-it, session 10): as root, the copy gets
    // nobody's group; anyone else's copy has their own group already.
    let group = d.dir.path().join("upkeep-group");
    std::fs::copy(BIN, &group).unwrap();
    if nix::unistd::geteuid().is_root() {
        let nogroup = Some(nix::unistd::Gid::from_raw(65534));
        nix::unistd::chown(&group, None, nogroup).unwrap();
    }
    std::fs::set_permissions(&group, std::fs::Permissions::from_mode(0o775)).unwrap();
    // A program, not a script, that answers the challenge with its own arguments.
    let echo = d.dir.path().join("echo");
    std::fs::copy("/bin/echo", &echo).unwrap();
    std::fs::set_permissions(&echo, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Scripts are refused before they run: the daemon executes the file it checked through
    // its descriptor, which a script's interpreter cannot read again.
    let cases = [
        (fake, "is a script"),
        (crash, "is a script"),
        (guess, "is a script"),
        (echo, "not an upkeep binary"),
        (open, "writable by anyone"),
        (group, "writable by its group"),
        (d.dir.path().to_path_buf(), "not a regular file"),
    ];
    for (binary, why) in cases {
        let out = d.cli(&["upgrade", "--binary", binary.to_str().unwrap()]);
        let err = stderr(&out);
        assert!(
            !out.status.success(),
            "{}: {}",
            binary.display(),
            stdout(&out)
        );
        assert!(
            err.contains(why) && err.contains("keeps running"),
            "{}: {err}",
            binary.display()
        );
        // Refused: the operation failed (1), the command line was right (not 2).
        assert_eq!(out.status.code(), Some(1), "{}: {err}", binary.display());
        assert_eq!(d.daemon_pid(), Some(daemon_pid));
        assert_eq!(
            d.api_get("/api/v1/daemon")["started"],
            started,
            "not re-executed"
        );
    }
    assert_not_upgraded(&d, daemon_pid, pid);
    // And a real one, afterwards, still takes: the refusals gave the turn back.
    assert_upgrades_keeping(&d, 1, pid);
}

/// Break-it (session 8): a config file edited but not reloaded, and not valid, ended the new
/// image at its start, its services left running with no daemon (the Debian package's
/// postinst runs `upkeep upgrade`). The upgrade is refused, saying where, and the daemon keeps
/// running as it is; once the file is fixed, it upgrades.
#[test]
fn an_upgrade_with_a_config_file_that_does_not_load_is_refused_and_the_daemon_stays() {
    let (d, daemon_pid, pid) = one_service();
    let good = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(&d.config, format!("{good}\n[services.t]\ncommand = 42\n")).unwrap();
    let out = d.cli(&["upgrade"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{}{err}", stdout(&out));
    assert!(
        err.contains("does not load") && err.contains("command"),
        "{err}"
    );
    // Refused (a 4xx from the daemon): the operation failed, exit 1; 2 is for a mistake in
    // the command line (break-it, session 9: it exited 2).
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_not_upgraded(&d, daemon_pid, pid);
    std::fs::write(&d.config, good).unwrap();
    assert_upgrades_keeping(&d, 1, pid);
}

/// Break-it, session 9: the new image started from the file, so an upgrade applied what a
/// reload had left for the next start (a `metrics_listen` on a taken port ended the new image
/// and lost the daemon) and edits never reloaded. Both are refused, saying what to do.
#[test]
fn an_upgrade_applies_nothing_the_running_daemon_does_not_run() {
    let (mut d, daemon_pid, pid) = one_service();
    let good = std::fs::read_to_string(&d.config).unwrap();
    // A [daemon] key a reload leaves for the next start.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    d.add_daemon_keys(&format!("metrics_listen = \"{addr}\"\n"));
    assert!(d.cli(&["reload"]).status.success());
    let out = d.cli(&["upgrade"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}{err}", stdout(&out));
    assert!(err.contains("daemon.metrics_listen"), "{err}");
    // An edit not reloaded.
    std::fs::write(
        &d.config,
        format!("{good}\n[services.t]\ncommand = \"sleep 1000\"\n"),
    )
    .unwrap();
    let out = d.cli(&["upgrade"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}{err}", stdout(&out));
    assert!(
        err.contains("the config file has changes the daemon has not applied: services.t (new)")
            && err.contains("upkeep reload"),
        "{err}"
    );
    assert_not_upgraded(&d, daemon_pid, pid);
    // Reloaded: the upgrade goes ahead, and t is not started twice.
    assert!(d.cli(&["reload"]).status.success());
    d.wait_state("t", "up", LONG);
    let t = d.pid("t");
    assert_upgrades_keeping(&d, 2, pid);
    assert_eq!(d.pid("t"), t);
}

/// Break-it, session 12: a comment added to the config file, and nothing else, refused the
/// upgrade ("changes the daemon has not applied", naming none): the Debian postinst's
/// `upkeep upgrade` left the old binary running for an annotated conffile. The parsed config
/// is compared, as `upkeep add` compares it; a change still refuses, naming its key.
#[test]
fn an_upgrade_after_a_comment_only_edit_goes_ahead() {
    let (d, _, pid) = one_service();
    let good = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        format!("# a note of the admin's\n{good}# another\n"),
    )
    .unwrap();
    assert_upgrades_keeping(&d, 1, pid);
    let edited = std::fs::read_to_string(&d.config)
        .unwrap()
        .replace("sleep 1000", "sleep 1001");
    assert!(edited.contains("sleep 1001"), "{edited}");
    std::fs::write(&d.config, edited).unwrap();
    let out = d.cli(&["upgrade"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}{err}", stdout(&out));
    assert!(
        err.contains(
            "the config file has changes the daemon has not applied: services.s (changed)"
        ),
        "{err}"
    );
}

/// Break-it, session 9: an upgrade while a service was stopping (one that ignores SIGTERM,
/// `stop_timeout` 25 s) left every service unsupervised until the stop ended: a killed one
/// showed `up` with a dead pid. Refused now while the stop is under way; afterwards it goes.
#[test]
fn an_upgrade_while_a_service_is_stopping_is_refused_and_supervision_goes_on() {
    let d = daemon(
        "[services.slow]\ncommand = \"sh -c 'trap \\\"\\\" TERM; while :; do sleep 1; done'\"\nstop_timeout = \"15s\"\n\n[services.s]\ncommand = \"sleep 1000\"\n",
    );
    d.wait_state("slow", "up", LONG);
    d.wait_state("s", "up", LONG);
    let stopping = std::process::Command::new(BIN)
        .arg("-c")
        .arg(&d.config)
        .args(["stop", "slow"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    d.wait_state("slow", "stopping", LONG);
    let out = d.cli(&["upgrade"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}{err}", stdout(&out));
    assert!(err.contains("slow (stopping)"), "{err}");
    // Still supervised: a killed service comes back.
    let pid = d.pid("s").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_until("s to be restarted", LONG, || {
        d.pid("s").filter(|p| *p != pid).map(|_| ())
    });
    drop(stopping);
}

/// A daemon whose checked upgrades wait for the test (a debug build's
/// `UPKEEP_TEST_UPGRADE_PAUSE`): each makes `checked` in the dir answered, then waits until
/// [`go`] is called.
fn held(services: &str) -> (TestDaemon, std::path::PathBuf) {
    let mut d = TestDaemon::prepare(BIN, services);
    let hold = d.dir.path().join("hold");
    std::fs::create_dir(&hold).unwrap();
    nix::unistd::mkfifo(
        &hold.join("go"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    d.set_env("UPKEEP_TEST_UPGRADE_PAUSE", hold.to_str().unwrap());
    d.launch();
    (d, hold)
}

fn wait_checked(d: &TestDaemon, hold: &std::path::Path) {
    d.wait_until("the upgrade's binary to pass its checks", LONG, || {
        hold.join("checked").exists().then_some(())
    });
}

/// Lets the held upgrade go on to the exec.
fn go(hold: &std::path::Path) {
    std::fs::write(hold.join("go"), "go\n").unwrap();
}

/// Issue 17: two `upkeep upgrade` at once each said "upgraded". Upgrades take turns: while one
/// is under way (here held by the test between its check and its exec), another is refused at
/// once and says why (exit 1: refused, not a usage error); the first then completes.
#[test]
fn issue_17_a_second_upgrade_while_one_is_under_way_is_refused() {
    let (d, hold) = held("[services.s]\ncommand = \"sleep 1000\"\n");
    d.wait_state("s", "up", LONG);
    let (daemon_pid, pid) = (d.daemon_pid().unwrap(), d.pid("s").unwrap());
    let first = d.cli_spawn(&["upgrade"]);
    wait_checked(&d, &hold);
    let second = d.cli(&["upgrade"]);
    assert!(!second.status.success(), "{}", stdout(&second));
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("an upgrade is already under way"),
        "{}",
        stderr(&second)
    );
    go(&hold);
    let first = first.wait_with_output().unwrap();
    assert!(
        first.status.success(),
        "{}{}\n{}",
        stdout(&first),
        stderr(&first),
        d.daemon_log()
    );
    assert!(
        stdout(&first).contains("1 service(s) kept running"),
        "{}",
        stdout(&first)
    );
    assert_eq!(d.daemon_pid(), Some(daemon_pid));
    assert_eq!(d.pid("s"), Some(pid));
    let upgraded = d.api_get("/api/v1/events?limit=1000");
    let n = upgraded
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "daemon_upgraded")
        .count();
    assert_eq!(n, 1, "one upgrade took place");
}

/// Break-it (session 9): the daemon checked a path, then executed the path again: a file
/// swapped in between ran in its place, and the daemon was gone. Now it opens the binary once,
/// checks that open file (the challenge runs it through its descriptor) and executes that
/// same file: the one swapped in after the check never runs.
#[test]
fn upgrade_executes_the_file_it_checked_though_the_path_was_swapped_after_the_check() {
    let (d, hold) = held("[services.s]\ncommand = \"sleep 1000\"\n");
    d.wait_state("s", "up", LONG);
    let (daemon_pid, pid) = (d.daemon_pid().unwrap(), d.pid("s").unwrap());
    let new = d.dir.path().join("upkeep-new");
    std::fs::copy(BIN, &new).unwrap();
    let ran = d.dir.path().join("fake-ran");
    let fake = script(&d, "fake", &format!("touch '{}'; exit 1", ran.display()));
    let upgrading = d.cli_spawn(&["upgrade", "--binary", new.to_str().unwrap()]);
    wait_checked(&d, &hold);
    std::fs::rename(&fake, &new).unwrap();
    go(&hold);
    let out = upgrading.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
        d.daemon_log()
    );
    assert!(!ran.exists(), "the file swapped in after the check ran");
    assert_eq!(d.daemon_pid(), Some(daemon_pid));
    assert_eq!(d.pid("s"), Some(pid));
    let exe = std::fs::read_link(format!("/proc/{daemon_pid}/exe")).unwrap();
    assert_eq!(
        exe.to_str().unwrap(),
        format!("{} (deleted)", new.display()),
        "the daemon runs the file it checked, unlinked by the swap"
    );
    // The next upgrade (by default, of that path) checks what is there now: refused.
    let out = d.cli(&["upgrade"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("is a script"), "{}", stderr(&out));
    assert_eq!(d.pid("s"), Some(pid));
}

/// GET `path` once it answers 200: right after an upgrade the new image may still be opening
/// its store (history reads answer 503 meanwhile), PostgreSQL under load especially.
fn get_when_stored(d: &TestDaemon, path: &str) -> serde_json::Value {
    d.wait_until(&format!("GET {path} to answer 200"), LONG, || {
        let (code, body) = d.try_api("GET", path, None).ok()?;
        (code == 200).then(|| serde_json::from_slice(&body).ok())?
    })
}

/// How many of `name`'s stored events are of `kind`.
fn count(d: &TestDaemon, name: &str, kind: &str) -> usize {
    let events = get_when_stored(d, &format!("/api/v1/events?service={name}&limit=10000"));
    events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .count()
}

/// `name`'s restart count, as `upkeep ls` shows it.
fn restarts(d: &TestDaemon, name: &str) -> Option<u64> {
    get_when_stored(d, &format!("/api/v1/services/{name}"))["info"]["restarts"].as_u64()
}

/// Stops `name` and waits until its `stopped` is stored: whatever the new image did first
/// with the service (a start, say) is stored before it, since its supervisor does that first
/// and then takes commands.
fn stop_and_settle(d: &TestDaemon, name: &str) {
    let before = count(d, name, "stopped");
    let out = d.cli(&["stop", name]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_until(&format!("{name}'s stop to be stored"), LONG, || {
        (count(d, name, "stopped") > before).then_some(())
    });
}

/// The incidents of `name`, newest first: (id, open).
fn incidents(d: &TestDaemon, name: &str) -> Vec<(i64, bool)> {
    let all = get_when_stored(d, &format!("/api/v1/incidents?limit=100&service={name}"));
    all.as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_i64().unwrap(), i["resolved"].is_null()))
        .collect()
}

/// A crash loop: every run fails at once; the third restart within the hour fails it.
const CRASH_LOOP: &str = "command = [\"sh\", \"-c\", \"exit 3\"]\nrestart = \"always\"\nbackoff_min = \"0s\"\nmax_restarts = 2\nwindow = \"1h\"\n";

/// Break-it (session 9): an upgrade started a `failed` service again (three more starts per
/// upgrade), and an exited one (`restart = "never"`). Each stays as it was, not started; a
/// stopped one stays stopped.
#[test]
fn an_upgrade_leaves_failed_exited_and_stopped_services_as_they_were() {
    let d = daemon(&format!(
        "[services.f]\n{CRASH_LOOP}\n[services.e]\ncommand = [\"sh\", \"-c\", \"exit 0\"]\nrestart = \"never\"\n\n[services.s]\ncommand = \"sleep 1000\"\n"
    ));
    d.wait_state("f", "failed", LONG);
    d.wait_state("e", "exited", LONG);
    d.wait_state("s", "up", LONG);
    let out = d.cli(&["stop", "s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_state("s", "stopped", LONG);
    let started = ["f", "e", "s"].map(|n| count(&d, n, "started"));
    assert_eq!(started, [3, 1, 1]);

    upgrade(&d, &[]);
    for (name, state) in [("f", "failed"), ("e", "exited"), ("s", "stopped")] {
        d.wait_state(name, state, LONG);
    }
    assert_eq!(restarts(&d, "f"), Some(2));
    for name in ["f", "e"] {
        stop_and_settle(&d, name);
    }
    assert_eq!(
        ["f", "e", "s"].map(|n| count(&d, n, "started")),
        started,
        "started by the upgrade"
    );
}

/// Break-it (session 9): an upgrade began a crash loop's count and backoff afresh. A service
/// backing off (its next restart ten minutes away) goes on backing off, not started by the
/// upgrade, its restart count as it was.
#[test]
fn an_upgrade_keeps_a_crash_loops_restart_count_and_backoff() {
    let d = daemon(
        "[services.b]\ncommand = [\"sh\", \"-c\", \"exit 3\"]\nrestart = \"always\"\nbackoff_min = \"10m\"\nbackoff_max = \"10m\"\nmax_restarts = 10\nwindow = \"1h\"\n",
    );
    // The first restart is at once, the second waits backoff_min.
    d.wait_until("b to back off", LONG, || {
        (count(&d, "b", "restart_scheduled") == 2 && d.state("b") == "down").then_some(())
    });
    let before = restarts(&d, "b");
    assert_eq!(before, Some(2));
    assert_eq!(count(&d, "b", "started"), 2);

    upgrade(&d, &[]);
    d.wait_state("b", "down", LONG);
    assert_eq!(restarts(&d, "b"), before);
    stop_and_settle(&d, "b");
    assert_eq!(count(&d, "b", "started"), 2, "started by the upgrade");
    assert_eq!(count(&d, "b", "restart_scheduled"), 2);
}

/// Break-it (session 9): an upgrade resolved an open incident and opened another. A failed
/// service's incident stays the same one, open: no event of it, so no notice.
#[test]
fn an_upgrade_keeps_an_open_incident_open_and_the_same() {
    let d = daemon(&format!(
        "[services.f]\n{CRASH_LOOP}incident_after = \"0s\"\n"
    ));
    d.wait_state("f", "failed", LONG);
    d.wait_until("f's incident to open", LONG, || {
        (incidents(&d, "f").len() == 1).then_some(())
    });
    let before = incidents(&d, "f");
    assert!(before[0].1, "open: {before:?}");
    let kinds = ["incident_opened", "incident_resolved", "incident_reopened"];
    let events = kinds.map(|k| count(&d, "f", k));

    upgrade(&d, &[]);
    stop_and_settle(&d, "f");
    // The stop ends the outage: the one incident resolves now, and only now.
    assert_eq!(
        incidents(&d, "f").iter().map(|i| i.0).collect::<Vec<_>>(),
        [before[0].0]
    );
    assert_eq!(
        kinds.map(|k| count(&d, "f", k)),
        [events[0], events[1] + 1, events[2]],
        "{kinds:?} before the stop: {events:?}"
    );
}

/// Break-it (session 9): an upgrade turned a flapping service's incident into a new one (and
/// a notice each time). Down again after the upgrade, it is the same incident, reopened.
#[test]
fn an_upgrade_keeps_a_flapping_incident_one_incident() {
    let d = daemon(
        "[services.flap]\ncommand = [\"sh\", \"-c\", \"sleep 0.3; exit 3\"]\nrestart = \"always\"\nmin_uptime = \"100ms\"\nmax_restarts = 1000000\nwindow = \"1s\"\nincident_after = \"0s\"\n",
    );
    d.wait_until("flap's incident to reopen", LONG, || {
        (count(&d, "flap", "incident_reopened") >= 2).then_some(())
    });
    let id = incidents(&d, "flap")[0].0;
    let exited = count(&d, "flap", "exited");

    upgrade(&d, &[]);
    d.wait_until("flap to go down twice more", LONG, || {
        (count(&d, "flap", "exited") >= exited + 2).then_some(())
    });
    stop_and_settle(&d, "flap");
    assert_eq!(
        incidents(&d, "flap")
            .iter()
            .map(|i| i.0)
            .collect::<Vec<_>>(),
        [id],
        "one incident"
    );
    assert_eq!(count(&d, "flap", "incident_opened"), 1);
}

/// The outbox's notices (one a recipient): (kind, subject).
fn notices(d: &TestDaemon) -> Vec<(String, String)> {
    get_when_stored(d, "/api/v1/notify?limit=10000")
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap_or_default().to_owned(),
                n["subject"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `name`'s stored events of `kind`, oldest first: (when in ms, detail).
fn stored(d: &TestDaemon, name: &str, kind: &str) -> Vec<(i64, serde_json::Value)> {
    let events = get_when_stored(d, &format!("/api/v1/events?service={name}&limit=10000"));
    let mut out: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| {
            let at: jiff::Timestamp = e["at"].as_str().unwrap().parse().unwrap();
            (at.as_millisecond(), e["detail"].clone())
        })
        .collect();
    out.reverse();
    out
}

/// Break-it (session 10): the daemon killed right after an upgrade's exec (a new image that
/// dies at once) left the next start to resolve the open incident of a service still down,
/// then reopen or open another (more mails), and to date the unwatched time from the last
/// event instead of the last sign of life. Now the next start goes on as after any kill: the
/// incidents of a managed service and of an external one, both still down, stay the same
/// ones, open, with no event or notice until they end; the unwatched time begins at the mark
/// in `<data_dir>/alive`.
#[test]
fn a_daemon_killed_right_after_an_upgrades_exec_keeps_its_open_incidents_and_mails_nothing_more() {
    use upkeep_testkit::SmtpSink;
    let sink = SmtpSink::start();
    let (web_port, db_port) = (upkeep_testkit::free_port(), upkeep_testkit::free_port());
    let probe = |port: u16| {
        format!(
            "probes = [{{ kind = \"tcp\", addr = \"127.0.0.1:{port}\", every = \"100ms\", grace = \"0s\" }}]\nincident_after = \"0s\"\n"
        )
    };
    let (mut d, hold) = held(&format!(
        "[services.web]\ncommand = \"sleep 1000\"\non_unhealthy = \"alert\"\n{}\n[services.db]\n{}\n\
         [notify]\n{}",
        probe(web_port),
        probe(db_port),
        sink.ops_mail_channel()
    ));
    let names = ["web", "db"];
    for name in names {
        d.wait_state(name, "down", LONG);
        d.wait_until(&format!("{name}'s incident to open"), LONG, || {
            (incidents(&d, name).len() == 1).then_some(())
        });
    }
    let ids = names.map(|n| incidents(&d, n)[0].0);
    d.wait_until("both openings in the outbox", LONG, || {
        (notices(&d).len() == 2).then_some(())
    });

    // Upgraded, and killed the moment the new image runs.
    nix::unistd::mkfifo(
        &hold.join("exec"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let mut upgrading = d.cli_spawn(&["upgrade"]);
    wait_checked(&d, &hold);
    go(&hold);
    d.wait_until("the new image to run", LONG, || {
        hold.join("executed").exists().then_some(())
    });
    d.signal_daemon(nix::sys::signal::Signal::SIGKILL);
    let _ = upgrading.kill();
    let _ = upgrading.wait();
    let alive: i64 = std::fs::read_to_string(d.data_dir.join("alive"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    // A plain start: both still down, the same incidents open.
    d.launch();
    for name in names {
        d.wait_state(name, "down", LONG);
    }
    for (name, id) in names.iter().zip(ids) {
        assert_eq!(incidents(&d, name), [(id, true)], "{name}");
        let unknown: Vec<i64> = stored(&d, name, "status_changed")
            .into_iter()
            .filter(|(_, e)| e["to"] == "unknown")
            .map(|(at, _)| at)
            .collect();
        assert_eq!(
            unknown,
            [alive],
            "{name}: unwatched from the last mark of life"
        );
    }

    // Back: each incident resolves, once; the outbox holds its opening and its resolution.
    let _web = std::net::TcpListener::bind(("127.0.0.1", web_port)).unwrap();
    let _db = std::net::TcpListener::bind(("127.0.0.1", db_port)).unwrap();
    for (name, id) in names.iter().zip(ids) {
        d.wait_state(name, "up", LONG);
        d.wait_until(&format!("{name}'s incident to resolve"), LONG, || {
            (incidents(&d, name) == [(id, false)]).then_some(())
        });
    }
    for name in names {
        let kinds = ["incident_opened", "incident_reopened", "incident_resolved"];
        assert_eq!(
            kinds.map(|k| count(&d, name, k)),
            [1, 0, 1],
            "{name}: {kinds:?}"
        );
    }
    d.wait_until("both resolutions in the outbox", LONG, || {
        let n = notices(&d);
        (n.iter().filter(|(k, _)| k == "incident_resolved").count() >= 2).then_some(())
    });
    let all = notices(&d);
    assert_eq!(all.len(), 4, "{all:?}");
}

/// Break-it (session 10): a job's run going on through an upgrade was adopted, but its end was
/// a plain `exited`: no `job_ran`, so not in `upkeep jobs`. Now its record goes over with it:
/// one run, due at its time, by upkeep, with its whole output (lines from before the upgrade
/// and after) and its exit code.
#[test]
fn a_jobs_run_spanning_an_upgrade_is_recorded_as_a_run_of_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("release");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let d = TestDaemon::start_on_test_clock(
        BIN,
        &format!(
            "[services.slow]\nschedule = \"* * * * *\"\ncatch_up = false\n\
             command = \"sh -c 'echo before; read l < {}; echo after; exit 3'\"\n",
            fifo.display()
        ),
    );
    let due: jiff::Timestamp = d.api_get("/api/v1/jobs?service=slow")[0]["next"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    d.advance_clock("60s");
    let pid = d.wait_until("slow to run", LONG, || d.pid("slow"));
    let log = d.data_dir.join("logs").join("slow.out.log");
    d.wait_until("slow's first line", LONG, || {
        std::fs::read_to_string(&log)
            .ok()?
            .contains("before")
            .then_some(())
    });

    let out = upgrade(&d, &[]);
    assert!(out.contains("1 service(s) kept running"), "{out}");
    assert_eq!(d.pid("slow"), Some(pid));
    std::fs::write(&fifo, "go\n").unwrap();
    let runs = d.wait_until("slow's run to be recorded", LONG, || {
        let job = get_when_stored(&d, "/api/v1/jobs?service=slow");
        let runs = job[0]["runs"].as_array()?.clone();
        (!runs.is_empty()).then_some(runs)
    });
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    assert_eq!(run["status"]["code"], 3, "{run}");
    assert_eq!(
        run["output"],
        serde_json::json!(["before", "after"]),
        "{run}"
    );
    assert_eq!(
        run["due"]
            .as_str()
            .map(str::parse::<jiff::Timestamp>)
            .and_then(Result::ok),
        Some(due),
        "{run}"
    );
    assert_ne!(run["interrupted"], true, "{run}");
    assert_eq!(count(&d, "slow", "job_ran"), 1);
}

/// Break-it (session 10): an upgrade was refused while a service stopped only as it was
/// asked: a stop that began while the binary was being checked still held the hand-over for
/// its whole `stop_timeout`, nothing supervised meanwhile. The last check and the start of
/// the hand-over are now one step with every stop: refused, supervision goes on, and once the
/// stop is over the upgrade goes.
#[test]
fn a_stop_that_begins_while_the_binary_is_checked_refuses_the_upgrade() {
    let (d, hold) = held(
        "[services.slow]\ncommand = \"sh -c 'trap \\\"\\\" TERM; while :; do sleep 1; done'\"\nstop_timeout = \"15s\"\n\n[services.s]\ncommand = \"sleep 1000\"\n",
    );
    d.wait_state("slow", "up", LONG);
    d.wait_state("s", "up", LONG);
    let slow = d.pid("slow").unwrap();
    let upgrading = d.cli_spawn(&["upgrade"]);
    wait_checked(&d, &hold);
    let stopping = d.cli_spawn(&["stop", "slow"]);
    d.wait_state("slow", "stopping", LONG);
    go(&hold);
    let out = upgrading.wait_with_output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}{err}", stdout(&out));
    assert!(err.contains("slow (stopping)"), "{err}");
    // Still supervised: a killed service comes back.
    let pid = d.pid("s").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    d.wait_until("s to be restarted", LONG, || {
        d.pid("s").filter(|p| *p != pid).map(|_| ())
    });
    // The stop over (its process killed), the upgrade goes.
    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(slow as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let stopped = stopping.wait_with_output().unwrap();
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    d.wait_state("slow", "stopped", LONG);
    std::fs::remove_file(hold.join("checked")).unwrap();
    let upgrading = d.cli_spawn(&["upgrade"]);
    wait_checked(&d, &hold);
    go(&hold);
    let out = upgrading.wait_with_output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("1 service(s) kept running"),
        "{}",
        stdout(&out)
    );
}

/// `upkeep add` did not take the upgrade's seal as stop, restart and reload do: an add
/// under way (here waiting for the config file's edit lock, which the test holds) let an
/// upgrade begin its hand-over, and the add then edited the file and applied it with the
/// old image going. The upgrade is now refused naming the add, the add goes through once it
/// has the file, and the upgrade goes after it.
#[test]
fn an_upgrade_while_an_add_is_under_way_is_refused() {
    let d = daemon("[services.s]\ncommand = \"sleep 1000\"\n");
    d.wait_state("s", "up", LONG);
    let lock_path = d.config.with_file_name(format!(
        ".{}.upkeep-lock",
        d.config.file_name().unwrap().to_str().unwrap()
    ));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
    // Through the API (the CLI's `add` takes the same lock itself before it asks).
    let socket = d.socket();
    let adding = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
        let body = r#"{"name": "web2", "command": ["sleep", "1000"]}"#;
        write!(
            s,
            "POST /api/v1/services HTTP/1.1\r\nHost: upkeep\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        answer
    });
    // The add waits for the lock: the kernel lists its request as blocked (`->`).
    let inode = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&lock_path).unwrap().ino()
    };
    d.wait_until("the add to wait for the config's edit lock", LONG, || {
        let locks = std::fs::read_to_string("/proc/locks").unwrap();
        locks
            .lines()
            .any(|l| l.contains("->") && l.contains(&format!(":{inode} ")))
            .then_some(())
    });
    let out = d.cli(&["upgrade"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}{err}", stdout(&out));
    assert!(err.contains("web2 (adding)"), "{err}");
    drop(lock);
    let answer = adding.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    d.wait_state("web2", "up", LONG);
    let out = upgrade(&d, &[]);
    assert!(out.contains("2 service(s) kept running"), "{out}");
}

/// Break-it, session 10: every upgrade stored a `config_applied` event saying every service
/// was added, though an upgrade applies no config (one with edits not reloaded is refused).
/// Only the start's is stored: the upgrades add none.
#[test]
fn an_upgrade_with_the_config_unchanged_stores_no_config_applied() {
    let d = daemon("[services.s]\ncommand = \"sleep 1000\"\n");
    d.wait_state("s", "up", LONG);
    let applied = |d: &TestDaemon| {
        let all = get_when_stored(d, "/api/v1/events?limit=10000");
        let all = all.as_array().unwrap().clone();
        all.into_iter()
            .filter(|e| e["kind"] == "config_applied")
            .collect::<Vec<_>>()
    };
    d.wait_until("the start's config_applied to be stored", LONG, || {
        (applied(&d).len() == 1).then_some(())
    });
    upgrade(&d, &[]);
    upgrade(&d, &[]);
    // Whatever the new image recorded at its start is stored before this stop.
    stop_and_settle(&d, "s");
    let after = applied(&d);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(count(&d, "s", "adopted"), 2);
}

/// Break-it (session 11): `upkeep upgrade` during an SMTP send cut the send off after the
/// server had the mail and before its 250; the new image took the row over and sent the mail
/// again. Now the hand-over lets the send finish and marks the row before the exec: the
/// server (which answers `slow@` 2 s after it has the message) gets it once, and the row is
/// sent with no takeover.
#[test]
fn an_upgrade_during_a_send_lets_it_finish_and_the_mail_goes_once() {
    use upkeep_testkit::SmtpSink;
    let sink = SmtpSink::start();
    let d = daemon(&format!(
        "[services.s]\ncommand = \"sleep 1000\"\n\n[notify]\n[notify.channels.mail]\nkind = \"email\"\nurl = \"smtp://127.0.0.1:{}\"\nfrom = \"upkeep <noreply@example.com>\"\nrecipients = [\"slow@example.com\"]\n",
        sink.port
    ));
    d.wait_state("s", "up", LONG);
    let out = d.cli(&["notify", "test", "mail"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The server has the mail and has not answered yet: the upgrade now.
    d.wait_until("the server to have the mail", LONG, || {
        (sink.count() == 1).then_some(())
    });
    upgrade(&d, &[]);
    let row = d.wait_until("the notice to be marked sent", LONG, || {
        let rows = get_when_stored(&d, "/api/v1/notify?limit=10");
        let row = rows.as_array()?.first()?.clone();
        (row["state"] == "sent").then_some(row)
    });
    assert_eq!(sink.count(), 1, "{:#?}", sink.messages());
    assert_eq!(row["takeovers"], 0, "{row}");
    assert_eq!(row["attempts"], 1, "{row}");
}

/// Issue 18: an upgrade while a run was still starting on its notification fd (`ready = {
/// fd = 3 }`) closed the pipe's read end: the newline written after it went nowhere, the run
/// stayed `starting` for good and its dependent never started. The read end is handed over
/// with the run: the new daemon reads the newline, and the dependent starts.
#[test]
fn an_upgrade_hands_over_a_run_still_starting_on_its_notification_fd() {
    let tmp = tempfile::tempdir().unwrap();
    let go = tmp.path().join("go");
    nix::unistd::mkfifo(&go, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let d = daemon(&format!(
        "[services.s6]\ncommand = [\"sh\", \"-c\", \"read x < {}; echo >&3; exec sleep 1000\"]\nready = {{ fd = 3 }}\n\n\
         [services.after]\ncommand = \"sleep 1000\"\ndepends_on = [\"s6\"]\n",
        go.display()
    ));
    let pid = d.wait_running_not_ready("s6");
    let daemon_pid = d.daemon_pid();
    upgrade(&d, &[]);
    assert_eq!(d.daemon_pid(), daemon_pid, "re-executed in place");
    assert_eq!(d.pid("s6"), Some(pid));
    assert_eq!(d.state("s6"), "starting");
    assert_eq!(d.state("after"), "starting");
    std::fs::write(&go, "go\n").unwrap();
    d.wait_state("after", "up", LONG);
    assert_eq!(d.state("s6"), "up");
    assert_eq!(d.pid("s6"), Some(pid));
}
