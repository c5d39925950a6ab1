//! Config on a running daemon: invalid files are rejected with a location and change nothing;
//! reload restarts only what changed; `add` keeps the file's comments.

use crate::{LONG, daemon, stderr, stdout};

#[test]
fn invalid_config_is_rejected_with_line_and_column_and_the_running_config_stays() {
    let d = daemon("[services.a]\ncommand = \"sleep 1000\"\n");
    d.wait_state("a", "up", LONG);
    let pid = d.pid("a").unwrap();
    let good = std::fs::read_to_string(&d.config).unwrap();
    std::fs::write(
        &d.config,
        format!("{good}\n[services.b]\ncommand = \"sleep 1\"\nstop_timeout = \"soon\"\n"),
    )
    .unwrap();
    let out = d.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let line = good.lines().count() + 4;
    assert!(err.contains(&format!("upkeep.toml:{line}:16")), "{err}");
    assert!(
        err.contains("stop_timeout") && err.contains("not a duration"),
        "{err}"
    );
    assert!(err.contains("running config stays in force"), "{err}");
    // Nothing changed.
    assert_eq!(d.pid("a"), Some(pid));
    let names: Vec<String> = d
        .api_get("/api/v1/services")
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a"]);
    // `check` says the same without a daemon.
    let out = d.cli(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!(":{line}:16")));
    // A syntax error too.
    std::fs::write(&d.config, format!("{good}\n[services.c\n")).unwrap();
    let out = d.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(&format!("upkeep.toml:{}:", good.lines().count() + 2)),
        "{}",
        stderr(&out)
    );
}

