//! Issue 14, "never twice, never down": each test is a defect found by killing the daemon at
//! bad moments or feeding it hostile input, and fails without its fix.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use upkeep_testkit::{TestDaemon, alive, pgid_of, pids_with_cmdline, unique};

use crate::{BIN, LONG, daemon, stderr};

fn sigkill(pid: u32) {
    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
}

/// Waits until exactly one live process has `needle` in its command line, and returns it.
fn only_one(d: &TestDaemon, needle: &str) -> u32 {
    d.wait_until(
        &format!("exactly one `{needle}`"),
        LONG,
        || match pids_with_cmdline(needle).as_slice() {
            [one] => Some(*one),
            _ => None,
        },
    )
}

/// A1: the daemon is SIGKILLed, then the service's leader too, while no daemon runs. The
/// leader's group lives on in its background child; the next daemon must stop it before it
/// starts a new copy, so that there is one copy, and nothing outlives `upkeep down`.
#[test]
fn issue_14_leader_killed_while_no_daemon_runs_leaves_no_second_copy() {
    let t = unique();
    let (bg, fg) = (format!("sleep 100{t}"), format!("sleep 200{t}"));
    let mut d = daemon(&format!("[services.s]\ncommand = \"{bg} & exec {fg}\"\n"));
    d.wait_state("s", "up", LONG);
    let leader = d.pid("s").unwrap();
    let old_bg = only_one(&d, &bg);

    d.signal_daemon(Signal::SIGKILL);
    sigkill(leader);
    d.wait_until("the leader to be gone", LONG, || {
        (!alive(leader)).then_some(())
    });
    assert!(
        alive(old_bg),
        "the background child lives on without its leader"
    );

    d.launch();
    let new = d.wait_new_pid("s", leader, LONG);
    let new_bg = only_one(&d, &bg);
    assert_ne!(new_bg, old_bg, "the old group's child still runs");
    assert_eq!(pgid_of(new_bg), Some(new));
    assert_eq!(only_one(&d, &fg), new);

    let status = d.signal_daemon(Signal::SIGTERM);
    assert!(status.success());
    assert!(
        pids_with_cmdline(&format!("00{t}")).is_empty(),
        "left after shutdown"
    );
}

