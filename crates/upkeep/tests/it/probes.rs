//! Probes and healing: real listeners, real HTTP servers, real signals.

use std::net::TcpListener;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use upkeep_testkit::{alive, free_port};

use crate::{LONG, daemon};

fn fixture(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .display()
        .to_string()
}

/// A managed flaky_server.py in its own folder (where the `fail` and `slow` files go), with
/// an http probe.
fn flaky(extra_probe: &str) -> (upkeep_testkit::TestDaemon, tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = daemon(&format!(
        r#"[services.web]
command = ["python3", "{}", "{port}"]
cwd = "{}"
backoff_min = "50ms"
[[services.web.probes]]
kind = "http"
url = "http://127.0.0.1:{port}/health"
every = "100ms"
timeout = "1s"
failures = 3
# Python needs a moment to listen, longer on a loaded machine.
grace = "3s"
degraded_after = "250ms"
{extra_probe}"#,
        fixture("flaky_server.py"),
        dir.path().display()
    ));
    (d, dir, port)
}

#[test]
fn external_tcp_service_down_opens_an_incident_and_back_resolves_it_with_its_duration() {
    let (d, listener) = crate::external_tcp(2);
    let addr = listener.local_addr().unwrap();
    drop(listener);
    d.wait_state("db", "down", LONG);
    d.wait_until("an open incident", LONG, || {
        let inc = d.service("db")["incidents"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        inc.first()
            .filter(|i| i["resolved"].is_null())
            .map(|i| assert!(i["reason"].as_str().unwrap().contains("refused"), "{i}"))
    });
    std::thread::sleep(Duration::from_millis(400));
    let _back = TcpListener::bind(addr).unwrap();
    d.wait_state("db", "up", LONG);
    let inc = d.wait_until("the incident to be resolved", LONG, || {
        let inc = d.service("db")["incidents"][0].clone();
        (!inc["resolved"].is_null()).then_some(inc)
    });
    let ms = inc["duration_ms"].as_u64().unwrap();
    assert!(
        (400..20_000).contains(&ms),
        "duration {ms} ms should cover the 400 ms outage"
    );
    assert_eq!(d.service("db")["incidents"].as_array().unwrap().len(), 1);
    // An external service cannot be restarted.
    let out = d.cli(&["restart", "db"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::stderr(&out).contains("external"),
        "{}",
        crate::stderr(&out)
    );
}

#[test]
fn a_down_probe_shows_its_latest_failure_while_the_verdict_keeps_its_cause() {
    let port = free_port();
    let root = tempfile::tempdir().unwrap();
    let mut server = std::process::Command::new("python3")
        .args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &port.to_string(),
        ])
        .current_dir(root.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + LONG;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "http.server never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let d = daemon(&format!(
        "[services.site]\nprobes = [{{ kind = \"http\", url = \"http://127.0.0.1:{port}/missing\", every = \"100ms\", failures = 2, grace = \"0s\" }}]\n"
    ));
    d.wait_state("site", "down", LONG);
    let probe =
        |d: &upkeep_testkit::TestDaemon| d.service("site")["info"]["probes"]["http"].clone();
    assert_eq!(probe(&d)["reason"], "HTTP 404", "{}", probe(&d));
    server.kill().unwrap();
    server.wait().unwrap();
    let p = d.wait_until("the last check to see the refused connection", LONG, || {
        let p = probe(&d);
        p["last"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("refused"))
            .then_some(p)
    });
    assert_eq!(p["reason"], "HTTP 404", "the verdict keeps its cause: {p}");
    assert_eq!(p["last"]["healthy"], false);
    let status = crate::stdout(&d.cli(&["status", "site"]));
    assert!(status.contains("last check"), "{status}");
}

