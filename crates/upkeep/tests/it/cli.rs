//! The CLI as people use it: tables, JSON, errors, languages.

use crate::{LONG, daemon, stderr, stdout};

#[test]
fn ls_shows_a_table_and_json() {
    let d = daemon(
        "[services.web]\ncommand = \"sleep 1000\"\n\n[services.off]\ncommand = \"sleep 1000\"\nautostart = false\n",
    );
    d.wait_state("web", "up", LONG);
    let out = d.cli(&["ls"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "name", "state", "pid", "uptime", "restarts", "cpu", "memory"
        ]
    );
    let web = text
        .lines()
        .find(|l| l.trim_start().starts_with("web"))
        .unwrap();
    assert!(
        web.contains(" up ") && web.contains(&d.pid("web").unwrap().to_string()),
        "{text}"
    );
    assert!(web.contains("MiB") || web.contains("KiB"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("off") && l.contains("stopped")),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&d.cli(&["ls", "--json"]))).unwrap();
    let web = json
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "web")
        .unwrap();
    assert!(web["memory_bytes"].as_u64().unwrap() > 0);
    assert_eq!(web["processes"], 1);
}

#[test]
fn start_stop_restart_all_and_status() {
    let d = daemon(
        "[services.a]\ncommand = \"sleep 1000\"\n\n[services.b]\ncommand = \"sleep 1000\"\n",
    );
    d.wait_state("a", "up", LONG);
    d.wait_state("b", "up", LONG);
    let out = d.cli(&["stop", "all"]);
    // Each line names who asked (issue 15): the user running the CLI, over the socket.
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("a: stopped (by "), "{lines:?}");
    assert!(lines[1].starts_with("b: stopped (by "), "{lines:?}");
    assert!(
        lines[0].ends_with(&format!(", uid {}))", nix::unistd::geteuid())),
        "{lines:?}"
    );
    assert_eq!(
        (d.state("a"), d.state("b")),
        ("stopped".into(), "stopped".into())
    );
    let out = d.cli(&["start", "all"]);
    assert!(out.status.success());
    assert_eq!((d.state("a"), d.state("b")), ("up".into(), "up".into()));
    let a = d.pid("a").unwrap();
    assert!(d.cli(&["restart", "a"]).status.success());
    assert_ne!(d.pid("a"), Some(a));
    let text = stdout(&d.cli(&["status", "a"]));
    assert!(text.contains("restart_requested (by "), "{text}");
    assert!(text.contains("stopping (by "), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&d.cli(&["status", "a", "--json"]))).unwrap();
    assert!(
        json["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "started" && e["intervention"] == true)
    );
}

#[test]
fn unknown_services_and_bad_names_are_clear_errors() {
    let d = daemon("[services.a]\ncommand = \"sleep 1000\"\n");
    let out = d.cli(&["stop", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no service named `nosuch`"),
        "{}",
        stderr(&out)
    );
    let (code, body) = d
        .try_api("POST", "/api/v1/services/a/explode", None)
        .unwrap();
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&body).contains("unknown action"));
    let (code, _) = d.try_api("GET", "/api/v1/services/..%2Fetc", None).unwrap();
    assert_eq!(code, 400);
    let (code, body) = d
        .try_api(
            "POST",
            "/api/v1/services",
            Some(&serde_json::json!({ "name": "x" })),
        )
        .unwrap();
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn no_daemon_is_a_message_not_a_trace() {
    let d = upkeep_testkit::TestDaemon::prepare(crate::BIN, "");
    let out = d.cli(&["ls"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("error: no upkeep daemon is running for data dir"),
        "{err}"
    );
    assert!(err.contains("hint: start it with `upkeep up`"), "{err}");
}

/// A daemon that hangs up while the CLI is still writing its request (as one does when it
/// shuts down: `upkeep down` under load) is an error message and exit code 1, never a death by
/// SIGPIPE with nothing said (status 141: the CLI restores SIGPIPE's default for its stdout).
#[test]
fn a_daemon_that_hangs_up_mid_request_is_an_error_not_a_sigpipe() {
    let d = upkeep_testkit::TestDaemon::prepare(crate::BIN, "");
    std::fs::create_dir_all(&d.data_dir).unwrap();
    // Not a daemon: it takes each connection and closes it unread.
    let listener = std::os::unix::net::UnixListener::bind(d.socket()).unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..3 {
            let Ok((conn, _)) = listener.accept() else {
                return;
            };
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(conn);
        }
    });
    // A body larger than the socket's buffer: the CLI is still writing when the peer closes.
    let reason = "x".repeat(120_000);
    let out = d.cli(&[
        "maint",
        "add",
        "--kind",
        "upgrade",
        "--title",
        &reason,
        "--reason",
        &reason,
        "--alternative",
        &reason,
        "--start",
        "2030-01-01T00:00:00Z",
        "--for",
        "1h",
        "--services",
        "web",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("talking to the daemon"),
        "{}",
        stderr(&out)
    );
    drop(server);
}

