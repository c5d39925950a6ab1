//! Time and files in config: `schedule` (a job), `catch_up`, `restart_at`, and `watch`,
//! `watch_debounce`, `watch_ignore` of a managed service.
//!
//! Owns [`Schedule`] (a cron expression in a time zone), [`JobConfig`] and [`WatchConfig`],
//! and the checks of their keys, including the keys a job cannot take (a job runs to
//! completion: a restart policy, `restart_at` or `watch` would contradict it). It decides
//! nothing at run time: the daemon's scheduler (`upkeep/src/schedule.rs`) and watcher
//! (`upkeep/src/watch.rs`) do.
//!
//! Input: the service's raw keys, from `Validator::service`. Output: a [`Scheduling`], or
//! problems recorded on the `Validator`, each located at its key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::Validator;
use crate::bounds;
use crate::raw::RawService;

/// A cron expression of five fields (minute hour day-of-month month day-of-week), in a time
/// zone: the one written after it (`"0 4 * * * Asia/Shanghai"`), or the host's. Times are
/// found in the zone's wall time, so a daily 04:00 stays 04:00 across daylight-saving changes
/// (croner: a time skipped by a change runs at the change, a repeated one runs once). Equal
/// when written the same (reload compares configs).
#[derive(Debug, Clone)]
pub struct Schedule {
    text: String,
    cron: croner::Cron,
    zone: TimeZone,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Schedule {
    /// Parses `"EXPR [ZONE]"`; the error says what is wrong, in words.
    pub fn parse(text: &str) -> Result<Schedule, String> {
        let mut fields: Vec<&str> = text.split_whitespace().collect();
        let mut zone = None;
        if fields.len() == 6
            || fields.first().is_some_and(|f| f.starts_with('@')) && fields.len() == 2
        {
            let last = fields.pop().expect("six fields");
            // A place's zone or UTC, as windows take them (not `Factory` or `EST5EDT`).
            match upkeep_core::when::zone(last) {
                Ok(z) => zone = Some(z),
                // Six fields of cron (seconds first, as some crons take): not ours.
                Err(_) if !last.bytes().any(|b| b.is_ascii_alphabetic()) => {
                    return Err(format!(
                        "a schedule is a cron expression of 5 fields (minute hour day-of-month \
                         month day-of-week, no seconds), optionally followed by a time zone; \
                         `{text}` has 6"
                    ));
                }
                Err(_) => {
                    return Err(format!(
                        "unknown time zone `{last}`: write a place's IANA zone such as \
                         Asia/Shanghai, or UTC"
                    ));
                }
            }
        }
        let shorthand = fields.len() == 1 && fields[0].starts_with('@');
        if fields.len() != 5 && !shorthand {
            return Err(format!(
                "a schedule is a cron expression of 5 fields (minute hour day-of-month month \
                 day-of-week), optionally followed by a time zone; `{text}` has {} fields",
                fields.len()
            ));
        }
        let expr = fields.join(" ");
        let cron = croner::parser::CronParser::new()
            .parse(&expr)
            .map_err(|e| format!("`{expr}` is not a cron expression: {e}"))?;
        let schedule = Schedule {
            text: text.split_whitespace().collect::<Vec<_>>().join(" "),
            cron,
            zone: zone.unwrap_or_else(TimeZone::system),
        };
        if schedule.next_after(Timestamp::now()).is_none() {
            return Err(format!("`{expr}` never comes"));
        }
        Ok(schedule)
    }

    /// The first time after `t` (never `t` itself).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let at = t.to_zoned(self.zone.clone());
        self.cron
            .find_next_occurrence(&at, false)
            .ok()
            .map(|z| z.timestamp())
    }

    /// The last time at or before `t`.
    pub fn last_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let at = t.to_zoned(self.zone.clone());
        self.cron
            .find_previous_occurrence(&at, true)
            .ok()
            .map(|z| z.timestamp())
    }

    /// As written (normalised spaces).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The zone its times are found in.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }
}

