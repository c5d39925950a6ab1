//! Signals, graceful reloads and forking daemons (issue 18, item 3), on a real nginx (Debian's
//! nginx-light) with a config of the test's own on a free port; and `add` from nothing
//! (item 0): an empty folder to a running service in one command.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use nix::sys::signal::Signal;
use serde_json::json;
use upkeep_testkit::{TestDaemon, alive, free_port, http, pids_with_cmdline};

use crate::{BIN, LONG, daemon, stderr, stdout};

/// An nginx config in `dir` on `port`: two workers, everything it writes inside `dir`.
/// `forking`: it daemonizes and writes `dir/nginx.pid`; else it stays in the foreground.
pub(crate) fn nginx_conf(dir: &Path, port: u16, forking: bool) -> String {
    let d = dir.display();
    let conf = format!(
        "daemon {};\nmaster_process on;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"hello from nginx\\n\"; }} }}\n}}\n",
        if forking { "on" } else { "off" }
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    format!(
        "/usr/sbin/nginx -p {d} -c {} -e {d}/error.log",
        path.display()
    )
}

/// A folder for nginx's files, inside the test daemon's temp dir.
pub(crate) fn nginx_dir(d: &TestDaemon) -> std::path::PathBuf {
    let dir = d.dir.path().join("nginx");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The worker processes of nginx master `master`.
pub(crate) fn workers(master: u32) -> BTreeSet<u32> {
    upkeep_supervisor::procfs::children_of(master)
        .into_iter()
        .collect()
}

/// Waits for `master` to have its two workers, none of them in `old`.
fn wait_new_workers(d: &TestDaemon, master: u32, old: &BTreeSet<u32>) -> BTreeSet<u32> {
    d.wait_until("nginx to have two new workers", LONG, || {
        let now = workers(master);
        (now.len() == 2 && now.is_disjoint(old)).then_some(now)
    })
}

/// The body of `GET /` on loopback `port`, if something answers 200 there.
fn get(port: u16) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    http(addr, "GET", "/", &[], b"")
        .ok()
        .filter(|a| a.code == 200)
        .map(|a| a.text())
}

pub(crate) fn answers(port: u16) -> bool {
    get(port).is_some_and(|t| t.contains("hello from nginx"))
}

/// nginx masters running the config `conf`.
pub(crate) fn masters(conf: &str) -> Vec<u32> {
    pids_with_cmdline(conf)
        .into_iter()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with("nginx: master"))
        })
        .collect()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// A service's `signalled` events' details.
fn signalled(d: &TestDaemon, name: &str) -> Vec<serde_json::Value> {
    d.events(name)
        .into_iter()
        .filter(|(k, _)| k == "signalled")
        .map(|(_, v)| v)
        .collect()
}

#[test]
fn reload_and_signal_renew_nginx_workers_without_a_restart() {
    let port = free_port();
    let d = TestDaemon::prepare(BIN, "");
    let cmd = nginx_conf(&nginx_dir(&d), port, false);
    d.write_services(&format!(
        "[services.nginx]\ncommand = \"{cmd}\"\nreload_signal = \"SIGHUP\"\nstop_signal = \"SIGQUIT\"\n"
    ));
    let mut d = d;
    d.launch();
    d.wait_state("nginx", "up", LONG);
    let master = d.pid("nginx").unwrap();
    let first = d.wait_until("nginx's two workers", LONG, || {
        let w = workers(master);
        (w.len() == 2).then_some(w)
    });
    d.wait_until("nginx to answer", LONG, || answers(port).then_some(()));

    // `upkeep reload NAME`: its reload_signal to the master, which starts new workers.
    let text = ok(&d.cli(&["reload", "nginx"]));
    assert!(
        text.contains(&format!(
            "asked nginx to reload its config: sent SIGHUP (pid {master})"
        )),
        "{text}"
    );
    let second = wait_new_workers(&d, master, &first);
    // `upkeep signal NAME SIGNAL`, by a short name.
    let text = ok(&d.cli(&["signal", "nginx", "HUP"]));
    assert!(
        text.contains(&format!("sent SIGHUP to nginx (pid {master})")),
        "{text}"
    );
    wait_new_workers(&d, master, &second);

    // The master never changed, nothing restarted, and it still answers.
    assert_eq!(d.pid("nginx"), Some(master));
    assert!(alive(master));
    assert_eq!(d.service("nginx")["info"]["restarts"], 0);
    assert!(answers(port));
    let kinds: Vec<String> = d.events("nginx").into_iter().map(|e| e.0).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "started").count(),
        1,
        "{kinds:?}"
    );
    // Each recorded as an operator action, with who asked.
    let sent = signalled(&d, "nginx");
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[0]["reload"], true);
    assert_eq!(sent[1]["reload"], false);
    for s in &sent {
        assert_eq!(s["signal"], "SIGHUP");
        assert_eq!(s["pid"], master);
        assert_eq!(s["by"]["principal"]["via"], "socket", "{s}");
    }
    let listed = d.api_get("/api/v1/events?service=nginx&limit=100");
    let listed: Vec<&serde_json::Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "signalled")
        .collect();
    assert!(
        listed.iter().all(|e| e["intervention"] == true),
        "{listed:?}"
    );
}

