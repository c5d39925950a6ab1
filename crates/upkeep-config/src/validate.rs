//! Validation: the one place where config is checked. Raw TOML types in, [`Config`] out.
//!
//! Every problem is collected (never only the first), located by key path and reported as one
//! [`ConfigError`]. What comes out cannot be invalid: durations are `Duration`s within the
//! limits of `bounds.rs`, programs are resolved to files that exist, signals are numbers, users
//! are uids this daemon can switch to, strings that reach a syscall hold no NUL. A value that
//! fails one check is reported once: checks that depend on it are skipped.
//!
//! This file checks the daemon and services; probes are checked in `probes/` (one file per
//! kind), the store in `store.rs`, dependencies (and their cycles) in `deps.rs` and readiness
//! in `ready.rs`, each adding methods to the one `Validator` that collects problems. Start at
//! [`parse`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use upkeep_core::ServiceName;

use crate::bounds::{self, Limits};
use crate::error::{ConfigError, Problem};
use crate::locate::{line_col, locate_key};
use crate::raw::{RawCommand, RawConfig, RawService};

mod deps;
mod incident;
mod notify;
mod page;
mod probes;
mod process;
mod ready;
mod schedule;
mod store;
mod tls;

/// The most the kernel passes in one argument or `KEY=value` string at exec, its NUL
/// included (`MAX_ARG_STRLEN`, 32 pages).
const MAX_ARG_STRLEN: usize = 32 * 4096;
pub use page::OnPage;
pub use probes::{
    CpuProbeConfig, ExecProbeConfig, HttpProbeConfig, MemoryProbeConfig, ProbeConfig, ProbeKind,
    ProcessProbeConfig, TcpProbeConfig,
};
pub use process::{ServiceType, parse_signal};
pub use ready::{LogPattern, Ready};
pub use schedule::{ALWAYS_IGNORED, JobConfig, Schedule, WatchConfig};
pub use store::{SecretSource, StoreConfig, secret_in_url};
pub use tls::{EXPIRY_WARNING, TlsConfig, TlsProblem, Validity, load_tls};

/// A validated config, with the text it came from (stored as a revision).
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub source: String,
    pub daemon: DaemonConfig,
    pub maintenance: MaintenanceConfig,
    pub services: BTreeMap<ServiceName, ServiceConfig>,
    /// `[notify]`; None: no notices.
    pub notify: Option<upkeep_outbox::NotifyConfig>,
}

impl Config {
    /// What is served as it is but an operator should know at `now` (a certificate out of,
    /// or near the end of, its dates): `upkeep check` prints these, a start and a reload log
    /// them. Empty when all is well.
    pub fn warnings(&self, now: jiff::Timestamp) -> Vec<String> {
        self.daemon
            .tls
            .iter()
            .filter_map(|t| t.validity_warning(now))
            .collect()
    }

    /// The environment variables this config names as holding secrets (every `*_env` key
    /// outside a service's `env`: `password_env`, `url_env`, `secret_env`,
    /// `store_password_env`...): the daemon reads them, services never inherit them.
    pub fn secret_vars(&self) -> Vec<String> {
        fn walk(table: &toml::Table, out: &mut Vec<String>) {
            for (key, value) in table {
                match value {
                    toml::Value::String(var) if key.ends_with("_env") => out.push(var.clone()),
                    // A service's own variables are given to it, not withheld.
                    toml::Value::Table(t) if key != "env" => walk(t, out),
                    toml::Value::Array(items) => {
                        for t in items.iter().filter_map(toml::Value::as_table) {
                            walk(t, out);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        if let Ok(table) = self.source.parse::<toml::Table>() {
            walk(&table, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }

    /// A config error for problems found past validation (the daemon building its notice
    /// channels, which reads their secrets), each at the place of its key (`notify`,
    /// `channels`, `mail`, `password_env`), as validation's own are.
    pub fn error_at(&self, problems: Vec<(Vec<String>, String, Option<String>)>) -> ConfigError {
        let problems = problems
            .into_iter()
            .map(|(key, message, hint)| {
                let path: Vec<&str> = key.iter().map(String::as_str).collect();
                let (line, column) = locate_key(&self.source, &path).unwrap_or((1, 1));
                Problem {
                    line,
                    column,
                    key: key.join("."),
                    message,
                    hint,
                }
            })
            .collect();
        ConfigError::Invalid {
            path: self.path.clone(),
            problems,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    pub data_dir: PathBuf,
    pub shutdown_timeout: Duration,
    /// Where `/metrics` is served over TCP, if anywhere.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where the TCP API is served (public, read and write routes), if anywhere.
    pub listen: Option<std::net::SocketAddr>,
    /// Where the public routes alone are served, if anywhere.
    pub public_listen: Option<std::net::SocketAddr>,
    /// The certificate and key `listen` and `public_listen` serve HTTPS with, if any.
    pub tls: Option<TlsConfig>,
    /// Give each service a cgroup of its own where cgroup2 allows it.
    pub cgroups: bool,
    /// Where history is kept.
    pub store: StoreConfig,
    /// This host's name as people see it; None: the host name.
    pub node: Option<String>,
    /// How long raw events are kept; None: forever. Rollups stay.
    pub retain: Option<Duration>,
    /// A clock that tests move (`POST /api/v1/test/clock`). Only ever true in a build with
    /// debug assertions: a release build refuses the setting.
    pub test_clock: bool,
    /// Called every minute (a dead-man's switch), if set.
    pub heartbeat_url: Option<url::Url>,
    /// Reverse proxies whose forwarding headers are believed (on `listen` and `public_listen`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Connections one client address (an IPv6 one by its /64) may hold open on each TCP
    /// listener; trusted proxies are not capped.
    pub max_connections_per_address: u32,
    /// How long a client has to send a whole request, head and body, on each TCP listener,
    /// from when its connection begins to wait for it; past it a 408 (or, before the head is
    /// in, the connection closed).
    pub request_timeout: Duration,
}

/// `[maintenance]`: the lead-time policy and the reminders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceConfig {
    /// Windows up to this long need `short_notice`; longer ones `long_notice`.
    pub short_max: Duration,
    pub short_notice: Duration,
    pub long_notice: Duration,
    /// How long before each start people are reminded, longest first.
    pub reminders: Vec<Duration>,
    /// How long a window may overrun before its services leave maintenance anyway.
    pub overrun_max: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        let h = |n: u64| Duration::from_secs(n * 3600);
        MaintenanceConfig {
            short_max: h(4),
            short_notice: h(24),
            long_notice: h(7 * 24),
            reminders: vec![h(24), h(1)],
            overrun_max: h(24),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            RestartPolicy::Always => "always",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Never => "never",
        }
    }
}

/// What to execute. `argv[0]` is the program as written; `path` is where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub path: PathBuf,
    pub argv: Vec<String>,
    /// The command as the user wrote it (for display).
    pub display: String,
}

impl Program {
    /// A command that runs this program in its own process group, in `cwd` if given, with
    /// stdin from /dev/null; the caller sets the rest (output, environment, user).
    pub fn command(&self, cwd: Option<&Path>) -> std::process::Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(&self.path);
        cmd.arg0(&self.argv[0])
            .args(&self.argv[1..])
            .stdin(std::process::Stdio::null())
            .process_group(0);
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        cmd
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserIds {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub max_size: u64,
    pub keep: u32,
    pub compress: bool,
}

/// One service: what to run (if upkeep runs it) and how to tell it is healthy.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    /// None for an external service, watched by probes only.
    pub managed: Option<ManagedConfig>,
    pub probes: Vec<ProbeConfig>,
    pub on_unhealthy: OnUnhealthy,
    /// How long a service must be down before an incident opens.
    pub incident_after: Duration,
    /// What must have started, be ready or be healthy before it starts (managed services
    /// only; no cycles). Here and not in [`ManagedConfig`]: a reload that changes an edge
    /// restarts nothing.
    pub depends_on: Vec<upkeep_core::Dependency>,
    /// What it does when a dependency goes down.
    pub on_dependency_down: upkeep_core::OnDependencyDown,
    /// Where to read what to do when it fails (a URL or a path, shown as written).
    pub runbook: Option<String>,
    /// `priority`: its incidents' priority unless they have their own (None: P3).
    pub priority: Option<upkeep_core::incident::IncidentPriority>,
    /// A job (`schedule`): runs to completion on its schedule; its `managed.job` is set.
    /// Here and not in [`ManagedConfig`]: a reload that changes a schedule restarts nothing.
    pub job: Option<JobConfig>,
    /// `restart_at`: restarted at these times.
    pub restart_at: Option<Schedule>,
    /// `watch`: restarted when these files change.
    pub watch: Option<WatchConfig>,
    /// How the public status page shows it (`group`, `public`, `display_name`, `description`).
    pub page: OnPage,
}

/// What to do when probes say a service is down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnUnhealthy {
    /// Restart it (managed services), under the same backoff and crash-loop rules as a crash.
    Restart,
    /// Only record and report.
    Alert,
}

/// How upkeep runs a managed service. `PartialEq` is what reload uses to decide whether the
/// process must restart.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedConfig {
    pub program: Program,
    pub cwd: Option<PathBuf>,
    /// From `env_file` first, then `env` (which wins), in a stable order.
    pub env: Vec<(String, String)>,
    pub user: Option<UserIds>,
    pub restart: RestartPolicy,
    pub autostart: bool,
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub min_uptime: Duration,
    pub max_restarts: u32,
    pub window: Duration,
    pub log: LogConfig,
    /// How it says it is ready (default: once spawned).
    pub ready: Ready,
    /// Not ready this long after a start: a failed start. Only with `ready`.
    pub ready_timeout: Option<Duration>,
    /// With `ready = "notify"`: the most time between two `WATCHDOG=1` pings.
    pub watchdog: Option<Duration>,
    /// `simple`, or `forking` with its PID file.
    pub kind: ServiceType,
    /// What `upkeep reload NAME` sends (None: it cannot reload without a restart).
    pub reload_signal: Option<i32>,
    /// A job (the service has `schedule`): each run's exit is recorded with its output
    /// (`job_ran`), and it is never restarted.
    pub job: bool,
}

/// Reads and validates the config file at `path` (read as [`read`] does).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    parse(path, &read(path)?)
}

/// The text of the config file at `path`, unvalidated: a regular file of at most
/// `bounds::CONFIG_MAX_BYTES` (a FIFO would block the reader, `/dev/zero` never ends), in
/// UTF-8. Every reader of a config file goes through here (the daemon, `check`, and the CLI
/// finding its daemon's data dir), so a file one refuses, all refuse, with the same words.
pub fn read(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    let read_error = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| {
            f.take(crate::bounds::CONFIG_MAX_BYTES + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(read_error)?;
    if bytes.len() as u64 > crate::bounds::CONFIG_MAX_BYTES {
        return Err(read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} MiB: not a config file",
                crate::bounds::CONFIG_MAX_BYTES >> 20
            ),
        )));
    }
    String::from_utf8(bytes).map_err(|e| not_utf8(path, e.as_bytes(), e.utf8_error()))
}

/// A file that is not UTF-8 (TOML must be), located at its first invalid byte.
fn not_utf8(path: &Path, bytes: &[u8], e: std::str::Utf8Error) -> ConfigError {
    let valid = std::str::from_utf8(&bytes[..e.valid_up_to()])
        .expect("valid_up_to marks the end of valid UTF-8");
    let (line, column) = line_col(valid, valid.len());
    ConfigError::Invalid {
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_owned()),
        problems: vec![Problem {
            line,
            column,
            key: String::new(),
            message: format!(
                "the file is not UTF-8: byte 0x{:02x} cannot be read as text",
                bytes[e.valid_up_to()]
            ),
            hint: Some("save the file as UTF-8 (TOML files must be)".into()),
        }],
    }
}