/// A job: a managed service whose command runs to completion on `schedule`, never twice at
/// once, never restarted when it exits.
#[derive(Debug, Clone, PartialEq)]
pub struct JobConfig {
    pub schedule: Schedule,
    /// A run that fell due while no daemon ran is made up once at start (systemd's
    /// `Persistent=true`); false: missed runs are skipped.
    pub catch_up: bool,
}

/// `watch`: restart the service when files under these paths change.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// Absolute: relative ones are taken from the service's cwd.
    pub paths: Vec<PathBuf>,
    /// Quiet time after the last change before the restart (per path).
    pub debounce: Duration,
    /// Glob patterns (`*.tmp`, `dist/**`); a path matches if it, its path relative to a
    /// watched root, or any of its components does. `node_modules` and `.git` always.
    pub ignore: Vec<String>,
}

/// What is always ignored (a package install would restart the service hundreds of times).
pub const ALWAYS_IGNORED: &[&str] = &["node_modules", ".git"];

/// The keys of this file, validated.
#[derive(Default)]
pub(super) struct Scheduling {
    pub job: Option<JobConfig>,
    pub restart_at: Option<Schedule>,
    pub watch: Option<WatchConfig>,
}

/// Keys that say how to restart a service: a job is never restarted, so they contradict it.
const RESTART_KEYS: &[&str] = &[
    "restart",
    "backoff_min",
    "backoff_max",
    "min_uptime",
    "max_restarts",
    "window",
    "restart_at",
    "watch",
    "watchdog",
    "ready_timeout",
];

impl Validator<'_> {
    /// `schedule`, `catch_up`, `restart_at` and `watch*` of service `name` (managed when
    /// `managed`), relative paths from `run_dir`; None with problems.
    pub(super) fn scheduling(
        &mut self,
        name: &str,
        raw: &RawService,
        managed: bool,
        run_dir: &Path,
    ) -> Option<Scheduling> {
        let before = self.problems.len();
        let k = |field: &'static str| ["services", name, field];
        let mut out = Scheduling::default();
        if !managed {
            for (field, set) in [
                ("schedule", raw.schedule.is_some()),
                ("catch_up", raw.catch_up.is_some()),
                ("restart_at", raw.restart_at.is_some()),
                ("watch", !raw.watch.is_empty()),
                ("watch_debounce", raw.watch_debounce.is_some()),
                ("watch_ignore", !raw.watch_ignore.is_empty()),
            ] {
                if set {
                    self.problem(
                        &k(field),
                        format!("`{field}` applies only to a service upkeep runs"),
                        Some("add a `command`, or remove this key from an external service".into()),
                    );
                }
            }
            return (self.problems.len() == before).then_some(out);
        }
        if let Some(text) = &raw.schedule {
            match Schedule::parse(text) {
                Ok(schedule) => {
                    out.job = Some(JobConfig {
                        schedule,
                        catch_up: raw.catch_up.unwrap_or(true),
                    })
                }
                Err(e) => self.problem(&k("schedule"), e, Some(CRON_HINT.into())),
            }
            for field in RESTART_KEYS {
                if self.written(&["services", name, field]) {
                    self.problem(
                        &["services", name, field],
                        format!(
                            "`{field}` does not apply to a job: a service with `schedule` runs to completion and is never restarted"
                        ),
                        Some(format!("remove `{field}`, or remove `schedule` to make it a service that keeps running")),
                    );
                }
            }
        } else if raw.catch_up.is_some() {
            self.problem(
                &k("catch_up"),
                "catch_up applies only to a job (a service with `schedule`)",
                None,
            );
        }
        if let Some(text) = &raw.restart_at
            && raw.schedule.is_none()
        {
            match Schedule::parse(text) {
                Ok(s) => out.restart_at = Some(s),
                Err(e) => self.problem(&k("restart_at"), e, Some(CRON_HINT.into())),
            }
        }
        let debounce = match &raw.watch_debounce {
            Some(t) => self.duration(&k("watch_debounce"), t, bounds::WATCH_DEBOUNCE),
            None => Some(Duration::from_millis(300)),
        };
        for (i, pattern) in raw.watch_ignore.iter().enumerate() {
            if let Err(e) = glob::Pattern::new(pattern) {
                self.problem(
                    &["services", name, "watch_ignore", &i.to_string()],
                    format!("`{pattern}` is not a glob pattern: {}", e.msg),
                    Some("write a name (`dist`) or a pattern (`*.tmp`, `build/**`)".into()),
                );
            }
        }
        if raw.watch.is_empty() {
            for (field, set) in [
                ("watch_debounce", raw.watch_debounce.is_some()),
                ("watch_ignore", !raw.watch_ignore.is_empty()),
            ] {
                if set {
                    self.problem(
                        &k(field),
                        format!("{field} applies only with `watch`"),
                        None,
                    );
                }
            }
        } else if raw.schedule.is_none() {
            let mut paths = Vec::new();
            for (i, p) in raw.watch.iter().enumerate() {
                let path = run_dir.join(p);
                if p.trim().is_empty() {
                    // `run_dir.join("")` is the cwd itself: a slip, not a choice.
                    self.problem(
                        &["services", name, "watch", &i.to_string()],
                        "an empty path to watch",
                        Some("write a folder or file from the service's cwd, such as \"src\" (\".\" for the cwd itself)".into()),
                    );
                } else if !path.exists() {
                    self.problem(
                        &["services", name, "watch", &i.to_string()],
                        format!("{} does not exist", path.display()),
                        Some("paths to watch are taken from the service's cwd".into()),
                    );
                }
                paths.push(path);
            }
            out.watch = Some(WatchConfig {
                paths,
                debounce: debounce.unwrap_or_default(),
                ignore: raw.watch_ignore.clone(),
            });
        }
        (self.problems.len() == before).then_some(out)
    }

    /// Whether the key at `path` is written in the file (defaults fill the raw struct).
    fn written(&self, path: &[&str]) -> bool {
        let Ok(doc) = self.source.parse::<toml_edit::DocumentMut>() else {
            return false;
        };
        let mut item = doc.as_item();
        for key in path {
            match item.get(key) {
                Some(next) => item = next,
                None => return false,
            }
        }
        true
    }
}

