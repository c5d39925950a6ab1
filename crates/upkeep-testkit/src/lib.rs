//! The one way tests start the real upkeep daemon.
//!
//! [`TestDaemon::start`] makes a fresh temp dir, writes a config whose data dir is inside it,
//! runs the built binary as `upkeep daemon`, and returns once the API answers on the control
//! socket (never after a fixed sleep). It talks to the daemon two ways: the API directly
//! ([`TestDaemon::api_get`], a tiny HTTP/1.1 client over the Unix socket, so tests need no
//! async runtime; [`http`], the same over TCP for `daemon.listen`) and the real CLI
//! ([`TestDaemon::cli`]). On drop it stops the daemon (SIGTERM,
//! then SIGKILL) and kills any process group its services left.
//!
//! The config is `[daemon]` (data dir, store) then the test's services; a test adds keys of
//! its own to that table with [`TestDaemon::with_daemon_keys`] (listeners on [`free_addr`]),
//! and mails to an [`SmtpSink`] through its [`SmtpSink::mail_channel`].
//!
//! Waiting is always for a condition with a deadline, and a timeout says what was awaited.
//! Waiting for time-driven behaviour (a backoff, a maintenance's end) needs no waiting at all
//! on a daemon started with [`TestDaemon::start_on_test_clock`]: [`TestDaemon::advance_clock`]
//! moves its clock.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod fdstore;
pub use fdstore::FdStorePeer;

pub struct TestDaemon {
    bin: PathBuf,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    /// The PostgreSQL database this daemon keeps history in, if not SQLite (see [`postgres`]).
    store: Option<String>,
    /// Where its password is read from, if not `PGPASSWORD`.
    password_file: Option<PathBuf>,
    /// Whether the config sets `daemon.test_clock`.
    test_clock: bool,
    /// More keys of the `[daemon]` table (see [`TestDaemon::add_daemon_keys`]).
    daemon_keys: String,
    child: Option<Child>,
    /// Process groups seen, killed on drop in case a test failed half-way.
    groups: std::cell::RefCell<Vec<u32>>,
    /// Variables added to the daemon's environment (see [`TestDaemon::set_env`]).
    env: Vec<(String, String)>,
    /// Descriptors the next daemon gets as systemd passes its fd store (see
    /// [`TestDaemon::hand_fds`]).
    fds: Vec<(String, std::os::fd::OwnedFd)>,
}

/// The config header every test daemon gets: the test's own `daemon_keys` first (so that
/// their lines in the file are the same whatever the store), its data dir inside the temp dir,
/// and the store [`postgres`] names, if any.
fn header(
    data_dir: &Path,
    store: Option<&str>,
    password_file: Option<&Path>,
    test_clock: bool,
    daemon_keys: &str,
) -> String {
    let store = match (store, password_file) {
        (Some(url), None) => format!("store = \"{url}\"\nstore_password_env = \"PGPASSWORD\"\n"),
        (Some(url), Some(file)) => format!(
            "store = \"{url}\"\nstore_password_file = \"{}\"\n",
            file.display()
        ),
        (None, _) => String::new(),
    };
    let test_clock = if test_clock {
        "test_clock = true\n"
    } else {
        ""
    };
    format!(
        "[daemon]\n{daemon_keys}data_dir = \"{}\"\nshutdown_timeout = \"20s\"\n{test_clock}{store}\n",
        data_dir.display()
    )
}

/// `n` folders `d0`..`d{n-1}` under `dir`, each holding a symlink to every other
/// (`d0/to1 -> ../d1`): a tree whose paths through links grow exponentially (the watch
/// break-it of session 11).
pub fn symlink_mesh(dir: &std::path::Path, n: usize) {
    for i in 0..n {
        std::fs::create_dir_all(dir.join(format!("d{i}"))).unwrap();
    }
    for i in 0..n {
        for j in (0..n).filter(|j| *j != i) {
            std::os::unix::fs::symlink(format!("../d{j}"), dir.join(format!("d{i}/to{j}")))
                .unwrap();
        }
    }
}