/// Who validates: the daemon (or `upkeep check`, judging as the user who runs it). A process
/// that is not root cannot switch users, so `user` is checked against it. An argument rather
/// than a lookup inside the checks, so tests can validate as someone else.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunningAs {
    /// Effective uid.
    pub uid: u32,
    /// Real and effective gid: the groups an unprivileged `setgid` may pick.
    pub gids: [u32; 2],
}

impl RunningAs {
    fn current() -> Self {
        use nix::unistd::{getegid, geteuid, getgid};
        Self {
            uid: geteuid().as_raw(),
            gids: [getgid().as_raw(), getegid().as_raw()],
        }
    }
}

/// Validates `source`, which was read from `path` (used for messages and relative paths).
pub fn parse(path: &Path, source: &str) -> Result<Config, ConfigError> {
    // What `load` would refuse to read is refused here too: an edit (`add`, `import`) that
    // makes the file bigger than that would write a config no daemon can start from.
    if source.len() as u64 > crate::bounds::CONFIG_MAX_BYTES {
        return Err(ConfigError::Read {
            path: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "larger than {} MiB: not a config file",
                    crate::bounds::CONFIG_MAX_BYTES >> 20
                ),
            ),
        });
    }
    parse_as(path, source, RunningAs::current())
}

/// [`parse`], judging `user` keys as a process running as `running_as` would.
pub(crate) fn parse_as(
    path: &Path,
    source: &str,
    running_as: RunningAs,
) -> Result<Config, ConfigError> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let base = path
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let read = toml::Deserializer::parse(source)
        .map_err(|e| (String::new(), e))
        .and_then(|d| {
            serde_path_to_error::deserialize::<_, RawConfig>(d)
                .map_err(|e| (e.path().to_string(), e.into_inner()))
        });
    let raw = match read {
        Ok(raw) => raw,
        Err((key, e)) => {
            return Err(ConfigError::Invalid {
                path,
                problems: vec![read_problem(source, key, &e)],
            });
        }
    };
    let mut v = Validator {
        source,
        problems: Vec::new(),
        running_as,
        shutdown_timeout: None,
        service_names: raw.services.keys().cloned().collect(),
    };
    let config = v.config(raw, &base, &path);
    if v.problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid {
            path,
            problems: v.problems,
        })
    }
}

struct Validator<'a> {
    source: &'a str,
    problems: Vec<Problem>,
    running_as: RunningAs,
    /// The daemon's, once validated: every `stop_timeout` must be shorter.
    shutdown_timeout: Option<Duration>,
    /// Every service named in the file (valid or not), for `depends_on`.
    service_names: std::collections::BTreeSet<String>,
}

