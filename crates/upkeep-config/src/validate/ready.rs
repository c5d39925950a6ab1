//! Readiness in config: `ready`, `ready_timeout` and `watchdog` of a managed service.
//!
//! Owns [`Ready`] (how a service says it is ready) and [`LogPattern`], and the checks of the
//! three keys. It does not decide anything at run time: the supervisor listens for the signal
//! (`upkeep-supervisor/src/ready/`) and `state` judges readiness and `ready_timeout`.
//!
//! Input: the service's raw keys, from `Validator::managed`. Output: a [`Readiness`], or
//! problems recorded on the `Validator`, each located at its key.

use std::time::Duration;

use super::Validator;
use crate::bounds;
use crate::raw::RawService;

/// How a managed service says it is ready; until then it is `starting`, and dependents that
/// wait for it being ready do not start.
#[derive(Debug, Clone, PartialEq)]
pub enum Ready {
    /// No `ready`: ready once spawned.
    Spawned,
    /// `ready = "notify"`: it sends `READY=1` to `NOTIFY_SOCKET` (systemd's `Type=notify`).
    Notify,
    /// `ready = { fd = N }`: it writes a newline to fd N (s6's notification fd).
    Fd(i32),
    /// `ready = { log = "REGEX" }`: a line of its stdout or stderr matches.
    Log(LogPattern),
    /// `ready = "probe"`: its probes pass for the first time.
    Probe,
}

impl Ready {
    /// The word events and messages use for it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Ready::Spawned => "spawned",
            Ready::Notify => "notify",
            Ready::Fd(_) => "fd",
            Ready::Log(_) => "log",
            Ready::Probe => "probe",
        }
    }
}

/// A pattern a line of output is matched against, on its bytes (a line need not be UTF-8).
/// Equal when written the same (reload compares configs).
#[derive(Debug, Clone)]
pub struct LogPattern(regex::bytes::Regex);

