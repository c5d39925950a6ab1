//! Hostile input, at random (issue 14): arbitrary requests to every API route and arbitrary
//! arguments to every CLI command. The daemon never dies, never answers 500, and the CLI
//! never panics. The seed is printed; `UPKEEP_FUZZ_SEED` replays it, and `UPKEEP_FUZZ_TRACE=1`
//! prints every request with its answer and time.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use upkeep_testkit::TestDaemon;

use crate::{LONG, Rng, daemon};

/// Hostile values, drawn from the shared generator.
impl Rng {
    /// Bytes of every kind: printable, controls, NUL, high bytes, `/`, `%`.
    fn junk(&mut self, max: usize) -> Vec<u8> {
        const SPECIAL: &[u8] = b"/%?#&=.\\'\"{}[] ";
        let n = self.below(max + 1);
        (0..n)
            .map(|_| match self.below(4) {
                0 => SPECIAL[self.below(SPECIAL.len())],
                1 => self.below(256) as u8,
                _ => b'a' + self.below(26) as u8,
            })
            .collect()
    }
    fn segment(&mut self) -> String {
        let fixed = [
            "web",
            "all",
            "nobody",
            "",
            "..",
            ".",
            "%2F",
            "a%2Fb",
            "%00",
            "%ff",
            "é",
            "-1",
            "0",
            "99999999999999999999",
            "start",
            "stop",
            "restart",
            "maintenance",
            "logs",
            "bogus",
        ];
        match self.below(4) {
            0 => "x".repeat(self.below(5000)),
            1 => String::from_utf8_lossy(&self.junk(40))
                .chars()
                .filter(|c| !c.is_whitespace() && !c.is_control())
                .collect(),
            _ => self.pick(&fixed).to_owned(),
        }
    }
    fn query(&mut self) -> String {
        let keys = [
            "n", "follow", "stderr", "since", "service", "limit", "x", "",
        ];
        let values = [
            "-1",
            "0",
            "999999999999999999999",
            "18446744073709551616",
            "abc",
            "7d",
            "999999999999999d",
            "-5d",
            "true",
            "false",
            "",
            "%ff",
            "1e9",
            "2026-13-45",
            "-009999-01-01T00:00:00Z",
            "web",
        ];
        let n = self.below(4);
        let parts: Vec<String> = (0..n)
            .map(|_| format!("{}={}", self.pick(&keys), self.pick(&values)))
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }
    fn body(&mut self) -> Vec<u8> {
        let fixed: [&[u8]; 14] = [
            b"",
            b"{}",
            b"[]",
            b"null",
            b"{\"service\":\"web\",\"fault\":\"crash\"}",
            b"{\"service\":\"web\",\"fault\":\"hang\"}",
            b"{\"service\":\"web\",\"fault\":\"close-port\"}",
            b"{\"service\":\"nobody\",\"fault\":\"crash\"}",
            b"{\"name\":\"x/y\",\"command\":\"sleep 1\"}",
            b"{\"name\":\"fz\",\"command\":[\"sleep\",\"1000\"]}",
            b"{\"until\":\"1970-01-01T00:00:00Z\"}",
            b"{\"until\":\"9999-12-31T23:59:59Z\",\"reason\":\"\\u0000\\u001b[2J\"}",
            b"{\"reason\":1e999}",
            b"\xff\xfe\x00",
        ];
        match self.below(5) {
            0 => self.junk(300),
            1 => {
                let depth = self.below(5000);
                format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
            }
            _ => fixed[self.below(fixed.len())].to_vec(),
        }
    }
}