/// A Python program that forks: both processes say when they catch SIGUSR1.
const CATCHERS: &str = r#"
import os, signal, time
pid = os.fork()
who = "child" if pid == 0 else "main"
signal.signal(signal.SIGUSR1, lambda *_: print(f"{who} got USR1", flush=True))
print(f"{who} ready", flush=True)
while True:
    time.sleep(1)
"#;

#[test]
fn a_signal_to_the_group_reaches_every_process_of_the_service() {
    let d = TestDaemon::prepare(BIN, "");
    let script = d.dir.path().join("catchers.py");
    std::fs::write(&script, CATCHERS).unwrap();
    d.write_services(&format!(
        "[services.catch]\ncommand = [\"python3\", \"-u\", \"{}\"]\n",
        script.display()
    ));
    let mut d = d;
    d.launch();
    d.wait_state("catch", "up", LONG);
    let pid = d.pid("catch").unwrap();
    let log = || ok(&d.cli(&["logs", "catch", "-n", "10"]));
    d.wait_until("both processes to be ready", LONG, || {
        let l = log();
        (l.contains("main ready") && l.contains("child ready")).then_some(())
    });
    // To the main process alone: the child hears nothing.
    ok(&d.cli(&["signal", "catch", "USR1"]));
    d.wait_until("main to catch USR1", LONG, || {
        log().contains("main got USR1").then_some(())
    });
    assert!(!log().contains("child got USR1"), "{}", log());
    let text = ok(&d.cli(&["signal", "catch", "SIGUSR1", "--group", "--json"]));
    let r: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(r["group"], true);
    assert_eq!(r["pid"], pid);
    d.wait_until("the child to catch USR1", LONG, || {
        log().contains("child got USR1").then_some(())
    });
    assert_eq!(log().matches("main got USR1").count(), 2);
    assert_eq!(d.pid("catch"), Some(pid));
    assert_eq!(d.service("catch")["info"]["restarts"], 0);
}