/// A config named on purpose that cannot be read is an error, never a silent fall back to the
/// default data dir (where another daemon may run: `stop all` would reach it).
#[test]
fn issue_14_a_missing_named_config_is_an_error_not_another_daemon() {
    let d = daemon("[services.a]\ncommand = \"sleep 1000\"\n");
    let missing = d.dir.path().join("typo.toml");
    for args in [vec!["ls"], vec!["stop", "all"], vec!["down"]] {
        let out = std::process::Command::new(crate::BIN)
            .arg("-c")
            .arg(&missing)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("cannot read config file"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(d.state("a"), "up");
}

/// Break-it, session 11: a config the CLI could not read (not UTF-8, a directory, past
/// 16 MiB) sent it to the default data dir, where another daemon took `stop all`; `/dev/zero`
/// grew it without end and a FIFO hung it. Each is now refused as `upkeep check` refuses it,
/// read no further. (Where the default data dir is not root's, it is made this daemon's, so a
/// fall back would be seen stopping `a`.)
#[test]
fn break_it_11_an_unreadable_config_is_refused_never_another_daemon() {
    let d = daemon("[services.a]\ncommand = \"sleep 1000\"\n");
    d.wait_state("a", "up", LONG);
    let pid = d.pid("a");
    let state = d.dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::symlink(&d.data_dir, state.join("upkeep")).unwrap();
    let dir = d.dir.path();
    let latin1 = dir.join("latin1.toml");
    let mut text = b"# caf\xe9\n[daemon]\ndata_dir = \"".to_vec();
    text.extend(d.data_dir.as_os_str().as_encoded_bytes());
    text.extend(b"\"\n");
    std::fs::write(&latin1, text).unwrap();
    let folder = dir.join("folder.toml");
    std::fs::create_dir(&folder).unwrap();
    let big = dir.join("big.toml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((16 << 20) + 1)
        .unwrap();
    let fifo = dir.join("fifo.toml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let cases = [
        (latin1, "the file is not UTF-8: byte 0xe9"),
        (folder, "not a regular file"),
        (big, "larger than 16 MiB"),
        ("/dev/zero".into(), "not a regular file"),
        (fifo, "not a regular file"),
    ];
    let run = |config: &std::path::Path, args: &[&str]| {
        let child = std::process::Command::new(crate::BIN)
            .arg("-c")
            .arg(config)
            .args(args)
            .env("UPKEEP_LANG", "en")
            .env("XDG_STATE_HOME", &state)
            .env_remove("UPKEEP_DATA_DIR")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let cli = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
        rx.recv_timeout(LONG).unwrap_or_else(|_| {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(cli as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!(
                "`upkeep -c {} {args:?}` still runs after {LONG:?}",
                config.display()
            )
        })
    };
    for (config, why) in &cases {
        let checked = stderr(&run(config, &["check"]));
        assert!(checked.contains(why), "{}: {checked}", config.display());
        for args in [&["stop", "all"][..], &["ls"]] {
            let out = run(config, args);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{} {args:?}: {}",
                config.display(),
                stderr(&out)
            );
            assert_eq!(stderr(&out), checked, "{} {args:?}", config.display());
        }
    }
    assert_eq!(d.state("a"), "up");
    assert_eq!(d.pid("a"), pid);
}

/// `data_dir = ""` (or ".", the config's own folder) is a config error for `upkeep check`
/// and the daemon, but the CLI took it for the config's folder and looked for a daemon
/// there ("no upkeep daemon is running for data dir ..."). It now says what check says,
/// with the key's file:line:col, and exits 2.
#[test]
fn a_data_dir_check_refuses_is_refused_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("upkeep.toml");
    for bad in ["", ".", "  "] {
        std::fs::write(
            &config,
            format!("[daemon]\ndata_dir = \"{bad}\"\n\n[services.a]\ncommand = \"sleep 1000\"\n"),
        )
        .unwrap();
        let run = |args: &[&str]| {
            std::process::Command::new(crate::BIN)
                .arg("-c")
                .arg(&config)
                .args(args)
                .env("UPKEEP_LANG", "en")
                .env_remove("UPKEEP_DATA_DIR")
                .output()
                .unwrap()
        };
        let checked = run(&["check"]);
        assert_eq!(checked.status.code(), Some(2), "{bad:?}");
        let checked = stderr(&checked);
        assert!(
            checked.contains(&format!("{}:2:12 (daemon.data_dir)", config.display())),
            "{bad:?}: {checked}"
        );
        for args in [&["ls"][..], &["stop", "all"], &["status", "a"]] {
            let out = run(args);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{bad:?} {args:?}: {}",
                stderr(&out)
            );
            assert_eq!(stderr(&out), checked, "{bad:?} {args:?}");
        }
    }
}

#[test]
fn speaks_chinese_when_asked() {
    let d = daemon("[services.a]\ncommand = \"sleep 1000\"\n");
    let out = std::process::Command::new(crate::BIN)
        .args(["ls", "-c"])
        .arg(&d.config)
        .env("UPKEEP_LANG", "zh_CN.UTF-8")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains("名称") && text.contains("状态"), "{text}");
}

