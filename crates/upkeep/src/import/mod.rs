//! `upkeep import pm2|supervisord|systemd`: another supervisor's set-up, as upkeep services.
//!
//! Each source is one file that reads its own format and maps it to one shared intermediate,
//! [`Import`]: services in upkeep's terms ([`Service`]) and, for everything that could not be
//! carried over, a [`Note`] saying what and why. One writer (`write.rs`) turns that into TOML
//! tables in the config file. No importer writes TOML or touches the config file, and the writer
//! knows no source format.
//!
//! Settings that map to upkeep keys beyond the basics (dependencies, readiness, forking
//! daemons, reload signals, cron restarts, watching files) are read into [`Pending`] values,
//! each in one function per source (`pending` in `pm2.rs`, `systemd.rs`); the writer writes
//! those [`Pending::carried`] says it can and notes the rest, naming the upkeep setting they
//! would be (a forking daemon without a PID file; a dependency outside the config).
//!
//! Layout:
//! - `pm2.rs`: ecosystem files (evaluated by `node`) and a running PM2 (`pm2 jlist`).
//! - `supervisord.rs` (its INI dialect in `supervisord/ini.rs`): `[program:x]` sections.
//! - `systemd.rs` (unit file syntax in `systemd/unit.rs`, command lines and specifiers in
//!   `systemd/exec.rs`): `.service` units.
//! - `write.rs`: [`Import`] → `[services.NAME]` tables, put into the config file.
//!
//! Called by `cli/import.rs`, which prints what was imported and the notes.

use std::collections::BTreeMap;
use std::time::Duration;

use upkeep_config::RestartPolicy;
use upkeep_core::ServiceName;

pub mod pm2;
pub mod supervisord;
pub mod systemd;
pub mod write;

/// What one import read: the services, and the notes that belong to none of them (a
/// supervisord `[group:x]`, a section of a kind upkeep has no use for).
#[derive(Debug, Default)]
pub struct Import {
    pub services: Vec<Service>,
    pub notes: Vec<Note>,
}

impl Import {
    /// Every note, the services' first (in their order), then the others.
    pub fn all_notes(&self) -> impl Iterator<Item = &Note> {
        self.services
            .iter()
            .flat_map(|s| s.notes.iter())
            .chain(self.notes.iter())
    }

    /// Adds `service`, refusing a second service of the same name: two sources of one name
    /// would silently become one.
    pub fn push(&mut self, service: Service) -> Result<(), ImportError> {
        if self.services.iter().any(|s| s.name == service.name) {
            return Err(ImportError::Twice {
                name: service.name,
                origin: service.origin,
            });
        }
        self.services.push(service);
        Ok(())
    }
}

/// One service as upkeep will run it. `None` leaves upkeep's default (the key is not written).
#[derive(Debug, Clone)]
pub struct Service {
    pub name: ServiceName,
    /// Where it came from, written as a comment above its table: "pm2 app `api` in FILE".
    pub origin: String,
    /// The source's own description (systemd's `Description=`), written as a comment.
    pub description: Option<String>,
    pub command: Command,
    pub cwd: Option<String>,
    pub env: BTreeMap<String, String>,
    pub env_file: Option<String>,
    pub user: Option<String>,
    pub restart: Option<RestartPolicy>,
    pub autostart: Option<bool>,
    /// A signal name as upkeep writes it, e.g. "SIGINT".
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<Duration>,
    pub backoff_min: Option<Duration>,
    pub backoff_max: Option<Duration>,
    pub min_uptime: Option<Duration>,
    pub max_restarts: Option<u32>,
    pub window: Option<Duration>,
    /// Restart when the process group's resident memory exceeds this many bytes: a memory
    /// probe (PM2's `max_memory_restart`, systemd's `MemoryMax=`).
    pub memory_max: Option<u64>,
    /// Settings upkeep will support: the source's setting (e.g. "cron_restart") and its value.
    pub pending: Vec<(String, Pending)>,
    pub notes: Vec<Note>,
}