#[test]
fn signals_that_cannot_be_sent_are_refused_with_a_reason() {
    let d = daemon(
        "[services.web]\ncommand = \"sleep 1000\"\n\n[services.off]\ncommand = \"sleep 1000\"\nautostart = false\nreload_signal = \"HUP\"\n\n[services.ext]\nprobes = [{ kind = \"tcp\", addr = \"127.0.0.1:9\" }]\n",
    );
    d.wait_state("web", "up", LONG);
    let post = |path: &str, body: Option<serde_json::Value>| {
        let (code, body) = d.try_api("POST", path, body.as_ref()).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (code, body["error"].as_str().unwrap_or_default().to_owned())
    };
    let cases = [
        (
            "web/signal",
            Some(json!({ "signal": "SIGNOPE" })),
            400,
            "`SIGNOPE` is not a signal",
        ),
        (
            "web/signal",
            Some(json!({ "signal": "KILL" })),
            422,
            "SIGKILL cannot be caught",
        ),
        (
            "web/signal",
            Some(json!({ "signal": "19" })),
            422,
            "SIGSTOP cannot be caught",
        ),
        (
            "web/signal",
            Some(json!({ "signal": "TSTP" })),
            422,
            "SIGTSTP is a terminal's job control",
        ),
        (
            "web/signal",
            Some(json!({ "sig": "HUP" })),
            400,
            "unknown field",
        ),
        (
            "web/reload",
            None,
            422,
            "service `web` has no reload_signal",
        ),
        ("off/reload", None, 409, "service `off` is not running"),
        (
            "ext/signal",
            Some(json!({ "signal": "HUP" })),
            409,
            "is external",
        ),
        ("nope/reload", None, 404, "no service named `nope`"),
    ];
    for (path, body, code, message) in cases {
        let (got, text) = post(&format!("/api/v1/services/{path}"), body);
        assert_eq!(got, code, "{path}: {text}");
        assert!(text.contains(message), "{path}: {text}");
    }
    // The CLI says the same, with what to do, and exits 2 (the input is wrong).
    let out = d.cli(&["reload", "web"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("reload_signal = \"SIGHUP\""),
        "{}",
        stderr(&out)
    );
    let out = d.cli(&["signal", "web", "KILL"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("upkeep restart web"),
        "{}",
        stderr(&out)
    );
    // Nothing happened to it.
    assert!(signalled(&d, "web").is_empty());
    assert_eq!(d.service("web")["info"]["restarts"], 0);
    // `upkeep reload` with no name still reloads upkeep's own config.
    let text = ok(&d.cli(&["reload"]));
    assert!(text.contains("revision"), "{text}");
}

#[test]
fn a_forking_nginx_is_followed_by_its_pid_file_probed_and_stopped_whole() {
    let port = free_port();
    let d = TestDaemon::prepare(BIN, "");
    let dir = nginx_dir(&d);
    let cmd = nginx_conf(&dir, port, true);
    let pid_file = dir.join("nginx.pid");
    d.write_services(&format!(
        "[services.nginx]\ncommand = \"{cmd}\"\ntype = \"forking\"\npid_file = \"{}\"\nreload_signal = \"SIGHUP\"\nstop_signal = \"SIGQUIT\"\nready = \"probe\"\n\
         probes = [{{ kind = \"http\", url = \"http://127.0.0.1:{port}/\", every = \"200ms\" }}]\n",
        pid_file.display()
    ));
    let mut d = d;
    d.launch();
    d.wait_state("nginx", "up", LONG);
    // Its main process is the master the PID file names, not the command that forked it.
    let master: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(d.pid("nginx"), Some(master));
    assert!(answers(port));
    let first = d.wait_until("nginx's two workers", LONG, || {
        let w = workers(master);
        (w.len() == 2).then_some(w)
    });
    // A reload reaches the daemon, not its long-gone starter.
    ok(&d.cli(&["reload", "nginx"]));
    wait_new_workers(&d, master, &first);
    assert_eq!(d.pid("nginx"), Some(master));

    // A crash of the master is seen (we reap it, as subreaper) and it runs again.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(master as i32), Signal::SIGKILL).unwrap();
    let second = d.wait_new_pid("nginx", master, LONG);
    d.wait_until("the new nginx to answer", LONG, || {
        answers(port).then_some(())
    });
    assert!(!alive(master));
    assert_eq!(
        masters(&dir.join("nginx.conf").display().to_string()),
        [second]
    );

    // Stopped with its whole tree: master and workers.
    let tree: BTreeSet<u32> = workers(second).into_iter().chain([second]).collect();
    ok(&d.cli(&["stop", "nginx"]));
    assert_eq!(d.state("nginx"), "stopped");
    for p in &tree {
        assert!(!alive(*p), "nginx process {p} outlived the stop");
    }
    assert!(!answers(port));
}

#[test]
fn a_forking_service_whose_pid_file_never_comes_fails_its_start_and_leaves_nothing() {
    let token = upkeep_testkit::unique();
    let d = daemon(&format!(
        "[services.lost]\ncommand = \"sleep {token} & exit 0\"\ntype = \"forking\"\npid_file = \"lost.pid\"\npid_file_timeout = \"300ms\"\nrestart = \"never\"\n"
    ));
    let error = d.wait_until("the start to fail", LONG, || {
        d.events("lost")
            .into_iter()
            .find(|(k, _)| k == "spawn_failed")
            .map(|(_, v)| v["error"].as_str().unwrap_or_default().to_owned())
    });
    assert!(error.contains("no usable PID file"), "{error}");
    assert!(
        error.contains("lost.pid") && error.contains("it does not exist"),
        "{error}"
    );
    // The daemon it did fork was stopped with the rest of the run.
    d.wait_until("the forked sleep to be gone", LONG, || {
        pids_with_cmdline(&format!("sleep {token}"))
            .is_empty()
            .then_some(())
    });
}

#[test]
fn a_killed_daemon_never_runs_a_forking_service_twice() {
    killed_daemon_with_forking_nginx(true);
}

/// Without cgroups, the run record alone finds the daemon: it names the master the PID file
/// named, not the start command, which was long gone.
#[test]
fn a_killed_daemon_never_runs_a_forking_service_twice_without_cgroups() {
    killed_daemon_with_forking_nginx(false);
}

fn killed_daemon_with_forking_nginx(cgroups: bool) {
    let port = free_port();
    let d = TestDaemon::prepare(BIN, "");
    let dir = nginx_dir(&d);
    let cmd = nginx_conf(&dir, port, true);
    let conf = dir.join("nginx.conf").display().to_string();
    // Right after the testkit's [daemon] keys, so still in that table.
    d.write_services(&format!(
        "cgroups = {cgroups}\n\n[services.nginx]\ncommand = \"{cmd}\"\ntype = \"forking\"\npid_file = \"{}\"\n",
        dir.join("nginx.pid").display()
    ));
    let mut d = d;
    d.launch();
    d.wait_state("nginx", "up", LONG);
    let old = d.pid("nginx").unwrap();
    d.signal_daemon(Signal::SIGKILL);
    // Left running, reparented away from the dead daemon.
    assert!(alive(old));
    d.launch();
    d.wait_state("nginx", "up", LONG);
    let new = d.pid("nginx").unwrap();
    assert_ne!(new, old);
    assert!(!alive(old), "the old master still runs beside the new one");
    assert_eq!(masters(&conf), [new]);
    d.wait_until("nginx to answer", LONG, || answers(port).then_some(()));
    let kinds: Vec<String> = d.events("nginx").into_iter().map(|e| e.0).collect();
    assert!(kinds.iter().any(|k| k == "stale_stopped"), "{kinds:?}");
}

/// The CLI as a new user runs it: in `dir`, with no config named and no user config.
fn fresh_cli(dir: &Path, args: &[&str], lang: &str) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("UPKEEP_CONFIG")
        .env_remove("UPKEEP_DATA_DIR")
        .env("XDG_CONFIG_HOME", dir.join("no-user-config"))
        .env("UPKEEP_LANG", lang)
        .output()
        .unwrap()
}

#[test]
fn add_in_an_empty_folder_makes_the_config_starts_the_daemon_and_runs_the_service() {
    let mut d = TestDaemon::prepare(BIN, "");
    let dir = d.dir.path().to_owned();
    // The folder is empty: no config (the testkit's goes), no data dir.
    std::fs::remove_file(&d.config).unwrap();
    d.data_dir = dir.join(".upkeep");
    let port = free_port();
    let port_text = port.to_string();
    let out = fresh_cli(
        &dir,
        &[
            "add",
            "web",
            "--",
            "python3",
            "-m",
            "http.server",
            &port_text,
            "--bind",
            "127.0.0.1",
        ],
        "en",
    );
    let text = ok(&out);
    assert!(text.contains("made ") && text.contains(".upkeep"), "{text}");
    assert!(text.contains("upkeep daemon started"), "{text}");
    assert!(text.contains("service web added to "), "{text}");
    // The same config the other commands read from this folder; testkit helpers from here on.
    d.config = dir.join("upkeep.toml");
    assert!(d.config.exists());
    d.wait_state("web", "up", LONG);
    d.wait_until("the page to answer", LONG, || get(port));
    let ls = ok(&fresh_cli(&dir, &["ls"], "en"));
    assert!(ls.contains("web") && ls.contains("up"), "{ls}");
    // Twice: the file and the daemon are there, so it only adds (and refuses a name twice).
    let again = fresh_cli(&dir, &["add", "web", "--", "sleep", "1"], "en");
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("web"), "{}", stderr(&again));
    let text = ok(&fresh_cli(
        &dir,
        &["add", "nap", "--", "sleep", "1000"],
        "en",
    ));
    assert!(!text.contains("daemon started"), "{text}");
    d.wait_state("nap", "up", LONG);
    // `stop` from the same folder stops it.
    ok(&fresh_cli(&dir, &["stop", "web"], "en"));
    assert_eq!(d.state("web"), "stopped");
    assert!(get(port).is_none());
    ok(&fresh_cli(&dir, &["down"], "en"));
}

