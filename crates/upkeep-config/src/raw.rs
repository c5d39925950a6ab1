//! The TOML as written: serde types that mirror the file one to one.
//!
//! Defaults live here, once. Values stay strings where validation must parse them with a
//! location ("5s", "10MiB", "SIGTERM"): `validate.rs` turns them into real types, within the
//! limits of `bounds.rs`. Numbers are read as written (`keep = 4000000000` parses) and bounded
//! there too, so a wrong number gets a message about the key rather than about serde.
//!
//! A probe's own keys depend on its kind, so each kind declares them in its file
//! (`validate/probes/<kind>.rs`); only the keys every probe shares are here ([`RawProbe`]).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub maintenance: RawMaintenance,
    #[serde(default)]
    pub services: BTreeMap<String, RawService>,
    /// Absent: no notices, nothing else changes.
    pub notify: Option<RawNotify>,
}

/// `[notify]`: who hears about windows and incidents, and how.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    /// The public page notices link to.
    pub public_url: Option<String>,
    #[serde(default = "defaults::language")]
    pub language: String,
    #[serde(default = "defaults::timezone")]
    pub timezone: String,
    pub templates_dir: Option<String>,
    #[serde(default = "defaults::flap_interval")]
    pub flap_interval: String,
    #[serde(default = "defaults::lease")]
    pub lease: String,
    #[serde(default = "defaults::give_up_after")]
    pub give_up_after: String,
    /// When the daily digest goes out, in `timezone` (`"08:00"`).
    #[serde(default = "defaults::digest_at")]
    pub digest_at: String,
    /// Each channel as a table: its keys depend on its `kind` (upkeep-outbox's channel
    /// configs), besides `concurrency`, `rate` and `recipients`, which every channel takes.
    #[serde(default)]
    pub channels: BTreeMap<String, toml::Table>,
    /// Absent: the default routes (by priority).
    pub routes: Option<Vec<RawRoute>>,
    /// Absent: no subscriptions are taken.
    pub subscribers: Option<RawSubscribers>,
}

/// `[notify.subscribers]`: people who subscribe through the public API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSubscribers {
    /// The email channel their mails go through (default: the only email channel).
    pub channel: Option<String>,
    /// The notices they get (default: every window step, incidents opened and resolved).
    pub notice: Option<toml::Value>,
    /// How long a confirmation link works.
    #[serde(default = "defaults::confirm_within")]
    pub confirm_within: String,
    /// The secret links are signed with: an environment variable, or a file; neither, one
    /// made once in the data dir.
    pub secret_env: Option<String>,
    pub secret_file: Option<String>,
    /// Confirmation mails the public may make us send in an hour, all addresses together.
    pub confirmations_per_hour: Option<i64>,
    /// Most subscriptions waiting for their confirmation at once.
    pub max_unconfirmed: Option<i64>,
}

/// `[[notify.routes]]`. `priority`, `notice` and `services` take one name or a list, so they
/// are read as values and checked in validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRoute {
    pub priority: Option<toml::Value>,
    pub notice: Option<toml::Value>,
    pub services: Option<toml::Value>,
    #[serde(default)]
    pub channels: Vec<String>,
    pub recipients: Option<Vec<String>>,
    pub language: Option<String>,
    pub timezone: Option<String>,
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    /// `true` or `"daily"`: the route's notices go out as one daily digest per recipient.
    pub digest: Option<toml::Value>,
}

/// `[maintenance]`: how early windows must be announced, and when people are reminded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMaintenance {
    /// Windows up to this long are short.
    #[serde(default = "defaults::short_max")]
    pub short_max: String,
    /// Notice a short window needs.
    #[serde(default = "defaults::short_notice")]
    pub short_notice: String,
    /// Notice a longer window needs (an emergency needs none).
    #[serde(default = "defaults::long_notice")]
    pub long_notice: String,
    /// How long before a start people are reminded.
    #[serde(default = "defaults::reminders")]
    pub reminders: Vec<String>,
    /// How long a window may overrun before it ends anyway.
    #[serde(default = "defaults::overrun_max")]
    pub overrun_max: String,
}