impl Service {
    /// A service that runs `command` with upkeep's defaults for everything else.
    pub fn new(name: ServiceName, origin: String, command: Command) -> Service {
        Service {
            name,
            origin,
            description: None,
            command,
            cwd: None,
            env: BTreeMap::new(),
            env_file: None,
            user: None,
            restart: None,
            autostart: None,
            stop_signal: None,
            stop_timeout: None,
            backoff_min: None,
            backoff_max: None,
            min_uptime: None,
            max_restarts: None,
            window: None,
            memory_max: None,
            pending: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Records that `setting` was not carried over, and why.
    pub fn note(&mut self, setting: impl Into<String>, reason: impl Into<String>) {
        self.notes.push(Note {
            subject: self.name.to_string(),
            setting: setting.into(),
            reason: reason.into(),
        });
    }
}

/// What to run: an argv run as is, or a line for `/bin/sh -c` (an importer makes one only
/// when the source needs a shell: environment references, commands chained before the main one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Argv(Vec<String>),
    Shell(String),
}

/// Something that was not carried over: `subject` (a service, or a section of the source),
/// the source's `setting` as written there, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub subject: String,
    pub setting: String,
    pub reason: String,
}

/// A setting upkeep does not have yet but will, with the value it will take. Until then it is
/// a note that says which setting it will be ([`Pending::future_toml`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// Start after these services (upkeep names).
    DependsOn(Vec<String>),
    /// The service says when it is ready (sd_notify READY=1), within `timeout` if one is set,
    /// and pings the watchdog (WATCHDOG=1) at least every `watchdog` if one is set.
    ReadyNotify {
        timeout: Option<Duration>,
        watchdog: Option<Duration>,
    },
    /// The command forks a daemon and exits; the daemon's pid is in `pid_file`.
    Forking { pid_file: Option<String> },
    /// A signal that makes the service reload its configuration.
    ReloadSignal(String),
    /// Restart on a cron schedule.
    RestartAt(String),
    /// Restart when these paths change (empty: the service's folder).
    Watch(Vec<String>),
}

impl Pending {
    /// Whether this upkeep carries it: then the writer writes [`Pending::future_toml`]'s keys
    /// instead of a note. Each is switched on here when upkeep learns it.
    pub fn carried(&self) -> bool {
        match self {
            // Since issue 18: a forking daemon is followed through its PID file (without one
            // there is nothing to follow), and `upkeep reload NAME` sends the signal.
            Pending::Forking { pid_file } => pid_file.is_some(),
            // A dependency is carried once `write::settle` kept only the services this config
            // will have; READY=1 is what a `Type=notify` unit's program sends by definition;
            // `restart_at` and `watch` are PM2's cron_restart and watch.
            Pending::ReloadSignal(_)
            | Pending::DependsOn(_)
            | Pending::ReadyNotify { .. }
            | Pending::RestartAt(_)
            | Pending::Watch(_) => true,
        }
    }

    /// The keys and values it will be written as, e.g. `[("depends_on", ["db"])]`.
    pub fn future_toml(&self) -> Vec<(&'static str, toml_edit::Value)> {
        let list = |v: &[String]| toml_edit::Value::from_iter(v.iter().map(String::as_str));
        match self {
            Pending::DependsOn(names) => vec![("depends_on", list(names))],
            Pending::ReadyNotify { timeout, watchdog } => {
                let mut keys = vec![("ready", "notify".into())];
                if let Some(t) = timeout {
                    keys.push(("ready_timeout", show_duration(*t).into()));
                }
                if let Some(w) = watchdog {
                    keys.push(("watchdog", show_duration(*w).into()));
                }
                keys
            }
            Pending::Forking { pid_file } => {
                let mut keys = vec![("type", "forking".into())];
                if let Some(p) = pid_file {
                    keys.push(("pid_file", p.as_str().into()));
                }
                keys
            }
            Pending::ReloadSignal(sig) => vec![("reload_signal", sig.as_str().into())],
            Pending::RestartAt(cron) => vec![("restart_at", cron.as_str().into())],
            Pending::Watch(paths) => vec![("watch", list(paths))],
        }
    }

    /// The note shown while upkeep does not carry it.
    pub fn reason(&self) -> String {
        let keys: Vec<String> = self
            .future_toml()
            .into_iter()
            .map(|(k, v)| format!("{k} = {}", v.to_string().trim()))
            .collect();
        match self {
            // Dependencies on services neither in this config nor in this import.
            Pending::DependsOn(_) => format!(
                "not in this config: add `{}` once those services are",
                keys.join("`, `")
            ),
            _ => format!(
                "upkeep does not support this yet; it will be `{}`",
                keys.join("`, `")
            ),
        }
    }
}

