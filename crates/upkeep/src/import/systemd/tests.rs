//! Tests of the systemd mapping on made-up unit files (Debian's own are read end to end:
//! tests/it/import.rs).

use super::*;
use crate::import::Command;

/// Imports the unit `name` written with `text` into a temp dir.
fn import(name: &str, text: &str) -> Result<Service, ImportError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let found = Found {
        name: name.to_owned(),
        path: path.clone(),
    };
    let mut problems = Vec::new();
    let specs = Specifiers::for_unit(name, &path, &[('H', "host1".into())]);
    let service = unit_service(&found, &specs, &mut problems);
    ImportError::all(problems)?;
    Ok(service.expect("a service with no problem"))
}

fn notes(s: &Service) -> Vec<String> {
    s.notes
        .iter()
        .map(|n| format!("{}: {}", n.setting, n.reason))
        .collect()
}

#[test]
fn maps_a_simple_service() {
    let s = import(
        "web.service",
        "[Unit]\nDescription=Web app\nAfter=network.target db.service\nRequires=db.service\nStartLimitBurst=4\nStartLimitIntervalSec=30\n\n[Service]\nType=exec\nUser=root\nWorkingDirectory=/tmp\nEnvironment=\"GREETING=hello world\" MODE=%H\nEnvironment=PORT=8080\nExecStart=/usr/bin/python3 -m http.server ${PORT}\nRestart=always\nRestartSec=2s\nKillSignal=INT\nTimeoutStopSec=1min 30s\nMemoryMax=512M\nProtectSystem=strict\nPrivateTmp=yes\nNoNewPrivileges=true\nLimitNOFILE=65536\nStandardOutput=journal\n\n[Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    assert_eq!(s.name.as_str(), "web");
    assert_eq!(s.description.as_deref(), Some("Web app"));
    // `${PORT}` is one word of the environment's value: a shell line keeps it one.
    assert_eq!(
        s.command,
        Command::Shell("exec /usr/bin/python3 -m http.server \"${PORT}\"".into())
    );
    assert_eq!(s.user.as_deref(), Some("root"));
    assert_eq!(s.cwd.as_deref(), Some("/tmp"));
    let env: Vec<(&str, &str)> = s
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        env,
        [
            ("GREETING", "hello world"),
            ("MODE", "host1"),
            ("PORT", "8080")
        ]
    );
    assert_eq!(s.restart, Some(RestartPolicy::Always));
    assert_eq!(
        (s.backoff_min, s.backoff_max),
        (Some(Duration::from_secs(2)), Some(Duration::from_secs(2)))
    );
    assert_eq!(s.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(s.stop_timeout, Some(Duration::from_secs(90)));
    assert_eq!(
        (s.max_restarts, s.window),
        (Some(4), Some(Duration::from_secs(30)))
    );
    assert_eq!(s.memory_max, Some(512 << 20));
    assert_eq!(
        s.pending,
        [(
            "Requires=db.service After=db.service".to_owned(),
            Pending::DependsOn(vec!["db".into()])
        )]
    );
    assert_eq!(
        notes(&s),
        [
            "After=network.target: ordering against systemd targets and other units; upkeep starts its services once it runs",
            "LimitNOFILE=65536: process limits and priorities: upkeep does not set them (wrap the command with prlimit or nice)",
            "ProtectSystem=strict, PrivateTmp=yes, NoNewPrivileges=true: sandboxing: upkeep does not sandbox services (run them under a user of their own)",
            "StandardOutput=journal: upkeep captures output itself, into <data_dir>/logs/NAME.{out,err}.log",
        ]
    );
}

#[test]
fn forking_notify_and_prefixes_become_notes_and_pending_settings() {
    let s = import(
        "daemon.service",
        "[Service]\nType=forking\nPIDFile=/run/d.pid\nExecStartPre=-/bin/false\nExecStartPre=/bin/true\nExecStart=@/bin/sleep sleeper 1000\nExecReload=/bin/kill -s USR2 $MAINPID\nExecStop=/bin/kill -QUIT ${MAINPID}\nKillMode=mixed\nRuntimeDirectory=d d2\nRuntimeDirectoryMode=0750\n",
    )
    .unwrap();
    assert_eq!(
        s.command,
        Command::Shell(
            "mkdir -p -m 0750 /run/d /run/d2 && { /bin/false || true; } && /bin/true && exec /bin/sleep 1000".into()
        )
    );
    // Followed through its PID file: it runs as imported.
    assert_eq!(s.autostart, None);
    assert_eq!(s.stop_signal.as_deref(), Some("SIGQUIT"));
    assert_eq!(
        s.pending,
        [
            (
                "Type=forking".to_owned(),
                Pending::Forking {
                    pid_file: Some("/run/d.pid".into())
                }
            ),
            (
                "ExecReload=/bin/kill -s USR2 $MAINPID".to_owned(),
                Pending::ReloadSignal("SIGUSR2".into())
            ),
        ]
    );
    let n = notes(&s);
    assert!(
        n.iter().any(|n| n.starts_with("argv[0] sleeper: ")),
        "{n:?}"
    );
    assert!(n.iter().any(|n| n.starts_with("KillMode=mixed: ")), "{n:?}");
    assert!(
        !n.iter().any(|n| n.starts_with("autostart = false: ")),
        "{n:?}"
    );
    // Without a PID file there is nothing to follow it by: it is not started.
    let s = import(
        "nopid.service",
        "[Service]\nType=forking\nExecStart=/bin/sleep 1000\n",
    )
    .unwrap();
    assert_eq!(s.autostart, Some(false));
    let s = import("n.service", "[Service]\nType=notify\nExecStart=-/bin/sleep 5\nUser=nobody\nExecStartPre=+/bin/true\nRuntimeDirectory=n\n").unwrap();
    assert_eq!(
        s.pending,
        [(
            "Type=notify".to_owned(),
            Pending::ReadyNotify {
                timeout: None,
                watchdog: None
            }
        )]
    );
    let n = notes(&s);
    assert!(n.iter().any(|n| n.starts_with("RuntimeDirectory=n: upkeep does not make runtime folders: create /run/n owned by nobody")), "{n:?}");
    assert!(
        n.iter()
            .any(|n| n.starts_with("ExecStartPre=+/bin/true: `+` ran it with full privileges")),
        "{n:?}"
    );
    assert!(
        n.iter()
            .any(|n| n.starts_with("ExecStart=-/bin/sleep 5: `-` made systemd count")),
        "{n:?}"
    );
}

#[test]
fn environment_references_make_a_shell_line() {
    let s = import(
        "e.service",
        "[Service]\nEnvironment=OPTS=\"-a -b\"\nExecStart=/bin/echo $OPTS --x=${OPTS} $$HOME\n",
    )
    .unwrap();
    assert_eq!(
        s.command,
        Command::Shell("exec /bin/echo $OPTS '--x='\"${OPTS}\" '$HOME'".into())
    );
    let s = import("e.service", "[Service]\nExecStart=:/bin/echo $OPTS\n").unwrap();
    assert_eq!(
        s.command,
        Command::Argv(vec!["/bin/echo".into(), "$OPTS".into()])
    );
}

#[test]
fn environment_files_and_folders_that_may_be_missing() {
    let s = import(
        "f.service",
        "[Service]\nEnvironmentFile=-/nonexistent/env\nEnvironmentFile=/etc/hostname\nEnvironmentFile=/etc/os-release\nWorkingDirectory=-/nonexistent\nExecStart=/bin/true\n",
    )
    .unwrap();
    assert_eq!(s.env_file.as_deref(), Some("/etc/hostname"));
    assert_eq!(s.cwd, None);
    let n = notes(&s);
    assert_eq!(n.len(), 3, "{n:?}");
    assert!(
        n[0].starts_with("WorkingDirectory=-/nonexistent: the folder does not exist"),
        "{n:?}"
    );
    assert!(
        n[1].starts_with("EnvironmentFile=-/nonexistent/env: the file does not exist"),
        "{n:?}"
    );
    assert!(
        n[2].starts_with("EnvironmentFile=/etc/os-release: upkeep reads one env_file"),
        "{n:?}"
    );
    let s = import(
        "h.service",
        "[Service]\nWorkingDirectory=~\nExecStart=/bin/true\n",
    )
    .unwrap();
    assert_eq!(s.cwd.as_deref(), Some("/root"));
}

#[test]
fn templates_and_specifiers() {
    let s = import(
        "getty@tty1.service",
        "[Service]\nExecStart=/bin/echo %i %n %t/%p %d\n",
    )
    .unwrap();
    assert_eq!(s.name.as_str(), "getty-tty1");
    // %d cannot be expanded outside systemd: the value stays as written, with a note.
    assert_eq!(
        s.command,
        Command::Argv(vec![
            "/bin/echo".into(),
            "%i".into(),
            "%n".into(),
            "%t/%p".into(),
            "%d".into()
        ])
    );
    assert!(
        notes(&s)
            .iter()
            .any(|n| n.contains("%d cannot be expanded")),
        "{:?}",
        notes(&s)
    );
    let s = import(
        "getty@tty1.service",
        "[Service]\nExecStart=/bin/echo %i %n %t/%p 100%%\n",
    )
    .unwrap();
    assert_eq!(
        s.command,
        Command::Argv(vec![
            "/bin/echo".into(),
            "tty1".into(),
            "getty@tty1.service".into(),
            "/run/getty".into(),
            "100%".into()
        ])
    );
}

#[test]
fn restart_policies_and_timeouts() {
    let restart = |v: &str| {
        import(
            "r.service",
            &format!("[Service]\nExecStart=/bin/true\n{v}\n"),
        )
        .unwrap()
    };
    assert_eq!(restart("").restart, Some(RestartPolicy::Never));
    assert_eq!(
        restart("Restart=on-failure").restart,
        Some(RestartPolicy::OnFailure)
    );
    assert_eq!(
        restart("Restart=on-abnormal").restart,
        Some(RestartPolicy::OnFailure)
    );
    assert_eq!(
        restart("Type=oneshot\nRestart=always").restart,
        Some(RestartPolicy::Never)
    );
    assert_eq!(
        restart("TimeoutSec=500ms").stop_timeout,
        Some(Duration::from_millis(500))
    );
    assert_eq!(restart("TimeoutStopSec=infinity").stop_timeout, None);
}

#[test]
fn malformed_units_are_errors_with_their_line() {
    let err = |text: &str| import("bad.service", text).unwrap_err().to_string();
    assert!(
        err("[Service]\nExecStart=/bin/true\nnot a line\n")
            .ends_with("bad.service:3: neither a [Section] nor a `Key=Value` line")
    );
    assert!(
        err("[Service]\nUser=root\n")
            .ends_with("bad.service:1: bad.service has no ExecStart=: there is nothing to run")
    );
    assert!(
        err("[Service]\nExecStart=/bin/echo \"open\n")
            .ends_with("bad.service:2: ExecStart: a \" quote is never closed")
    );
    assert!(err("[Service]\nExecStart=/bin/a\nExecStart=/bin/b\n").ends_with("bad.service:3: ExecStart: more than one ExecStart= (only Type=oneshot may have several)"));
    assert!(
        err("[Service]\nExecStart=/bin/a\nRestart=sometimes\n")
            .ends_with("bad.service:3: Restart: `sometimes` is not a Restart= value")
    );
    assert!(
        err("[Service]\nExecStart=/bin/a\nRestartSec=soon\n")
            .ends_with("bad.service:3: RestartSec: `soon` is not a time span")
    );
    assert!(
        err("[Service]\nExecStart=/bin/a\nEnvironment=NOVALUE\n")
            .ends_with("bad.service:3: Environment: `NOVALUE` is not NAME=value")
    );
}

/// Only the first problem of a unit was reported: fixed one by one, each import found the
/// next. Every problem now, each at its line, in the order of the lines.
#[test]
fn every_problem_of_a_unit_is_reported_with_its_line() {
    let e = import(
        "bad.service",
        "[Service]\nUser=root\nExecStart=/bin/echo \"open\nRestart=sometimes\nRestartSec=soon\nnot a line\nEnvironment=NOVALUE\nTimeoutStopSec=later\n[Unit]\nStartLimitBurst=many\n",
    )
    .unwrap_err();
    let text = e.to_string();
    let lines: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.rsplit_once('/').map_or(l, |(_, place)| place))
        .collect();
    assert_eq!(
        lines,
        [
            "bad.service:3: ExecStart: a \" quote is never closed",
            "bad.service:4: Restart: `sometimes` is not a Restart= value",
            "bad.service:5: RestartSec: `soon` is not a time span",
            "bad.service:6: neither a [Section] nor a `Key=Value` line",
            "bad.service:7: Environment: `NOVALUE` is not NAME=value",
            "bad.service:8: TimeoutStopSec: `later` is not a time span",
            "bad.service:10: StartLimitBurst: not a number",
        ],
        "{text}"
    );
    assert!(
        text.starts_with("7 problems, nothing was imported\n"),
        "{text}"
    );
}