impl Default for RawMaintenance {
    fn default() -> Self {
        RawMaintenance {
            short_max: defaults::short_max(),
            short_notice: defaults::short_notice(),
            long_notice: defaults::long_notice(),
            reminders: defaults::reminders(),
            overrun_max: defaults::overrun_max(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDaemon {
    /// SQLite file, logs and the control socket. Relative paths are relative to the config
    /// file's folder.
    pub data_dir: Option<String>,
    #[serde(default = "defaults::shutdown_timeout")]
    pub shutdown_timeout: String,
    /// host:port where `/metrics` is served over TCP for Prometheus (read-only).
    pub metrics_listen: Option<String>,
    /// host:port of the TCP API (`/api/v1`): public routes, and read and write routes behind
    /// bearer tokens. Off unless set.
    pub listen: Option<String>,
    /// host:port serving only the public routes (the status list), so that publishing them
    /// does not publish the API. Off unless set.
    pub public_listen: Option<String>,
    /// `tls = { cert = "fullchain.pem", key = "privkey.pem" }`: `listen` and `public_listen`
    /// serve HTTPS themselves. Off unless set.
    pub tls: Option<RawTls>,
    /// A cgroup per service where cgroup2 allows (default). Off: process groups, run records
    /// and marks only.
    #[serde(default = "defaults::yes")]
    pub cgroups: bool,
    /// `postgres://user@host:port/db` keeps history in PostgreSQL; unset, SQLite in data_dir.
    pub store: Option<String>,
    /// The environment variable that holds the store's password.
    pub store_password_env: Option<String>,
    /// A file that holds the store's password (its first line).
    pub store_password_file: Option<String>,
    /// This host's name as people see it (default: the host name).
    pub node: Option<String>,
    /// How long raw events are kept ("90d"); unset, forever. Hourly and daily rollups stay.
    pub retain: Option<String>,
    /// Tests only: a daemon clock that `POST /api/v1/test/clock` moves forward. Refused by
    /// release builds (see `validate.rs`).
    #[serde(default)]
    pub test_clock: bool,
    /// A dead-man's switch (Healthchecks-style URL) called every minute while the daemon runs.
    pub heartbeat_url: Option<String>,
    /// Reverse proxies (addresses or CIDR ranges) whose `Forwarded` / `X-Forwarded-For` name
    /// the real client, for rate limits and the record of who did what.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Connections one client address may hold open on each TCP listener.
    #[serde(default = "defaults::max_connections_per_address")]
    pub max_connections_per_address: u32,
    /// How long a client has to send a whole request (head and body) on a TCP listener.
    #[serde(default = "defaults::request_timeout")]
    pub request_timeout: String,
}

/// `[daemon] tls`: PEM files, relative to the config file's folder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    /// The certificate chain, the server's own first (certbot's `fullchain.pem`).
    pub cert: String,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
}

/// `command = "npm run dev"` (split on spaces; run through `sh -c` if it uses shell syntax) or
/// `command = ["npm", "run", "dev"]` (run as is).
#[derive(Debug, Clone)]
pub(crate) enum RawCommand {
    Line(String),
    Argv(Vec<String>),
}

// Written by hand rather than `#[serde(untagged)]`: untagged enums answer a wrong type with
// "data did not match any variant", which tells the user nothing.
impl<'de> Deserialize<'de> for RawCommand {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawCommand;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a command line string or an array of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawCommand, E> {
                Ok(RawCommand::Line(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<RawCommand, A::Error> {
                let mut argv = Vec::new();
                while let Some(s) = a.next_element::<String>()? {
                    argv.push(s);
                }
                Ok(RawCommand::Argv(argv))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawService {
    /// Absent for an external service (nginx, a database elsewhere): probes only.
    pub command: Option<RawCommand>,
    /// Each probe as a table: its keys depend on its `kind`, so validation reads them
    /// (`validate/probes/`). A tagged enum would need `flatten` for the shared keys, which
    /// disables `deny_unknown_fields` and loses where values were written.
    #[serde(default)]
    pub probes: Vec<toml::Table>,
    /// `restart` (default for a managed service) or `alert` (report only).
    pub on_unhealthy: Option<String>,
    #[serde(default = "defaults::incident_after")]
    pub incident_after: String,
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub env_file: Option<String>,
    pub user: Option<String>,
    #[serde(default = "defaults::restart")]
    pub restart: String,
    #[serde(default = "defaults::yes")]
    pub autostart: bool,
    #[serde(default = "defaults::stop_signal")]
    pub stop_signal: String,
    #[serde(default = "defaults::stop_timeout")]
    pub stop_timeout: String,
    #[serde(default = "defaults::backoff_min")]
    pub backoff_min: String,
    #[serde(default = "defaults::backoff_max")]
    pub backoff_max: String,
    #[serde(default = "defaults::min_uptime")]
    pub min_uptime: String,
    #[serde(default = "defaults::max_restarts")]
    pub max_restarts: u32,
    #[serde(default = "defaults::window")]
    pub window: String,
    #[serde(default)]
    pub log: RawLog,
    /// `["db", { service = "cache", condition = "healthy" }]`: each entry a name or a table,
    /// so they are read by validation (`validate/deps.rs`), located by key path.
    #[serde(default)]
    pub depends_on: Vec<toml::Value>,
    /// `ignore` (default), `stop` or `restart`.
    pub on_dependency_down: Option<String>,
    /// `"notify"`, `"probe"`, `{ fd = 3 }` or `{ log = "REGEX" }`: a string or a table, read
    /// by validation (`validate/ready.rs`). Absent: ready once spawned.
    pub ready: Option<toml::Value>,
    pub ready_timeout: Option<String>,
    /// How often a `ready = "notify"` service must send `WATCHDOG=1`.
    pub watchdog: Option<String>,
    /// Where to read what to do when it fails (a URL or a path): goes with its incident notices.
    pub runbook: Option<String>,
    /// Its incidents' priority, `"P1"` to `"P4"` (default P3): notices route by it.
    pub priority: Option<String>,
    /// `simple` (default: the command is the service) or `forking` (the command forks a
    /// daemon and exits; the daemon is followed through `pid_file`). See `validate/process.rs`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// With `type = "forking"`: where the daemon writes its pid.
    pub pid_file: Option<String>,
    /// With `type = "forking"`: how long the PID file may take once the command exited.
    pub pid_file_timeout: Option<String>,
    /// What `upkeep reload NAME` sends (e.g. `"SIGHUP"`); absent: the service cannot reload.
    pub reload_signal: Option<String>,
    /// A job: runs to completion at these times (a cron expression, optionally followed by an
    /// IANA zone), read by `validate/schedule.rs`.
    pub schedule: Option<String>,
    /// A job's run missed while no daemon ran is made up once at start (default true).
    pub catch_up: Option<bool>,
    /// Restart the service at these times (PM2's cron_restart): a cron expression and zone.
    pub restart_at: Option<String>,
    /// Paths (from the service's cwd) whose changes restart the service.
    #[serde(default)]
    pub watch: Vec<String>,
    /// Quiet time after a change before the restart (default 300ms).
    pub watch_debounce: Option<String>,
    /// Glob patterns of paths whose changes do not count (besides node_modules and .git).
    #[serde(default)]
    pub watch_ignore: Vec<String>,
    /// The public status page (`validate/page.rs`): the heading it is listed under, whether it
    /// is shown at all (default yes), the name and the line of text people read.
    pub group: Option<String>,
    pub public: Option<bool>,
    pub display_name: Option<String>,
    pub description: Option<String>,
}

impl Default for RawDaemon {
    fn default() -> Self {
        Self {
            data_dir: None,
            shutdown_timeout: defaults::shutdown_timeout(),
            metrics_listen: None,
            listen: None,
            public_listen: None,
            tls: None,
            cgroups: true,
            store: None,
            store_password_env: None,
            store_password_file: None,
            retain: None,
            node: None,
            test_clock: false,
            heartbeat_url: None,
            trusted_proxies: Vec::new(),
            max_connections_per_address: defaults::max_connections_per_address(),
            request_timeout: defaults::request_timeout(),
        }
    }
}

/// The keys every probe takes, whatever its kind. A probe's table is read whole
/// (`RawService::probes`); validation gives these keys to this struct and the kind's own keys
/// to the kind's raw struct (`validate/probes/<kind>.rs`), and reports any other key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProbe {
    pub kind: String,
    pub name: Option<String>,
    #[serde(default = "defaults::every")]
    pub every: String,
    #[serde(default = "defaults::probe_timeout")]
    pub timeout: String,
    #[serde(default = "defaults::failures")]
    pub failures: u32,
    #[serde(default = "defaults::successes")]
    pub successes: u32,
    #[serde(default = "defaults::grace")]
    pub grace: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    #[serde(default = "defaults::max_size")]
    pub max_size: String,
    #[serde(default = "defaults::keep")]
    pub keep: u32,
    #[serde(default)]
    pub compress: bool,
}

impl Default for RawLog {
    fn default() -> Self {
        Self {
            max_size: defaults::max_size(),
            keep: defaults::keep(),
            compress: false,
        }
    }
}

/// Every default in one place. Why these numbers: the first restart after a crash is immediate
/// (a crash should cost what a fork costs), later ones back off from `backoff_min`, doubling,
/// to `backoff_max`; ten restarts within a minute is a crash loop.
mod defaults {
    pub fn max_connections_per_address() -> u32 {
        32
    }
    pub fn request_timeout() -> String {
        "10s".into()
    }
    pub fn shutdown_timeout() -> String {
        "30s".into()
    }
    pub fn short_max() -> String {
        "4h".into()
    }
    pub fn short_notice() -> String {
        "24h".into()
    }
    pub fn long_notice() -> String {
        "7d".into()
    }
    pub fn overrun_max() -> String {
        "24h".into()
    }
    pub fn reminders() -> Vec<String> {
        vec!["24h".into(), "1h".into()]
    }
    pub fn restart() -> String {
        "always".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn stop_signal() -> String {
        "SIGTERM".into()
    }
    pub fn stop_timeout() -> String {
        "10s".into()
    }
    pub fn backoff_min() -> String {
        "100ms".into()
    }
    pub fn backoff_max() -> String {
        "30s".into()
    }
    pub fn min_uptime() -> String {
        "5s".into()
    }
    pub fn max_restarts() -> u32 {
        10
    }
    pub fn window() -> String {
        "60s".into()
    }
    pub fn incident_after() -> String {
        "0s".into()
    }
    pub fn every() -> String {
        "5s".into()
    }
    pub fn probe_timeout() -> String {
        "2s".into()
    }
    pub fn failures() -> u32 {
        3
    }
    pub fn successes() -> u32 {
        1
    }
    /// Failures right after a start are not counted: most programs need a moment to listen.
    pub fn grace() -> String {
        "5s".into()
    }
    pub fn max_size() -> String {
        "10MiB".into()
    }
    pub fn keep() -> u32 {
        5
    }
    pub fn language() -> String {
        "en".into()
    }
    pub fn timezone() -> String {
        "UTC".into()
    }
    /// The daily digest goes out at the start of a working day.
    pub fn digest_at() -> String {
        "08:00".into()
    }
    /// At most one notice per incident in ten minutes: a flapping service is one page.
    pub fn flap_interval() -> String {
        "10m".into()
    }
    /// Longer than any channel's timeout (5m at most), so a send in progress keeps its rows.
    pub fn lease() -> String {
        "10m".into()
    }
    /// A day: a notice older than that is history, not news.
    pub fn give_up_after() -> String {
        "24h".into()
    }
    pub fn confirm_within() -> String {
        "48h".into()
    }
}
