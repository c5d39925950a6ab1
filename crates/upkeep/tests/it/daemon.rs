//! The daemon's life: one per data dir, survives its terminal, recovers after being killed.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use upkeep_testkit::{TestDaemon, alive, pids_with_cmdline, unique};

use crate::{BIN, LONG, daemon, stderr, stdout};

#[test]
fn killed_daemon_restarts_services_with_history_and_never_runs_one_twice() {
    let token = unique();
    let mut d = daemon(&format!("[services.s]\ncommand = \"sleep {token}\"\n"));
    d.wait_state("s", "up", LONG);
    let old = d.pid("s").unwrap();
    let events_before = d.events("s").len();

    let status = d.signal_daemon(Signal::SIGKILL);
    assert!(!status.success());
    // The service outlives the killed daemon...
    assert!(alive(old));
    d.launch();
    // ...and the new daemon stops it before starting its own copy.
    let new = d.wait_new_pid("s", old, LONG);
    assert!(!alive(old), "the old copy still runs");
    d.wait_until("exactly one copy to run", LONG, || {
        (pids_with_cmdline(&format!("sleep {token}")) == [new]).then_some(())
    });
    let kinds: Vec<String> = d.events("s").into_iter().map(|e| e.0).collect();
    assert!(kinds.len() > events_before, "history lost: {kinds:?}");
    assert_eq!(
        kinds[0], "started",
        "history starts with the first run: {kinds:?}"
    );
    assert!(kinds.contains(&"stale_stopped".to_string()), "{kinds:?}");
}

#[test]
fn desired_state_survives_a_daemon_restart() {
    let mut d = daemon(
        "[services.a]\ncommand = \"sleep 1000\"\n\n[services.b]\ncommand = \"sleep 1000\"\n",
    );
    d.wait_state("a", "up", LONG);
    d.wait_state("b", "up", LONG);
    assert!(d.cli(&["stop", "b"]).status.success());
    d.signal_daemon(Signal::SIGTERM);
    d.launch();
    d.wait_state("a", "up", LONG);
    // Not a fixed sleep: the daemon's own decision, which its supervisor starts from.
    assert_eq!(d.service("b")["info"]["desired"], "stopped");
    assert_eq!(d.state("b"), "stopped");
}

#[test]
fn graceful_shutdown_stops_every_group() {
    let mut d = daemon("[services.a]\ncommand = \"sleep 1000 & sleep 1000\"\n");
    d.wait_state("a", "up", LONG);
    let pgid = d.pid("a").unwrap();
    let status = d.signal_daemon(Signal::SIGTERM);
    assert!(status.success(), "daemon exit {status}");
    assert!(upkeep_testkit::group_members(pgid).is_empty());
    assert!(!d.socket().exists(), "socket left behind");
}