#[test]
fn only_service_units_are_found() {
    assert!(locate("ssh.socket").is_err());
    let e = locate("surely-no-such-unit-here").unwrap_err().to_string();
    assert!(
        e.contains("no unit surely-no-such-unit-here.service in /etc/systemd/system"),
        "{e}"
    );
}

#[test]
fn a_zero_or_infinite_stop_timeout_means_no_timeout_not_kill_at_once() {
    for value in ["0", "infinity"] {
        let s = import(
            "x",
            &format!("[Service]\nExecStart=/bin/sleep 1\nTimeoutSec={value}\n"),
        )
        .unwrap();
        assert_eq!(s.stop_timeout, None, "TimeoutSec={value}");
        assert!(
            notes(&s).iter().any(|n| n.contains("no timeout")),
            "{:?}",
            notes(&s)
        );
    }
}

/// Break-it, session 12: `e2scrub@` imported `e2scrub-` with `%i` empty.
#[test]
fn a_template_without_an_instance_is_refused_naming_how_to_give_one() {
    for arg in [
        "e2scrub@",
        "e2scrub@.service",
        "/tmp/somewhere/e2scrub@.service",
    ] {
        let e = locate(arg).unwrap_err().to_string();
        assert_eq!(
            e,
            "e2scrub@.service is a template: name an instance, e.g. `upkeep import systemd e2scrub@sda1` (what follows @ is %i)",
            "{arg}"
        );
    }
}

