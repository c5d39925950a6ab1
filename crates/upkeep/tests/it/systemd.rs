//! Units for systemd, checked by systemd itself (`systemd-analyze verify`; it exits 0 on some
//! warnings, so the test also asserts it printed nothing).

use std::process::Command;

use upkeep_testkit::TestDaemon;

use crate::{BIN, stderr, stdout};

fn verify(unit_text: &str, file_name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    std::fs::write(&path, unit_text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        // `Documentation=man:upkeep(1)` names a page the Debian package installs (checked in
        // a clean root by scripts/test-deb); here it is not installed.
        .arg("--man=no")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify:\n{said}\nunit:\n{unit_text}"
    );
}

#[test]
fn startup_unit_passes_systemd_analyze_verify() {
    let d = TestDaemon::prepare(BIN, "[services.a]\ncommand = \"sleep 1000\"\n");
    let out = d.cli(&["startup"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let unit = stdout(&out);
    for want in [
        "Type=notify",
        "Restart=always",
        "WatchdogSec=",
        // Each service's cgroup lives below the unit's: systemd must leave them alone.
        "Delegate=yes",
        &format!("daemon -c {}", d.config.display()),
    ] {
        assert!(unit.contains(want), "missing {want}:\n{unit}");
    }
    verify(&unit, "upkeep.service");
}

#[test]
fn exported_service_unit_passes_systemd_analyze_verify() {
    let d = TestDaemon::prepare(
        BIN,
        "[services.web]\ncommand = \"python3 -m http.server 8000 --bind 127.0.0.1\"\ncwd = \"/tmp\"\nrestart = \"on-failure\"\nenv = { GREETING = \"hello world\", RATE = \"50%\" }\nstop_signal = \"SIGINT\"\n",
    );
    let path = d.dir.path().join("web.service");
    let out = d.cli(&["export", "systemd", "web", "-o", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let unit = std::fs::read_to_string(&path).unwrap();
    for want in [
        "Restart=on-failure",
        "KillSignal=SIGINT",
        "WorkingDirectory=/tmp",
        "Environment=\"GREETING=hello world\"",
        "RATE=50%%",
    ] {
        assert!(unit.contains(want), "missing {want}:\n{unit}");
    }
    verify(&unit, "web.service");
}

/// D18b: a newline in an argument or an environment value ended the quoted word and the line,
/// so the rest became a directive of its own (here `ExecStartPre=`, run as root before the
/// service). Such characters are now written as systemd's C-style escapes.
#[test]
fn issue_14_a_newline_in_a_value_does_not_become_a_directive() {
    let d = TestDaemon::prepare(
        BIN,
        "[services.web]\ncommand = [\"/bin/echo\", \"a\\nExecStartPre=/bin/touch /tmp/owned\", \"tab\\there\", \"\\u001b[2J\"]\n\
         env = { NOTE = \"x\\nExecStartPre=/bin/touch /tmp/owned2\", HOME_DIR = \"$HOME\", BELL = \"\\u0007\" }\n",
    );
    let out = d.cli(&["export", "systemd", "web"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let unit = stdout(&out);
    assert!(
        !unit.lines().any(|l| l.starts_with("ExecStartPre")),
        "a value became a directive:\n{unit}"
    );
    for want in [
        r#"ExecStart=/bin/echo "a\nExecStartPre=/bin/touch /tmp/owned" "tab\there" "\x1b[2J""#,
        r#"Environment="NOTE=x\nExecStartPre=/bin/touch /tmp/owned2""#,
        r#"Environment="BELL=\x07""#,
        // `$` means nothing in Environment= (systemd.exec(5)): doubling it changed the value.
        "Environment=HOME_DIR=$HOME\n",
    ] {
        assert!(unit.contains(want), "missing {want}:\n{unit}");
    }
    verify(&unit, "web.service");
}

/// D18b: where systemd has no escapes (WorkingDirectory=, User=), a control character is
/// refused with a message naming the service and the setting, not written.
#[test]
fn issue_14_a_control_character_systemd_cannot_quote_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("a\nExecStartPre=x");
    std::fs::create_dir(&cwd).unwrap();
    let d = TestDaemon::prepare(
        BIN,
        &format!(
            "[services.web]\ncommand = \"sleep 1000\"\ncwd = {}\n",
            toml_string(cwd.to_str().unwrap())
        ),
    );
    let out = d.cli(&["export", "systemd", "web"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}{}", stdout(&out));
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(
        err.contains("service `web`") && err.contains("WorkingDirectory="),
        "{err}"
    );
}

/// D17: `export systemd -o` and `startup --install` wrote `Environment=API_KEY=...` into a
/// file of mode 0644, readable by every user. The files are now 0600, also when they existed.
#[test]
fn issue_14_written_units_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let d = TestDaemon::prepare(
        BIN,
        "[services.web]\ncommand = \"sleep 1000\"\nenv = { API_KEY = \"s3cret\" }\n",
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let fresh = d.dir.path().join("fresh.service");
    let old = d.dir.path().join("old.service");
    std::fs::write(&old, "old").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
    for path in [&fresh, &old] {
        let out = d.cli(&["export", "systemd", "web", "-o", path.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            std::fs::read_to_string(path)
                .unwrap()
                .contains("API_KEY=s3cret")
        );
        assert_eq!(mode(path), 0o600, "{}", path.display());
    }
    // `startup --install --user` writes under $HOME.
    let home = d.dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let out = Command::new(BIN)
        .args(["startup", "--user", "--install", "-c"])
        .arg(&d.config)
        .env("HOME", &home)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        mode(&home.join(".config/systemd/user/upkeep.service")),
        0o600
    );
}

/// A TOML basic string holding `s` exactly.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// D17: an `env_file` that does not parse is reported by line number; no CLI path (`check`,
/// `check --json`, `export`, `startup`, a client command) shows the line, which may be a secret.
#[test]
fn issue_14_env_file_errors_never_show_the_line_on_any_cli_path() {
    let d = TestDaemon::prepare(
        BIN,
        "[services.web]\ncommand = \"sleep 1000\"\nenv_file = \"web.env\"\n",
    );
    std::fs::write(
        d.dir.path().join("web.env"),
        "A=1\nroot:$y$j9T$SECRETHASH:19000:0:99999:7:::\n",
    )
    .unwrap();
    for args in [
        &["check"][..],
        &["check", "--json"],
        &["export", "systemd", "web"],
        &["startup"],
        &["daemon"],
    ] {
        let out = d.cli(args);
        let said = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
        assert!(said.contains("line 2"), "{args:?}: {said}");
        assert!(
            !said.contains("SECRETHASH"),
            "{args:?} shows the line: {said}"
        );
    }
}