#[test]
fn up_without_a_config_explains_how_to_make_one_in_both_languages() {
    let dir = tempfile::tempdir().unwrap();
    let out = fresh_cli(dir.path(), &["up"], "en");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("no config file: looked for ./upkeep.toml"),
        "{err}"
    );
    assert!(
        err.contains("hint: `upkeep add NAME -- COMMAND...` makes ./upkeep.toml"),
        "{err}"
    );
    let out = fresh_cli(dir.path(), &["up"], "zh-CN");
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("没有配置文件"), "{err}");
    assert!(err.contains("创建 ./upkeep.toml"), "{err}");
    // Nothing was made.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// Debian's own `nginx.service`, imported as it is, runs under upkeep as a forking service.
/// Only its start is wrapped in `unshare -n` (a network namespace of its own), so that its
/// port 80 is free whatever this host runs; its config, PID file and logs are Debian's.
#[test]
fn debian_nginx_service_imported_runs_followed_by_its_pid_file() {
    let pid_file = Path::new("/run/nginx.pid");
    assert!(
        !pid_file.exists(),
        "{} exists: a system nginx runs on this host, and this test would take its PID file",
        pid_file.display()
    );
    let d = TestDaemon::prepare(BIN, "");
    ok(&d.cli(&["import", "systemd", "nginx"]));
    let written = std::fs::read_to_string(&d.config).unwrap();
    assert!(
        written.contains("type = \"forking\"\npid_file = \"/run/nginx.pid\""),
        "{written}"
    );
    let start = "&& exec /usr/sbin/nginx ";
    assert!(written.contains(start), "{written}");
    std::fs::write(
        &d.config,
        written.replace(start, "&& exec unshare -n /usr/sbin/nginx "),
    )
    .unwrap();
    ok(&d.cli(&["check"]));
    let mut d = d;
    d.launch();
    d.wait_state("nginx", "up", LONG);
    let master: u32 = std::fs::read_to_string(pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(d.pid("nginx"), Some(master));
    let tree: BTreeSet<u32> = d
        .wait_until("nginx's workers", LONG, || {
            let w = workers(master);
            (!w.is_empty()).then_some(w)
        })
        .into_iter()
        .chain([master])
        .collect();
    ok(&d.cli(&["stop", "nginx"]));
    for p in &tree {
        assert!(!alive(*p), "nginx process {p} outlived the stop");
    }
    assert!(!pid_file.exists(), "nginx left its PID file");
}

/// A start command that never returns is followed until `pid_file_timeout`, but neither an
/// operator's stop nor the daemon's shutdown waits for that: the command is stopped with the
/// rest, and nothing starts again.
#[test]
fn a_stop_or_shutdown_does_not_wait_for_a_forking_start_that_never_ends() {
    let token = upkeep_testkit::unique();
    let mut d = daemon(&format!(
        "[services.stuck]\ncommand = \"sleep {token}\"\ntype = \"forking\"\npid_file = \"stuck.pid\"\npid_file_timeout = \"1h\"\n"
    ));
    let starter = || {
        d.wait_until("the start command to run", LONG, || {
            pids_with_cmdline(&format!("sleep {token}"))
                .first()
                .copied()
        })
    };
    let first = starter();
    // Not running yet: nothing to signal.
    let out = d.cli(&["signal", "stuck", "HUP"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not running"), "{}", stderr(&out));
    ok(&d.cli(&["stop", "stuck"]));
    assert_eq!(d.state("stuck"), "stopped");
    assert!(!alive(first), "the start command outlived the stop");
    // A start answers once the daemon is followed (as `systemctl start` does): not yet.
    let mut start = d.cli_spawn(&["start", "stuck"]);
    let second = starter();
    let status = d.signal_daemon(Signal::SIGTERM);
    assert!(status.success(), "daemon exit {status}\n{}", d.daemon_log());
    assert!(!alive(second), "the start command outlived the daemon");
    assert!(pids_with_cmdline(&format!("sleep {token}")).is_empty());
    let log = d.daemon_log();
    assert!(!log.contains("shutdown timeout passed"), "{log}");
    // The start was answered when the shutdown ended its wait.
    start.wait().unwrap();
}

/// Issue 18: a forking service whose PID file has not come yet is `starting` (in `upkeep ls`
/// too), and `upkeep status` says what it waits for; after a stop and a new start, the same.
#[test]
fn issue_18_a_forking_service_waiting_for_its_pid_file_is_starting() {
    let token = upkeep_testkit::unique();
    let d = daemon(&format!(
        "[services.slow]\ncommand = \"sleep {token}\"\ntype = \"forking\"\npid_file = \"slow.pid\"\npid_file_timeout = \"1h\"\n"
    ));
    let starting = |d: &upkeep_testkit::TestDaemon| {
        d.wait_until("slow to be starting", LONG, || {
            (d.state("slow") == "starting").then_some(())
        });
        let ls = stdout(&d.cli(&["ls"]));
        assert!(
            ls.lines()
                .any(|l| l.trim_start().starts_with("slow") && l.contains("starting")),
            "{ls}"
        );
        let status = stdout(&d.cli(&["status", "slow"]));
        assert!(
            status.contains("waiting for its PID file") && status.contains("slow.pid"),
            "{status}"
        );
    };
    starting(&d);
    ok(&d.cli(&["stop", "slow"]));
    assert_eq!(d.state("slow"), "stopped");
    let mut start = d.cli_spawn(&["start", "slow"]);
    starting(&d);
    ok(&d.cli(&["stop", "slow"]));
    start.wait().unwrap();
}

/// Issue 18: two `upkeep add` at once in an empty folder: one makes the file and starts the
/// daemon, the other waits its turn and adds; both services run, both are in the file.
#[test]
fn issue_18_two_adds_at_once_in_an_empty_folder_keep_both_services() {
    let mut d = TestDaemon::prepare(BIN, "");
    let dir = d.dir.path().to_owned();
    std::fs::remove_file(&d.config).unwrap();
    d.data_dir = dir.join(".upkeep");
    let spawn = |name: &str| {
        Command::new(BIN)
            .args(["add", name, "--", "sleep", "100000"])
            .current_dir(&dir)
            .env_remove("UPKEEP_CONFIG")
            .env_remove("UPKEEP_DATA_DIR")
            .env("XDG_CONFIG_HOME", dir.join("no-user-config"))
            .env("UPKEEP_LANG", "en")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("one"), spawn("two"));
    for child in [a, b] {
        ok(&child.wait_with_output().unwrap());
    }
    d.config = dir.join("upkeep.toml");
    let text = std::fs::read_to_string(&d.config).unwrap();
    assert!(
        text.contains("[services.one]") && text.contains("[services.two]"),
        "{text}"
    );
    d.wait_state("one", "up", LONG);
    d.wait_state("two", "up", LONG);
    ok(&fresh_cli(&dir, &["down"], "en"));
}
