//! `/metrics`: checked by Prometheus's own promtool and parsed by an independent parser
//! (the Python prometheus_client). scripts/test installs both.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::LONG;

/// Runs `program args` with `input` on its standard input.
fn pipe(program: &str, args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} (scripts/test installs it): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn promtool_check(text: &str) {
    let out = pipe("promtool", &["check", "metrics"], text);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n{text}"
    );
}

/// (name, labels as sorted "k=v" pairs joined by ",", value) per sample, by prometheus_client.
fn parse(text: &str) -> Vec<(String, String, f64)> {
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        print(f"{s.name}\t{labels}\t{s.value}")
"#;
    let out = pipe("python3", &["-c", script], text);
    assert!(
        out.status.success(),
        "the parser failed (pip install prometheus-client):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut f = l.split('\t');
            (
                f.next().unwrap().into(),
                f.next().unwrap().into(),
                f.next().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn metrics_pass_promtool_and_parse_independently() {
    let port = upkeep_testkit::free_port();
    let closed = upkeep_testkit::free_port();
    let mut d = upkeep_testkit::TestDaemon::prepare(
        crate::BIN,
        &format!(
            "[services.web]\ncommand = \"sleep 1000\"\nprobes = [{{ kind = \"process\", every = \"100ms\", grace = \"0s\" }}]\n\n\
             [services.\"db.main\"]\nprobes = [{{ kind = \"tcp\", addr = \"127.0.0.1:{closed}\", every = \"100ms\", failures = 1, grace = \"0s\" }}]\n"
        ),
    );
    d.add_daemon_keys(&format!("metrics_listen = \"127.0.0.1:{port}\"\n"));
    d.launch();
    d.wait_state("web", "up", LONG);
    d.wait_state("db.main", "down", LONG);

    let (code, body) = d.try_api("GET", "/metrics", None).unwrap();
    assert_eq!(code, 200);
    let text = String::from_utf8(body).unwrap();
    promtool_check(&text);
    let samples = parse(&text);
    let value = |name: &str, labels: &str| {
        samples
            .iter()
            .find(|s| s.0 == name && s.1 == labels)
            .map(|s| s.2)
            .unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{text}"))
    };
    assert_eq!(value("upkeep_service_up", "service=web"), 1.0);
    assert_eq!(value("upkeep_service_up", "service=db.main"), 0.0);
    assert_eq!(
        value("upkeep_service_state", "service=db.main,state=down"),
        1.0
    );
    assert_eq!(value("upkeep_probe_up", "probe=process,service=web"), 1.0);
    assert!(value("upkeep_probe_latency_seconds", "probe=tcp,service=db.main") >= 0.0);
    assert_eq!(
        value("upkeep_service_incident_open", "service=db.main"),
        1.0
    );
    assert_eq!(value("upkeep_incidents", "service=,window=24h"), 1.0);
    assert!(value("process_resident_memory_bytes", "") > 1_000_000.0);
    assert!(value("process_cpu_seconds_total", "") >= 0.0);

    // The same over TCP, where nothing but /metrics is served.
    let fetch = |path: &str| {
        use std::io::Read;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        r
    };
    let over_tcp = fetch("/metrics");
    assert!(
        over_tcp.starts_with("HTTP/1.0 200") || over_tcp.starts_with("HTTP/1.1 200"),
        "{over_tcp}"
    );
    assert!(over_tcp.contains("text/plain; version=0.0.4"));
    let refused = fetch("/api/v1/services/web/stop");
    assert!(
        refused.contains(" 404 "),
        "the TCP listener must not take commands"
    );
    // Issue 14, D20: with the API's JSON error, not an empty body.
    assert!(
        refused.contains(r#"{"error":"no API route for GET /api/v1/services/web/stop"}"#),
        "{refused}"
    );
}