/// D18: `upkeep stop 'all/start?'` put the name into the path unencoded, so the request hit
/// `POST /api/v1/services/all/start` (`?/stop` became the query), said "stopped" and started
/// every service. Every name argument is now a `ServiceName` (or `all`) before it leaves.
#[test]
fn issue_14_a_name_argument_cannot_change_the_route() {
    let d = daemon(
        "[services.a]\ncommand = \"sleep 1000\"\nautostart = false\n\n[services.b]\ncommand = \"sleep 1000\"\nautostart = false\n",
    );
    for args in [
        &["stop", "all/start?"][..],
        &["stop", "a/start#"],
        &["restart", "../services/a"],
        &["status", "a/start?"],
        &["logs", "a?n=1&x="],
        &["maintenance", "a/../b"],
        &["incidents", "a&limit=1"],
        &["drill", "a/x", "--fault", "crash"],
    ] {
        let out = d.cli(args);
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {err}{}",
            stdout(&out)
        );
        assert!(
            err.contains(&format!("service name `{}`", args[1])),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        (d.state("a"), d.state("b")),
        ("stopped".into(), "stopped".into()),
        "a rejected name started something"
    );
    // `all` stays allowed where the command takes it, and nowhere else.
    let out = d.cli(&["status", "all"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("reserved"), "{}", stderr(&out));
    assert!(d.cli(&["start", "all"]).status.success());
    assert_eq!((d.state("a"), d.state("b")), ("up".into(), "up".into()));
}

/// D18, server side: a name the API cannot use is a 400 with a JSON message, whether it fails
/// validation or does not even decode (a plain-text rejection before).
#[test]
fn issue_14_the_api_rejects_bad_names_with_a_json_message() {
    let d = daemon("[services.a]\ncommand = \"sleep 1000\"\n");
    for (method, path) in [
        ("GET", "/api/v1/services/..%2Fetc"),
        ("GET", "/api/v1/services/%FF"),
        ("POST", "/api/v1/services/a%2Fb/stop"),
        ("POST", "/api/v1/services/%FF/stop"),
        ("GET", "/api/v1/services/a%3Fn%3D1/logs"),
        ("DELETE", "/api/v1/services/%2E%2E/maintenance"),
        ("GET", "/api/v1/incidents?service=a%2Fb"),
    ] {
        let (code, body) = d.try_api(method, path, None).unwrap();
        let text = String::from_utf8_lossy(&body);
        assert_eq!(code, 400, "{method} {path}: {text}");
        let json: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        let msg = json["error"].as_str().unwrap_or_default();
        assert!(msg.contains("service name"), "{method} {path}: {text}");
    }
}

/// D20: an unknown route or a wrong method was answered with an empty body, and the CLI
/// printed `error: 404 Not Found: `. Both are now the API's JSON error, naming method and path.
#[test]
fn issue_14_unknown_routes_and_wrong_methods_say_what_was_asked() {
    let d = daemon("[services.a]\ncommand = \"sleep 1000\"\n");
    let json = |method: &str, path: &str, want: u16| {
        let (code, body) = d.try_api(method, path, None).unwrap();
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(code, want, "{method} {path}: {text}");
        let v: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        v["error"].as_str().unwrap_or_default().to_owned()
    };
    let msg = json("GET", "/api/v1/nosuch?x=1", 404);
    assert!(msg.contains("GET /api/v1/nosuch"), "{msg}");
    let msg = json("DELETE", "/api/v1/health", 405);
    assert!(
        msg.contains("DELETE") && msg.contains("/api/v1/health"),
        "{msg}"
    );
    let msg = json("GET", "/api/v1/services/a/start", 405);
    assert!(
        msg.contains("GET") && msg.contains("/api/v1/services/a/start"),
        "{msg}"
    );
}

/// D19: text from services, probes and users went to the terminal raw, so an escape sequence
/// in a probe's reason or a maintenance reason could clear the screen or set the window title.
/// Text output shows control characters escaped; `--json` keeps them exact.
#[test]
fn issue_14_status_and_incidents_show_control_characters_escaped() {
    // An HTTP server whose answer lacks what the probe wants: the probe's reason quotes it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            use std::io::{Read, Write};
            let _ = conn.read(&mut [0; 4096]);
            let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        }
    });
    let d = daemon(&format!(
        "[services.web]\nprobes = [{{ kind = \"http\", url = \"http://{addr}/\", body_contains = \"\\u001b]0;pwned\\u0007\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\n\n\
         [services.cmd]\ncommand = \"sleep 1000 # \\u001b[2J\"\n"
    ));
    d.wait_until("an incident of web", LONG, || {
        let list = d.api_get("/api/v1/incidents?service=web");
        (!list.as_array()?.is_empty()).then_some(())
    });
    let out = d.cli(&[
        "maintenance",
        "web",
        "--reason",
        "deploy\u{1b}]8;;http://evil/\u{7}\r\n",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let raw = |out: &std::process::Output| {
        out.stdout
            .iter()
            .any(|b| (*b < 0x20 && *b != b'\n' && *b != b'\t') || *b == 0x7f)
    };
    let status = d.cli(&["status", "web"]);
    let text = stdout(&status);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(!raw(&status), "raw control characters in:\n{text:?}");
    assert!(text.contains(r"\x1b]0;pwned\x07"), "{text}");
    assert!(
        text.contains(r"deploy\x1b]8;;http://evil/\x07\r\n"),
        "{text}"
    );
    let cmd = d.cli(&["status", "cmd"]);
    assert!(!raw(&cmd), "{:?}", stdout(&cmd));
    assert!(
        stdout(&cmd).contains(r"sleep 1000 # \x1b[2J"),
        "{}",
        stdout(&cmd)
    );
    let incidents = d.cli(&["incidents"]);
    assert!(!raw(&incidents), "{:?}", stdout(&incidents));
    assert!(
        stdout(&incidents).contains(r"\x1b]0;pwned\x07"),
        "{}",
        stdout(&incidents)
    );
    let id = d.api_get("/api/v1/incidents?service=web")[0]["id"]
        .as_i64()
        .unwrap();
    let incident = d.cli(&["incident", &id.to_string()]);
    assert!(!raw(&incident), "{:?}", stdout(&incident));
    // JSON stays exact (JSON escapes control characters itself).
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&d.cli(&["status", "cmd", "--json"]))).unwrap();
    let command = json["command"].as_array().unwrap().last().unwrap();
    assert!(
        command
            .as_str()
            .unwrap()
            .ends_with("sleep 1000 # \u{1b}[2J"),
        "{json}"
    );
}