#[test]
fn reload_restarts_only_changed_services() {
    let d = daemon(
        "[services.same]\ncommand = \"sleep 1000\"\n\n[services.changes]\ncommand = \"sleep 1000\"\n\n[services.goes]\ncommand = \"sleep 1000\"\n",
    );
    for s in ["same", "changes", "goes"] {
        d.wait_state(s, "up", LONG);
    }
    let (same, changes, goes) = (
        d.pid("same").unwrap(),
        d.pid("changes").unwrap(),
        d.pid("goes").unwrap(),
    );
    d.write_services("[services.same]\ncommand = \"sleep 1000\"\n\n[services.changes]\ncommand = \"sleep 1001\"\n\n[services.new]\ncommand = \"sleep 1000\"\n");
    let out = d.cli(&["reload", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(r["added"], serde_json::json!(["new"]));
    assert_eq!(r["removed"], serde_json::json!(["goes"]));
    assert_eq!(r["changed"], serde_json::json!(["changes"]));
    assert_eq!(r["unchanged"], serde_json::json!(["same"]));
    assert_eq!(d.pid("same"), Some(same));
    d.wait_new_pid("changes", changes, LONG);
    d.wait_state("new", "up", LONG);
    assert!(upkeep_testkit::group_members(goes).is_empty());
    let (code, _) = d.try_api("GET", "/api/v1/services/goes", None).unwrap();
    assert_eq!(code, 404);
}

#[test]
fn add_writes_the_service_keeping_comments_and_starts_it() {
    let d = daemon(
        "# my services, hand-written\n[services.a]   # the first one\ncommand = \"sleep 1000\" # keep me\n",
    );
    let before = std::fs::read_to_string(&d.config).unwrap();
    let dir = d.dir.path().display().to_string();
    let out = d.cli(&[
        "add",
        "worker",
        "--cwd",
        &dir,
        "--restart",
        "on-failure",
        "--",
        "sleep",
        "999",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_state("worker", "up", LONG);
    let after = std::fs::read_to_string(&d.config).unwrap();
    assert!(
        after.starts_with(before.trim_end()),
        "comments or layout lost:\n{after}"
    );
    assert!(
        after.contains("[services.worker]\ncommand = [\"sleep\", \"999\"]"),
        "{after}"
    );
    let detail = d.service("worker");
    assert_eq!(detail["cwd"], dir);
    assert_eq!(detail["restart"], "on-failure");
    // Adding it twice is a conflict that leaves the file alone.
    let out = d.cli(&["add", "worker", "--", "sleep", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("already exists"));
    // A program that does not exist is refused before the file is touched.
    let out = d.cli(&["add", "typo", "--", "no-such-program-xyz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no-such-program-xyz"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), after);
}

/// Break-it, session 11: `add` applied the whole file, so an edit waiting in it (not
/// reloaded, not reviewed) went live with the added service: `web1` restarted on a new
/// command and the add said nothing. It is refused now, naming what waits, the file and the
/// running services untouched; once the file says what runs (a comment aside), add works.
#[test]
fn break_it_11_add_refuses_while_the_file_has_edits_not_applied() {
    let d = daemon(
        "[services.web1]\ncommand = \"sleep 100001\"\n\n[services.web2]\ncommand = \"sleep 100002\"\n",
    );
    d.wait_state("web1", "up", LONG);
    d.wait_state("web2", "up", LONG);
    let pid = d.pid("web1");
    let running = std::fs::read_to_string(&d.config).unwrap();
    let edited = running
        .replace("100001", "200001")
        .replace("[services.web2]\ncommand = \"sleep 100002\"\n", "");
    std::fs::write(&d.config, &edited).unwrap();
    let add = d.cli(&["add", "newsvc", "--", "sleep", "300000"]);
    assert_eq!(add.status.code(), Some(2), "{}", stderr(&add));
    let err = stderr(&add);
    assert!(
        err.contains("services.web1 (changed), services.web2 (removed)")
            && err.contains("hint: nothing was added; `upkeep reload` applies those changes"),
        "{err}"
    );
    // The API's add (a write token's) is the same one.
    let req = serde_json::json!({ "name": "newsvc", "command": ["sleep", "1"] });
    let (code, body) = d.try_api("POST", "/api/v1/services", Some(&req)).unwrap();
    assert_eq!(code, 422, "{}", String::from_utf8_lossy(&body));
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), edited);
    assert_eq!(d.pid("web1"), pid);
    assert_eq!(d.state("web2"), "up");
    let (code, _) = d.try_api("GET", "/api/v1/services/newsvc", None).unwrap();
    assert_eq!(code, 404);
    // A comment is no change to what runs.
    std::fs::write(&d.config, format!("# reviewed\n{running}")).unwrap();
    let out = d.cli(&["add", "newsvc", "--", "sleep", "300000"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.wait_state("newsvc", "up", LONG);
    assert_eq!(d.pid("web1"), pid);
    assert!(
        std::fs::read_to_string(&d.config)
            .unwrap()
            .starts_with("# reviewed\n")
    );
}

/// Break-it, session 11: an add the daemon refuses (a cwd that is no folder, an unknown
/// restart policy) said "fix the file and run `upkeep reload` again", though the file was never
/// written. It says the service was not added and the file is unchanged, by key (the lines of
/// a file error would point into a text that was never written).
#[test]
fn break_it_11_a_refused_add_says_the_file_is_unchanged() {
    let d = daemon("[services.a]\ncommand = \"sleep 1000\"\n");
    let before = std::fs::read_to_string(&d.config).unwrap();
    for (extra, key) in [
        (
            serde_json::json!({ "cwd": "/no/such/dir" }),
            "services.x.cwd",
        ),
        (
            serde_json::json!({ "restart": "sometimes" }),
            "services.x.restart",
        ),
    ] {
        let mut req = serde_json::json!({ "name": "x", "command": ["sleep", "1"] });
        req.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (code, body) = d.try_api("POST", "/api/v1/services", Some(&req)).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(code, 422, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(
            error.starts_with("service `x` was not added (the config file is unchanged): ")
                && error.contains(key)
                && !error.contains("upkeep.toml:"),
            "{body}"
        );
        assert!(
            !body["hint"]
                .as_str()
                .unwrap_or_default()
                .contains("fix the file"),
            "{body}"
        );
    }
    assert_eq!(std::fs::read_to_string(&d.config).unwrap(), before);
}

/// `add` on a symlinked config edits the file it points to and keeps the link (it used to
/// replace the link with a file, leaving the target stale).
#[test]
fn issue_14_add_edits_a_symlinked_config_where_it_points() {
    let mut d =
        upkeep_testkit::TestDaemon::prepare(crate::BIN, "[services.a]\ncommand = \"sleep 1000\"\n");
    let real = d.dir.path().join("real.toml");
    std::fs::rename(&d.config, &real).unwrap();
    std::os::unix::fs::symlink(&real, &d.config).unwrap();
    d.launch();
    let out = d.cli(&["add", "b", "--", "sleep", "999"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::symlink_metadata(&d.config)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .contains("[services.b]")
    );
    d.wait_state("b", "up", LONG);
}

/// Issue 15, item 10: a reload holds no lock while services stop: during a reload that waits
/// out a removed service's long stop, `ls`, `status` and actions on other services answer, and
/// a second reload waits its turn.
#[test]
fn a_long_reload_blocks_neither_reads_nor_actions() {
    let slow =
        "[services.slow]\ncommand = \"trap '' TERM; sleep 1000 & wait\"\nstop_timeout = \"15s\"\n";
    let other = "[services.other]\ncommand = \"sleep 1000\"\n";
    let d = daemon(&format!("{slow}\n{other}"));
    d.wait_state("slow", "up", LONG);
    d.wait_state("other", "up", LONG);
    let before = d.pid("other").unwrap();
    d.write_services(other);
    let mut reload = d.cli_spawn(&["reload"]);
    let slow_group = d.pid("slow").unwrap();
    // The removed service is on its way out: its stop waits 15 s for a TERM it ignores.
    d.wait_until("the removed service to be stopping", LONG, || {
        let ls = d.cli(&["ls", "--json"]);
        let services: serde_json::Value = serde_json::from_slice(&ls.stdout).ok()?;
        let names: Vec<&str> = services
            .as_array()?
            .iter()
            .filter_map(|s| s["name"].as_str())
            .collect();
        (!names.contains(&"slow")).then_some(())
    });
    // Everything answers while the reload is still waiting.
    let ls = d.cli(&["ls"]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    let status = d.cli(&["status", "other"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let restart = d.cli(&["restart", "other"]);
    assert!(restart.status.success(), "{}", stderr(&restart));
    assert_ne!(d.pid("other"), Some(before));
    assert!(
        reload.try_wait().unwrap().is_none(),
        "the reload should still be waiting on the slow stop"
    );
    // It ends once the stop does (here, sooner than the timeout: the group killed by hand).
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(slow_group as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let out = reload.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(d.events("slow").iter().any(|e| e.0 == "removed"));
}

/// Issue 18: a reload that changes `[daemon]` keys says which wait for a restart (answer and
/// log) and applies none of them, while the services' changes are applied.
#[test]
fn issue_18_a_reload_says_which_daemon_keys_wait_for_a_restart() {
    let d = daemon("[services.a]\ncommand = \"sleep 1000\"\n");
    d.wait_state("a", "up", LONG);
    let port = upkeep_testkit::free_port();
    let text = std::fs::read_to_string(&d.config).unwrap().replacen(
        "shutdown_timeout = \"20s\"\n",
        &format!("shutdown_timeout = \"21s\"\nlisten = \"127.0.0.1:{port}\"\n"),
        1,
    );
    std::fs::write(
        &d.config,
        format!("{text}\n[services.b]\ncommand = \"sleep 1000\"\n"),
    )
    .unwrap();
    let out = d.cli(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("not applied until the daemon restarts")
            && said.contains("daemon.listen, daemon.shutdown_timeout"),
        "{said}"
    );
    assert!(said.contains("1 added"), "{said}");
    d.wait_state("b", "up", LONG);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the new listener was not half-applied"
    );
    let log = d.daemon_log();
    assert!(
        log.contains("take effect only when the daemon restarts"),
        "{log}"
    );
    // The next reload of the same file still says so: the running daemon kept them.
    let out = d.cli(&["reload", "--json"]);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer["restart_needed"],
        serde_json::json!(["daemon.listen", "daemon.shutdown_timeout"]),
        "{answer}"
    );
}

/// Break-it finding (session 9): two listeners on one port (one of them on every address)
/// passed `check`, and the daemon found out only when binding. `check` refuses it, located,
/// and so does a reload: the running config stays.
#[test]
fn two_listeners_on_one_port_are_refused_by_check_and_reload() {
    let d = daemon("[services.a]\ncommand = \"sleep 1000\"\n");
    d.wait_state("a", "up", LONG);
    let good = std::fs::read_to_string(&d.config).unwrap();
    let port = upkeep_testkit::free_port();
    let bad = good.replacen(
        "[daemon]\n",
        &format!("[daemon]\nlisten = \"0.0.0.0:{port}\"\npublic_listen = \"127.0.0.1:{port}\"\n"),
        1,
    );
    let line = bad
        .lines()
        .position(|l| l.starts_with("public_listen"))
        .unwrap()
        + 1;
    std::fs::write(
        &d.config,
        format!("{bad}\n[services.b]\ncommand = \"sleep 1000\"\n"),
    )
    .unwrap();
    let out = d.cli(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("upkeep.toml:{line}:17 (daemon.public_listen)"))
            && err.contains(&format!("takes the port of listen `0.0.0.0:{port}`")),
        "{err}"
    );
    let out = d.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("upkeep.toml:{line}:17"))
            && err.contains("running config stays in force"),
        "{err}"
    );
    // Nothing of it applied: no b.
    let names: Vec<String> = d
        .api_get("/api/v1/services")
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["a"]);
}

/// Break-it (session 11): a failed reload printed what followed from its first error as
/// errors of their own (a missing `cwd` was also a "program not found"), and an unknown key
/// was a 40-name list with no key named. Each real error is printed once, at its
/// file:line:col with its key, and an unknown key says what was meant.
#[test]
fn a_failed_reload_prints_each_real_error_once_where_it_is() {
    let d = daemon("[services.a]\ncommand = \"sleep 1000\"\n");
    d.wait_state("a", "up", LONG);
    let good = std::fs::read_to_string(&d.config).unwrap();
    let line = good.lines().count() + 4;
    // (`./run.sh` does not exist either, but where no folder is there is no program.)
    for (command, added, at, says) in [
        (
            "sleep 1",
            "stop_timeout = \"soon\"\n",
            format!("upkeep.toml:{line}:16 (services.b.stop_timeout)"),
            "stop_timeout `soon` is not a duration",
        ),
        (
            "sleep 1",
            "stop_timout = \"5s\"\n",
            format!("upkeep.toml:{line}:1 (services.b.stop_timout)"),
            "unknown key `stop_timout` in [services.b]\n      hint: did you mean `stop_timeout`?",
        ),
        (
            "./run.sh",
            "cwd = \"nowhere\"\n",
            format!("upkeep.toml:{line}:7 (services.b.cwd)"),
            "nowhere does not exist",
        ),
        (
            "sleep 1",
            "max_restarts = \"five\"\n",
            format!("upkeep.toml:{line}:16 (services.b.max_restarts)"),
            "expected a whole number",
        ),
    ] {
        std::fs::write(
            &d.config,
            format!("{good}\n[services.b]\ncommand = \"{command}\"\n{added}"),
        )
        .unwrap();
        for verb in ["reload", "check"] {
            let out = d.cli(&[verb]);
            assert_eq!(out.status.code(), Some(2), "{verb} {added}");
            let err = stderr(&out);
            assert!(err.contains("has 1 problem\n"), "{verb} {added}: {err}");
            assert_eq!(err.matches("-->").count(), 1, "{verb} {added}: {err}");
            assert!(err.contains(&at), "{verb} {added}: {err}");
            assert!(err.contains(says), "{verb} {added}: {err}");
            assert!(!err.contains("expected one of"), "{verb} {added}: {err}");
        }
    }
    assert_eq!(
        d.api_get("/api/v1/services").as_array().unwrap().len(),
        1,
        "the running config stays"
    );
}
