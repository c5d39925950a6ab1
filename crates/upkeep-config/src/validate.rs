//! Validation: the one place where config is checked. Raw TOML types in, [`Config`] out.
//!
//! Every problem is collected (never only the first), located by key path and reported as one
//! [`ConfigError`]. What comes out cannot be invalid: durations are `Duration`s, programs are
//! resolved to files that exist, signals are numbers, users are uids.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use upkeep_core::ServiceName;

use crate::error::{ConfigError, Problem};
use crate::locate::{line_col, locate_key};
use crate::raw::{RawCommand, RawConfig, RawService};

/// A validated config, with the text it came from (stored as a revision).
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub source: String,
    pub daemon: DaemonConfig,
    pub services: BTreeMap<ServiceName, ServiceConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    pub data_dir: PathBuf,
    pub shutdown_timeout: Duration,
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

/// One service, ready to run. `PartialEq` is what reload uses to decide "changed".
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
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
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &source)
}

/// Validates `source`, which was read from `path` (used for messages and relative paths).
pub fn parse(path: &Path, source: &str) -> Result<Config, ConfigError> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let base = path
        .parent()
        .map(Path::to_owned)
        .unwrap_or_else(|| PathBuf::from("."));
    let raw: RawConfig = match toml::from_str(source) {
        Ok(raw) => raw,
        Err(e) => {
            let (line, column) = e
                .span()
                .map(|s| line_col(source, s.start))
                .unwrap_or((1, 1));
            let problem = Problem {
                line,
                column,
                key: String::new(),
                message: e.message().trim().to_owned(),
                hint: None,
            };
            return Err(ConfigError::Invalid {
                path,
                problems: vec![problem],
            });
        }
    };
    let mut v = Validator {
        source,
        problems: Vec::new(),
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
}