/// Issue 18: `upkeep incident postmortem ID --file F` read any file whole: `/dev/zero` grew
/// the CLI without end and a FIFO hung it. Now it takes a regular file of at most what the
/// control socket takes in one request (2 MiB), read no further, and says why it refuses.
#[test]
fn issue_18_a_postmortem_file_that_is_no_regular_file_or_too_big_is_refused() {
    let d = daemon("[services.s]\ncommand = \"sleep 1000\"\n");
    d.wait_state("s", "up", LONG);
    let fifo = d.dir.path().join("pm.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let big = d.dir.path().join("pm.toml");
    std::fs::write(&big, "# padding\n".repeat((2 << 20) / 10 + 1)).unwrap();
    let cases = [
        ("/dev/zero".to_owned(), "is not a regular file"),
        (fifo.display().to_string(), "is not a regular file"),
        (big.display().to_string(), "is larger than 2097152 bytes"),
    ];
    for (file, why) in cases {
        let out = d.cli(&["incident", "postmortem", "1", "--file", &file]);
        assert_eq!(out.status.code(), Some(2), "{file}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&file) && stderr(&out).contains(why),
            "{file}: {}",
            stderr(&out)
        );
    }
}

/// Break-it, session 12: every command hung forever on a daemon that answered nothing
/// (SIGSTOPped). It says so instead; and a slow operation of a daemon that still answers
/// (a stop waiting out a `stop_timeout` longer than the CLI's patience) is waited for.
#[test]
fn a_daemon_that_answers_nothing_is_said_to_and_a_slow_one_is_waited_for() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let d = crate::daemon(
        "[services.stubborn]\ncommand = [\"sh\", \"-c\", \"trap '' TERM; while :; do sleep 1; done\"]\nstop_timeout = \"12s\"\n",
    );
    d.wait_state("stubborn", "up", crate::LONG);
    let out = d.cli(&["stop", "stubborn"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    assert_eq!(d.state("stubborn"), "stopped");

    let daemon = Pid::from_raw(d.daemon_pid().expect("daemon pid") as i32);
    kill(daemon, Signal::SIGSTOP).expect("SIGSTOP");
    let out = d.cli(&["ls"]);
    kill(daemon, Signal::SIGCONT).expect("SIGCONT");
    assert_eq!(out.status.code(), Some(1), "{}", crate::stderr(&out));
    assert!(
        crate::stderr(&out).contains("does not answer"),
        "{}",
        crate::stderr(&out)
    );
    assert!(d.cli(&["ls"]).status.success());
}