#[test]
fn http_500_is_down_after_failures_and_the_service_is_restarted() {
    let (d, dir, _) = flaky("");
    d.wait_state("web", "up", LONG);
    let pid = d.pid("web").unwrap();
    std::fs::write(dir.path().join("fail"), "").unwrap();
    d.wait_until("a heal restart", LONG, || {
        d.pid("web").filter(|p| *p != pid)
    });
    assert!(!alive(pid));
    let events = d.events("web");
    let down = events
        .iter()
        .find(|e| e.0 == "probe_changed" && e.1["health"] == "down")
        .expect("probe down event");
    assert_eq!(down.1["reason"], "HTTP 500");
    assert!(events.iter().any(|e| e.0 == "heal_requested"));
    // Still failing after the restart: the new run is judged down too (its probe is reset at
    // the start, so a second down verdict is the new run's), never up.
    d.wait_until("the new run's probe to fail too", LONG, || {
        let downs = d
            .events("web")
            .iter()
            .filter(|e| e.0 == "probe_changed" && e.1["health"] == "down")
            .count();
        (downs >= 2).then_some(())
    });
    let ups_before = d
        .events("web")
        .iter()
        .filter(|e| e.0 == "status_changed" && e.1["to"] == "up")
        .count();
    assert_eq!(ups_before, 1, "up while still failing");
    assert_ne!(d.state("web"), "up");
    // Fixed: up again, incident resolved.
    std::fs::remove_file(dir.path().join("fail")).unwrap();
    d.wait_state("web", "up", LONG);
    assert!(alive(d.pid("web").unwrap()));
    d.wait_until("the incident to be resolved", LONG, || {
        (!d.service("web")["incidents"][0]["resolved"].is_null()).then_some(())
    });
    // The incident's timeline: the probe failure, the heal, the restart, the recovery.
    let list: serde_json::Value =
        serde_json::from_str(&crate::stdout(&d.cli(&["incidents", "web", "--json"]))).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    let id = list[0]["id"].as_i64().unwrap().to_string();
    let detail: serde_json::Value =
        serde_json::from_str(&crate::stdout(&d.cli(&["incident", &id, "--json"]))).unwrap();
    let kinds: Vec<&str> = detail["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    let pos = |k: &str| {
        kinds
            .iter()
            .position(|x| *x == k)
            .unwrap_or_else(|| panic!("{k} not in {kinds:?}"))
    };
    assert!(pos("probe_changed") < pos("heal_requested"), "{kinds:?}");
    assert!(pos("incident_opened") < pos("started"), "{kinds:?}");
    assert!(pos("heal_requested") < pos("started"), "{kinds:?}");
    assert!(pos("started") < pos("incident_resolved"), "{kinds:?}");
    let text = crate::stdout(&d.cli(&["incident", &id]));
    assert!(
        text.contains("timeline") && text.contains("HTTP 500"),
        "{text}"
    );
    // An unknown incident: the operation failed (1), the command line was fine.
    let out = d.cli(&["incident", "999999"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        crate::stderr(&out).contains("no incident"),
        "{}",
        crate::stderr(&out)
    );
}

#[test]
fn slow_answers_make_the_service_degraded_not_down() {
    let (d, dir, _) = flaky("");
    d.wait_state("web", "up", LONG);
    std::fs::write(dir.path().join("slow"), "").unwrap();
    d.wait_state("web", "degraded", LONG);
    let pid = d.pid("web").unwrap();
    std::fs::remove_file(dir.path().join("slow")).unwrap();
    d.wait_state("web", "up", LONG);
    assert_eq!(
        d.pid("web"),
        Some(pid),
        "degraded is not a reason to restart"
    );
}

#[test]
fn a_sigstopped_service_is_detected_and_restarted() {
    let (d, _dir, _) = flaky(
        "[[services.web.probes]]\nkind = \"process\"\nevery = \"100ms\"\nfailures = 2\ngrace = \"0s\"\n",
    );
    d.wait_state("web", "up", LONG);
    let pid = d.pid("web").unwrap();
    kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).unwrap();
    let new = d.wait_until("a restart of the frozen service", LONG, || {
        d.pid("web").filter(|p| *p != pid)
    });
    assert!(!alive(pid));
    d.wait_state("web", "up", LONG);
    assert_eq!(d.pid("web"), Some(new));
    let events = d.events("web");
    assert!(
        events
            .iter()
            .any(|e| e.0 == "probe_changed"
                && e.1["reason"].as_str().unwrap_or("").contains("stopped")),
        "{events:?}"
    );
}

#[test]
fn a_service_above_its_memory_threshold_is_restarted() {
    let d = daemon(
        "[services.hog]\ncommand = [\"python3\", \"-c\", \"import time; x = bytearray(150 * 1024 * 1024); time.sleep(1000)\"]\n\
         [[services.hog.probes]]\nkind = \"memory\"\nmax = \"100MiB\"\nevery = \"100ms\"\nfailures = 2\ngrace = \"0s\"\n",
    );
    let first = d.wait_until("the hog to run", LONG, || d.pid("hog"));
    d.wait_until("a restart for memory", LONG, || {
        d.pid("hog").filter(|p| *p != first)
    });
    let events = d.events("hog");
    let down = events
        .iter()
        .find(|e| e.0 == "probe_changed" && e.1["health"] == "down")
        .unwrap();
    assert!(
        down.1["reason"].as_str().unwrap().contains("> 100.0 MiB"),
        "{down:?}"
    );
}

#[test]
fn exec_probe_and_probe_changes_on_reload_keep_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("ok");
    std::fs::write(&flag, "").unwrap();
    let svc = |extra: &str| {
        format!(
            "[services.job]\ncommand = \"sleep 1000\"\non_unhealthy = \"alert\"\n[[services.job.probes]]\nkind = \"exec\"\ncommand = \"test -e {}\"\nevery = \"100ms\"\nfailures = 1\ngrace = \"0s\"\n{extra}",
            flag.display()
        )
    };
    let d = daemon(&svc(""));
    d.wait_state("job", "up", LONG);
    let pid = d.pid("job").unwrap();
    std::fs::remove_file(&flag).unwrap();
    d.wait_state("job", "down", LONG);
    // on_unhealthy = "alert": reported, not restarted, however long the probe fails.
    d.wait_probe_checked_for("job", "exec", Duration::from_millis(500));
    assert_eq!(d.pid("job"), Some(pid));
    std::fs::write(&flag, "").unwrap();
    d.wait_state("job", "up", LONG);
    // A probe-only change does not restart the process.
    d.write_services(&svc(
        "[[services.job.probes]]\nkind = \"process\"\nevery = \"100ms\"\ngrace = \"0s\"\n",
    ));
    let out = d.cli(&["reload", "--json"]);
    assert!(out.status.success(), "{}", crate::stderr(&out));
    d.wait_until("the new probe to report", LONG, || {
        d.service("job")["info"]["probes"]["process"]["health"]
            .eq("up")
            .then_some(())
    });
    assert_eq!(d.pid("job"), Some(pid));
}