/// Sends one raw request; returns the status code (0 if none came). A streaming answer (a
/// followed log) is cut off after a moment.
fn raw(d: &TestDaemon, method: &str, path: &str, body: &[u8]) -> u16 {
    let Ok(mut s) = UnixStream::connect(d.socket()) else {
        return 0;
    };
    // A drill waits for its fault to be noticed and healed: seconds, by design.
    let wait = if path.starts_with("/api/v1/drills") {
        120
    } else {
        5
    };
    s.set_read_timeout(Some(Duration::from_secs(wait))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: upkeep\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    // The daemon may answer (a bad name, say) and close before it has read the body: a write
    // that fails then is no fault of its, and its answer is there to read.
    let _ = s
        .write_all(head.as_bytes())
        .and_then(|()| s.write_all(body));
    let mut buf = [0u8; 64];
    let mut got = Vec::new();
    while !got.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn alive(d: &TestDaemon) -> bool {
    raw(d, "GET", "/api/v1/health", b"") == 200
}

#[test]
fn arbitrary_requests_to_every_route_never_kill_the_daemon_or_answer_500() {
    let d = daemon(
        "[services.web]\ncommand = \"python3 -m http.server --bind 127.0.0.1 0\"\nprobes = [{ kind = \"process\", every = \"200ms\" }]\n",
    );
    d.wait_state("web", "up", LONG);
    let mut rng = Rng::seeded("UPKEEP_FUZZ_SEED");
    // Every route, with the shapes of their paths (`{}` is a random segment).
    let routes: [(&str, &str); 19] = [
        ("GET", "/api/v1/health"),
        ("GET", "/api/v1/services"),
        ("POST", "/api/v1/services"),
        ("GET", "/api/v1/services/{}"),
        ("GET", "/api/v1/services/{}/logs"),
        ("POST", "/api/v1/services/{}/maintenance"),
        ("DELETE", "/api/v1/services/{}/maintenance"),
        ("POST", "/api/v1/services/{}/{}"),
        ("POST", "/api/v1/reload"),
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/incidents"),
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/incidents/{}"),
        ("GET", "/api/v1/report"),
        ("POST", "/api/v1/drills"),
        ("GET", "/metrics"),
        ("GET", "/{}"),
        ("PUT", "/api/v1/services/{}"),
        ("PATCH", "/api/v1/{}"),
    ];
    let mut answers = std::collections::BTreeMap::<u16, u32>::new();
    for i in 0..1000 {
        let (method, shape) = routes[rng.below(routes.len())];
        let mut path = String::new();
        for (j, part) in shape.split("{}").enumerate() {
            if j > 0 {
                path.push_str(&rng.segment());
            }
            path.push_str(part);
        }
        // Raw bytes on the request line would be rejected by any HTTP parser before routing;
        // keep the line parseable and let the segments carry the hostility.
        let path: String = path
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect();
        let path = format!("{path}{}", rng.query());
        let body = rng.body();
        let t0 = std::time::Instant::now();
        let code = raw(&d, method, &path, &body);
        if std::env::var("UPKEEP_FUZZ_TRACE").is_ok() {
            eprintln!(
                "{i} {method} {} {:?} -> {code} in {:?}",
                &path[..path.len().min(80)],
                String::from_utf8_lossy(&body[..body.len().min(60)]),
                t0.elapsed()
            );
        }
        *answers.entry(code).or_default() += 1;
        assert!(
            code != 0 && (code < 500 || code == 503),
            "request {i}: {method} {path} with body {:?} got {code}\n{}",
            String::from_utf8_lossy(&body[..body.len().min(200)]),
            d.daemon_log()
        );
        if i % 100 == 0 {
            assert!(alive(&d), "the daemon died at request {i}");
        }
    }
    assert!(alive(&d));
    eprintln!("answers by status: {answers:?}");
}

#[test]
fn arbitrary_arguments_to_every_command_never_panic_or_kill_the_daemon() {
    let d = daemon("[services.web]\ncommand = \"sleep 1000\"\n");
    d.wait_state("web", "up", LONG);
    let mut rng = Rng::seeded("UPKEEP_FUZZ_SEED");
    let commands = [
        "ls",
        "status",
        "start",
        "stop",
        "restart",
        "logs",
        "report",
        "incidents",
        "incident",
        "maintenance",
        "drill",
        "check",
        "export",
        "add",
        "reload",
    ];
    let flags = [
        "--json", "-n", "--lines", "--since", "--for", "--reason", "--end", "--fault", "--repeat",
        "--stderr", "--md", "-f", "--", "-c", "--bogus",
    ];
    for i in 0..300 {
        let cmd = rng.pick(&commands);
        let mut args = vec![cmd.to_owned()];
        for _ in 0..rng.below(5) {
            let arg = match rng.below(3) {
                0 => rng.pick(&flags).to_owned(),
                _ => rng.segment(),
            };
            // An argument cannot hold NUL (the OS refuses it before upkeep sees it).
            args.push(arg.replace('\0', ""));
        }
        // `logs -f` follows forever; the rest must end on their own.
        if cmd == "logs" && args.iter().any(|a| a == "-f") {
            continue;
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = d.cli(&refs);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked"),
            "upkeep {args:?} panicked:\n{err}"
        );
        assert!(
            matches!(out.status.code(), Some(0..=2)),
            "upkeep {args:?} exited {:?}:\n{err}",
            out.status
        );
        if i % 25 == 0 {
            assert!(alive(&d), "the daemon died after `upkeep {args:?}`");
        }
    }
    assert!(alive(&d));
}