/// A free TCP address on loopback, for a listener of the daemon's (`listen`, `public_listen`,
/// `metrics_listen`): see [`free_port`].
pub fn free_addr() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// `sql` run by psql against `url`; its output, trimmed (panics, saying psql's error, if it
/// fails).
pub fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([url, "-qtAX", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Creates a fresh database on the server of `url` (whose user may create databases) and
/// returns its URL.
pub fn create_database(url: &str) -> String {
    let name = format!("upkeep_own_{:016x}", fastrand::u64(..));
    psql(url, &format!("CREATE DATABASE {name}"));
    match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("{url} names no database"),
    }
}

/// A PostgreSQL server of a test's own (scripts/postgres on a free port and a fresh folder),
/// for a test that stops and starts it. Stopped and removed on drop.
pub struct PgServer {
    pub url: String,
    port: u16,
    dir: PathBuf,
}

impl PgServer {
    pub fn start() -> PgServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("upkeep-pg-{port}-{:08x}", fastrand::u32(..)));
        let mut s = PgServer {
            url: String::new(),
            port,
            dir,
        };
        let out = s.script("start");
        // `export UPKEEP_TEST_POSTGRES=URL PGPASSWORD=...`
        let url = out
            .split_whitespace()
            .find_map(|w| w.strip_prefix("UPKEEP_TEST_POSTGRES="))
            .expect("scripts/postgres prints the URL")
            .to_owned();
        s.url = url;
        s
    }

    fn script(&self, verb: &str) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/postgres");
        let out = Command::new(script)
            .arg(verb)
            .env("UPKEEP_PG_PORT", self.port.to_string())
            .env("UPKEEP_PG_DIR", &self.dir)
            .output()
            .expect("run scripts/postgres");
        assert!(
            out.status.success(),
            "scripts/postgres {verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server at once, as a crash or a pulled cable would (clients see their
    /// connections reset).
    pub fn stop(&self) {
        self.script("kill");
    }

    /// Starts it again, with its data.
    pub fn restart(&self) {
        self.script("start");
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.script("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The PostgreSQL database the end-to-end tests keep their history in, when
/// `UPKEEP_TEST_STORE=postgres` (its URL in `UPKEEP_TEST_POSTGRES`, the password in
/// `PGPASSWORD`, as `scripts/postgres` prints them); None: SQLite in each data dir. Every test
/// daemon has a data dir of its own, so a node of its own: they share the database and never
/// see each other's rows.
pub fn postgres() -> Option<String> {
    if std::env::var("UPKEEP_TEST_STORE").ok()? != "postgres" {
        return None;
    }
    Some(
        std::env::var("UPKEEP_TEST_POSTGRES")
            .expect("UPKEEP_TEST_STORE=postgres needs UPKEEP_TEST_POSTGRES (see scripts/postgres)"),
    )
}

impl TestDaemon {
    /// Writes the config (`services_toml` after a `[daemon]` header) without starting anything.
    pub fn prepare(bin: &str, services_toml: &str) -> TestDaemon {
        Self::prepare_with(bin, services_toml, false)
    }

    fn prepare_with(bin: &str, services_toml: &str, test_clock: bool) -> TestDaemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let config = dir.path().join("upkeep.toml");
        let store = postgres();
        std::fs::write(
            &config,
            format!(
                "{}{services_toml}",
                header(&data_dir, store.as_deref(), None, test_clock, "")
            ),
        )
        .expect("write config");
        TestDaemon {
            bin: bin.into(),
            dir,
            config,
            data_dir,
            store,
            password_file: None,
            test_clock,
            daemon_keys: String::new(),
            child: None,
            groups: Default::default(),
            env: Vec::new(),
            fds: Vec::new(),
        }
    }

    /// Like [`TestDaemon::prepare`], with `daemon.test_clock` (see
    /// [`TestDaemon::start_on_test_clock`]).
    pub fn prepare_on_test_clock(bin: &str, services_toml: &str) -> TestDaemon {
        Self::prepare_with(bin, services_toml, true)
    }

    /// Starts the daemon in the foreground on `services_toml` and waits until it answers.
    pub fn start(bin: &str, services_toml: &str) -> TestDaemon {
        let mut d = Self::prepare(bin, services_toml);
        d.launch();
        d
    }

    /// Like [`TestDaemon::start`], with `daemon.test_clock`: the daemon's clock runs with real
    /// time, and [`TestDaemon::advance_clock`] moves it on (a debug build of upkeep only).
    pub fn start_on_test_clock(bin: &str, services_toml: &str) -> TestDaemon {
        let mut d = Self::prepare_with(bin, services_toml, true);
        d.launch();
        d
    }

    /// Moves the daemon's test clock forward `by` (`"90s"`, `"7d"`) and returns its time
    /// after the move. When this returns, everything the move made due (a backoff's end, a
    /// maintenance's end) has woken, so what the test asks next comes after it.
    pub fn advance_clock(&self, by: &str) -> jiff::Timestamp {
        let body = serde_json::json!({ "advance": by });
        let (code, answer) = self
            .try_api("POST", "/api/v1/test/clock", Some(&body))
            .unwrap_or_else(|e| panic!("POST /api/v1/test/clock: {e}\n{}", self.daemon_log()));
        let answer = String::from_utf8_lossy(&answer);
        assert_eq!(code, 200, "POST /api/v1/test/clock: {answer}");
        let state: Value = serde_json::from_str(&answer).expect("JSON");
        assert_eq!(state["settled"], true, "a wake-up was still busy: {answer}");
        state["now"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no time in {answer}"))
    }

    /// (Re)starts the daemon process on the same config and data dir, and waits until it
    /// answers.
    pub fn launch(&mut self) {
        self.spawn_daemon();
        self.wait_until(
            "the daemon to answer /api/v1/health",
            Duration::from_secs(20),
            || {
                self.try_api("GET", "/api/v1/health", None)
                    .ok()
                    .filter(|(code, _)| *code == 200)
                    .map(|_| ())
            },
        );
    }

    /// Adds `key=value` to the environment of the daemon started from now on (a debug build's
    /// test hooks, e.g. `UPKEEP_TEST_UPGRADE_PAUSE`).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.into(), value.into()));
    }

    /// The next daemon started gets `fds` as systemd hands a restarted service its fd store:
    /// at 3, 4, ... with `LISTEN_FDS`, `LISTEN_FDNAMES` and its own pid in `LISTEN_PID`.
    pub fn hand_fds(&mut self, fds: Vec<(String, std::os::fd::OwnedFd)>) {
        self.fds = fds;
    }

    /// Starts the daemon process without waiting for it (to kill it in its start-up).
    pub fn spawn_daemon(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("daemon log");
        let mut cmd = Command::new(&self.bin);
        let fds = std::mem::take(&mut self.fds);
        if !fds.is_empty() {
            cmd = fdstore::listen_fds_command(&self.bin, fds);
        }
        let child = cmd
            .args(["daemon", "-c"])
            .arg(&self.config)
            .env("UPKEEP_LOG", "debug,sqlx=warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("spawn upkeep daemon");
        self.child = Some(child);
    }

    /// The daemon's own log (for failure messages).
    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn daemon_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits (at most `timeout`) for the daemon to exit by itself; returns its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().expect("wait daemon") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the daemon did not exit within {timeout:?}\n{}",
                    self.daemon_log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the daemon and waits for it to exit; returns its exit status.
    pub fn signal_daemon(&mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
            .expect("signal daemon");
        child.wait().expect("wait daemon")
    }

    pub fn socket(&self) -> PathBuf {
        self.data_dir.join("upkeep.sock")
    }

    /// One HTTP request over the control socket: (status code, body).
    pub fn try_api(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::io::Result<(u16, Vec<u8>)> {
        let s = UnixStream::connect(self.socket())?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let r = exchange(s, method, path, &[], body.as_bytes())?;
        Ok((r.code, r.body))
    }

    /// GET `path`, expecting 200 and JSON.
    pub fn api_get(&self, path: &str) -> Value {
        let (code, body) = self
            .try_api("GET", path, None)
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.daemon_log()));
        assert_eq!(code, 200, "GET {path}: {}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e})"))
    }

    /// A service's detail from `GET /api/v1/services/{name}`.
    pub fn service(&self, name: &str) -> Value {
        self.api_get(&format!("/api/v1/services/{name}"))
    }

    pub fn state(&self, name: &str) -> String {
        self.service(name)["info"]["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn pid(&self, name: &str) -> Option<u32> {
        let pid = self.service(name)["info"]["pid"].as_u64().map(|p| p as u32);
        if let Some(p) = pid {
            self.groups.borrow_mut().push(p);
        }
        pid
    }

    /// Events of a service, oldest first, as (kind, detail).
    pub fn events(&self, name: &str) -> Vec<(String, Value)> {
        let mut ev: Vec<(String, Value)> = self
            .api_get(&format!("/api/v1/events?service={name}&limit=10000"))
            .as_array()
            .expect("events array")
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap_or_default().to_owned(),
                    e["detail"].clone(),
                )
            })
            .collect();
        ev.reverse();
        ev
    }

    /// Runs the real CLI against this daemon's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_command(args).output().expect("run upkeep CLI")
    }

    /// Starts the CLI without waiting for it, its output captured.
    pub fn cli_spawn(&self, args: &[&str]) -> Child {
        self.cli_command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run upkeep CLI")
    }

    /// Runs the CLI with `input` on its stdin (a password for `upkeep user add`).
    pub fn cli_with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .cli_command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run upkeep CLI");
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        child.wait_with_output().expect("wait for upkeep CLI")
    }

    fn cli_command(&self, args: &[&str]) -> Command {
        // `-c` first: after a `--` it would be part of the service's command.
        let mut cmd = Command::new(&self.bin);
        cmd.arg("-c")
            .arg(&self.config)
            .args(args)
            .env("UPKEEP_LANG", "en");
        cmd
    }

    /// Waits until probe `probe` of `service` has checked at a time at least `span` from now:
    /// proof that the probe ran for that long, where a fixed sleep would prove nothing under
    /// load (a negative check, "nothing happened", needs it).
    pub fn wait_probe_checked_for(&self, service: &str, probe: &str, span: Duration) {
        let from = jiff::Timestamp::now() + span;
        self.wait_until(
            &format!("probe {probe} of {service} to check again after {span:?}"),
            Duration::from_secs(20) + span,
            || {
                let last = self.service(service)["info"]["probes"][probe]["last"]["at"].clone();
                let at: jiff::Timestamp = last.as_str()?.parse().ok()?;
                (at >= from).then_some(())
            },
        );
    }

    /// Waits until a run of `name` exists that has not said it is ready (state `starting`,
    /// a pid); returns its pid.
    pub fn wait_running_not_ready(&self, name: &str) -> u32 {
        self.wait_until(
            &format!("{name} to run, not ready"),
            Duration::from_secs(20),
            || {
                let info = self.service(name)["info"].clone();
                (info["state"] == "starting")
                    .then(|| info["pid"].as_u64())
                    .flatten()
            },
        ) as u32
    }

    /// Waits until `check` returns Some, or panics saying what it waited for.
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check() {
                return v;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}\n--- daemon log ---\n{}",
                    self.daemon_log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the first message `sink` accepted to `to` (to anyone: None) whose subject
    /// contains `subject`, and returns it.
    pub fn wait_mail(&self, sink: &SmtpSink, to: Option<&str>, subject: &str) -> Value {
        let whom = to.map(|to| format!(" to {to}")).unwrap_or_default();
        self.wait_until(
            &format!("a mail{whom} about {subject:?}"),
            Duration::from_secs(20),
            || {
                sink.messages().into_iter().find(|m| {
                    to.is_none_or(|to| m["to"].as_str() == Some(to))
                        && m["subject"].as_str().unwrap_or_default().contains(subject)
                })
            },
        )
    }

    /// Waits until service `name` is in `state`.
    pub fn wait_state(&self, name: &str, state: &str, timeout: Duration) {
        self.wait_until(&format!("service {name} to be {state}"), timeout, || {
            (self.state(name) == state).then_some(())
        });
    }

    /// Waits until `name` runs with a pid other than `old`, and returns it.
    pub fn wait_new_pid(&self, name: &str, old: u32, timeout: Duration) -> u32 {
        self.wait_until(
            &format!("service {name} to run with a pid other than {old}"),
            timeout,
            || {
                self.pid(name)
                    .filter(|p| *p != old && self.state(name) == "up")
            },
        )
    }

    /// Gives this (not yet launched) daemon a PostgreSQL database of its own, for a test that
    /// locks whole tables; on SQLite, each data dir has its own file anyway.
    pub fn with_own_database(mut self) -> Self {
        let Some(shared) = self.store.clone() else {
            return self;
        };
        let own = create_database(&shared);
        self.use_store(&own);
        self
    }

    /// Keeps this daemon's history in the PostgreSQL database at `url` (password in
    /// `PGPASSWORD`) from its next launch on.
    pub fn use_store(&mut self, url: &str) {
        self.set_store(Some(url));
    }

    /// Keeps this daemon's history in SQLite in its data dir from its next launch on.
    pub fn use_sqlite(&mut self) {
        self.set_store(None);
    }

    /// Like [`TestDaemon::use_store`], with the password read from `file`.
    pub fn use_store_with_password_file(&mut self, url: &str, file: &Path) {
        self.rewrite_header(|d| {
            d.store = Some(url.to_owned());
            d.password_file = Some(file.to_owned());
        });
    }

    fn header(&self) -> String {
        header(
            &self.data_dir,
            self.store.as_deref(),
            self.password_file.as_deref(),
            self.test_clock,
            &self.daemon_keys,
        )
    }

    /// Rewrites the config's header after `change` (the rest of the file stays).
    fn rewrite_header(&mut self, change: impl FnOnce(&mut Self)) {
        let text = std::fs::read_to_string(&self.config).expect("read config");
        let rest = text
            .strip_prefix(&self.header())
            .expect("the config starts with its header")
            .to_owned();
        change(self);
        std::fs::write(&self.config, format!("{}{rest}", self.header())).expect("write config");
    }

    /// Adds `keys` (TOML lines: `listen = "127.0.0.1:8080"`) to the config's `[daemon]` table,
    /// which the daemon reads at its next launch (or reload). They stay through
    /// [`TestDaemon::write_services`] and a change of store.
    pub fn add_daemon_keys(&mut self, keys: &str) {
        self.rewrite_header(|d| {
            d.daemon_keys.push_str(keys);
            if !d.daemon_keys.ends_with('\n') {
                d.daemon_keys.push('\n');
            }
        });
    }

    /// [`TestDaemon::add_daemon_keys`] on a daemon not yet launched, for a chain:
    /// `TestDaemon::prepare(BIN, services).with_daemon_keys(&format!("listen = \"{addr}\""))`.
    pub fn with_daemon_keys(mut self, keys: &str) -> Self {
        self.add_daemon_keys(keys);
        self
    }

    fn set_store(&mut self, url: Option<&str>) {
        self.rewrite_header(|d| {
            d.store = url.map(str::to_owned);
            d.password_file = None;
        });
    }

    /// Runs `sql` on this daemon's store from outside the daemon (python3's sqlite3 on the
    /// SQLite file, or psql), with `{node}` replaced by the daemon's node id, as a hand edit
    /// or a stranger would. Rows come back as fields (NULL as "").
    pub fn store_sql(&self, sql: &str) -> Vec<Vec<String>> {
        let node = std::fs::read_to_string(self.data_dir.join("node-id")).unwrap_or_default();
        let sql = sql.replace("{node}", node.trim());
        let out = match &self.store {
            Some(url) => Command::new("psql")
                .args([
                    url,
                    "-qtAX",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-F",
                    "\x1f",
                    "-c",
                    &sql,
                ])
                .output(),
            None => Command::new("python3")
                .arg("-c")
                .arg(
                    "import sqlite3, sys\n\
                     c = sqlite3.connect(sys.argv[1])\n\
                     for row in c.execute(sys.argv[2]):\n\
                     \x20   print('\\x1f'.join('' if v is None else str(v) for v in row))\n\
                     c.commit()",
                )
                .arg(self.data_dir.join("upkeep.db"))
                .arg(&sql)
                .output(),
        }
        .expect("run the store's client");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\x1f').map(str::to_owned).collect())
            .collect()
    }

    /// Holds the store's write lock from another process for `secs` seconds (SQLite: a write
    /// transaction; PostgreSQL: an exclusive lock on the revisions and events tables) and
    /// returns once it is held. Wait on the child to know it is released.
    pub fn lock_store(&self, secs: u32) -> Child {
        let mut holder = match &self.store {
            Some(url) => Command::new("psql")
                .args([url, "-qtAX", "-v", "ON_ERROR_STOP=1"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map(|mut c| {
                    use std::io::Write;
                    let script = format!(
                        "BEGIN;\nLOCK TABLE config_revisions, events IN ACCESS EXCLUSIVE MODE;\n\\echo locked\nSELECT pg_sleep({secs});\nROLLBACK;\n"
                    );
                    c.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
                    c
                }),
            None => Command::new("python3")
                .arg("-c")
                .arg(format!(
                    "import sqlite3, sys, time\n\
                     c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                     c.execute('BEGIN IMMEDIATE')\n\
                     print('locked', flush=True)\n\
                     time.sleep({secs})\n\
                     c.execute('ROLLBACK')\n"
                ))
                .arg(self.data_dir.join("upkeep.db"))
                .stdout(Stdio::piped())
                .spawn(),
        }
        .expect("run the store's client");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        holder
    }

    /// Rewrites the config's services part (the `[daemon]` header stays).
    pub fn write_services(&self, services_toml: &str) {
        std::fs::write(&self.config, format!("{}{services_toml}", self.header()))
            .expect("write config");
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(25);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // A daemon started with `upkeep up` is not our child: find it through its lock file,
        // and only if that pid is still an upkeep daemon on our config (pids get reused).
        let config = self.config.display().to_string();
        let pid = std::fs::read_to_string(self.data_dir.join("upkeep.lock"))
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if let Some(pid) = pid
            && pids_with_cmdline(&config).contains(&pid)
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for g in self.groups.borrow().iter() {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(*g as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        self.remove_cgroups();
    }
}

impl TestDaemon {
    /// The cgroup folder of this data dir's services, if the daemon made one.
    pub fn cgroup_root(&self) -> Option<PathBuf> {
        let node = std::fs::read_to_string(self.data_dir.join("node-id")).ok()?;
        upkeep_sys::lineage::cgroup_root(node.trim()).filter(|p| p.is_dir())
    }

    /// A daemon killed by a test leaves its (emptied) cgroups behind: end what is in them and
    /// remove them, so that test runs do not pile them up.
    fn remove_cgroups(&self) {
        let Some(root) = self.cgroup_root() else {
            return;
        };
        // The services' cgroups: directories (the rest are the cgroup's own files).
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let dir = entry.path();
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::fs::remove_dir(&dir).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = std::fs::remove_dir(&root);
    }
}

/// An HTTP answer: status code, head (status line and headers, lowercased) and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON, or a panic that shows it.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.code,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request over TCP to `addr` (the daemon's `listen`), with extra `headers`.
pub fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    exchange(s, method, path, headers, body)
}

/// Waits (20 s at most) until `GET path` on `addr` answers 200 with a page that satisfies
/// `ok`, and returns the page; a timeout says what was awaited and shows the last page.
pub fn wait_page(
    addr: std::net::SocketAddr,
    path: &str,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = http(addr, "GET", path, &[], b"").unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let text = a.text();
        if a.code == 200 && ok(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "waited for {what} on {path}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Raises this test process's soft open-file limit to its hard limit, for a test that holds
/// thousands of sockets; the limit it has now.
pub fn raise_open_files() -> u64 {
    match upkeep_sys::raise_open_files() {
        Ok((_, now)) => now,
        Err(e) => panic!("cannot read or raise the open-file limit: {e}"),
    }
}

/// A TCP connection to `addr` from the local address `from` (any of 127.0.0.0/8 on
/// loopback): how a test is several clients at once.
pub fn connect_from(
    from: std::net::IpAddr,
    addr: std::net::SocketAddr,
) -> std::io::Result<std::net::TcpStream> {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrStorage, bind, connect, socket,
    };
    use std::os::fd::AsRawFd;
    let family = if from.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(std::net::SocketAddr::new(from, 0)),
    )?;
    connect(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(std::net::TcpStream::from(fd))
}

/// [`http`] from the local address `from` (see [`connect_from`]).
pub fn http_from(
    from: std::net::IpAddr,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    let s = connect_from(from, addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    exchange(s, method, path, headers, body)
}

/// A bearer token's header.
pub fn bearer(secret: &str) -> (&'static str, String) {
    ("Authorization", format!("Bearer {secret}"))
}

/// Writes one request (Connection: close) and reads the whole answer.
fn exchange(
    mut s: impl Read + Write,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Answer> {
    // JSON unless the caller names another type (a form's).
    let typed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: upkeep\r\nConnection: close\r\n{}Content-Length: {}\r\n",
        if typed {
            ""
        } else {
            "Content-Type: application/json\r\n"
        },
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    // The daemon may answer (413, 401) before reading a large body, and close: what it
    // answered is still there to read.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    if let Err(e) = s.read_to_end(&mut raw)
        && raw.is_empty()
    {
        return Err(e);
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut body = raw[split + 4..].to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Ok(Answer { code, head, body })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = nl + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}

/// True if process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

/// Pids of live (non-zombie) processes in group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    procs()
        .filter(|(_, pg, _, state)| *pg == pgid && *state != 'Z')
        .map(|(pid, ..)| pid)
        .collect()
}

/// The process group of `pid`, if it exists.
pub fn pgid_of(pid: u32) -> Option<u32> {
    procs().find(|(p, ..)| *p == pid).map(|(_, pg, ..)| pg)
}

/// The parent of `pid`, if it exists.
pub fn parent_of(pid: u32) -> Option<u32> {
    procs().find(|(p, ..)| *p == pid).map(|(_, _, pp, _)| pp)
}

/// Zombie children of `parent`.
pub fn zombie_children(parent: u32) -> Vec<u32> {
    procs()
        .filter(|(_, _, ppid, state)| *ppid == parent && *state == 'Z')
        .map(|(pid, ..)| pid)
        .collect()
}

/// (pid, pgid, ppid, state) of every process.
fn procs() -> impl Iterator<Item = (u32, u32, u32, char)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some((
                pid,
                f.get(2)?.parse().ok()?,
                f.get(1)?.parse().ok()?,
                f.first()?.chars().next()?,
            ))
        })
}

/// Pids of live processes whose command line contains `needle`.
pub fn pids_with_cmdline(needle: &str) -> Vec<u32> {
    procs()
        .filter(|(_, _, _, s)| *s != 'Z')
        .filter_map(|(pid, ..)| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(needle).then_some(pid)
        })
        .collect()
}

/// A free TCP port on loopback (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A number unique to this test process and call, to make command lines findable.
pub fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    (std::process::id() as u64) * 1000 + N.fetch_add(1, Ordering::Relaxed) + 100_000
}