/// Why an import could not be done. Every variant is the input's fault (exit 2) but
/// [`ImportError::Tool`], which is this host's.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}")]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A file that does not parse, with where: "FILE:LINE: what".
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: std::path::PathBuf,
        line: usize,
        message: String,
    },
    /// Input that parses but cannot be imported (no command, a bad value).
    #[error("{0}")]
    Invalid(String),
    #[error("two imported services would be named `{name}` (the second is {origin})")]
    Twice { name: ServiceName, origin: String },
    /// A program the import needs (`node`, `pm2`) is missing or failed.
    #[error("{message}")]
    Tool {
        message: String,
        hint: Option<String>,
    },
    /// The config file cannot take the services (a name it has, a file that is not TOML).
    #[error(transparent)]
    Edit(#[from] upkeep_config::EditError),
    /// With the services in it, the config would not validate; nothing is written.
    #[error("with these services the config would not pass `upkeep check`, so nothing was written")]
    WouldBeInvalid(#[source] upkeep_config::ConfigError),
    #[error("{0} holds nothing to import")]
    Nothing(String),
    /// Every problem of the input, as `upkeep check` reports a config's (two or more; see
    /// [`ImportError::all`]): one line each, with its file and line.
    #[error("{}", problems_text(.0))]
    Problems(Vec<ImportError>),
}

/// "3 problems, nothing was imported", then each on a line of its own.
fn problems_text(problems: &[ImportError]) -> String {
    let mut out = format!("{} problems, nothing was imported", problems.len());
    for p in problems {
        out.push_str("\n  --> ");
        out.push_str(&p.to_string());
    }
    out
}

impl ImportError {
    /// `problems` as one error, none if empty: the one itself, or [`ImportError::Problems`].
    pub fn all(problems: Vec<ImportError>) -> Result<(), ImportError> {
        let mut flat = Vec::new();
        for p in problems {
            match p {
                ImportError::Problems(inner) => flat.extend(inner),
                p => flat.push(p),
            }
        }
        match flat.len() {
            0 => Ok(()),
            1 => Err(flat.remove(0)),
            _ => Err(ImportError::Problems(flat)),
        }
    }

    pub fn hint(&self) -> Option<&str> {
        match self {
            ImportError::Problems(all) => all.iter().find_map(ImportError::hint),
            ImportError::Tool { hint, .. } => hint.as_deref(),
            ImportError::Twice { .. } => {
                Some("import the sources one at a time, or rename one in its source")
            }
            ImportError::Edit(upkeep_config::EditError::ExistAlready(_)) => {
                Some("add --replace to replace them, or rename them in the source")
            }
            ImportError::WouldBeInvalid(_) => Some(
                "each problem names its service's key; --dry-run prints the services as they would be written",
            ),
            _ => None,
        }
    }

    pub fn is_usage(&self) -> bool {
        match self {
            ImportError::Problems(all) => all.iter().all(ImportError::is_usage),
            other => !matches!(other, ImportError::Tool { .. }),
        }
    }
}

/// `name` as an upkeep service name: characters upkeep does not take become `-`, at most 64
/// characters, never `all`. The note says so when it changed.
pub fn service_name(name: &str) -> Result<(ServiceName, Option<String>), ImportError> {
    let mut clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    clean = clean.trim_start_matches(['.', '-']).to_owned();
    clean.truncate(64);
    if clean == "all" {
        clean = "all-services".into();
    }
    if clean.is_empty() {
        // `..`, `@@`: "the name is empty" would be untrue of what the source says.
        return Err(ImportError::Invalid(format!(
            "`{name}` cannot be a service name: nothing is left of it once characters upkeep does not take and leading dots and dashes are left out; rename it in its source"
        )));
    }
    let renamed = (clean != name).then(|| format!("named `{clean}` in upkeep"));
    ServiceName::new(clean)
        .map(|n| (n, renamed))
        .map_err(|e| ImportError::Invalid(format!("`{name}` cannot be a service name: {e}")))
}

/// [`service_name`], or, if `name` cannot be one, a stand-in (the problem goes to
/// `problems`): an importer reads the rest of the service all the same, to report its other
/// problems, and imports nothing.
pub fn name_or_stand_in(
    name: &str,
    problems: &mut Vec<ImportError>,
) -> (ServiceName, Option<String>) {
    service_name(name).unwrap_or_else(|e| {
        problems.push(e);
        let stand_in = ServiceName::new("imported").expect("a valid service name");
        (stand_in, None)
    })
}

/// Puts `problems` in the order of `files` (those not named there after them, by path), then
/// of their lines: the order a reader fixes them in. Problems with no line go last.
pub fn sort_by_place(problems: &mut [ImportError], files: &[std::path::PathBuf]) {
    problems.sort_by(|a, b| {
        let place = |e: &ImportError| match e {
            ImportError::Syntax { path, line, .. } => (
                files.iter().position(|f| f == path).unwrap_or(files.len()),
                Some(path.clone()),
                *line,
            ),
            _ => (usize::MAX, None, 0),
        };
        place(a).cmp(&place(b))
    });
}

/// A duration as upkeep's config writes it: "1600ms", "5s", "2m", "1h".
pub fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    match s {
        0 => "0s".into(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_upkeep_names() {
        let ok = |n: &str| service_name(n).unwrap();
        assert_eq!(ok("api").0.as_str(), "api");
        assert_eq!(ok("api").1, None);
        let (n, note) = ok("my app/v2");
        assert_eq!(n.as_str(), "my-app-v2");
        assert_eq!(note.as_deref(), Some("named `my-app-v2` in upkeep"));
        assert_eq!(ok("foo@bar").0.as_str(), "foo-bar");
        assert_eq!(ok("all").0.as_str(), "all-services");
        assert_eq!(ok(&"x".repeat(80)).0.as_str().len(), 64);
        // Break-it, session 12: `..` was "service name is empty".
        for odd in ["..", "@@", ".-."] {
            assert_eq!(
                service_name(odd).unwrap_err().to_string(),
                format!(
                    "`{odd}` cannot be a service name: nothing is left of it once characters upkeep does not take and leading dots and dashes are left out; rename it in its source"
                )
            );
        }
    }

    #[test]
    fn durations_are_written_as_people_write_them() {
        let ms = Duration::from_millis;
        assert_eq!(show_duration(ms(1600)), "1600ms");
        assert_eq!(show_duration(ms(5000)), "5s");
        assert_eq!(show_duration(ms(90_000)), "90s");
        assert_eq!(show_duration(ms(120_000)), "2m");
        assert_eq!(show_duration(ms(7_200_000)), "2h");
        assert_eq!(show_duration(ms(0)), "0s");
        for d in [ms(1600), ms(90_000), ms(7_200_000)] {
            assert_eq!(upkeep_core::duration::parse(&show_duration(d)), Some(d));
        }
    }

    #[test]
    fn pending_settings_say_what_they_will_be() {
        let p = Pending::Forking { pid_file: None };
        assert_eq!(
            p.reason(),
            "upkeep does not support this yet; it will be `type = \"forking\"`"
        );
        // Carried since issue 18, item 3: written as keys, not a note.
        let forking = Pending::Forking {
            pid_file: Some("/run/nginx.pid".into()),
        };
        assert!(forking.carried());
        assert!(Pending::ReloadSignal("SIGHUP".into()).carried());
        assert!(Pending::RestartAt("0 4 * * *".into()).carried());
        let notify = Pending::ReadyNotify {
            timeout: Some(Duration::from_secs(20)),
            watchdog: Some(Duration::from_millis(1500)),
        };
        assert!(notify.carried());
        let keys: Vec<String> = notify
            .future_toml()
            .into_iter()
            .map(|(k, v)| format!("{k} = {}", v.to_string().trim()))
            .collect();
        assert_eq!(
            keys,
            [
                "ready = \"notify\"",
                "ready_timeout = \"20s\"",
                "watchdog = \"1500ms\""
            ]
        );
        // Only those not in the config are left (see `write::settle`), with this note.
        assert_eq!(
            Pending::DependsOn(vec!["db".into(), "cache".into()]).reason(),
            "not in this config: add `depends_on = [\"db\", \"cache\"]` once those services are"
        );
        assert!(!p.carried());
    }
}
