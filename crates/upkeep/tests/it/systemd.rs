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