/// A real SMTP server on loopback (aiosmtpd, `crates/upkeep-outbox/tests/smtp_sink.py`) that
/// records every message it accepts, parsed by Python's email package, before answering 250.
/// Killed on drop.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = dir.path().join("mail.jsonl");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../upkeep-outbox/tests/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(&out)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs (scripts/test installs it and aiosmtpd)");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().expect("piped")),
            &mut line,
        )
        .expect("read the sink's port");
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("smtp_sink.py printed {line:?}, not its port (is aiosmtpd installed?)")
        });
        SmtpSink {
            child,
            port,
            out,
            _dir: dir,
        }
    }

    /// A `[notify.channels.mail]` table (kind `email`) that sends to this sink from
    /// `upkeep <noreply@example.com>`, with `keys` added (`recipients = [...]`, ...).
    pub fn mail_channel(&self, keys: &str) -> String {
        format!(
            "[notify.channels.mail]\nkind = \"email\"\nurl = \"smtp://127.0.0.1:{}\"\n\
             from = \"upkeep <noreply@example.com>\"\n{keys}",
            self.port
        )
    }

    /// [`SmtpSink::mail_channel`] with `ops@example.com` as its recipient.
    pub fn ops_mail_channel(&self) -> String {
        self.mail_channel("recipients = [\"ops@example.com\"]\n")
    }

    /// Every message accepted so far, oldest first (see smtp_sink.py for the fields).
    pub fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// How many messages it has accepted (cheaper than [`SmtpSink::messages`]).
    pub fn count(&self) -> usize {
        std::fs::read(&self.out)
            .map(|b| b.iter().filter(|c| **c == b'\n').count())
            .unwrap_or(0)
    }

    /// The text part of a message.
    pub fn text(message: &Value) -> String {
        message["parts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["content_type"] == "text/plain")
            .and_then(|p| p["text"].as_str())
            .unwrap_or_default()
            .to_owned()
    }

    /// The link under `path` in a message's text (a confirmation, an unsubscribe), as a path
    /// and query on the public listener at `public`.
    pub fn link(message: &Value, public: std::net::SocketAddr, path: &str) -> String {
        let text = SmtpSink::text(message);
        let prefix = format!("http://{public}{path}");
        let at = text
            .find(&prefix)
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
        let url: String = text[at..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        url[format!("http://{public}").len()..].to_owned()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP receiver on loopback that takes every POST with 200 and records its headers and
/// body; it can be stopped (connections refused) and started again on the same port, as a
/// receiver that goes down and comes back.
pub struct WebhookReceiver {
    pub port: u16,
    records: std::sync::Arc<std::sync::Mutex<Vec<Value>>>,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl WebhookReceiver {
    /// Listening on a free port.
    pub fn start() -> WebhookReceiver {
        let mut r = WebhookReceiver {
            port: free_port(),
            records: Default::default(),
            stop: None,
        };
        r.up();
        r
    }

    /// Not listening (on a port it will listen on when [`WebhookReceiver::up`]).
    pub fn down_from_start() -> WebhookReceiver {
        WebhookReceiver {
            port: free_port(),
            records: Default::default(),
            stop: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Starts listening (again) on its port.
    pub fn up(&mut self) {
        use std::sync::atomic::{AtomicBool, Ordering};
        if self.stop.is_some() {
            return;
        }
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port))
            .expect("bind the receiver's port");
        listener.set_nonblocking(true).expect("non-blocking");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (records, flag) = (self.records.clone(), stop.clone());
        std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let records = records.clone();
                        std::thread::spawn(move || serve_one(s, &records));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        self.stop = Some(stop);
    }

    /// Stops listening: new connections are refused.
    pub fn down(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            // The accept loop wakes within a few milliseconds and drops the listener.
            let deadline = Instant::now() + Duration::from_secs(5);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Every request taken: `{"path", "headers": {lowercased}, "body", "json"}`.
    pub fn requests(&self) -> Vec<Value> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.down();
    }
}

/// Reads one HTTP/1.1 request (with Content-Length), records it, answers 200.
fn serve_one(mut s: std::net::TcpStream, records: &std::sync::Mutex<Vec<Value>>) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let (head_end, length) = loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while raw.len() < head_end + length {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&raw[..head_end - 4]).into_owned();
    let mut lines = head.lines();
    let path = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_default()
        .to_owned();
    let headers: serde_json::Map<String, Value> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            (
                k.trim().to_ascii_lowercase(),
                Value::String(v.trim().to_owned()),
            )
        })
        .collect();
    let body = String::from_utf8_lossy(&raw[head_end..head_end + length]).into_owned();
    let record = serde_json::json!({
        "path": path,
        "headers": headers,
        "json": serde_json::from_str::<Value>(&body).unwrap_or(Value::Null),
        "body": body,
    });
    records
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(record);
    let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
}