impl LogPattern {
    pub fn is_match(&self, line: &[u8]) -> bool {
        self.0.is_match(line)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl PartialEq for LogPattern {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

/// The three keys, validated.
pub(super) struct Readiness {
    pub ready: Ready,
    pub timeout: Option<Duration>,
    pub watchdog: Option<Duration>,
}

const HINT: &str = "write ready = \"notify\", \"probe\", { fd = 3 } or { log = \"ready in\" }";

impl Validator<'_> {
    /// `ready`, `ready_timeout` and `watchdog` of managed service `name`; None with problems.
    pub(super) fn readiness(&mut self, name: &str, raw: &RawService) -> Option<Readiness> {
        let before = self.problems.len();
        let k = |field: &'static str| ["services", name, field];
        let ready = match &raw.ready {
            None => Some(Ready::Spawned),
            Some(value) => self.ready(name, value, !raw.probes.is_empty()),
        };
        let timeout = raw
            .ready_timeout
            .as_deref()
            .and_then(|t| self.duration(&k("ready_timeout"), t, bounds::READY_TIMEOUT));
        if timeout.is_some() && ready == Some(Ready::Spawned) {
            self.problem(
                &k("ready_timeout"),
                "ready_timeout applies only with `ready`: without it the service is ready once spawned",
                Some(format!("{HINT}, or remove ready_timeout")),
            );
        }
        let watchdog = raw
            .watchdog
            .as_deref()
            .and_then(|t| self.duration(&k("watchdog"), t, bounds::WATCHDOG));
        if watchdog.is_some() && ready.as_ref().is_some_and(|r| *r != Ready::Notify) {
            self.problem(
                &k("watchdog"),
                "watchdog needs ready = \"notify\": the pings come over NOTIFY_SOCKET",
                Some("write ready = \"notify\" and send WATCHDOG=1 there".into()),
            );
        }
        if self.problems.len() > before {
            return None;
        }
        Some(Readiness {
            ready: ready?,
            timeout,
            watchdog,
        })
    }

    fn ready(&mut self, name: &str, value: &toml::Value, has_probes: bool) -> Option<Ready> {
        let key = ["services", name, "ready"];
        match value {
            toml::Value::String(s) if s == "notify" => Some(Ready::Notify),
            toml::Value::String(s) if s == "probe" => {
                if !has_probes {
                    self.problem(
                        &key,
                        "ready = \"probe\" waits for the service's probes, and it has none",
                        Some("add a probe (e.g. { kind = \"tcp\", addr = \"127.0.0.1:8080\" }), or pick another ready".into()),
                    );
                    return None;
                }
                Some(Ready::Probe)
            }
            toml::Value::String(s) => {
                self.problem(
                    &key,
                    format!("unknown ready `{}`", s.escape_debug()),
                    Some(HINT.into()),
                );
                None
            }
            toml::Value::Table(t) => self.ready_table(name, t),
            _ => {
                self.problem(
                    &key,
                    "ready is neither a string nor a table",
                    Some(HINT.into()),
                );
                None
            }
        }
    }

    /// `{ fd = N }` or `{ log = "REGEX" }`: exactly one of them.
    fn ready_table(&mut self, name: &str, t: &toml::Table) -> Option<Ready> {
        let at = |field: &str| ["services", name, "ready", field].map(str::to_owned);
        if let Some(other) = t.keys().find(|k| *k != "fd" && *k != "log") {
            self.problem(
                &at(other),
                format!("unknown key `{}` in ready", other.escape_debug()),
                Some(HINT.into()),
            );
            return None;
        }
        match (t.get("fd"), t.get("log")) {
            (Some(_), Some(_)) => {
                self.problem(
                    &at("log"),
                    "ready takes one of fd and log, not both",
                    Some(HINT.into()),
                );
                None
            }
            (Some(toml::Value::Integer(n)), None) => self
                .in_range(&at("fd"), *n, bounds::READY_FD, None)
                .then_some(Ready::Fd(*n as i32)),
            (Some(_), None) => {
                self.problem(&at("fd"), "fd is not a number", Some(HINT.into()));
                None
            }
            (None, Some(toml::Value::String(re))) if re.is_empty() => {
                self.problem(
                    &at("log"),
                    "log is empty: every line would match",
                    Some(
                        "write text of the line that says it is ready, e.g. log = \"ready in\""
                            .into(),
                    ),
                );
                None
            }
            (None, Some(toml::Value::String(re))) => match regex::bytes::Regex::new(re) {
                Ok(re) => Some(Ready::Log(LogPattern(re))),
                Err(e) => {
                    self.problem(
                        &at("log"),
                        format!("log is not a regular expression: {e}"),
                        Some("escape special characters with \\\\, e.g. log = \"listening on :8080\\\\.\"".into()),
                    );
                    None
                }
            },
            (None, Some(_)) => {
                self.problem(&at("log"), "log is not a string", Some(HINT.into()));
                None
            }
            (None, None) => {
                self.problem(
                    &["services", name, "ready"],
                    "ready is an empty table",
                    Some(HINT.into()),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{SVC, check, located, one_problem};
    use super::*;
    use upkeep_core::ServiceName;

    fn ready_of(toml: &str) -> (Ready, Option<Duration>, Option<Duration>) {
        let c = check(toml).unwrap();
        let m = c.services[&ServiceName::new("web").unwrap()]
            .managed
            .clone()
            .unwrap();
        (m.ready, m.ready_timeout, m.watchdog)
    }

    #[test]
    fn each_way_of_saying_ready_is_read() {
        assert_eq!(ready_of(SVC).0, Ready::Spawned);
        let (r, t, w) = ready_of(&format!(
            "{SVC}ready = \"notify\"\nready_timeout = \"30s\"\nwatchdog = \"10s\"\n"
        ));
        assert_eq!(
            (r, t, w),
            (
                Ready::Notify,
                Some(Duration::from_secs(30)),
                Some(Duration::from_secs(10))
            )
        );
        assert_eq!(
            ready_of(&format!("{SVC}ready = {{ fd = 3 }}\n")).0,
            Ready::Fd(3)
        );
        let Ready::Log(p) = ready_of(&format!("{SVC}ready = {{ log = \"ready in \\\\d+\" }}\n")).0
        else {
            panic!("not a log pattern")
        };
        assert!(p.is_match(b"  VITE v7.0.0  ready in 312 ms"));
        assert!(!p.is_match(b"ready in a moment"));
        let probe = "[[services.web.probes]]\nkind = \"process\"\n";
        assert_eq!(
            ready_of(&format!("{SVC}ready = \"probe\"\n{probe}")).0,
            Ready::Probe
        );
    }

    #[test]
    fn wrong_readiness_is_located() {
        let (p, text) = one_problem(&format!("{SVC}ready = \"listening\"\n"));
        located(&p, &text, "services.web.ready", 3, 9);
        assert!(text.contains("hint: write ready = \"notify\""), "{text}");
        let (p, text) = one_problem(&format!("{SVC}ready = \"probe\"\n"));
        located(&p, &text, "services.web.ready", 3, 9);
        assert!(text.contains("it has none"), "{text}");
        let (p, text) = one_problem(&format!("{SVC}ready = {{ fd = 2 }}\n"));
        located(&p, &text, "services.web.ready.fd", 3, 16);
        let (p, text) = one_problem(&format!("{SVC}ready = {{ log = \"(\" }}\n"));
        located(&p, &text, "services.web.ready.log", 3, 17);
        assert!(text.contains("not a regular expression"), "{text}");
        let (p, text) = one_problem(&format!("{SVC}ready = {{ line = \"x\" }}\n"));
        located(&p, &text, "services.web.ready.line", 3, 18);
        let (p, text) = one_problem(&format!("{SVC}ready = {{ fd = 3, log = \"x\" }}\n"));
        located(&p, &text, "services.web.ready.log", 3, 25);
        let (p, text) = one_problem(&format!("{SVC}ready_timeout = \"5s\"\n"));
        located(&p, &text, "services.web.ready_timeout", 3, 17);
        assert!(text.contains("applies only with `ready`"), "{text}");
        let (p, text) = one_problem(&format!("{SVC}ready = {{ fd = 3 }}\nwatchdog = \"5s\"\n"));
        located(&p, &text, "services.web.watchdog", 4, 12);
        assert!(text.contains("needs ready = \"notify\""), "{text}");
        let (p, text) = one_problem(&format!("{SVC}ready = \"notify\"\nwatchdog = \"1ms\"\n"));
        located(&p, &text, "services.web.watchdog", 4, 12);
        // An external service runs nothing that could say it is ready.
        let (p, text) = one_problem(
            "[services.db]\nprobes = [{ kind = \"tcp\", addr = \"127.0.0.1:1\" }]\nready = \"notify\"\n",
        );
        located(&p, &text, "services.db.ready", 3, 9);
    }
}