#[test]
fn tls_verification_and_redirects_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let port = free_port();
    let url = |path: &str| format!("https://127.0.0.1:{port}{path}");
    let probe = |name: &str, extra: &str, path: &str| {
        format!(
            "{{ kind = \"http\", name = \"{name}\", url = \"{}\", every = \"100ms\", failures = 1, grace = \"3s\", {extra} }}",
            url(path)
        )
    };
    let d = daemon(&format!(
        "[services.tls]\ncommand = [\"python3\", \"{}\", \"{port}\", \"{}\", \"{}\"]\non_unhealthy = \"alert\"\nprobes = [\n  {},\n  {},\n  {},\n  {},\n]\n",
        fixture("tls_redirect_server.py"),
        cert.display(),
        key.display(),
        probe(
            "insecure",
            "tls_verify = false, body_contains = \"here\"",
            "/here"
        ),
        probe("verified", "tls_verify = true", "/here"),
        probe(
            "follows",
            "tls_verify = false, follow_redirects = true, status = [200], body_contains = \"here\"",
            "/moved"
        ),
        probe("stays", "tls_verify = false, status = [200]", "/moved"),
    ));
    let health = |p: &str| d.service("tls")["info"]["probes"][p].clone();
    // The server needs a moment to listen; then each probe settles on its verdict.
    d.wait_until("the TLS probes to settle", LONG, || {
        let settled = health("insecure")["health"] == "up"
            && health("follows")["health"] == "up"
            && health("stays")["reason"] == "HTTP 302"
            && health("verified")["reason"]
                .as_str()
                .is_some_and(|r| r.to_lowercase().contains("certificate"));
        settled.then_some(())
    });
    assert_eq!(health("insecure")["health"], "up", "{}", health("insecure"));
    assert_eq!(health("follows")["health"], "up", "{}", health("follows"));
    let verified = health("verified");
    assert_eq!(
        verified["health"], "down",
        "a self-signed certificate must fail verification: {verified}"
    );
    assert!(
        verified["reason"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{verified}"
    );
    assert_eq!(health("stays")["health"], "down");
    assert_eq!(health("stays")["reason"], "HTTP 302");
}

/// 400 probes of a server that accepts but never answers hold at most 256 connections (the
/// per-host gate), and a probe of another host keeps its pace meanwhile.
#[test]
fn a_host_that_never_answers_neither_floods_the_daemon_nor_delays_other_probes() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap();
    // Accept and hold every connection, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming() {
            held.push(s);
        }
    });
    let good = TcpListener::bind("127.0.0.1:0").unwrap();
    let good_addr = good.local_addr().unwrap();
    let probes: Vec<String> = (0..400)
        .map(|i| {
            format!(
                "{{ kind = \"http\", name = \"h{i}\", url = \"http://{silent_addr}/\", every = \"1s\", timeout = \"3s\", grace = \"0s\" }}"
            )
        })
        .collect();
    let d = daemon(&format!(
        "[services.silent]\nprobes = [{}]\n\n[services.good]\nprobes = [{{ kind = \"tcp\", addr = \"{good_addr}\", every = \"100ms\", grace = \"0s\" }}]\n",
        probes.join(", ")
    ));
    d.wait_state("good", "up", LONG);
    let daemon_pid = d.daemon_pid().unwrap();
    let fds = || {
        std::fs::read_dir(format!("/proc/{daemon_pid}/fd"))
            .unwrap()
            .count()
    };
    let mut most = 0;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(150));
        most = most.max(fds());
        // The good probe keeps checking: not stuck behind the silent host's 3 s timeouts.
        let last = d.service("good")["info"]["probes"]["tcp"]["last"]["at"].clone();
        let at: jiff::Timestamp = last.as_str().unwrap().parse().unwrap();
        let ago = jiff::Timestamp::now().duration_since(at);
        assert!(
            ago < jiff::SignedDuration::from_millis(2000),
            "the good probe last checked {ago:?} ago"
        );
    }
    // 256 held connections plus the daemon's own files and sockets; never one per probe.
    assert!(most >= 256, "the gate lets 256 through: {most} fds");
    assert!(most < 256 + 100, "{most} fds open");
    assert_eq!(d.state("silent"), "starting");
}