/// A2: a process that left the service's process group (a double fork with `setsid`) is
/// still the service's: stopped with it while the daemon runs, cleaned before a restart after
/// a crash, and found by the next daemon after a SIGKILL.
#[test]
fn issue_14_processes_that_left_the_group_are_stopped_with_the_service() {
    let t = unique();
    let (esc, fg) = (format!("sleep 300{t}"), format!("sleep 400{t}"));
    let mut d = daemon(&format!(
        "[services.s]\ncommand = \"setsid {esc} & exec {fg}\"\nbackoff_min = \"10ms\"\n"
    ));
    d.wait_state("s", "up", LONG);
    let leader = d.pid("s").unwrap();
    let escapee = only_one(&d, &esc);
    assert_ne!(pgid_of(escapee), Some(leader), "setsid left the group");

    // The leader crashes: its escapee is ended before the new copy starts.
    sigkill(leader);
    let leader = d.wait_new_pid("s", leader, LONG);
    let escapee2 = only_one(&d, &esc);
    assert_ne!(escapee2, escapee);
    assert!(!alive(escapee));

    // The daemon dies: the next one finds the escapee and ends it.
    d.signal_daemon(Signal::SIGKILL);
    d.launch();
    let leader = d.wait_new_pid("s", leader, LONG);
    let escapee3 = only_one(&d, &esc);
    assert_ne!(escapee3, escapee2);
    assert!(!alive(escapee2));

    // A stop ends it too.
    let out = d.cli(&["stop", "s"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!alive(leader) && !alive(escapee3));
    assert!(pids_with_cmdline(&format!("00{t}")).is_empty());
}

/// D15: a row in the database names what the last daemon ran; an edited row must never get
/// a stranger killed. Start-up acts only on processes its own records prove its own.
#[test]
fn issue_14_an_edited_database_row_never_gets_a_stranger_killed() {
    let t = unique();
    let mut d = daemon(&format!("[services.s]\ncommand = \"sleep 500{t}\"\n"));
    d.wait_state("s", "up", LONG);
    d.signal_daemon(Signal::SIGKILL);
    let mut stranger = Command::new("sleep")
        .arg(format!("600{t}"))
        .process_group(0)
        .spawn()
        .unwrap();
    let pid = stranger.id();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ticks: u64 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    d.store_sql(&format!(
        "UPDATE services SET pid = {pid}, start_ticks = {ticks} WHERE node = '{{node}}' AND name = 's'"
    ));
    d.launch();
    d.wait_state("s", "up", LONG);
    only_one(&d, &format!("sleep 500{t}"));
    assert!(alive(pid), "a stranger was killed on the database's word");
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

/// D15: a symlink in the data dir is never followed: not for the lock file (which the daemon
/// truncates), not for a service's log.
#[test]
fn issue_14_symlinks_in_the_data_dir_are_refused() {
    let d = TestDaemon::prepare(BIN, "[services.s]\ncommand = \"sleep 1000\"\n");
    std::fs::create_dir_all(&d.data_dir).unwrap();
    let victim = d.data_dir.parent().unwrap().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, d.data_dir.join("upkeep.lock")).unwrap();
    let out = d.cli(&["daemon"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("upkeep.lock"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    // Nor for the log `upkeep up` writes before the daemon starts.
    std::fs::remove_file(d.data_dir.join("upkeep.lock")).unwrap();
    std::os::unix::fs::symlink(&victim, d.data_dir.join("upkeep.log")).unwrap();
    let out = d.cli(&["up"]);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

/// D16: a data dir that exists is never chmodded; a shared one is refused with its reason.
#[test]
fn issue_14_a_shared_data_dir_is_refused_and_left_as_it_was() {
    use std::os::unix::fs::PermissionsExt;
    let d = TestDaemon::prepare(BIN, "");
    std::fs::create_dir_all(&d.data_dir).unwrap();
    std::fs::set_permissions(&d.data_dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = d.cli(&["daemon"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("writable by others"),
        "{}",
        stderr(&out)
    );
    let mode = std::fs::metadata(&d.data_dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o1777);
}

/// A3: `upkeep down` returns as soon as the daemon is gone, even when the daemon is an
/// unreaped child of the caller (a zombie answers `kill(pid, 0)`).
#[test]
fn issue_14_down_does_not_wait_on_a_zombie_daemon() {
    let d = daemon("[services.s]\ncommand = \"sleep 1000\"\n");
    d.wait_state("s", "up", LONG);
    let started = std::time::Instant::now();
    // The daemon is the test's child and is not reaped until `d` is dropped.
    let out = d.cli(&["down"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Without the fix, `down` waits out its full 120 s.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "down waited on a zombie"
    );
}

/// The daemon's open descriptors.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// C10: idle connections by the thousand, on the metrics port and on the control socket,
/// neither take the daemon's descriptors nor starve its probes; idle ones are closed.
#[test]
fn issue_14_idle_connections_by_the_thousand_are_capped_and_timed_out() {
    use std::io::Read;
    let port = upkeep_testkit::free_port();
    let mut d = TestDaemon::prepare(
        BIN,
        "[services.web]\ncommand = \"sleep 1000\"\nprobes = [{ kind = \"process\", every = \"100ms\", grace = \"0s\" }]\n",
    );
    d.add_daemon_keys(&format!("metrics_listen = \"127.0.0.1:{port}\"\n"));
    d.launch();
    d.wait_state("web", "up", LONG);
    let daemon = d.daemon_pid().unwrap();
    let before = open_fds(daemon);

    // Idle connections by the thousand on the metrics port (cap 64) and on the control
    // socket (cap 4096: the owner's alone, roomy for log followers).
    let tcp: Vec<_> = (0..1500)
        .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
        .collect();
    let unix: Vec<_> = (0..4200)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(d.socket()).ok())
        .collect();
    // Whatever got through the listen backlogs, the daemon holds at most its caps and a few
    // in passing.
    let held = open_fds(daemon).saturating_sub(before);
    assert!(
        held <= 64 + 4096 + 16,
        "the daemon holds {held} more descriptors"
    );
    // Past the cap, the connections that have asked nothing for longest give way (issue 17):
    // a command still gets in. (A 503 is for a listener whose every connection is busy with
    // a request: upkeep-web's serve.rs tests it.)
    let out = d.cli(&["ls"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The socket's flood ends; with the TCP flood still on, the daemon answers and its
    // service is not disturbed.
    drop(unix);
    d.wait_until("the daemon to answer again", LONG, || {
        d.try_api("GET", "/api/v1/health", None)
            .ok()
            .filter(|(code, _)| *code == 200)
    });
    assert_eq!(d.state("web"), "up");
    let restarts = d.events("web").iter().filter(|e| e.0 == "started").count();
    assert_eq!(restarts, 1);

    // Once the flood ends, the port serves again; an idle connection is closed by the daemon
    // once its header deadline passes.
    drop(tcp);
    d.wait_until("a scrape over TCP to be served", LONG, || {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).ok()?;
        reply.starts_with("HTTP/1.1 200").then_some(())
    });
    let started = std::time::Instant::now();
    let mut one = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    one.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut buf = [0u8; 16];
    let n = one
        .read(&mut buf)
        .expect("closed, not timed out on our side");
    assert_eq!(n, 0, "the daemon closes an idle connection");
    // Closed by its header deadline (10 s), not refused at once.
    assert!(started.elapsed() >= Duration::from_secs(5));
}

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// C11: following the log of a name that is not configured is a 404 and keeps nothing.
#[test]
fn issue_14_following_unknown_names_keeps_nothing() {
    let d = daemon("[services.s]\ncommand = \"sleep 1000\"\n");
    d.wait_state("s", "up", LONG);
    let pid = d.daemon_pid().unwrap();
    let (code, body) = d
        .try_api("GET", "/api/v1/services/nobody/logs?follow=true", None)
        .unwrap();
    assert_eq!(code, 404, "{}", String::from_utf8_lossy(&body));
    let before = status_kib(pid, "VmRSS:");
    for i in 0..5000 {
        let (code, _) = d
            .try_api(
                "GET",
                &format!("/api/v1/services/n{i}/logs?follow=true"),
                None,
            )
            .unwrap();
        assert_eq!(code, 404);
    }
    // Each name used to keep a follow channel of its own, about 10 KiB: 50 MB here.
    let grown = status_kib(pid, "VmRSS:").saturating_sub(before);
    assert!(grown < 16 * 1024, "the daemon grew by {grown} KiB");
}

/// C12: `logs -n` with a huge count on a large log streams it from the file in bounded
/// memory, instead of holding (and copying, block by block) the whole log.
#[test]
fn issue_14_a_huge_tail_of_a_large_log_is_streamed_in_bounded_memory() {
    use std::io::Write;
    let d = daemon("[services.s]\ncommand = \"sleep 1000\"\nlog = { max_size = \"1GiB\" }\n");
    d.wait_state("s", "up", LONG);
    let pid = d.daemon_pid().unwrap();
    let log = d.data_dir.join("logs/s.out.log");
    {
        let mut f = std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&log)
                .unwrap(),
        );
        for i in 0..1_000_000u32 {
            writeln!(
                f,
                "2026-11-25T00:00:00.000Z line {i:>9} of a large log, padded to 64 bytes"
            )
            .unwrap();
        }
    }
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size > 60_000_000);
    let peak_before = status_kib(pid, "VmHWM:");
    let out = d.cli(&["logs", "s", "-n", "99999999"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout.len() as u64, size);
    assert!(
        out.stdout
            .ends_with(b"line    999999 of a large log, padded to 64 bytes\n")
    );
    let peak = status_kib(pid, "VmHWM:").saturating_sub(peak_before);
    assert!(
        peak < 16 * 1024,
        "the daemon's peak memory grew by {peak} KiB"
    );
    // And the last lines are still the last lines.
    let out = d.cli(&["logs", "s", "-n", "2"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("line    999999"), "{text}");
}

/// B6: a reload whose revision cannot be stored (the database locked past its busy timeout)
/// changes nothing and says so; the daemon keeps answering, on the old config.
#[test]
fn issue_14_a_reload_that_cannot_be_stored_changes_nothing() {
    // A database of its own: the lock would stall every other test's daemon too.
    let mut d =
        TestDaemon::prepare(BIN, "[services.a]\ncommand = \"sleep 1000\"\n").with_own_database();
    d.launch();
    d.wait_state("a", "up", LONG);
    d.write_services(
        "[services.a]\ncommand = \"sleep 1000\"\n\n[services.b]\ncommand = \"sleep 1000\"\n",
    );
    // Another process holds the database's write lock for longer than the daemon waits.
    let mut holder = d.lock_store(9);
    let out = d.cli(&["reload"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("nothing was changed"),
        "{}",
        stderr(&out)
    );
    // Nothing changed, and everything still answers.
    let ls = d.cli(&["ls", "--json"]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    let services: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(services.as_array().unwrap().len(), 1, "{services}");
    assert!(d.try_api("GET", "/metrics", None).unwrap().0 == 200);
    holder.wait().unwrap();
    // Once the lock is gone, the same reload goes through.
    let out = d.cli(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_state("b", "up", LONG);
}

/// E21: a daemon killed in the middle of things: the next one resumes maintenance until its
/// end and resolves the open incident once the service is back.
#[test]
fn issue_14_a_restarted_daemon_resumes_maintenance_and_resolves_open_incidents() {
    let (mut d, listener) = crate::external_tcp(1);
    let addr = listener.local_addr().unwrap();
    // An outage with an incident open...
    drop(listener);
    d.wait_state("db", "down", LONG);
    d.wait_until("an open incident", LONG, || {
        let incidents = d.service("db")["incidents"].as_array()?.clone();
        (incidents.len() == 1 && incidents[0]["resolved"].is_null()).then_some(())
    });
    // ...then the daemon dies, and the database comes back while no daemon runs.
    d.signal_daemon(Signal::SIGKILL);
    let _back = std::net::TcpListener::bind(addr).unwrap();
    d.launch();
    d.wait_state("db", "up", LONG);
    d.wait_until("the incident to be resolved", LONG, || {
        let incidents = d.service("db")["incidents"].as_array()?.clone();
        (incidents.len() == 1 && !incidents[0]["resolved"].is_null()).then_some(())
    });

    // Maintenance in progress survives a SIGKILL of the daemon.
    let out = d.cli(&["maintenance", "db", "--for", "1h", "--reason", "disk swap"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.signal_daemon(Signal::SIGKILL);
    d.launch();
    d.wait_state("db", "maintenance", LONG);
    let detail = d.service("db");
    assert_eq!(
        detail["info"]["maintenance"]["reason"], "disk swap",
        "{detail}"
    );
    assert!(
        !detail["info"]["maintenance"]["until"].is_null(),
        "{detail}"
    );
}

/// E21: the time between a killed daemon and the next is nobody's: counted apart as
/// unwatched, not in the last recorded state.
#[test]
fn issue_14_time_without_a_daemon_is_counted_as_unwatched() {
    let mut d = daemon("[services.s]\ncommand = \"sleep 1000\"\n");
    d.wait_state("s", "up", LONG);
    d.signal_daemon(Signal::SIGKILL);
    let gone = std::time::Instant::now();
    std::thread::sleep(Duration::from_millis(1500));
    d.launch();
    let away = gone.elapsed();
    d.wait_state("s", "up", LONG);
    let out = d.cli(&["report", "--since", "1h", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &r["current"]["services"]["s"];
    let unwatched = s["unknown_ms"].as_u64().unwrap();
    // At least the time no daemon ran, at most that plus the moment before the kill.
    assert!(unwatched >= 1500, "{s}");
    assert!(unwatched <= away.as_millis() as u64 + 5_000, "{s}");
    let kinds: Vec<_> = d
        .events("s")
        .into_iter()
        .map(|e| e.1["to"].clone())
        .collect();
    assert!(kinds.contains(&serde_json::json!("unknown")), "{kinds:?}");
}

/// What an exec probe leaves running is ended with its check, and nothing a probe started
/// survives `upkeep down`, not even a `setsid` escapee (found by a tester: they piled up).
#[test]
fn issue_14_exec_probes_leave_nothing_behind() {
    let t = unique();
    let mut d = daemon(&format!(
        "[services.p]\ncommand = \"sleep 1000\"\nprobes = [\n  {{ kind = \"exec\", name = \"bg\", command = \"sleep 71{t} & true\", every = \"100ms\" }},\n  {{ kind = \"exec\", name = \"escape\", command = \"setsid sleep 72{t} & true\", every = \"100ms\" }},\n]\n"
    ));
    d.wait_state("p", "up", LONG);
    d.wait_probe_checked_for("p", "bg", Duration::from_millis(1000));
    // Background jobs of the probe's group die with each check: at most the current one.
    assert!(pids_with_cmdline(&format!("sleep 71{t}")).len() <= 1);
    let status = d.signal_daemon(Signal::SIGTERM);
    assert!(status.success());
    assert!(pids_with_cmdline(&format!("sleep 71{t}")).is_empty());
    assert!(
        pids_with_cmdline(&format!("sleep 72{t}")).is_empty(),
        "setsid escapees of a probe survived the daemon"
    );
}

/// Signals whose default action ends a process do not end the daemon (and orphan every
/// service): SIGUSR1, SIGUSR2 and SIGALRM are logged and ignored; SIGQUIT stops it cleanly.
/// Its services still get the default actions (nginx reopens its logs on SIGUSR1).
#[test]
fn issue_14_stray_signals_do_not_kill_the_daemon() {
    let mut d = daemon("[services.s]\ncommand = \"sleep 1000\"\n");
    d.wait_state("s", "up", LONG);
    let daemon_pid = d.daemon_pid().unwrap();
    for sig in [Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGALRM] {
        kill(Pid::from_raw(daemon_pid as i32), sig).unwrap();
    }
    d.wait_until("the daemon to log the ignored signals", LONG, || {
        (d.daemon_log().matches("signal ignored").count() == 3).then_some(())
    });
    assert_eq!(d.state("s"), "up");
    // A service's SIGUSR1 is its own default: it ends a `sleep`.
    let pid = d.pid("s").unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGUSR1).unwrap();
    d.wait_new_pid("s", pid, LONG);
    // SIGQUIT is a clean stop.
    let status = d.signal_daemon(Signal::SIGQUIT);
    assert!(status.success(), "{status}");
}

/// What the store says of `name` once what state decided is stored (a reload's answer waits
/// for it): its `started` events and its incidents as (id, open).
fn runs_and_incidents(d: &TestDaemon, name: &str) -> (usize, Vec<(i64, bool)>) {
    let out = d.cli(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let started = d
        .events(name)
        .iter()
        .filter(|(kind, _)| kind == "started")
        .count();
    let incidents = d
        .api_get(&format!("/api/v1/incidents?limit=100&service={name}"))
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_i64().unwrap(), i["resolved"].is_null()))
        .collect();
    (started, incidents)
}

/// Break-it (session 11): a `restart = "never"` service that has exited was run again by the
/// next daemon after a `kill -9` (its incident resolved, then reopened when it exited
/// again). A daemon killed, or stopped and started, keeps it exited, as `upkeep upgrade`
/// does, with its incident open as it was, and `upkeep start` still runs it.
#[test]
fn an_exited_service_stays_exited_through_kill_9_and_a_restart_of_the_daemon() {
    // `z` starts after `once` and is up only once every service had its start.
    let mut d = daemon(
        "[services.once]\ncommand = [\"sh\", \"-c\", \"exit 3\"]\nrestart = \"never\"\nincident_after = \"0s\"\n\n\
         [services.z]\ncommand = \"sleep 1000\"\n",
    );
    d.wait_state("once", "exited", LONG);
    d.wait_state("z", "up", LONG);
    let (started, incidents) = runs_and_incidents(&d, "once");
    assert_eq!(started, 1);
    assert!(matches!(incidents.as_slice(), [(_, true)]), "{incidents:?}");
    for signal in [Signal::SIGKILL, Signal::SIGTERM] {
        let z = d.pid("z").unwrap();
        d.signal_daemon(signal);
        d.launch();
        d.wait_new_pid("z", z, LONG);
        d.wait_state("z", "up", LONG);
        assert_eq!(d.state("once"), "exited", "after {signal}");
        assert_eq!(
            d.service("once")["info"]["last_exit"]["code"],
            3,
            "after {signal}: {}",
            d.service("once")
        );
        let (runs, now) = runs_and_incidents(&d, "once");
        assert_eq!(runs, started, "after {signal}: run again");
        // Killed, the daemon leaves its incident open; stopped, it ends the outage with
        // every service's (a stop on purpose): either way, no other incident.
        let ids = |list: &[(i64, bool)]| list.iter().map(|i| i.0).collect::<Vec<_>>();
        assert_eq!(ids(&now), ids(&incidents), "after {signal}");
        if signal == Signal::SIGKILL {
            assert_eq!(now, incidents, "after {signal}");
        }
        let kinds: Vec<String> = d.events("once").into_iter().map(|(k, _)| k).collect();
        assert!(!kinds.contains(&"incident_reopened".into()), "{kinds:?}");
        if signal == Signal::SIGKILL {
            assert!(!kinds.contains(&"incident_resolved".into()), "{kinds:?}");
        }
    }
    // An operator's start runs it.
    let out = d.cli(&["start", "once"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_until("a second run", LONG, || {
        (runs_and_incidents(&d, "once").0 == started + 1).then_some(())
    });
}

/// Break-it, session 12: a second daemon with another data dir (`--data-dir`, or
/// `UPKEEP_DATA_DIR` exported to reach a daemon) ran the same config, every service twice.
/// It is refused, naming the daemon that runs it.
#[test]
fn a_second_daemon_on_the_same_config_is_refused_whatever_its_data_dir() {
    let sleep = format!("sleep 77{}", unique() % 100_000);
    let d = daemon(&format!("[services.only]\ncommand = \"{sleep}\"\n"));
    d.wait_state("only", "up", LONG);
    let other = d.dir.path().join("other-data");
    let out = d.cli(&["--data-dir", other.to_str().unwrap(), "up"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("already runs the config file"), "{err}");
    let pid = d.daemon_pid().unwrap().to_string();
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert_eq!(pids_with_cmdline(&sleep).len(), 1, "the service runs twice");
}

/// Issue 18: a `failed` service (a crash loop given up on) was started again by the next
/// daemon after a `kill -9`, or after a stop and a start of the daemon: three more runs of
/// a program known to crash, each time. As under systemd (a failed unit stays failed until
/// it is started or reset), it stays failed, with its restart count and last exit, until an
/// operator starts it or its config changes.
#[test]
fn a_failed_service_stays_failed_through_kill_9_and_a_restart_of_the_daemon() {
    let crash = "command = [\"sh\", \"-c\", \"exit 3\"]\nrestart = \"always\"\nbackoff_min = \"0s\"\nmax_restarts = 2\nwindow = \"1h\"\n";
    let z = "[services.z]\ncommand = \"sleep 1000\"\n";
    let mut d = daemon(&format!("[services.f]\n{crash}\n{z}"));
    d.wait_state("f", "failed", LONG);
    d.wait_state("z", "up", LONG);
    let (started, _) = runs_and_incidents(&d, "f");
    assert_eq!(started, 3);
    let restart = |d: &mut TestDaemon, signal: Signal| {
        let z = d.pid("z").unwrap();
        d.signal_daemon(signal);
        d.launch();
        d.wait_new_pid("z", z, LONG);
        d.wait_state("z", "up", LONG);
    };
    for signal in [Signal::SIGKILL, Signal::SIGTERM] {
        restart(&mut d, signal);
        assert_eq!(d.state("f"), "failed", "after {signal}");
        let f = d.service("f");
        assert_eq!(f["info"]["restarts"], 2, "after {signal}: {f}");
        assert_eq!(f["info"]["last_exit"]["code"], 3, "after {signal}: {f}");
        let (runs, _) = runs_and_incidents(&d, "f");
        assert_eq!(runs, started, "after {signal}: run again");
    }
    // An operator's start runs it (and it fails again, after its three runs).
    let out = d.cli(&["start", "f"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_until("three more runs", LONG, || {
        (runs_and_incidents(&d, "f").0 == started + 3).then_some(())
    });
    d.wait_state("f", "failed", LONG);
    // Its config changed while no daemon ran: the next daemon runs it.
    d.signal_daemon(Signal::SIGKILL);
    d.write_services(&format!(
        "[services.f]\ncommand = \"sleep 1000\"\nrestart = \"always\"\n\n{z}"
    ));
    d.launch();
    d.wait_state("f", "up", LONG);
    assert_eq!(runs_and_incidents(&d, "f").0, started + 4);
}