const CRON_HINT: &str = "write a cron expression such as \"*/15 * * * *\" or \"0 4 * * * Asia/Shanghai\" (minute hour day-of-month month day-of-week, then an optional IANA zone)";

#[cfg(test)]
mod tests {
    use super::super::tests::{check, located, one_problem};
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_schedule_in_a_zone_keeps_its_wall_time_across_daylight_saving() {
        let s = Schedule::parse("30 2 * * * America/New_York").unwrap();
        // 2026-03-08: 02:30 does not exist in New York (clocks go 02:00 → 03:00).
        let next = s.next_after(ts("2026-03-08T05:00:00Z")).unwrap();
        assert_eq!(
            next,
            ts("2026-03-08T07:00:00Z"),
            "the skipped time runs at the change"
        );
        // The day after, 02:30 EDT is 06:30 UTC.
        assert_eq!(s.next_after(next).unwrap(), ts("2026-03-09T06:30:00Z"));
        let s = Schedule::parse("0 4 * * * Asia/Shanghai").unwrap();
        assert_eq!(
            s.next_after(ts("2026-01-01T00:00:00Z")).unwrap(),
            ts("2026-01-01T20:00:00Z")
        );
        assert_eq!(
            s.last_at_or_before(ts("2026-01-01T20:00:00Z")).unwrap(),
            ts("2026-01-01T20:00:00Z")
        );
        let every = Schedule::parse("*/15 * * * * UTC").unwrap();
        assert_eq!(
            every.next_after(ts("2026-01-01T00:15:00Z")).unwrap(),
            ts("2026-01-01T00:30:00Z")
        );
    }

