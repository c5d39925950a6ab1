//! End-to-end tests: the real `upkeep` binary, real child processes and signals, real SQLite.
//! Every daemon is started through `upkeep_testkit::TestDaemon`.

mod admin;
mod api;
mod browser;
mod cli;
mod config;
mod daemon;
mod deps;
mod digest;
mod drills;
mod fdstore;
mod form_caps;
mod forms;
mod fuzz;
mod hardening;
mod import;
mod incidents_held;
mod incidents_written;
mod install;
mod jobs;
mod logs;
mod maintenance;
mod metrics;
mod notify;
mod notify_reload;
mod openapi;
mod probes;
mod public_pages;
mod report;
mod signals;
mod stalls;
mod statuspage;
mod store;
mod subscribers;
mod supervise;
mod systemd;
mod tls;
mod top;
mod torture;
mod upgrade;
mod watch;
mod windows;

use upkeep_testkit::TestDaemon;

pub const BIN: &str = env!("CARGO_BIN_EXE_upkeep");
pub const LONG: std::time::Duration = std::time::Duration::from_secs(20);

pub fn daemon(services: &str) -> TestDaemon {
    TestDaemon::start(BIN, services)
}

/// An external service `db` with one tcp probe (every 100 ms, down after `failures` misses)
/// on a listener of the test's, up: drop the listener and it goes down.
pub fn external_tcp(failures: u32) -> (TestDaemon, std::net::TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let d = daemon(&format!(
        "[services.db]\nprobes = [{{ kind = \"tcp\", addr = \"{addr}\", every = \"100ms\", failures = {failures}, grace = \"0s\" }}]\n"
    ));
    d.wait_state("db", "up", LONG);
    (d, listener)
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Subscribes `email` (to `services`, or every public one when empty) through the public
/// API on `public`, then confirms it by the link in the mail `sink` receives, as its owner
/// would (the link's button posts).
pub fn subscribe_confirmed(
    d: &TestDaemon,
    sink: &upkeep_testkit::SmtpSink,
    public: std::net::SocketAddr,
    email: &str,
    services: &[&str],
) {
    let mut body = serde_json::json!({ "email": email });
    if !services.is_empty() {
        body["services"] = serde_json::json!(services);
    }
    let a = upkeep_testkit::http(
        public,
        "POST",
        "/api/v1/subscribe",
        &[],
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(a.code, 202, "{}", a.text());
    let confirm = d.wait_until(&format!("{email}'s confirmation mail"), LONG, || {
        sink.messages().into_iter().find(|m| {
            m["to"].as_str() == Some(email)
                && m["subject"].as_str().unwrap_or("").contains("Confirm")
        })
    });
    let path = upkeep_testkit::SmtpSink::link(&confirm, public, "/api/v1/subscribe/confirm?token=");
    let ok = upkeep_testkit::http(public, "POST", &path, &[], b"").unwrap();
    assert_eq!(ok.code, 200, "{}", ok.text());
}

/// Runs `upkeep ARGS --json` (added if missing), which must succeed; its answer.
pub fn cli_json(d: &TestDaemon, args: &[&str]) -> serde_json::Value {
    let mut args = args.to_vec();
    if !args.contains(&"--json") {
        args.push("--json");
    }
    let out = d.cli(&args);
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        stderr(&out),
        d.daemon_log()
    );
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// A small deterministic generator (xorshift) for the randomised tests (torture, fuzz): seeded
/// from the environment variable `var` to replay a run, else from the clock. The seed is
/// printed, so a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn seeded(var: &str) -> Rng {
        let seed = std::env::var(var)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("seed {seed} ({var}={seed} replays this run)");
        Rng(seed)
    }

    /// A number in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }

    /// Up to `max_ms` milliseconds.
    pub fn millis(&mut self, max_ms: usize) -> std::time::Duration {
        std::time::Duration::from_millis(self.below(max_ms) as u64)
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}
