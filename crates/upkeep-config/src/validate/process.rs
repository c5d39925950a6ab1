//! How a managed service's process is run and spoken to: `type` (`simple`, or `forking` with
//! `pid_file`), `pid_file_timeout` and `reload_signal`, plus [`parse_signal`], the one reading
//! of a signal's name or number (config, CLI and API alike).
//!
//! It does not run anything: the supervisor follows a forking daemon through its PID file
//! (`upkeep-supervisor/src/forking.rs`) and sends the reload signal when asked.
//!
//! Input: the service's raw keys, from `Validator::managed`. Output: a [`ServiceType`] and the
//! reload signal's number, or problems recorded on the `Validator`, each located at its key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;

use super::{Ready, Validator};
use crate::bounds;
use crate::raw::RawService;

/// How the service's command relates to the service.
#[derive(Debug, Clone, PartialEq)]
pub enum ServiceType {
    /// The command is the service's main process (the default).
    Simple,
    /// `type = "forking"`: the command starts a daemon that forks into the background and
    /// exits (systemd's `Type=forking`). The daemon writes its pid to `pid_file` (absolute:
    /// relative to the service's cwd in the file), which must appear within `timeout` of the
    /// command's exit.
    Forking {
        pid_file: PathBuf,
        timeout: Duration,
    },
}

impl ServiceType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ServiceType::Simple => "simple",
            ServiceType::Forking { .. } => "forking",
        }
    }
}

/// A signal by name (`HUP`, `SIGHUP`, `sighup`) or number (`1`), as its number. None for
/// anything Linux does not know.
pub fn parse_signal(text: &str) -> Option<i32> {
    let text = text.trim();
    let upper = text.to_ascii_uppercase();
    let named = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    named
        .parse::<Signal>()
        .ok()
        .or_else(|| {
            text.parse::<i32>()
                .ok()
                .and_then(|n| Signal::try_from(n).ok())
        })
        .map(|s| s as i32)
}

/// How long a forking service's PID file may take by default, once its command has exited.
const PID_FILE_TIMEOUT: &str = "30s";