impl Validator<'_> {
    fn problem<S: AsRef<str>>(
        &mut self,
        key: &[S],
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let key: Vec<&str> = key.iter().map(AsRef::as_ref).collect();
        let (line, column) = locate_key(self.source, &key).unwrap_or((1, 1));
        self.problems.push(Problem {
            line,
            column,
            key: key.join("."),
            message: message.into(),
            hint,
        });
    }

    fn config(&mut self, raw: RawConfig, base: &Path, path: &Path) -> Config {
        let data_dir = match raw.daemon.data_dir.as_deref() {
            Some(d) => self.data_dir(d, base),
            None => crate::default_data_dir(),
        };
        let shutdown_timeout = self.duration(
            &["daemon", "shutdown_timeout"],
            &raw.daemon.shutdown_timeout,
            bounds::SHUTDOWN_TIMEOUT,
        );
        self.shutdown_timeout = shutdown_timeout;
        let metrics_listen =
            self.listen_addr("metrics_listen", raw.daemon.metrics_listen.as_deref(), 9464);
        let listen = self.listen_addr("listen", raw.daemon.listen.as_deref(), 8080);
        let public_listen =
            self.listen_addr("public_listen", raw.daemon.public_listen.as_deref(), 8081);
        // Two listeners on one address, or on one port where one of them takes every address
        // (`0.0.0.0:8080` and `127.0.0.1:8080`): the second bind would fail at start-up.
        let named = [
            ("listen", listen),
            ("public_listen", public_listen),
            ("metrics_listen", metrics_listen),
        ];
        for (i, (key, addr)) in named.iter().enumerate() {
            let Some(addr) = addr else { continue };
            let clash = named[..i]
                .iter()
                .find_map(|(other, a)| a.filter(|a| listeners_clash(a, addr)).map(|a| (other, a)));
            if let Some((other, at)) = clash {
                let what = if at == *addr {
                    format!("{key} is the same address as {other}")
                } else {
                    format!("{key} `{addr}` takes the port of {other} `{at}`")
                };
                self.problem(
                    &["daemon", key],
                    what,
                    Some(format!("give {key} a port of its own")),
                );
            }
        }
        let served = raw.daemon.listen.is_some() || raw.daemon.public_listen.is_some();
        let tls = self.tls(raw.daemon.tls.as_ref(), base, served);
        let store = self.store(&raw.daemon, base);
        let node = self.node_name(raw.daemon.node.as_deref());
        let retain = raw
            .daemon
            .retain
            .as_deref()
            .and_then(|text| self.duration(&["daemon", "retain"], text, bounds::RETAIN));
        let test_clock = raw.daemon.test_clock && self.test_clock_allowed(cfg!(debug_assertions));
        let heartbeat_url = raw
            .daemon
            .heartbeat_url
            .as_deref()
            .and_then(|text| self.heartbeat_url(text));
        let trusted_proxies = self.trusted_proxies(&raw.daemon.trusted_proxies);
        self.in_range(
            &["daemon", "max_connections_per_address"],
            raw.daemon.max_connections_per_address,
            bounds::CONNECTIONS_PER_ADDRESS,
            None,
        );
        let request_timeout = self.duration(
            &["daemon", "request_timeout"],
            &raw.daemon.request_timeout,
            bounds::REQUEST_TIMEOUT,
        );
        let mut services = BTreeMap::new();
        for (name, svc) in raw.services {
            let key = ["services", name.as_str()];
            let service_name = match ServiceName::new(name.clone()) {
                Ok(n) => Some(n),
                Err(e) => {
                    self.problem(&key, e.to_string(), None);
                    None
                }
            };
            if let (Some(cfg), Some(n)) = (self.service(&name, svc, base), service_name) {
                services.insert(n, cfg);
            }
        }
        self.dependency_cycles(&services);
        self.dependencies_on_jobs(&services);
        let maintenance = self.maintenance(&raw.maintenance);
        let notify = raw.notify.and_then(|n| self.notify(n, base, &services));
        Config {
            path: path.to_owned(),
            source: self.source.to_owned(),
            maintenance,
            daemon: DaemonConfig {
                data_dir,
                // None only with a problem recorded, and then this config is dropped.
                shutdown_timeout: shutdown_timeout.unwrap_or_default(),
                metrics_listen,
                listen,
                public_listen,
                tls,
                cgroups: raw.daemon.cgroups,
                store,
                node,
                retain,
                test_clock,
                heartbeat_url,
                trusted_proxies,
                max_connections_per_address: raw.daemon.max_connections_per_address,
                request_timeout: request_timeout.unwrap_or_default(),
            },
            services,
            notify,
        }
    }

    fn maintenance(&mut self, raw: &crate::raw::RawMaintenance) -> MaintenanceConfig {
        let key = |k: &str| ["maintenance".to_owned(), k.to_owned()];
        let default = MaintenanceConfig::default();
        let short_max = self
            .duration(&key("short_max"), &raw.short_max, bounds::WINDOW_SHORT_MAX)
            .unwrap_or(default.short_max);
        let short_notice = self
            .duration(
                &key("short_notice"),
                &raw.short_notice,
                bounds::WINDOW_NOTICE,
            )
            .unwrap_or(default.short_notice);
        let long_notice = self
            .duration(&key("long_notice"), &raw.long_notice, bounds::WINDOW_NOTICE)
            .unwrap_or(default.long_notice);
        if raw.reminders.len() > bounds::WINDOW_REMINDERS {
            self.problem(
                &key("reminders"),
                format!(
                    "{} reminders: at most {} (each is a notice to everyone affected)",
                    raw.reminders.len(),
                    bounds::WINDOW_REMINDERS
                ),
                None,
            );
        }
        let mut reminders: Vec<Duration> = raw
            .reminders
            .iter()
            .take(bounds::WINDOW_REMINDERS)
            .filter_map(|r| self.duration(&key("reminders"), r, bounds::WINDOW_NOTICE))
            .filter(|d| !d.is_zero())
            .collect();
        reminders.sort_unstable_by(|a, b| b.cmp(a));
        reminders.dedup();
        let overrun_max = self
            .duration(
                &key("overrun_max"),
                &raw.overrun_max,
                bounds::WINDOW_SHORT_MAX,
            )
            .unwrap_or(default.overrun_max);
        MaintenanceConfig {
            short_max,
            short_notice,
            long_notice,
            reminders,
            overrun_max,
        }
    }

    /// `daemon.heartbeat_url`: an http(s) URL with a host, no user or password in it (it is
    /// logged when a call fails).
    fn heartbeat_url(&mut self, text: &str) -> Option<url::Url> {
        match url::Url::parse(text) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && u.username().is_empty()
                    && u.password().is_none() =>
            {
                Some(u)
            }
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                self.problem(
                    &["daemon", "heartbeat_url"],
                    "heartbeat_url must not hold a user or password",
                    Some("Healthchecks-style URLs carry their secret in the path".into()),
                );
                None
            }
            _ => {
                self.problem(
                    &["daemon", "heartbeat_url"],
                    format!("heartbeat_url `{text}` is not an http(s) URL"),
                    Some("e.g. heartbeat_url = \"https://hc-ping.com/<uuid>\"".into()),
                );
                None
            }
        }
    }

    /// `daemon.test_clock = true`: a clock anyone with the write scope can move would let them
    /// end every maintenance and skip every backoff, so only a test build (one with debug
    /// assertions, `debug`) accepts it.
    fn test_clock_allowed(&mut self, debug: bool) -> bool {
        if !debug {
            self.problem(
                &["daemon", "test_clock"],
                "test_clock is for tests, and this upkeep is a release build: its clock is the system's",
                Some("remove test_clock; end-to-end tests run a debug build (`cargo build`)".into()),
            );
        }
        debug
    }

    /// `daemon.trusted_proxies`: addresses (`127.0.0.1`, `::1`) or ranges (`10.0.0.0/8`).
    fn trusted_proxies(&mut self, list: &[String]) -> Vec<ipnet::IpNet> {
        let mut out = Vec::new();
        for (i, text) in list.iter().enumerate() {
            let t = text.trim();
            let parsed = t
                .parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(net) => out.push(net.trunc()),
                Err(_) => self.problem(
                    &["daemon", "trusted_proxies", &i.to_string()],
                    format!(
                        "`{}` is not an address or a range",
                        text.chars().take(64).collect::<String>().escape_debug()
                    ),
                    Some("e.g. trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]".into()),
                ),
            }
        }
        out
    }

    /// `daemon.KEY`, an address and port to listen on, if set. `example_port` is for the hint.
    fn listen_addr(
        &mut self,
        key: &str,
        text: Option<&str>,
        example_port: u16,
    ) -> Option<std::net::SocketAddr> {
        let a = text?;
        let hint = format!("e.g. {key} = \"127.0.0.1:{example_port}\"");
        match a.parse::<std::net::SocketAddr>() {
            // Port 0 would bind a random port that no client can know.
            Ok(addr) if addr.port() == 0 => {
                self.problem(
                    &["daemon", key],
                    format!("{key} `{a}` has port 0, which picks a random port"),
                    Some(format!("name a fixed port, {hint}")),
                );
                None
            }
            Ok(addr) => Some(addr),
            Err(_) => {
                self.problem(
                    &["daemon", key],
                    format!("`{a}` is not an address and port"),
                    Some(hint),
                );
                None
            }
        }
    }

    /// `daemon.data_dir`, resolved against the config's folder ([`data_dir_problem`]).
    fn data_dir(&mut self, text: &str, base: &Path) -> PathBuf {
        let (dir, problem) = data_dir_problem(text, base);
        if let Some((message, hint)) = problem {
            self.problem(&["daemon", "data_dir"], message, hint);
        }
        // A folder that exists must be the daemon's own and private: the daemon checks that
        // when it starts (it never changes an existing folder's mode).
        dir
    }

    fn service(&mut self, name: &str, raw: RawService, base: &Path) -> Option<ServiceConfig> {
        let before = self.problems.len();
        let k = |field: &'static str| ["services", name, field];
        let managed = match &raw.command {
            Some(command) => {
                let command = command.clone();
                self.managed(name, command, &raw, base)
            }
            None => {
                for (field, set) in [
                    ("cwd", raw.cwd.is_some()),
                    ("env_file", raw.env_file.is_some()),
                    ("user", raw.user.is_some()),
                    ("env", !raw.env.is_empty()),
                    ("depends_on", !raw.depends_on.is_empty()),
                    ("on_dependency_down", raw.on_dependency_down.is_some()),
                    ("ready", raw.ready.is_some()),
                    ("ready_timeout", raw.ready_timeout.is_some()),
                    ("watchdog", raw.watchdog.is_some()),
                    ("type", raw.type_.is_some()),
                    ("pid_file", raw.pid_file.is_some()),
                    ("reload_signal", raw.reload_signal.is_some()),
                ] {
                    if set {
                        self.problem(
                            &k(field),
                            format!("`{field}` applies only to a service upkeep runs"),
                            Some(
                                "add a `command`, or remove this key from an external service"
                                    .into(),
                            ),
                        );
                    }
                }
                if raw.probes.is_empty() {
                    self.problem(
                        &["services", name],
                        "service has neither a `command` nor `probes`",
                        Some("give it a command to run, or probes to watch it with".into()),
                    );
                }
                None
            }
        };
        let run_dir = raw
            .cwd
            .as_deref()
            .map(|c| base.join(c))
            .unwrap_or_else(|| base.to_owned());
        let mut probes = Vec::new();
        for (i, p) in raw.probes.iter().enumerate() {
            if let Some(probe) = self.probe(name, i, p, &run_dir, raw.command.is_some()) {
                probes.push(probe);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for p in &mut probes {
            let mut n = 1;
            let base_name = p.name.clone();
            while !seen.insert(p.name.clone()) {
                n += 1;
                p.name = format!("{base_name}#{n}");
            }
        }
        let on_unhealthy = match raw.on_unhealthy.as_deref() {
            None | Some("restart") if raw.command.is_some() => Some(OnUnhealthy::Restart),
            None | Some("alert") => Some(OnUnhealthy::Alert),
            Some("restart") => {
                self.problem(
                    &k("on_unhealthy"),
                    "an external service cannot be restarted",
                    Some("use on_unhealthy = \"alert\", or give the service a command".into()),
                );
                None
            }
            Some(other) => {
                self.problem(
                    &k("on_unhealthy"),
                    format!("unknown on_unhealthy `{other}`"),
                    Some("use restart or alert".into()),
                );
                None
            }
        };
        let incident_after = self.duration(
            &k("incident_after"),
            &raw.incident_after,
            bounds::INCIDENT_AFTER,
        );
        let names = std::mem::take(&mut self.service_names);
        let depends_on = self.depends_on(name, &raw.depends_on, &names);
        self.service_names = names;
        let on_dependency_down = self.on_dependency_down(name, raw.on_dependency_down.as_deref());
        let scheduling = self.scheduling(name, &raw, raw.command.is_some(), &run_dir);
        // A job runs to completion on its schedule: never restarted, never started at start-up.
        let managed = match (managed, &scheduling) {
            (Some(mut m), Some(s)) if s.job.is_some() => {
                m.job = true;
                m.restart = RestartPolicy::Never;
                m.autostart = false;
                Some(m)
            }
            (m, _) => m,
        };
        let page = self.on_page(name, &raw);
        let priority = self.incident_priority(name, raw.priority.as_deref());
        if self.problems.len() > before {
            return None;
        }
        Some(ServiceConfig {
            managed,
            probes,
            on_unhealthy: on_unhealthy?,
            incident_after: incident_after?,
            depends_on: depends_on?,
            on_dependency_down: on_dependency_down?,
            runbook: raw.runbook.clone().filter(|r| !r.trim().is_empty()),
            priority: priority?,
            job: scheduling.as_ref()?.job.clone(),
            restart_at: scheduling.as_ref()?.restart_at.clone(),
            watch: scheduling?.watch,
            page: page?,
        })
    }

    fn managed(
        &mut self,
        name: &str,
        command: RawCommand,
        raw: &RawService,
        base: &Path,
    ) -> Option<ManagedConfig> {
        let before = self.problems.len();
        let k = |field: &'static str| ["services", name, field];

        let user = raw.user.as_deref().and_then(|u| self.user(name, u));
        // Who the service runs as (the daemon's user for what a bad `user` leaves to judge).
        let who = crate::access::Who::of(user.as_ref());
        let cwd = raw.cwd.as_deref().map(|c| base.join(c));
        let mut cwd_ok = true;
        if let Some(dir) = &cwd {
            if dir.as_os_str().as_encoded_bytes().contains(&0) {
                self.problem(&k("cwd"), "cwd holds a NUL byte", None);
                cwd_ok = false;
            } else if let Err(refusal) = crate::access::folder(dir, &who) {
                self.problem(&k("cwd"), refusal.to_string(), refusal.hint());
                cwd_ok = false;
            }
        }
        let run_dir = cwd.clone().unwrap_or_else(|| base.to_owned());

        let mut env: BTreeMap<String, String> = BTreeMap::new();
        if let Some(file) = &raw.env_file {
            env.extend(self.env_file(name, &run_dir.join(file)));
        }
        for (key, value) in &raw.env {
            self.env_var(&["services", name, "env", key.as_str()], key, value);
        }
        env.extend(raw.env.clone());

        let program = self.program(
            &["services", name, "command"],
            &command,
            &run_dir,
            env.get("PATH"),
            (cwd_ok, &who),
        );

        let restart = match raw.restart.as_str() {
            "always" => Some(RestartPolicy::Always),
            "on-failure" | "on_failure" => Some(RestartPolicy::OnFailure),
            "never" | "no" => Some(RestartPolicy::Never),
            other => {
                self.problem(
                    &k("restart"),
                    format!("unknown restart policy `{other}`"),
                    Some("use one of: always, on-failure, never".into()),
                );
                None
            }
        };
        let stop_signal = self.signal(&k("stop_signal"), &raw.stop_signal);
        let stop_timeout =
            self.duration(&k("stop_timeout"), &raw.stop_timeout, bounds::STOP_TIMEOUT);
        // At shutdown the daemon waits `shutdown_timeout` for all supervisors; a stop that
        // waits longer is cut off, and the service is left running with nobody watching it.
        if let (Some(stop), Some(shutdown)) = (stop_timeout, self.shutdown_timeout)
            && stop >= shutdown
        {
            self.problem(
                &k("stop_timeout"),
                format!(
                    "stop_timeout ({}) must be shorter than daemon.shutdown_timeout ({}): at shutdown the daemon would exit before this service has stopped",
                    show(stop),
                    show(shutdown)
                ),
                Some("raise daemon.shutdown_timeout, or lower this service's stop_timeout".into()),
            );
        }
        let backoff_min = self.duration(&k("backoff_min"), &raw.backoff_min, bounds::BACKOFF);
        let backoff_max = self.duration(&k("backoff_max"), &raw.backoff_max, bounds::BACKOFF);
        if let (Some(min), Some(max)) = (backoff_min, backoff_max)
            && min > max
        {
            self.problem(
                &k("backoff_max"),
                "backoff_max is shorter than backoff_min",
                None,
            );
        }
        let min_uptime = self.duration(&k("min_uptime"), &raw.min_uptime, bounds::MIN_UPTIME);
        let window = self.duration(&k("window"), &raw.window, bounds::WINDOW);
        let max_restarts_hint = (raw.max_restarts < bounds::MAX_RESTARTS.min)
            .then(|| "to never restart this service, write restart = \"never\" instead".to_owned());
        self.in_range(
            &k("max_restarts"),
            raw.max_restarts,
            bounds::MAX_RESTARTS,
            max_restarts_hint,
        );
        let log_key = ["services", name, "log", "max_size"];
        let max_size =
            match raw.log.max_size.parse::<bytesize::ByteSize>() {
                Ok(size) => {
                    let limits = bounds::LOG_MAX_SIZE;
                    let show = show_bytes;
                    if size.as_u64() < limits.min {
                        self.problem(
                        &log_key,
                        format!(
                            "max_size `{}` is smaller than {}: the log would rotate all the time",
                            raw.log.max_size,
                            show(limits.min)
                        ),
                        Some(format!("write at least max_size = \"{}\"", show(limits.min))),
                    );
                    } else if size.as_u64() > limits.max {
                        self.problem(
                            &log_key,
                            format!(
                                "max_size `{}` is larger than {}",
                                raw.log.max_size,
                                show(limits.max)
                            ),
                            Some(format!("write at most max_size = \"{}\"", show(limits.max))),
                        );
                    }
                    size.as_u64()
                }
                Err(_) => {
                    self.problem(
                        &log_key,
                        format!("`{}` is not a size", raw.log.max_size),
                        Some("write a size such as \"10MiB\" or \"500KB\"".into()),
                    );
                    0
                }
            };
        self.in_range(
            &["services", name, "log", "keep"],
            raw.log.keep,
            bounds::LOG_KEEP,
            None,
        );
        let readiness = self.readiness(name, raw);
        let kind = self.service_type(name, raw, &run_dir, readiness.as_ref().map(|r| &r.ready));
        let reload_signal = self.reload_signal(name, raw);

        if self.problems.len() > before {
            return None;
        }
        Some(ManagedConfig {
            program: program?,
            cwd,
            env: env.into_iter().collect(),
            user,
            restart: restart?,
            autostart: raw.autostart,
            stop_signal: stop_signal?,
            stop_timeout: stop_timeout?,
            backoff_min: backoff_min?,
            backoff_max: backoff_max?,
            min_uptime: min_uptime?,
            max_restarts: raw.max_restarts,
            window: window?,
            log: LogConfig {
                max_size,
                keep: raw.log.keep,
                compress: raw.log.compress,
            },
            ready: readiness.as_ref()?.ready.clone(),
            ready_timeout: readiness.as_ref()?.timeout,
            watchdog: readiness?.watchdog,
            kind: kind?,
            reload_signal: reload_signal.ok()?,
            job: false,
        })
    }

    /// The entries of the service's `env_file`. Errors name the file and a line number and
    /// never show a line: the file may hold secrets (or be `/etc/shadow`).
    fn env_file(&mut self, name: &str, file: &Path) -> Vec<(String, String)> {
        let key = ["services", name, "env_file"];
        match crate::env_file::read(file) {
            Ok(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for e in entries {
                    // dotenvy's keys are letters, digits, `_` and `.`; values can hold anything.
                    if e.value.contains('\0') {
                        self.problem(
                            &key,
                            format!(
                                "env file {}, line {}: the value of `{}` holds a NUL byte, which no environment can carry",
                                file.display(),
                                e.line,
                                e.key
                            ),
                            None,
                        );
                    } else if e.key.len() + 1 + e.value.len() >= MAX_ARG_STRLEN {
                        self.problem(
                            &key,
                            format!(
                                "env file {}, line {}: the value of `{}` is {} bytes: Linux passes at most 128 KiB in one variable (E2BIG)",
                                file.display(),
                                e.line,
                                e.key,
                                e.value.len()
                            ),
                            None,
                        );
                    } else {
                        out.push((e.key, e.value));
                    }
                }
                out
            }
            Err(e) => {
                self.problem(&key, format!("env file {}: {e}", file.display()), None);
                Vec::new()
            }
        }
    }

    /// One `env` entry: the kernel passes `KEY=value\0` strings, so a key holding `=` would
    /// set another variable than written, and a NUL cannot be passed at all. The value is
    /// never shown: it may be a secret.
    fn env_var(&mut self, key_path: &[&str], key: &str, value: &str) {
        let problem = if key.is_empty() {
            Some("an environment variable name is empty")
        } else if key.contains('=') {
            Some("an environment variable name cannot hold `=`")
        } else if key.contains('\0') {
            Some("an environment variable name cannot hold a NUL byte")
        } else {
            None
        };
        if let Some(p) = problem {
            self.problem(
                key_path,
                format!("env key `{}`: {p}", key.escape_debug()),
                Some("write names such as DATABASE_URL: letters, digits and `_`".into()),
            );
        }
        if value.contains('\0') {
            self.problem(
                key_path,
                format!(
                    "the value of env `{}` holds a NUL byte, which no environment can carry",
                    key.escape_debug()
                ),
                None,
            );
        }
        if key.len() + 1 + value.len() >= MAX_ARG_STRLEN {
            self.problem(
                key_path,
                format!(
                    "the value of env `{}` is {} bytes: Linux passes at most 128 KiB in one variable, and every start would fail (E2BIG)",
                    key.escape_debug(),
                    value.len()
                ),
                Some("put a large value in a file and pass its path".into()),
            );
        }
    }

    /// `user`: a user of this host that the daemon can switch to. Only root can switch users;
    /// a daemon running as someone else can run a service only as itself (and in a group it
    /// has, since the spawn sets the user's primary group too).
    fn user(&mut self, name: &str, u: &str) -> Option<UserIds> {
        let key = ["services", name, "user"];
        let user = match nix::unistd::User::from_name(u) {
            Ok(Some(user)) => user,
            _ => {
                self.problem(
                    &key,
                    format!("no user named `{}` on this host", u.escape_debug()),
                    None,
                );
                return None;
            }
        };
        let me = self.running_as;
        let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
        if me.uid != 0 && (uid != me.uid || !me.gids.contains(&gid)) {
            self.problem(
                &key,
                format!(
                    "the daemon runs as uid {}, not as root, so it cannot run this service as user `{u}` (uid {uid}, gid {gid})",
                    me.uid
                ),
                Some(
                    "remove `user` (the service then runs as the daemon's user), or run the daemon as root; `upkeep check` judges as the user who runs it"
                        .into(),
                ),
            );
            return None;
        }
        Some(UserIds {
            name: user.name,
            uid,
            gid,
            home: user.dir,
        })
    }

    /// Turns `command` into an argv whose program exists. A line with shell syntax runs through
    /// `/bin/sh -c`; `sh` (dash, bash) replaces itself with the last simple command, so this
    /// costs no extra process in the tree.
    fn program<S: AsRef<str>>(
        &mut self,
        key: &[S],
        command: &RawCommand,
        run_dir: &Path,
        service_path: Option<&String>,
        (cwd_ok, who): (bool, &crate::access::Who),
    ) -> Option<Program> {
        let (argv, display) = match command {
            RawCommand::Argv(argv) => (argv.clone(), argv.join(" ")),
            RawCommand::Line(line) if needs_shell(line) => (
                vec!["/bin/sh".into(), "-c".into(), line.clone()],
                line.clone(),
            ),
            RawCommand::Line(line) => (
                line.split_whitespace().map(str::to_owned).collect(),
                line.clone(),
            ),
        };
        // Arguments reach execve as C strings: a NUL would cut one short, so spawn refuses it.
        if let Some(i) = argv.iter().position(|a| a.contains('\0')) {
            let mut at: Vec<String> = key.iter().map(|s| s.as_ref().to_owned()).collect();
            if matches!(command, RawCommand::Argv(_)) {
                at.push(i.to_string());
            }
            self.problem(
                &at,
                "the command holds a NUL byte, which cannot be passed to a program",
                Some("remove the \\0 or \\u0000 escape".into()),
            );
            return None;
        }
        let Some(program) = argv.first().filter(|p| !p.is_empty()) else {
            self.problem(
                key,
                "command is empty",
                Some("write the program to run, e.g. command = \"npm run start\"".into()),
            );
            return None;
        };
        // A path from a cwd that is not there (or not to be entered): the cwd's problem says
        // it, and "program not found" would send its reader the wrong way.
        if !cwd_ok && program.contains('/') && !Path::new(program).is_absolute() {
            return None;
        }
        let search = service_path
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        match resolve_program(program, run_dir, &search, who) {
            Ok(path) => Some(Program {
                path,
                argv,
                display,
            }),
            Err(Some(refusal)) => {
                self.problem(
                    key,
                    format!("program `{program}` cannot run: {refusal}"),
                    refusal.hint(),
                );
                None
            }
            Err(None) => {
                let hint = if program.contains('/') {
                    "check the path; relative paths are relative to the service's cwd".to_owned()
                } else {
                    format!(
                        "searched PATH={search} (the daemon's PATH, not your shell's); write the full path, e.g. command = \"/usr/local/bin/{program} ...\", or set PATH in env"
                    )
                };
                self.problem(
                    key,
                    format!("program `{program}` was not found"),
                    Some(hint),
                );
                None
            }
        }
    }

    /// The duration at `key`, within `limits`. None (with one problem recorded) otherwise:
    /// never a stand-in value that a later check would complain about a second time.
    fn duration<S: AsRef<str>>(
        &mut self,
        key: &[S],
        text: &str,
        limits: Limits<Duration>,
    ) -> Option<Duration> {
        let field = key.last().map_or("", AsRef::as_ref).to_owned();
        let Some(d) = upkeep_core::duration::parse(text) else {
            self.problem(
                key,
                format!("{field} `{text}` is not a duration"),
                Some("write a duration such as \"500ms\", \"10s\" or \"2m\"".into()),
            );
            return None;
        };
        if d > limits.max {
            self.problem(
                key,
                format!(
                    "{field} `{text}` is longer than {}, the most upkeep accepts",
                    show(limits.max)
                ),
                Some(format!("write at most {field} = \"{}\"", show(limits.max))),
            );
            return None;
        }
        if d < limits.min {
            self.problem(
                key,
                format!(
                    "{field} `{text}` is shorter than {}, the least upkeep accepts",
                    show(limits.min)
                ),
                Some(format!("write at least {field} = \"{}\"", show(limits.min))),
            );
            return None;
        }
        Some(d)
    }

    /// Checks that a number written at `key` is within `limits`; `hint` replaces the default.
    fn in_range<S: AsRef<str>, T: PartialOrd + std::fmt::Display + Copy>(
        &mut self,
        key: &[S],
        value: T,
        limits: Limits<T>,
        hint: Option<String>,
    ) -> bool {
        let field = key.last().map_or("", AsRef::as_ref).to_owned();
        let (message, default_hint) = if value < limits.min {
            (
                format!(
                    "{field} = {value} is below {}, the least upkeep accepts",
                    limits.min
                ),
                format!("write at least {field} = {}", limits.min),
            )
        } else if value > limits.max {
            (
                format!(
                    "{field} = {value} is above {}, the most upkeep accepts",
                    limits.max
                ),
                format!("write at most {field} = {}", limits.max),
            )
        } else {
            return true;
        };
        self.problem(key, message, Some(hint.unwrap_or(default_hint)));
        false
    }

    fn signal(&mut self, key: &[&str], text: &str) -> Option<i32> {
        let parsed = parse_signal(text).and_then(|n| nix::sys::signal::Signal::try_from(n).ok());
        match parsed {
            // SIGSTOP cannot be caught and ends nothing: every stop would wait out
            // stop_timeout and then kill.
            Some(nix::sys::signal::Signal::SIGSTOP) => {
                self.problem(
                    key,
                    "SIGSTOP pauses a process and cannot stop it",
                    Some(
                        "use a signal the program handles, such as \"SIGTERM\" or \"SIGINT\""
                            .into(),
                    ),
                );
                None
            }
            Some(sig) => Some(sig as i32),
            None => {
                self.problem(
                    key,
                    format!("`{text}` is not a signal"),
                    Some("use a name such as \"SIGTERM\", \"SIGINT\" or \"SIGQUIT\"".into()),
                );
                None
            }
        }
    }
}

/// A duration as the user writes one ("1h", "50ms"), for messages.
fn show(d: Duration) -> String {
    match jiff::SignedDuration::try_from(d) {
        Ok(d) => format!("{d:#}"),
        Err(_) => format!("{d:?}"),
    }
}

/// A size as the user writes one ("64KiB"), exact, for messages.
fn show_bytes(n: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    format!("{n}B")
}

/// `path` with `.` and `..` resolved by their names (the folder may not exist yet).
/// `daemon.data_dir` as written (`text`), resolved against the config's folder `base`, and
/// what is wrong with it (a message and a hint), if anything. The daemon creates this folder
/// and makes it private (mode 0700), so it must be a folder of upkeep's own: never empty
/// (which meant the config's folder), never the config's folder or one above it (`/`).
/// `check`, the daemon and the CLI (which finds the daemon by it) judge it here alike.
pub fn data_dir_problem(text: &str, base: &Path) -> (PathBuf, Option<(String, Option<String>)>) {
    let hint = || {
        Some(
            "name a folder of upkeep's own, e.g. data_dir = \".upkeep\" or \"/var/lib/upkeep\", \
             or remove the line to use the default"
                .to_owned(),
        )
    };
    let dir = normalize(&base.join(text));
    let problem = if text.trim().is_empty() {
        Some(("data_dir is empty".to_owned(), hint()))
    } else if text.contains('\0') {
        Some(("data_dir holds a NUL byte".to_owned(), None))
    } else if normalize(base).starts_with(&dir) {
        Some((
            format!(
                "data_dir {} holds this config file; the daemon makes its data dir private (mode 0700)",
                dir.display()
            ),
            hint(),
        ))
    } else if std::fs::metadata(&dir).is_ok_and(|m| !m.is_dir()) {
        Some((
            format!("data_dir {} is not a folder", dir.display()),
            hint(),
        ))
    } else {
        None
    };
    (dir, problem)
}

fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// What the TOML reader refused (a syntax error, an unknown key, a value of the wrong type),
/// as one problem at its place, with its key where it has one (`key`: the path the reader was
/// at, `.` for the top). An unknown key says which and, if it is one typo from a key of its
/// table, which was meant; the list of every key of the table goes to the hint, not the
/// message (break-it, session 11: a 40-name list was the message, and no key was named).
fn read_problem(source: &str, key: String, e: &toml::de::Error) -> Problem {
    let (line, column) = e
        .span()
        .map(|s| line_col(source, s.start))
        .unwrap_or((1, 1));
    let message = e.message().trim();
    let key = if key == "." { String::new() } else { key };
    if let Some((field, names)) = unknown_key(message) {
        // The reader's path may end at the unknown key itself, or at its table.
        let table = key
            .strip_suffix(field.as_str())
            .map(|t| t.trim_end_matches('.').to_owned())
            .unwrap_or(key);
        let hint = unknown_key_hint(&field, &names);
        let field = field.as_str();
        let at = if table.is_empty() {
            "at the top of the file".to_owned()
        } else {
            format!("in [{table}]")
        };
        return Problem {
            line,
            column,
            key: [table.as_str(), field]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join("."),
            message: format!("unknown key `{field}` {at}"),
            hint: Some(hint),
        };
    }
    Problem {
        line,
        column,
        key,
        message: without_values(message)
            .replace("expected u32", "expected a whole number")
            .replace("expected u64", "expected a whole number")
            .replace("expected i64", "expected a whole number"),
        hint: None,
    }
}

/// The key serde's "unknown field `x`, expected one of `a`, `b`" names, and the keys it
/// would have taken.
fn unknown_key(message: &str) -> Option<(String, Vec<String>)> {
    static UNKNOWN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let unknown = UNKNOWN.get_or_init(|| {
        regex::Regex::new(
            r"^unknown field `([^`]*)`, (?:expected (?:one of )?(.*)|there are no fields)$",
        )
        .expect("a valid pattern")
    });
    let c = unknown.captures(message)?;
    let names = c.get(2).map_or("", |m| m.as_str());
    let names = names
        .split(", ")
        .map(|n| n.trim_matches('`').to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    Some((c[1].to_owned(), names))
}

/// What an unknown key may have meant: the one a typo away, else every key there is.
fn unknown_key_hint<S: AsRef<str>>(field: &str, names: &[S]) -> String {
    match names.iter().find(|n| deps::close(n.as_ref(), field)) {
        Some(near) => format!("did you mean `{}`?", near.as_ref()),
        None => {
            let all: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
            format!("the keys here are: {}", all.join(", "))
        }
    }
}

/// A parse error without the value it quotes: `invalid type: integer `12345678`, expected a
/// string` named a token written in `env` (issue 14, D17: errors point at the line and
/// column, and never repeat what may be a secret).
fn without_values(message: &str) -> String {
    static QUOTED: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = QUOTED.get_or_init(|| {
        regex::Regex::new(
            r#"(invalid (?:type|value|length): (?:string|integer|unsigned integer|floating point|boolean|character|byte array)) (?:`[^`]*`|"(?:[^"\\]|\\.)*")"#,
        )
        .expect("a valid pattern")
    });
    re.replace_all(message, "$1").into_owned()
}

/// Characters that only a shell understands. A line holding one runs through `sh -c`.
fn needs_shell(line: &str) -> bool {
    // Also a first word that only a shell knows: `exec`, `cd`, `.`... (`exec python3 -m
    // http.server` was refused as "program `exec` was not found").
    const BUILTINS: &[&str] = &[
        "exec", "cd", ".", "source", "export", "set", "ulimit", "umask", "trap", "eval",
    ];
    line.contains(|c: char| "|&;<>()$`\\\"'*?[]#~{}\n".contains(c))
        || line
            .split_whitespace()
            .next()
            .is_some_and(|w| w.contains('=') || BUILTINS.contains(&w))
}

/// The file `program` names (from `run_dir` if it holds a `/`, else the first in `search`
/// that `who` may run, as `execvp` looks), or why not: None if there is no such file, else
/// why `who` may not run the one there is (not executable, permission denied).
fn resolve_program(
    program: &str,
    run_dir: &Path,
    search: &str,
    who: &crate::access::Who,
) -> Result<PathBuf, Option<crate::access::Refusal>> {
    use crate::access::Refusal;
    let judge = |p: PathBuf| match crate::access::program(&p, who) {
        Ok(()) => Ok(p),
        Err(Refusal::Missing { .. }) => Err(None),
        Err(refusal) => Err(Some(refusal)),
    };
    if program.contains('/') {
        return judge(run_dir.join(program));
    }
    let mut first_refusal = None;
    for dir in search.split(':').filter(|d| !d.is_empty()) {
        match judge(Path::new(dir).join(program)) {
            Ok(path) => return Ok(path),
            // A folder of that name is passed over, as `execvp` does.
            Err(Some(Refusal::IsFolder { .. })) => {}
            Err(refusal) => first_refusal = first_refusal.or(refusal),
        }
    }
    Err(first_refusal)
}

/// Whether two listeners could not both be bound: the same port, and the same address or one
/// of them every address (`0.0.0.0`, `::`, which on Linux takes IPv4's too) or an IPv4
/// address written as IPv6 (`::ffff:127.0.0.1`).
fn listeners_clash(a: &std::net::SocketAddr, b: &std::net::SocketAddr) -> bool {
    let canonical = |ip: std::net::IpAddr| ip.to_canonical();
    a.port() == b.port()
        && (a.ip().is_unspecified()
            || b.ip().is_unspecified()
            || canonical(a.ip()) == canonical(b.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variables_named_as_secrets_are_found_and_a_services_env_is_not() {
        let cfg = check(
            "[daemon]\nstore = \"postgres://u@h/d\"\nstore_password_env = \"DB_PASS\"\n[notify.channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/h\"\nsecret_env = \"HOOK_SECRET\"\n[notify.channels.chat]\nkind = \"slack\"\nurl_env = \"SLACK_URL\"\n[services.web]\ncommand = \"sleep 1\"\nenv = { token_env = \"NOT_A_SECRET_NAME\" }\n",
        );
        let vars = match cfg {
            Ok(c) => c.secret_vars(),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(vars, ["DB_PASS", "HOOK_SECRET", "SLACK_URL"]);
    }

    pub(super) fn check(toml: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/tmp/upkeep-test.toml"), toml)
    }

    /// A test build takes `test_clock`; a release build refuses it, saying where and why.
    #[test]
    fn test_clock_is_accepted_only_by_a_test_build() {
        let c = check("[daemon]\ntest_clock = true\n").unwrap();
        assert_eq!(c.daemon.test_clock, cfg!(debug_assertions));
        assert!(!check("").unwrap().daemon.test_clock);
        let source = "[daemon]\ntest_clock = true\n";
        let mut v = Validator {
            source,
            problems: Vec::new(),
            running_as: RunningAs::current(),
            shutdown_timeout: None,
            service_names: Default::default(),
        };
        assert!(!v.test_clock_allowed(false));
        let err = ConfigError::Invalid {
            path: "/tmp/upkeep-test.toml".into(),
            problems: v.problems,
        };
        let (p, text) = (err.problems()[0].clone(), err.to_string());
        located(&p, &text, "daemon.test_clock", 2, 14);
        assert!(text.contains("release build"), "{text}");
        assert!(text.contains("hint: remove test_clock"), "{text}");
    }

    #[test]
    fn minimal_service_gets_defaults() {
        let c = check("[services.web]\ncommand = \"sleep 10\"\n").unwrap();
        let web = c.services[&ServiceName::new("web").unwrap()]
            .managed
            .as_ref()
            .unwrap();
        assert_eq!(web.program.argv, ["sleep", "10"]);
        assert!(web.program.path.ends_with("sleep"));
        assert_eq!(web.restart, RestartPolicy::Always);
        assert_eq!(web.stop_signal, 15);
        assert_eq!(web.stop_timeout, Duration::from_secs(10));
        assert_eq!(web.log.max_size, 10 * 1024 * 1024);
    }

    #[test]
    fn a_type_error_does_not_repeat_the_value() {
        let err = check("[services.a]\ncommand = \"sleep 1\"\nenv = { TOKEN = 12345678 }\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid type: integer"), "{err}");
        assert!(!err.contains("12345678"), "{err}");
        let err = check("[services.a]\ncommand = \"sleep 1\"\nmax_restarts = \"s3cret\"\n")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
        assert_eq!(
            without_values(r#"invalid type: string "a \"b\" c", expected u32"#),
            "invalid type: string, expected u32"
        );
    }

    #[test]
    fn a_huge_or_endless_file_is_refused_without_reading_it_all() {
        let err = load(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("/dev/zero"), "{err}");
        assert!(format!("{err:?}").contains("not a regular file"), "{err:?}");
        // A huge regular file is refused after 16 MiB, unparsed.
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.toml");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(crate::bounds::CONFIG_MAX_BYTES + 1).unwrap();
        let err = load(&big).unwrap_err();
        assert!(format!("{err:?}").contains("not a config file"), "{err:?}");
    }

    #[test]
    fn shell_syntax_runs_through_sh() {
        let c = check("[services.a]\ncommand = \"sleep 1000 & sleep 1000\"\n").unwrap();
        let a = c
            .services
            .values()
            .next()
            .unwrap()
            .managed
            .as_ref()
            .unwrap();
        assert_eq!(a.program.argv, ["/bin/sh", "-c", "sleep 1000 & sleep 1000"]);
        // A first word only a shell knows.
        for line in ["exec sleep 1000", "cd /tmp && sleep 1", "A=1 sleep 1"] {
            assert!(needs_shell(line), "{line}");
        }
        assert!(!needs_shell("sleep 1000"));
    }

    #[test]
    fn reports_every_problem_with_its_line_and_column() {
        let toml = "[services.web]\ncommand = \"nosuchprogram-xyz\"\nstop_timeout = \"ten\"\nrestart = \"sometimes\"\n";
        let err = check(toml).unwrap_err();
        let p = err.problems();
        assert_eq!(p.len(), 3, "{err}");
        assert_eq!((p[0].line, p[0].column), (2, 11));
        assert!(p[0].message.contains("nosuchprogram-xyz"));
        assert!(
            p.iter()
                .any(|p| p.key == "services.web.stop_timeout" && p.line == 3)
        );
        assert!(
            p.iter()
                .any(|p| p.key == "services.web.restart" && p.line == 4)
        );
        assert!(err.to_string().contains("/tmp/upkeep-test.toml:2:11"));
    }

    #[test]
    fn syntax_and_unknown_keys_are_located() {
        let err = check("[services.web]\ncomand = \"sleep 1\"\n").unwrap_err();
        let p = &err.problems()[0];
        assert!(p.message.contains("comand"), "{}", p.message);
        assert!(p.line <= 2);
        let err = check("[services.web\ncommand = 1\n").unwrap_err();
        assert_eq!(err.problems()[0].line, 1);
    }

    #[test]
    fn bad_names_and_bad_types_are_errors() {
        assert!(check("[services.\"a b\"]\ncommand = \"sleep 1\"\n").is_err());
        let err = check("[services.x]\ncommand = 5\n").unwrap_err();
        assert!(err.to_string().contains("command line string"), "{err}");
    }

    #[test]
    fn env_file_then_env_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".env"), "A=1\nB=2\n# comment\n").unwrap();
        let path = dir.path().join("upkeep.toml");
        let toml =
            "[services.x]\ncommand = \"sleep 1\"\nenv_file = \".env\"\nenv = { B = \"3\" }\n";
        let c = parse(&path, toml).unwrap();
        let x = c
            .services
            .values()
            .next()
            .unwrap()
            .managed
            .as_ref()
            .unwrap();
        assert_eq!(x.env, [("A".into(), "1".into()), ("B".into(), "3".into())]);
    }

    /// The one problem of `toml`, failing the test if there are more or none.
    pub(super) fn one_problem(toml: &str) -> (Problem, String) {
        let err = check(toml).expect_err("config should be rejected");
        assert_eq!(err.problems().len(), 1, "{err}");
        (err.problems()[0].clone(), err.to_string())
    }

    /// Asserts where a problem is and that its rendered text names the key and the place.
    pub(super) fn located(p: &Problem, text: &str, key: &str, line: usize, column: usize) {
        assert_eq!(p.key, key, "{text}");
        assert_eq!((p.line, p.column), (line, column), "{text}");
        let place = format!("/tmp/upkeep-test.toml:{line}:{column} ({key})");
        assert!(text.contains(&place), "{text}");
    }

    pub(super) const SVC: &str = "[services.web]\ncommand = \"sleep 10\"\n";

    /// Break-it (session 11): what the reader refuses names its key, and a program or folder
    /// that cannot be used says why: a folder is no program, an unknown key is the typo of
    /// the key beside it, a value of the wrong type says what it should be.
    #[test]
    fn read_errors_and_programs_say_what_is_wrong_where() {
        let (p, text) = one_problem("[services.web]\ncommand = \"/tmp\"\n");
        located(&p, &text, "services.web.command", 2, 11);
        assert!(
            p.message.contains("/tmp is a folder, not a program"),
            "{text}"
        );
        let (p, text) = one_problem(&format!("{SVC}stop_timout = \"5s\"\n"));
        located(&p, &text, "services.web.stop_timout", 3, 1);
        assert_eq!(p.message, "unknown key `stop_timout` in [services.web]");
        assert_eq!(p.hint.as_deref(), Some("did you mean `stop_timeout`?"));
        let (p, text) = one_problem("[daemon]\ncolour = \"x\"\n");
        located(&p, &text, "daemon.colour", 2, 1);
        assert!(
            p.hint
                .as_deref()
                .is_some_and(|h| h.contains("the keys here are: data_dir"))
        );
        let (p, text) = one_problem("servics = 1\n");
        located(&p, &text, "servics", 1, 1);
        assert_eq!(p.message, "unknown key `servics` at the top of the file");
        let (p, text) = one_problem(&format!("{SVC}max_restarts = \"five\"\n"));
        located(&p, &text, "services.web.max_restarts", 3, 16);
        assert!(p.message.contains("expected a whole number"), "{text}");
    }

    #[test]
    fn the_shipped_example_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/upkeep.toml");
        load(&path).unwrap();
    }

    #[test]
    fn maintenance_policy_and_reminders_are_read_and_bounded() {
        let c = parse(
            Path::new("/etc/u.toml"),
            "[maintenance]\nshort_notice = \"2h\"\nreminders = [\"1h\", \"3d\", \"1h\"]\n",
        )
        .unwrap();
        assert_eq!(c.maintenance.short_notice, Duration::from_secs(7200));
        assert_eq!(
            c.maintenance.reminders,
            [Duration::from_secs(3 * 86_400), Duration::from_secs(3600)],
            "longest first, once each"
        );
        assert_eq!(
            parse(Path::new("/etc/u.toml"), "").unwrap().maintenance,
            MaintenanceConfig::default()
        );
        for (toml, want) in [
            (
                "[maintenance]\nlong_notice = \"400d\"\n",
                "maintenance.long_notice",
            ),
            ("[maintenance]\nreminders = [\"soon\"]\n", "not a duration"),
            ("[maintenance]\nshort_max = \"1s\"\n", "shorter than"),
            (
                "[maintenance]\nnotice = \"1h\"\n",
                "unknown key `notice` in [maintenance]",
            ),
        ] {
            let e = parse(Path::new("/etc/u.toml"), toml)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(want) && e.contains("/etc/u.toml:"),
                "{toml}: {e}"
            );
        }
    }

    #[test]
    fn durations_have_upper_bounds() {
        // Issue: this passed and later panicked on an overflowing Instant.
        let (p, text) = one_problem(&format!("{SVC}stop_timeout = \"9223372036854775807s\"\n"));
        located(&p, &text, "services.web.stop_timeout", 3, 16);
        assert!(p.message.contains("longer than 1h"), "{text}");
        assert_eq!(
            p.hint.as_deref(),
            Some("write at most stop_timeout = \"1h\"")
        );
        for (line, key, limit) in [
            ("backoff_max = \"25h\"", "backoff_max", "24h"),
            ("backoff_min = \"25h\"", "backoff_min", "24h"),
            ("min_uptime = \"100000h\"", "min_uptime", "24h"),
            ("window = \"721h\"", "window", "720h"),
            ("incident_after = \"721h\"", "incident_after", "720h"),
        ] {
            let (p, text) = one_problem(&format!("{SVC}{line}\n"));
            located(&p, &text, &format!("services.web.{key}"), 3, key.len() + 4);
            assert!(p.message.contains(limit), "{text}");
        }
        let (p, text) = one_problem("[daemon]\nshutdown_timeout = \"2h\"\n");
        located(&p, &text, "daemon.shutdown_timeout", 2, 20);
        let probe = "[[services.web.probes]]\nkind = \"process\"\n";
        for (line, key) in [
            ("every = \"25h\"", "every"),
            ("timeout = \"2h\"", "timeout"),
            ("grace = \"25h\"", "grace"),
        ] {
            let (p, text) = one_problem(&format!("{SVC}{probe}{line}\n"));
            located(
                &p,
                &text,
                &format!("services.web.probes.0.{key}"),
                5,
                key.len() + 4,
            );
        }
        // The limits themselves are accepted.
        check(&format!(
            "[daemon]\nshutdown_timeout = \"1h\"\n{SVC}stop_timeout = \"59m\"\nbackoff_max = \"24h\"\nwindow = \"720h\"\nincident_after = \"720h\"\n{probe}every = \"24h\"\ntimeout = \"1h\"\ngrace = \"24h\"\n"
        ))
        .unwrap();
    }

    #[test]
    fn durations_have_lower_bounds_where_tiny_is_abusive() {
        let probe = "[[services.web.probes]]\nkind = \"process\"\n";
        // Issue: a probe every 1ns burnt most of a core.
        let (p, text) = one_problem(&format!("{SVC}{probe}every = \"1ns\"\n"));
        located(&p, &text, "services.web.probes.0.every", 5, 9);
        assert!(p.message.contains("shorter than 50ms"), "{text}");
        let (p, text) = one_problem(&format!("{SVC}{probe}timeout = \"1ns\"\n"));
        located(&p, &text, "services.web.probes.0.timeout", 5, 11);
        let (p, text) = one_problem(&format!("{SVC}window = \"1ms\"\n"));
        located(&p, &text, "services.web.window", 3, 10);
        let (p, text) = one_problem("[daemon]\nshutdown_timeout = \"0s\"\n");
        located(&p, &text, "daemon.shutdown_timeout", 2, 20);
        // What tests and examples use, and zero where it means "at once", stay valid.
        check(&format!(
            "{SVC}stop_timeout = \"0s\"\nbackoff_min = \"0\"\nwindow = \"1s\"\n{probe}every = \"50ms\"\ntimeout = \"10ms\"\ngrace = \"0s\"\n"
        ))
        .unwrap();
    }

    #[test]
    fn a_bad_duration_is_one_problem() {
        // Issue: a duration that did not parse became 0s, and a second check complained
        // about the 0s.
        let (p, text) = one_problem(&format!("{SVC}window = \"soon\"\n"));
        located(&p, &text, "services.web.window", 3, 10);
        assert!(p.message.contains("not a duration"), "{text}");
        let (p, _) = one_problem(&format!("{SVC}backoff_min = \"x\"\n"));
        assert_eq!(p.key, "services.web.backoff_min");
        let probe = "[[services.web.probes]]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/\"\n";
        for field in ["every", "timeout"] {
            let (p, _) = one_problem(&format!(
                "{SVC}{probe}{field} = \"soon\"\ndegraded_after = \"100ms\"\n"
            ));
            assert_eq!(p.key, format!("services.web.probes.0.{field}"));
        }
        let (p, _) = one_problem(&format!("{SVC}{probe}degraded_after = \"soon\"\n"));
        assert_eq!(p.key, "services.web.probes.0.degraded_after");
        let (p, _) = one_problem("[daemon]\nshutdown_timeout = \"x\"\n");
        assert_eq!(p.key, "daemon.shutdown_timeout");
    }

    #[test]
    fn stop_timeout_must_be_shorter_than_shutdown_timeout() {
        let (p, text) = one_problem(&format!(
            "[daemon]\nshutdown_timeout = \"5s\"\n{SVC}stop_timeout = \"5s\"\n"
        ));
        located(&p, &text, "services.web.stop_timeout", 5, 16);
        assert!(p.message.contains("daemon.shutdown_timeout (5s)"), "{text}");
        // The default stop_timeout (10s) counts too; the problem points at the service.
        let (p, _) = one_problem(&format!("[daemon]\nshutdown_timeout = \"10s\"\n{SVC}"));
        assert_eq!((p.key.as_str(), p.line), ("services.web.stop_timeout", 3));
    }

    #[test]
    fn counts_are_bounded() {
        // Issue: max_restarts = 0 marked the service failed at its first exit.
        let (p, text) = one_problem(&format!("{SVC}max_restarts = 0\n"));
        located(&p, &text, "services.web.max_restarts", 3, 16);
        assert!(text.contains("hint: to never restart this service, write restart = \"never\""));
        let (p, text) = one_problem(&format!("{SVC}max_restarts = 1000001\n"));
        located(&p, &text, "services.web.max_restarts", 3, 16);
        // The bench's crash-loop-free respawn setting stays valid.
        check(&format!(
            "{SVC}backoff_min = \"0\"\nmax_restarts = 1000000\nwindow = \"1s\"\n"
        ))
        .unwrap();
        // failures and successes are each located at their own key.
        let probe = "[[services.web.probes]]\nkind = \"process\"\n";
        let (p, text) = one_problem(&format!("{SVC}{probe}successes = 0\n"));
        located(&p, &text, "services.web.probes.0.successes", 5, 13);
        let (p, text) = one_problem(&format!("{SVC}{probe}failures = 4000000000\n"));
        located(&p, &text, "services.web.probes.0.failures", 5, 12);
    }

    #[test]
    fn log_rotation_is_bounded() {
        // Issue: this made the log writer spin: 4 billion renames every 4KiB.
        let err = check(&format!(
            "{SVC}log = {{ max_size = \"4KiB\", keep = 4000000000 }}\n"
        ))
        .unwrap_err();
        let text = err.to_string();
        let p = err.problems();
        assert_eq!(p.len(), 2, "{text}");
        located(&p[0], &text, "services.web.log.max_size", 3, 20);
        assert!(p[0].message.contains("smaller than 64KiB"), "{text}");
        located(&p[1], &text, "services.web.log.keep", 3, 35);
        assert!(p[1].message.contains("above 1000"), "{text}");
        let (p, text) = one_problem(&format!("{SVC}log = {{ max_size = \"2TiB\" }}\n"));
        located(&p, &text, "services.web.log.max_size", 3, 20);
        check(&format!(
            "{SVC}log = {{ max_size = \"64KiB\", keep = 0 }}\n"
        ))
        .unwrap();
    }

    #[test]
    fn an_env_value_too_big_for_exec_is_refused_where_it_is_written() {
        // Break-it, session 10: 200 KB passed `check`, then every start failed with E2BIG.
        let big = "x".repeat(200 * 1024);
        let (p, text) = one_problem(&format!("{SVC}env = {{ BIG = \"{big}\" }}\n"));
        located(&p, &text, "services.web.env.BIG", 3, 15);
        assert!(
            p.message.contains("204800 bytes") && p.message.contains("E2BIG"),
            "{}",
            p.message
        );
        assert!(!p.message.contains("xxxx"), "the value is never shown");
        check(&format!(
            "{SVC}env = {{ BIG = \"{}\" }}\n",
            "x".repeat(100 * 1024)
        ))
        .unwrap();
    }

    #[test]
    fn nul_bytes_and_bad_env_names_are_rejected() {
        let (p, text) = one_problem("[services.web]\ncommand = [\"sleep\", \"1\\u0000\"]\n");
        located(&p, &text, "services.web.command.1", 2, 21);
        assert!(p.message.contains("NUL"), "{text}");
        let (p, text) = one_problem("[services.web]\ncommand = \"sleep 1\\u0000\"\n");
        located(&p, &text, "services.web.command", 2, 11);
        let err = check(&format!(
            "{SVC}env = {{ \"\" = \"a\", \"A=B\" = \"b\", C = \"top\\u0000secret\" }}\n"
        ))
        .unwrap_err();
        let text = err.to_string();
        let p = err.problems();
        assert_eq!(p.len(), 3, "{text}");
        located(&p[0], &text, "services.web.env.", 3, 14);
        assert!(
            p[0].message
                .contains("env key ``: an environment variable name is empty")
        );
        located(&p[1], &text, "services.web.env.A=B", 3, 27);
        assert!(p[1].message.contains("cannot hold `=`"), "{text}");
        located(&p[2], &text, "services.web.env.C", 3, 36);
        assert!(
            !text.contains("secret"),
            "an env value may be a secret: {text}"
        );
        let probe = "[[services.web.probes]]\nkind = \"exec\"\ncommand = [\"true\\u0000\"]\n";
        let (p, _) = one_problem(&format!("{SVC}{probe}"));
        assert_eq!(
            (p.key.as_str(), p.line),
            ("services.web.probes.0.command.0", 5)
        );
    }

    #[test]
    fn user_must_be_one_the_daemon_can_switch_to() {
        let toml = format!("{SVC}user = \"root\"\n");
        let not_root = RunningAs {
            uid: 4321,
            gids: [4321, 4321],
        };
        let err = parse_as(Path::new("/tmp/upkeep-test.toml"), &toml, not_root).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems().len(), 1, "{text}");
        located(&err.problems()[0], &text, "services.web.user", 3, 8);
        assert!(
            text.contains("not as root") && text.contains("hint: remove `user`"),
            "{text}"
        );
        let root = RunningAs {
            uid: 0,
            gids: [0, 0],
        };
        let c = parse_as(Path::new("/tmp/upkeep-test.toml"), &toml, root).unwrap();
        let web = c
            .services
            .values()
            .next()
            .unwrap()
            .managed
            .as_ref()
            .unwrap();
        assert_eq!(web.user.as_ref().map(|u| u.uid), Some(0));
        // A daemon that is not root may name itself.
        if let Ok(Some(nobody)) = nix::unistd::User::from_name("nobody") {
            let me = RunningAs {
                uid: nobody.uid.as_raw(),
                gids: [nobody.gid.as_raw(); 2],
            };
            let toml = format!("{SVC}user = \"nobody\"\n");
            parse_as(Path::new("/tmp/upkeep-test.toml"), &toml, me).unwrap();
        }
    }

    #[test]
    fn a_file_that_is_not_utf8_is_located() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upkeep.toml");
        std::fs::write(&path, b"[services.web]\ncommand = \"caf\xe9\"\n").unwrap();
        let err = load(&path).unwrap_err();
        let p = &err.problems()[0];
        assert_eq!((p.line, p.column), (2, 15), "{err}");
        assert!(
            p.message.contains("not UTF-8") && p.message.contains("0xe9"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains(&format!("{}:2:15", path.display())),
            "{err}"
        );
    }

    #[test]
    fn env_file_errors_name_the_line_never_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "root:$y$j9T$SECRETHASH:19000:0:99999:7:::";
        std::fs::write(dir.path().join("shadow"), format!("A=1\n{secret}\n")).unwrap();
        let path = dir.path().join("upkeep.toml");
        let toml = "[services.x]\ncommand = \"sleep 1\"\nenv_file = \"shadow\"\n";
        let err = parse(&path, toml).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems().len(), 1, "{text}");
        let p = &err.problems()[0];
        assert_eq!(
            (p.key.as_str(), p.line, p.column),
            ("services.x.env_file", 3, 12)
        );
        let file = dir.path().join("shadow");
        assert!(
            p.message.contains(&format!("{}: line 2:", file.display())),
            "{text}"
        );
        assert!(
            !text.contains("SECRET") && !text.contains("99999"),
            "{text}"
        );
        // A device or a FIFO would block or fill memory: refused without reading.
        let toml = "[services.x]\ncommand = \"sleep 1\"\nenv_file = \"/dev/zero\"\n";
        let err = parse(&path, toml).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        // A NUL in a value is named by key and line, the value unshown.
        std::fs::write(dir.path().join("nul.env"), "A=1\nB=\"x\0secret\"\n").unwrap();
        let toml = "[services.x]\ncommand = \"sleep 1\"\nenv_file = \"nul.env\"\n";
        let err = parse(&path, toml).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("line 2: the value of `B` holds a NUL"),
            "{text}"
        );
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn data_dir_must_be_a_folder_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upkeep.toml");
        std::fs::write(&path, "").unwrap();
        let run = |data_dir: &str| parse(&path, &format!("[daemon]\ndata_dir = \"{data_dir}\"\n"));
        // Issue: "" meant the config's own folder, which the daemon then made mode 0700.
        for bad in ["", ".", "..", "./sub/..", "/"] {
            let err = run(bad).unwrap_err();
            let text = err.to_string();
            assert_eq!(err.problems().len(), 1, "{bad}: {text}");
            let p = &err.problems()[0];
            assert_eq!(
                (p.key.as_str(), p.line, p.column),
                ("daemon.data_dir", 2, 12),
                "{text}"
            );
            assert!(
                text.contains("hint: name a folder of upkeep's own"),
                "{text}"
            );
        }
        assert!(
            run("")
                .unwrap_err()
                .to_string()
                .contains("data_dir is empty")
        );
        // A new folder, an empty one and upkeep's own are fine.
        assert_eq!(run("new").unwrap().daemon.data_dir, dir.path().join("new"));
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        run("empty").unwrap();
        assert_eq!(
            run("./a/../b").unwrap().daemon.data_dir,
            dir.path().join("b")
        );
    }

    #[test]
    fn other_values_that_would_mislead_the_daemon() {
        // Probe values that would mislead it are tested beside their kind (`probes/`).
        // SIGSTOP pauses instead of stopping: every stop would wait out stop_timeout.
        let (p, text) = one_problem(&format!("{SVC}stop_signal = \"SIGSTOP\"\n"));
        located(&p, &text, "services.web.stop_signal", 3, 15);
        // A metrics port of 0 would be random.
        let (p, text) = one_problem("[daemon]\nmetrics_listen = \"127.0.0.1:0\"\n");
        located(&p, &text, "daemon.metrics_listen", 2, 18);
    }

    #[test]
    fn a_jobs_other_problem_is_its_only_one() {
        // A process key wrong made `schedule` look like an external service's (break-it,
        // session 11): one problem, not a false second.
        let (p, text) = one_problem(
            "[services.job]\ncommand = \"true\"\nschedule = \"* * * * *\"\nstop_signal = \"SIGSTOP\"\n",
        );
        assert_eq!(p.key, "services.job.stop_signal", "{text}");
    }

    #[test]
    fn api_listeners_are_addresses_of_their_own() {
        let c = check("[daemon]\nlisten = \"127.0.0.1:8080\"\npublic_listen = \"[::1]:8081\"\n")
            .unwrap();
        assert_eq!(c.daemon.listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(c.daemon.public_listen, Some("[::1]:8081".parse().unwrap()));
        // Off unless configured.
        let c = check("").unwrap();
        assert_eq!((c.daemon.listen, c.daemon.public_listen), (None, None));
        // Not an address: located at the value, with an example.
        let (p, text) = one_problem("[daemon]\nlisten = \"localhost:8080\"\n");
        located(&p, &text, "daemon.listen", 2, 10);
        assert!(text.contains("e.g. listen = \"127.0.0.1:8080\""), "{text}");
        let (p, text) = one_problem("[daemon]\npublic_listen = \"127.0.0.1\"\n");
        located(&p, &text, "daemon.public_listen", 2, 17);
        let (p, text) = one_problem("[daemon]\nlisten = \"127.0.0.1:0\"\n");
        located(&p, &text, "daemon.listen", 2, 10);
        // Two listeners on one address.
        let (p, text) = one_problem(
            "[daemon]\nlisten = \"127.0.0.1:8080\"\npublic_listen = \"127.0.0.1:8080\"\n",
        );
        located(&p, &text, "daemon.public_listen", 3, 17);
        assert!(text.contains("same address as listen"), "{text}");
        // One port, where one of them takes every address: refused too, naming both.
        let (p, text) = one_problem(
            "[daemon]\nlisten = \"0.0.0.0:8080\"\nmetrics_listen = \"127.0.0.1:8080\"\n",
        );
        located(&p, &text, "daemon.metrics_listen", 3, 18);
        assert!(
            text.contains("`127.0.0.1:8080` takes the port of listen `0.0.0.0:8080`"),
            "{text}"
        );
        let (p, _) =
            one_problem("[daemon]\nlisten = \"127.0.0.1:8080\"\npublic_listen = \"[::]:8080\"\n");
        assert_eq!(p.key, "daemon.public_listen");
        let (p, _) = one_problem(
            "[daemon]\nlisten = \"127.0.0.1:8080\"\npublic_listen = \"[::ffff:127.0.0.1]:8080\"\n",
        );
        assert_eq!(p.key, "daemon.public_listen");
        // Other addresses on one port, or other ports on one address, are fine.
        check("[daemon]\nlisten = \"127.0.0.1:8080\"\npublic_listen = \"127.0.0.2:8080\"\n")
            .unwrap();
        check("[daemon]\nlisten = \"0.0.0.0:8080\"\npublic_listen = \"0.0.0.0:8081\"\n").unwrap();
        // A wrong type is located too.
        let (p, text) = one_problem("[daemon]\nlisten = 8080\n");
        assert_eq!(p.line, 2, "{text}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let c = check("[daemon]\ntrusted_proxies = [\"127.0.0.1\", \"10.1.2.3/8\", \"::1\"]\n")
            .unwrap();
        let shown: Vec<String> = c
            .daemon
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["127.0.0.1/32", "10.0.0.0/8", "::1/128"]);
        assert!(check("").unwrap().daemon.trusted_proxies.is_empty());
        let (p, text) =
            one_problem("[daemon]\ntrusted_proxies = [\"127.0.0.1\", \"nginx.local\"]\n");
        located(&p, &text, "daemon.trusted_proxies.1", 2, 33);
        assert!(
            text.contains("`nginx.local` is not an address or a range"),
            "{text}"
        );
    }

    #[test]
    fn connections_per_address_are_bounded_and_located() {
        assert_eq!(check("").unwrap().daemon.max_connections_per_address, 32);
        let c = check("[daemon]\nmax_connections_per_address = 8\n").unwrap();
        assert_eq!(c.daemon.max_connections_per_address, 8);
        let (p, text) = one_problem("[daemon]\nmax_connections_per_address = 0\n");
        located(&p, &text, "daemon.max_connections_per_address", 2, 31);
        assert!(
            text.contains("write at least max_connections_per_address = 1"),
            "{text}"
        );
        let (p, text) = one_problem("[daemon]\nmax_connections_per_address = 513\n");
        located(&p, &text, "daemon.max_connections_per_address", 2, 31);
        let (p, text) = one_problem("[daemon]\nmax_connections_per_address = -1\n");
        assert_eq!((p.line, p.column), (2, 31), "{text}");
    }

    #[test]
    fn the_request_timeout_is_bounded_and_located() {
        assert_eq!(
            check("").unwrap().daemon.request_timeout,
            Duration::from_secs(10)
        );
        let c = check("[daemon]\nrequest_timeout = \"30s\"\n").unwrap();
        assert_eq!(c.daemon.request_timeout, Duration::from_secs(30));
        for bad in ["500ms", "6m", "soon"] {
            let (p, text) = one_problem(&format!("[daemon]\nrequest_timeout = \"{bad}\"\n"));
            located(&p, &text, "daemon.request_timeout", 2, 19);
        }
    }

    proptest::proptest! {
        // The parser meets arbitrary text (a half-saved file, a typo) and must answer with an
        // error, never a panic.
        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC*") {
            let _ = check(&s);
        }

        #[test]
        fn never_panics_on_toml_like_text(s in "(\\[services\\.[a-z]{1,3}\\]\n|command = \"[a-z &]{0,8}\"\n|[a-z_]{1,12} = (\"[^\"\n]{0,6}\"|[0-9]{1,4}|\\{ [a-z]+ = 1 \\})\n){0,8}") {
            let _ = check(&s);
        }
    }
}