    #[test]
    fn bad_schedules_name_their_place() {
        for (value, says) in [
            ("\"*/15 * * *\"", "has 4 fields"),
            (
                "\"0 4 * * * Mars/Olympus\"",
                "unknown time zone `Mars/Olympus`",
            ),
            ("\"0 4 * * * Factory\"", "unknown time zone `Factory`"),
            ("\"0 99 * * *\"", "is not a cron expression"),
            ("\"0 0 30 2 *\"", "never comes"),
        ] {
            let text = format!("[services.nightly]\ncommand = \"true\"\nschedule = {value}\n");
            let (p, shown) = one_problem(&text);
            assert!(p.message.contains(says), "{value}: {}", p.message);
            located(&p, &shown, "services.nightly.schedule", 3, 12);
        }
        let text = "[services.web]\ncommand = \"true\"\nrestart_at = \"0 4 * * * Nowhere/Town\"\n";
        let (p, shown) = one_problem(text);
        located(&p, &shown, "services.web.restart_at", 3, 14);
    }

    #[test]
    fn a_job_refuses_restart_keys() {
        let text = "[services.nightly]\ncommand = \"true\"\nschedule = \"0 4 * * *\"\nrestart = \"always\"\n";
        let (p, shown) = one_problem(text);
        assert!(
            p.message.contains("does not apply to a job"),
            "{}",
            p.message
        );
        located(&p, &shown, "services.nightly.restart", 4, 11);
        let c = check("[services.nightly]\ncommand = \"true\"\nschedule = \"*/5 * * * *\"\ncatch_up = false\n")
            .unwrap();
        let s = &c.services[&upkeep_core::ServiceName::new("nightly").unwrap()];
        let job = s.job.as_ref().unwrap();
        assert!(!job.catch_up);
        let m = s.managed.as_ref().unwrap();
        assert!(m.job, "the supervisor knows it runs a job");
        assert_eq!(m.restart, crate::RestartPolicy::Never);
        assert!(!m.autostart, "a job runs on its schedule, not at start");
    }

    #[test]
    fn watch_paths_come_from_the_cwd_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("src")).unwrap();
        let text = format!(
            "[services.dev]\ncommand = \"true\"\ncwd = \"{}\"\nwatch = [\"src\", \"nope\"]\n",
            dir.path().display()
        );
        let (p, shown) = one_problem(&text);
        assert!(p.message.contains("nope does not exist"), "{}", p.message);
        located(&p, &shown, "services.dev.watch.1", 4, 17);
        let text = format!(
            "[services.dev]\ncommand = \"true\"\ncwd = \"{}\"\nwatch = [\"src\"]\nwatch_debounce = \"50ms\"\nwatch_ignore = [\"*.tmp\"]\n",
            dir.path().display()
        );
        let c = check(&text).unwrap();
        let w = c.services[&upkeep_core::ServiceName::new("dev").unwrap()]
            .watch
            .clone()
            .unwrap();
        assert_eq!(w.paths, vec![dir.path().join("src")]);
        assert_eq!(w.debounce, Duration::from_millis(50));
        let text = "[services.dev]\ncommand = \"true\"\nwatch_debounce = \"1s\"\n";
        let (p, _) = one_problem(text);
        assert!(p.message.contains("only with `watch`"), "{}", p.message);
    }

    /// Issue 18: `watch = [""]` would watch the whole cwd; debounces out of range are refused.
    #[test]
    fn an_empty_watch_path_and_an_absurd_debounce_are_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[services.dev]\ncommand = \"true\"\ncwd = \"{}\"\nwatch = [\".\", \" \"]\n",
            dir.path().display()
        );
        let (p, shown) = one_problem(&text);
        assert!(
            p.message.contains("an empty path to watch"),
            "{}",
            p.message
        );
        located(&p, &shown, "services.dev.watch.1", 4, 15);
        for (debounce, says) in [
            ("0s", "shorter than"),
            ("1ms", "shorter than"),
            ("2h", "longer than"),
            ("-1s", "not a duration"),
            ("soon", "not a duration"),
        ] {
            let text = format!(
                "[services.dev]\ncommand = \"true\"\ncwd = \"{}\"\nwatch = [\".\"]\nwatch_debounce = \"{debounce}\"\n",
                dir.path().display()
            );
            let (p, shown) = one_problem(&text);
            assert!(p.message.contains(says), "{debounce}: {}", p.message);
            located(&p, &shown, "services.dev.watch_debounce", 5, 18);
        }
    }
}