impl Validator<'_> {
    /// `type`, `pid_file` and `pid_file_timeout` of managed service `name`, whose cwd is
    /// `run_dir`.
    pub(super) fn service_type(
        &mut self,
        name: &str,
        raw: &RawService,
        run_dir: &Path,
        ready: Option<&Ready>,
    ) -> Option<ServiceType> {
        let k = |field: &'static str| ["services", name, field];
        let kind = raw.type_.as_deref().unwrap_or("simple");
        match kind {
            "simple" => {
                for (field, set) in [
                    ("pid_file", raw.pid_file.is_some()),
                    ("pid_file_timeout", raw.pid_file_timeout.is_some()),
                ] {
                    if set {
                        self.problem(
                            &k(field),
                            format!("`{field}` applies only to type = \"forking\""),
                            Some(
                                "add type = \"forking\" if the command forks a daemon that writes this file"
                                    .into(),
                            ),
                        );
                    }
                }
                Some(ServiceType::Simple)
            }
            "forking" => {
                let timeout = self.duration(
                    &k("pid_file_timeout"),
                    raw.pid_file_timeout.as_deref().unwrap_or(PID_FILE_TIMEOUT),
                    bounds::PID_FILE_TIMEOUT,
                );
                // Readiness signals are tied to the run's first process, which a forking
                // service's daemon is not.
                if let Some(r @ (Ready::Notify | Ready::Fd(_) | Ready::Log(_))) = ready {
                    self.problem(
                        &k("ready"),
                        format!(
                            "ready = \"{}\" cannot follow a forking service",
                            r.as_str()
                        ),
                        Some(
                            "a forking service is ready once its PID file names a running process; use ready = \"probe\" to wait for more"
                                .into(),
                        ),
                    );
                }
                let Some(file) = raw.pid_file.as_deref() else {
                    self.problem(
                        &k("type"),
                        "type = \"forking\" needs a `pid_file`",
                        Some(
                            "set pid_file to where the daemon writes its pid, e.g. pid_file = \"/run/nginx.pid\""
                                .into(),
                        ),
                    );
                    return None;
                };
                if file.trim().is_empty() || file.contains('\0') {
                    self.problem(
                        &k("pid_file"),
                        "pid_file is empty or holds a NUL byte",
                        None,
                    );
                    return None;
                }
                Some(ServiceType::Forking {
                    pid_file: run_dir.join(file),
                    timeout: timeout?,
                })
            }
            other => {
                self.problem(
                    &k("type"),
                    format!("unknown service type `{other}`"),
                    Some("use simple (the default) or forking".into()),
                );
                None
            }
        }
    }

    /// `reload_signal` of managed service `name`: what `upkeep reload NAME` sends.
    pub(super) fn reload_signal(
        &mut self,
        name: &str,
        raw: &RawService,
    ) -> Result<Option<i32>, ()> {
        let Some(text) = raw.reload_signal.as_deref() else {
            return Ok(None);
        };
        let key = ["services", name, "reload_signal"];
        // What `upkeep reload NAME` would always refuse (ops/signal.rs) is refused here, by
        // its name whatever the file says ("9" is SIGKILL).
        let hint = || Some("use the signal the program reloads on, usually \"SIGHUP\"".into());
        match parse_signal(text).map(|n| (n, Signal::try_from(n))) {
            Some((_, Ok(sig @ (Signal::SIGKILL | Signal::SIGSTOP)))) => {
                self.problem(
                    &key,
                    format!(
                        "{} cannot be caught, so it cannot ask a program to reload",
                        sig.as_str()
                    ),
                    hint(),
                );
                Err(())
            }
            Some((_, Ok(sig @ (Signal::SIGTSTP | Signal::SIGTTIN | Signal::SIGTTOU)))) => {
                self.problem(
                    &key,
                    format!(
                        "{} is a terminal's job control: it would freeze the program until SIGCONT, not make it reload (`upkeep reload` refuses it)",
                        sig.as_str()
                    ),
                    hint(),
                );
                Err(())
            }
            Some((n, _)) => Ok(Some(n)),
            None => {
                self.problem(
                    &key,
                    format!("`{text}` is not a signal"),
                    Some("use a name such as \"SIGHUP\" or \"SIGUSR2\"".into()),
                );
                Err(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("HUP"), Some(1));
        assert_eq!(parse_signal("SIGHUP"), Some(1));
        assert_eq!(parse_signal(" sigusr2 "), Some(12));
        assert_eq!(parse_signal("10"), Some(10));
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal("99"), None);
        assert_eq!(parse_signal(""), None);
    }

    fn check(extra: &str) -> Result<crate::ManagedConfig, String> {
        let text = format!("[services.web]\ncommand = \"sleep 10\"\n{extra}");
        crate::parse(Path::new("/tmp/upkeep.toml"), &text)
            .map(|c| c.services.into_values().next().unwrap().managed.unwrap())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn forking_needs_a_pid_file_found_from_the_config() {
        let web =
            check("type = \"forking\"\npid_file = \"run/web.pid\"\nreload_signal = \"HUP\"\n")
                .unwrap();
        assert_eq!(
            web.kind,
            ServiceType::Forking {
                pid_file: "/tmp/run/web.pid".into(),
                timeout: Duration::from_secs(30)
            }
        );
        assert_eq!(web.reload_signal, Some(1));
        assert_eq!(check("").unwrap().kind, ServiceType::Simple);
        let e = check("type = \"forking\"\n").unwrap_err();
        assert!(
            e.contains("needs a `pid_file`") && e.contains(":3:8"),
            "{e}"
        );
        let e = check("pid_file = \"x.pid\"\n").unwrap_err();
        assert!(e.contains("only to type = \"forking\""), "{e}");
        let e = check("type = \"oneshot\"\n").unwrap_err();
        assert!(e.contains("unknown service type `oneshot`"), "{e}");
        let e = check("type = \"forking\"\npid_file = \"x\"\nready = \"notify\"\n").unwrap_err();
        assert!(e.contains("cannot follow a forking service"), "{e}");
    }

    #[test]
    fn a_reload_signal_must_be_one_a_program_can_catch() {
        let e = check("reload_signal = \"SIGKILL\"\n").unwrap_err();
        assert!(e.contains("cannot be caught") && e.contains(":3:17"), "{e}");
        let e = check("reload_signal = \"SIGNOPE\"\n").unwrap_err();
        assert!(e.contains("is not a signal"), "{e}");
        // Break-it, session 12: by its name, not "9 cannot be caught".
        let e = check("reload_signal = \"9\"\n").unwrap_err();
        assert!(
            e.contains("SIGKILL cannot be caught") && e.contains(":3:17"),
            "{e}"
        );
    }

    /// Break-it, session 12: these passed `upkeep check` and `reload`, and `upkeep reload
    /// NAME` then always refused them.
    #[test]
    fn a_reload_signal_of_a_terminals_job_control_is_refused() {
        for (text, name) in [
            ("SIGTSTP", "SIGTSTP"),
            ("ttin", "SIGTTIN"),
            ("SIGTTOU", "SIGTTOU"),
        ] {
            let e = check(&format!("reload_signal = \"{text}\"\n")).unwrap_err();
            assert!(
                e.contains(&format!(
                    "{name} is a terminal's job control: it would freeze the program until SIGCONT"
                )) && e.contains(":3:17"),
                "{e}"
            );
        }
        assert_eq!(
            check("reload_signal = \"SIGUSR2\"\n")
                .unwrap()
                .reload_signal,
            Some(12)
        );
    }
}