impl Validator<'_> {
    fn problem(&mut self, key: &[&str], message: impl Into<String>, hint: Option<String>) {
        let (line, column) = locate_key(self.source, key).unwrap_or((1, 1));
        self.problems.push(Problem {
            line,
            column,
            key: key.join("."),
            message: message.into(),
            hint,
        });
    }

    fn config(&mut self, raw: RawConfig, base: &Path, path: &Path) -> Config {
        let data_dir = raw
            .daemon
            .data_dir
            .as_deref()
            .map(|d| base.join(d))
            .unwrap_or_else(crate::default_data_dir);
        let shutdown_timeout = self.duration(
            &["daemon", "shutdown_timeout"],
            &raw.daemon.shutdown_timeout,
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
        Config {
            path: path.to_owned(),
            source: self.source.to_owned(),
            daemon: DaemonConfig {
                data_dir,
                shutdown_timeout,
            },
            services,
        }
    }

    fn service(&mut self, name: &str, raw: RawService, base: &Path) -> Option<ServiceConfig> {
        let before = self.problems.len();
        let k = |field: &'static str| ["services", name, field];

        let cwd = raw.cwd.as_deref().map(|c| base.join(c));
        if let Some(dir) = &cwd
            && !dir.is_dir()
        {
            self.problem(
                &k("cwd"),
                format!("folder {} does not exist", dir.display()),
                None,
            );
        }
        let run_dir = cwd.clone().unwrap_or_else(|| base.to_owned());

        let mut env: BTreeMap<String, String> = BTreeMap::new();
        if let Some(file) = &raw.env_file {
            let file = run_dir.join(file);
            match dotenvy::from_path_iter(&file) {
                Ok(iter) => {
                    for item in iter {
                        match item {
                            Ok((key, value)) => {
                                env.insert(key, value);
                            }
                            Err(e) => {
                                self.problem(
                                    &k("env_file"),
                                    format!("{}: {e}", file.display()),
                                    None,
                                );
                                break;
                            }
                        }
                    }
                }
                Err(e) => self.problem(
                    &k("env_file"),
                    format!("cannot read {}: {e}", file.display()),
                    None,
                ),
            }
        }
        env.extend(raw.env);

        let user = raw
            .user
            .as_deref()
            .and_then(|u| match nix::unistd::User::from_name(u) {
                Ok(Some(user)) => Some(UserIds {
                    name: user.name,
                    uid: user.uid.as_raw(),
                    gid: user.gid.as_raw(),
                    home: user.dir,
                }),
                _ => {
                    self.problem(
                        &k("user"),
                        format!("no user named `{u}` on this host"),
                        None,
                    );
                    None
                }
            });

        let program = self.program(name, &raw.command, &run_dir, env.get("PATH"));

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
        let stop_timeout = self.duration(&k("stop_timeout"), &raw.stop_timeout);
        let backoff_min = self.duration(&k("backoff_min"), &raw.backoff_min);
        let backoff_max = self.duration(&k("backoff_max"), &raw.backoff_max);
        if backoff_min > backoff_max {
            self.problem(
                &k("backoff_max"),
                "backoff_max is shorter than backoff_min",
                None,
            );
        }
        let min_uptime = self.duration(&k("min_uptime"), &raw.min_uptime);
        let window = self.duration(&k("window"), &raw.window);
        if window.is_zero() {
            self.problem(&k("window"), "window must be longer than 0s", None);
        }
        let log_key = ["services", name, "log", "max_size"];
        let max_size = match raw.log.max_size.parse::<bytesize::ByteSize>() {
            Ok(size) if size.as_u64() >= 4096 => size.as_u64(),
            Ok(_) => {
                self.problem(&log_key, "max_size must be at least 4KiB", None);
                0
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

        if self.problems.len() > before {
            return None;
        }
        Some(ServiceConfig {
            program: program?,
            cwd,
            env: env.into_iter().collect(),
            user,
            restart: restart?,
            autostart: raw.autostart,
            stop_signal: stop_signal?,
            stop_timeout,
            backoff_min,
            backoff_max,
            min_uptime,
            max_restarts: raw.max_restarts,
            window,
            log: LogConfig {
                max_size,
                keep: raw.log.keep,
                compress: raw.log.compress,
            },
        })
    }

    /// Turns `command` into an argv whose program exists. A line with shell syntax runs through
    /// `/bin/sh -c`; `sh` (dash, bash) replaces itself with the last simple command, so this
    /// costs no extra process in the tree.
    fn program(
        &mut self,
        name: &str,
        command: &RawCommand,
        run_dir: &Path,
        service_path: Option<&String>,
    ) -> Option<Program> {
        let key = ["services", name, "command"];
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
        let Some(program) = argv.first().filter(|p| !p.is_empty()) else {
            self.problem(
                &key,
                "command is empty",
                Some("write the program to run, e.g. command = \"npm run start\"".into()),
            );
            return None;
        };
        let search = service_path
            .cloned()
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        match resolve_program(program, run_dir, &search) {
            Some(path) => Some(Program {
                path,
                argv,
                display,
            }),
            None => {
                let hint = if program.contains('/') {
                    "check the path; relative paths are relative to the service's cwd".to_owned()
                } else {
                    format!(
                        "searched PATH={search} (the daemon's PATH, not your shell's); write the full path, e.g. command = \"/usr/local/bin/{program} ...\", or set PATH in env"
                    )
                };
                self.problem(
                    &key,
                    format!("program `{program}` was not found"),
                    Some(hint),
                );
                None
            }
        }
    }

    fn duration(&mut self, key: &[&str], text: &str) -> Duration {
        match parse_duration(text) {
            Some(d) => d,
            None => {
                self.problem(
                    key,
                    format!("`{text}` is not a duration"),
                    Some("write a duration such as \"500ms\", \"10s\" or \"2m\"".into()),
                );
                Duration::ZERO
            }
        }
    }

    fn signal(&mut self, key: &[&str], text: &str) -> Option<i32> {
        let upper = text.trim().to_ascii_uppercase();
        let named = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        let parsed = named.parse::<nix::sys::signal::Signal>().ok().or_else(|| {
            text.trim()
                .parse::<i32>()
                .ok()
                .and_then(|n| nix::sys::signal::Signal::try_from(n).ok())
        });
        match parsed {
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

/// Characters that only a shell understands. A line holding one runs through `sh -c`.
fn needs_shell(line: &str) -> bool {
    line.contains(|c: char| "|&;<>()$`\\\"'*?[]#~{}\n".contains(c))
        || line
            .split_whitespace()
            .next()
            .is_some_and(|w| w.contains('='))
}

fn resolve_program(program: &str, run_dir: &Path, search: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    if program.contains('/') {
        let p = run_dir.join(program);
        return is_exec(&p).then_some(p);
    }
    search
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| is_exec(p))
}

/// "250ms", "10s", "1m 30s", "2h" (jiff's friendly format) or a bare "0".
fn parse_duration(text: &str) -> Option<Duration> {
    if text.trim() == "0" {
        return Some(Duration::ZERO);
    }
    let d: jiff::SignedDuration = text.trim().parse().ok()?;
    Duration::try_from(d).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml: &str) -> Result<Config, ConfigError> {
        parse(Path::new("/tmp/upkeep-test.toml"), toml)
    }

    #[test]
    fn minimal_service_gets_defaults() {
        let c = check("[services.web]\ncommand = \"sleep 10\"\n").unwrap();
        let web = &c.services[&ServiceName::new("web").unwrap()];
        assert_eq!(web.program.argv, ["sleep", "10"]);
        assert!(web.program.path.ends_with("sleep"));
        assert_eq!(web.restart, RestartPolicy::Always);
        assert_eq!(web.stop_signal, 15);
        assert_eq!(web.stop_timeout, Duration::from_secs(10));
        assert_eq!(web.log.max_size, 10 * 1024 * 1024);
    }

    #[test]
    fn shell_syntax_runs_through_sh() {
        let c = check("[services.a]\ncommand = \"sleep 1000 & sleep 1000\"\n").unwrap();
        let a = c.services.values().next().unwrap();
        assert_eq!(a.program.argv, ["/bin/sh", "-c", "sleep 1000 & sleep 1000"]);
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
        let x = c.services.values().next().unwrap();
        assert_eq!(x.env, [("A".into(), "1".into()), ("B".into(), "3".into())]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m 30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("-5s"), None);
        assert_eq!(parse_duration("soon"), None);
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