#[test]
fn second_daemon_on_the_same_data_dir_is_refused_clearly() {
    let d = daemon("[services.a]\ncommand = \"sleep 1000\"\n");
    let out = d.cli(&["daemon"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("already running") && err.contains(&d.daemon_pid().unwrap().to_string()),
        "{err}"
    );
    let out = d.cli(&["up"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("already running"));
}

#[test]
fn control_socket_is_private() {
    let d = daemon("");
    let mode = std::fs::metadata(d.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(&d.data_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
}

#[test]
fn up_survives_the_hangup_of_the_terminal_session_that_started_it_and_down_stops_all() {
    let token = unique();
    let d = TestDaemon::prepare(BIN, &format!("[services.s]\ncommand = \"sleep {token}\"\n"));
    // A new session with a pseudo-terminal as its controlling terminal, as sshd gives a login:
    // run `upkeep up` in it, then hang the terminal up (SIGHUP to the session) and close it.
    let script = format!(
        r#"
import os, pty, signal, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv("/bin/sh", ["sh", "-c", "'{bin}' up -c '{cfg}'; echo UP-DONE; sleep 1000"])
out = b""
deadline = time.time() + 30
while b"UP-DONE" not in out and time.time() < deadline:
    try:
        out += os.read(fd, 1024)
    except OSError:
        break
sys.stdout.write(out.decode(errors="replace"))
os.killpg(pid, signal.SIGHUP)
os.close(fd)
os.waitpid(pid, 0)
"#,
        bin = BIN,
        cfg = d.config.display()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("upkeep daemon started"),
        "{text}\n{}",
        stderr(&out)
    );
    // Daemon and service live on.
    d.wait_state("s", "up", LONG);
    let pid = d.pid("s").unwrap();
    assert!(alive(pid));
    let health = d.api_get("/api/v1/daemon");
    let daemon_pid = health["pid"].as_u64().unwrap() as u32;
    // Fully detached: its own session, no controlling terminal.
    let stat = std::fs::read_to_string(format!("/proc/{daemon_pid}/stat")).unwrap();
    let f: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    assert_eq!(
        f[3],
        daemon_pid.to_string(),
        "session id is the daemon's own"
    );
    assert_eq!(f[4], "0", "no controlling terminal");

    let out = d.cli(&["down"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!alive(daemon_pid) && !alive(pid));
    let out = d.cli(&["ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no upkeep daemon is running"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tells_systemd_it_is_ready_and_pings_the_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let d = TestDaemon::prepare(BIN, "[services.a]\ncommand = \"sleep 1000\"\n");
    let sock_path = d.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // systemd sets WATCHDOG_PID to the service's pid; `exec` keeps the shell's pid.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "WATCHDOG_PID=$$ exec '{BIN}' daemon -c '{}'",
            d.config.display()
        ))
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "200000")
        .env("UPKEEP_LOG", "warn")
        .spawn()
        .unwrap();
    let mut messages = Vec::new();
    let mut buf = [0u8; 512];
    while messages
        .iter()
        .filter(|m: &&String| m.contains("WATCHDOG=1"))
        .count()
        < 2
    {
        let n = sock.recv(&mut buf).expect("a notify message within 20s");
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // Before it: only the services' output pipes, kept in the fd store (`fdstore.rs`).
    let first = messages.iter().find(|m| !m.starts_with("FDSTORE=1\n"));
    assert!(first.is_some_and(|m| m.contains("READY=1")), "{messages:?}");
    // Ready means ready: the API answers.
    assert_eq!(d.api_get("/api/v1/health")["ok"], true);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Break-it finding (session 9): a first start whose port another process holds exited
/// after starting its services, which ran on with no daemon. Every listener is bound first:
/// the start fails naming the key and the address, and nothing runs.
#[test]
fn a_taken_port_ends_the_start_before_any_service_runs() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap();
    let token = unique();
    let mut d = TestDaemon::prepare(
        BIN,
        &format!(
            "[services.s]\ncommand = \"sleep {token}\"\n\n[services.t]\ncommand = \"sleep {token}\"\n"
        ),
    );
    d.add_daemon_keys(&format!("public_listen = \"{taken}\"\n"));
    d.spawn_daemon();
    let status = d.wait_exit(LONG);
    assert!(!status.success(), "the daemon started on a taken port");
    let log = d.daemon_log();
    assert!(
        log.contains(&format!("cannot listen on {taken} (daemon.public_listen)"))
            && log.contains("nothing was started")
            && log.contains("ss -ltnp"),
        "{log}"
    );
    assert_eq!(
        pids_with_cmdline(&format!("sleep {token}")),
        Vec::<u32>::new(),
        "a service runs with no daemon\n{log}"
    );
    assert!(!d.socket().exists(), "a socket file was left");
    // Once the port is free, the same config starts.
    drop(holder);
    d.launch();
    d.wait_state("s", "up", LONG);
}

/// Break-it, session 10: `upkeep up` quoted the log's last lines, an earlier attempt's among
/// them. It quotes only what this attempt wrote, once.
#[test]
fn up_quotes_only_this_attempts_log_lines_once() {
    use std::os::unix::fs::PermissionsExt;
    let mut d = TestDaemon::prepare(BIN, "[services.web]\ncommand = \"sleep 1000\"\n");
    std::fs::create_dir_all(d.data_dir.join("journal")).unwrap();
    std::fs::set_permissions(&d.data_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = d.cli(&["up"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("journal"), "{}", stderr(&out));
    // The next attempt fails for another reason: a port another process holds.
    std::fs::remove_dir(d.data_dir.join("journal")).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    d.add_daemon_keys(&format!("metrics_listen = \"127.0.0.1:{port}\"\n"));
    let out = d.cli(&["up"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(!err.contains("journal"), "{err}");
    assert_eq!(
        err.matches(&format!("127.0.0.1:{port}")).count(),
        1,
        "{err}"
    );
}

/// Break-it, session 12: of four `upkeep up` at once, the losers said "the daemon exited at
/// start" and "already running (pid )". One starts it; each other names its pid.
#[test]
fn concurrent_ups_start_one_daemon_and_the_others_name_it() {
    let d = TestDaemon::prepare(BIN, "[services.a]\ncommand = \"sleep 1000\"\n");
    let ups: Vec<_> = (0..4).map(|_| d.cli_spawn(&["up"])).collect();
    let outs: Vec<_> = ups
        .into_iter()
        .map(|c| c.wait_with_output().expect("up"))
        .collect();
    let pid = d.api_get("/api/v1/daemon")["pid"]
        .as_u64()
        .expect("a daemon answers")
        .to_string();
    let started = outs.iter().filter(|o| o.status.success()).count();
    let all: String = outs
        .iter()
        .map(|o| format!("{}{}\n", stdout(o), stderr(o)))
        .collect();
    let _ = d.cli(&["down"]);
    assert_eq!(started, 1, "{all}");
    for o in outs.iter().filter(|o| !o.status.success()) {
        let err = stderr(o);
        assert!(
            err.contains(&format!("already running (pid {pid})")),
            "{all}"
        );
    }
}