/// Break-it, session 12: WatchdogSec= and TimeoutStartSec= were dropped with a note saying
/// upkeep had no watchdog and no start timeout.
#[test]
fn a_notify_units_start_timeout_and_watchdog_are_carried_over() {
    let ready = |s: &Service| {
        s.pending
            .iter()
            .find(|(k, _)| k.starts_with("Type="))
            .map(|(_, p)| p.clone())
    };
    let s = import(
        "wd.service",
        "[Service]\nType=notify\nExecStart=/bin/sleep 100\nWatchdogSec=10s\nTimeoutStartSec=20s\n",
    )
    .unwrap();
    assert_eq!(
        ready(&s),
        Some(Pending::ReadyNotify {
            timeout: Some(Duration::from_secs(20)),
            watchdog: Some(Duration::from_secs(10)),
        })
    );
    assert_eq!(notes(&s), Vec::<String>::new());
    // TimeoutSec= is both timeouts; journald's WatchdogSec=3min.
    let s = import(
        "j.service",
        "[Service]\nType=notify\nExecStart=/bin/sleep 100\nWatchdogSec=3min\nTimeoutSec=45\n",
    )
    .unwrap();
    assert_eq!(
        ready(&s),
        Some(Pending::ReadyNotify {
            timeout: Some(Duration::from_secs(45)),
            watchdog: Some(Duration::from_secs(180)),
        })
    );
    assert_eq!(s.stop_timeout, Some(Duration::from_secs(45)));
    // None in systemd: left out, with why; so is what upkeep cannot take.
    let s = import(
        "inf.service",
        "[Service]\nType=notify\nExecStart=/bin/sleep 100\nTimeoutStartSec=infinity\nWatchdogSec=0\n",
    )
    .unwrap();
    assert_eq!(
        ready(&s),
        Some(Pending::ReadyNotify {
            timeout: None,
            watchdog: None
        })
    );
    assert_eq!(
        notes(&s),
        [
            "TimeoutStartSec=infinity: no start timeout: ready_timeout is left out, so upkeep waits for READY=1 as long as it takes",
            "WatchdogSec=0: the watchdog is off: watchdog is left out",
        ]
    );
    let s = import(
        "far.service",
        "[Service]\nType=notify\nExecStart=/bin/sleep 100\nWatchdogSec=50ms\nTimeoutStartSec=2d\n",
    )
    .unwrap();
    assert_eq!(
        notes(&s),
        [
            "TimeoutStartSec=2d: upkeep's ready_timeout is 10ms to 1d; set one in that range by hand",
            "WatchdogSec=50ms: upkeep's watchdog is 100ms to 1d; set one in that range by hand",
        ]
    );
    // Of a service that sends no READY=1, they are notes that say why.
    let s = import(
        "simple.service",
        "[Service]\nExecStart=/bin/sleep 100\nWatchdogSec=10s\nTimeoutStartSec=20s\n",
    )
    .unwrap();
    assert_eq!(ready(&s), None);
    let n = notes(&s);
    assert!(
        n[0].starts_with(
            "TimeoutStartSec=20s: upkeep counts a Type=simple service started once it runs"
        ),
        "{n:?}"
    );
    assert!(
        n[1].starts_with("WatchdogSec=10s: upkeep's watchdog goes with ready = \"notify\""),
        "{n:?}"
    );
}
