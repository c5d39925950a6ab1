//! `upkeep import systemd UNIT...`: `.service` units as upkeep services.
//!
//! `systemd/locate.rs` finds a unit by path or by name, with its drop-ins; `systemd/unit.rs`
//! reads the syntax; `systemd/exec.rs` expands specifiers and splits command lines;
//! `systemd/values.rs` reads time spans and sizes. [`service`] maps the settings, one small
//! function per concern; `systemd/command.rs` builds the command; every key no mapping reads
//! ends in `systemd/leftovers.rs`, which notes it by kind (sandboxing, process limits,
//! logging...). [`pending`] holds every setting upkeep will support later, in one place.
//!
//! Only system units are read (`%h` is /root, `%t` is /run), and only what the files say:
//! nothing asks systemd itself, so this works on a host where systemd does not run.

mod command;
mod exec;
mod leftovers;
mod locate;
mod unit;
mod values;

use std::path::Path;
use std::time::Duration;

use upkeep_config::RestartPolicy;

use super::{Import, ImportError, Pending, Service, service_name};
use exec::Specifiers;
use locate::{Found, host_facts, load, locate};
use unit::{Assignment, Unit};

/// Reads each unit named in `args` into one [`Import`]. Every problem of every unit is
/// reported (each with its file and line), as `upkeep check` reports a config's.
pub fn read(args: &[String]) -> Result<Import, ImportError> {
    let host = host_facts();
    let mut import = Import::default();
    let mut problems = Vec::new();
    for arg in args {
        let found = match locate(arg) {
            Ok(found) => found,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let specs = Specifiers::for_unit(&found.name, &found.path, &host);
        if let Some(service) = unit_service(&found, &specs, &mut problems)
            && let Err(e) = import.push(service)
        {
            problems.push(e);
        }
    }
    ImportError::all(problems)?;
    Ok(import)
}

/// The unit `found` (and its drop-ins) as a service, or None if it has problems: each goes
/// to `problems`, in the order of its files and lines (its bad lines are found first).
fn unit_service(
    found: &Found,
    specs: &Specifiers,
    problems: &mut Vec<ImportError>,
) -> Option<Service> {
    let first = problems.len();
    let service = match load(found, problems) {
        Ok(unit) => service(found, &unit, specs, problems),
        Err(e) => {
            problems.push(e);
            None
        }
    };
    super::sort_by_place(&mut problems[first..], std::slice::from_ref(&found.path));
    service.filter(|_| problems.len() == first)
}

/// Reads a unit's settings with specifiers expanded, remembering which keys were read.
struct Reader<'a> {
    unit: &'a Unit,
    specs: &'a Specifiers,
    used: Vec<(&'static str, &'static str)>,
    /// Values whose specifiers could not all be expanded: (setting, specifier).
    unexpanded: Vec<(String, char)>,
}

/// One value as systemd would see it, and where it was written.
struct Val<'a> {
    text: String,
    at: &'a Assignment,
}

impl<'a> Reader<'a> {
    fn last(&mut self, section: &'static str, key: &'static str) -> Option<Val<'a>> {
        self.used.push((section, key));
        let at = self.unit.last(section, key)?;
        Some(self.val(at))
    }

    fn list(&mut self, section: &'static str, key: &'static str) -> Vec<Val<'a>> {
        self.used.push((section, key));
        let unit = self.unit;
        unit.list(section, key)
            .into_iter()
            .map(|a| self.val(a))
            .collect()
    }

    fn val(&mut self, at: &'a Assignment) -> Val<'a> {
        let text = match self.specs.expand(&at.value) {
            Ok(t) => t,
            Err(c) => {
                self.unexpanded
                    .push((format!("{}={}", at.key, at.value), c));
                at.value.clone()
            }
        };
        Val { text, at }
    }

    fn used(&self, a: &Assignment) -> bool {
        self.used
            .iter()
            .any(|(s, k)| a.section == *s && a.key == *k)
    }
}

/// An error in one setting, at its line.
fn at(a: &Assignment, message: impl std::fmt::Display) -> ImportError {
    ImportError::Syntax {
        path: a.file.clone(),
        line: a.line,
        message: format!("{}: {message}", a.key),
    }
}

/// The whole unit as one service, or None if it has problems: each goes to `problems` (every
/// setting is read, so that all of them are reported at once).
fn service(
    found: &Found,
    unit: &Unit,
    specs: &Specifiers,
    problems: &mut Vec<ImportError>,
) -> Option<Service> {
    let before = problems.len();
    let mut r = Reader {
        unit,
        specs,
        used: Vec::new(),
        unexpanded: Vec::new(),
    };
    let stem = found.name.trim_end_matches(".service");
    let (name, renamed) = super::name_or_stand_in(stem, problems);
    let origin = format!("systemd unit {} ({})", found.name, found.path.display());
    let ty = r
        .last("Service", "Type")
        .map(|v| v.text)
        .unwrap_or("simple".into());
    let user = user(&mut r).unwrap_or_else(|e| {
        problems.push(e);
        None
    });
    let (command, command_notes) = command::command(&mut r, found, &ty, user.as_deref(), problems)
        .unwrap_or_else(|| (super::Command::Argv(Vec::new()), Vec::new()));
    let mut svc = Service::new(name, origin, command);
    if let Some(r) = renamed {
        svc.note(found.name.clone(), r);
    }
    for (setting, reason) in command_notes {
        svc.note(setting, reason);
    }
    svc.description = r.last("Unit", "Description").map(|v| v.text);
    svc.user = user;
    group(&mut r, &mut svc);
    cwd(&mut r, &mut svc);
    environment(&mut r, &mut svc, problems);
    restart(&mut r, &mut svc, &ty, problems);
    stopping(&mut r, &mut svc, problems);
    memory(&mut r, &mut svc);
    kind(&mut r, &mut svc, &ty);
    pending(&mut r, &mut svc);
    for (setting, c) in std::mem::take(&mut r.unexpanded) {
        svc.note(
            setting,
            format!("%{c} cannot be expanded outside systemd; the value is left as written"),
        );
    }
    leftovers::note(unit, |a| r.used(a), &mut svc);
    (problems.len() == before).then_some(svc)
}

/// `User=` as a name (a uid is looked up).
fn user(r: &mut Reader) -> Result<Option<String>, ImportError> {
    let Some(v) = r.last("Service", "User") else {
        return Ok(None);
    };
    let Ok(uid) = v.text.parse::<u32>() else {
        return Ok(Some(v.text));
    };
    match nix::unistd::User::from_uid(uid.into()) {
        Ok(Some(u)) => Ok(Some(u.name)),
        _ => Err(at(v.at, format!("no user has uid {uid} on this host"))),
    }
}

/// `Group=`: upkeep runs a service with its user's primary group.
fn group(r: &mut Reader, svc: &mut Service) {
    let Some(g) = r.last("Service", "Group") else {
        return;
    };
    let primary = svc
        .user
        .as_deref()
        .and_then(|u| nix::unistd::User::from_name(u).ok().flatten())
        .and_then(|u| nix::unistd::Group::from_gid(u.gid).ok().flatten())
        .map(|g| g.name);
    if primary.as_deref() != Some(g.text.as_str()) {
        svc.note(
            format!("Group={}", g.text),
            "upkeep runs a service with its user's primary group",
        );
    }
}

/// `WorkingDirectory=`: `-` makes a missing folder harmless, `~` is the user's home.
fn cwd(r: &mut Reader, svc: &mut Service) {
    let Some(v) = r.last("Service", "WorkingDirectory") else {
        return;
    };
    let (optional, dir) = match v.text.strip_prefix('-') {
        Some(d) => (true, d.to_owned()),
        None => (false, v.text.clone()),
    };
    let dir = if dir == "~" {
        svc.user
            .as_deref()
            .and_then(|u| nix::unistd::User::from_name(u).ok().flatten())
            .map_or("/root".into(), |u| u.dir.display().to_string())
    } else {
        dir
    };
    if optional && !Path::new(&dir).is_dir() {
        svc.note(
            format!("WorkingDirectory={}", v.text),
            "the folder does not exist here, and `-` made that harmless",
        );
        return;
    }
    svc.cwd = Some(dir);
}

/// `Environment=` into env; the first `EnvironmentFile=` that exists (or must) into env_file.
fn environment(r: &mut Reader, svc: &mut Service, problems: &mut Vec<ImportError>) {
    for v in r.list("Service", "Environment") {
        match exec::environment(&v.text) {
            Ok(env) => svc.env.extend(env),
            Err(m) => problems.push(at(v.at, m)),
        }
    }
    let mut files = Vec::new();
    for v in r.list("Service", "EnvironmentFile") {
        match v.text.strip_prefix('-') {
            Some(f) if !Path::new(f).is_file() => svc.note(
                format!("EnvironmentFile={}", v.text),
                "the file does not exist here, and `-` made that harmless",
            ),
            Some(f) => files.push(f.to_owned()),
            None => files.push(v.text),
        }
    }
    let mut files = files.into_iter();
    svc.env_file = files.next();
    for extra in files {
        svc.note(
            format!("EnvironmentFile={extra}"),
            "upkeep reads one env_file per service: copy its variables into `env`",
        );
    }
    for key in ["PassEnvironment", "UnsetEnvironment"] {
        r.used.push(("Service", key));
    }
}

/// `Restart=`, `RestartSec=`, `StartLimitBurst=`/`StartLimitIntervalSec=`.
fn restart(r: &mut Reader, svc: &mut Service, ty: &str, problems: &mut Vec<ImportError>) {
    let policy = r.last("Service", "Restart");
    svc.restart = Some(match policy.as_ref().map(|v| v.text.as_str()) {
        None | Some("no") => RestartPolicy::Never,
        Some("always") => RestartPolicy::Always,
        Some("on-failure") => RestartPolicy::OnFailure,
        Some(other @ ("on-abnormal" | "on-watchdog" | "on-abort")) => {
            svc.note(
                format!("Restart={other}"),
                "upkeep restarts on every failure (restart = \"on-failure\")",
            );
            RestartPolicy::OnFailure
        }
        Some("on-success") => {
            svc.note(
                "Restart=on-success",
                "upkeep has no such policy; it restarts after every exit (restart = \"always\")",
            );
            RestartPolicy::Always
        }
        Some(other) => {
            let at_line = policy.as_ref().expect("matched Some").at;
            problems.push(at(at_line, format!("`{other}` is not a Restart= value")));
            RestartPolicy::Never
        }
    });
    if ty == "oneshot" {
        svc.restart = Some(RestartPolicy::Never);
    }
    if let Some(v) = r.last("Service", "RestartSec")
        && let Some(d) = timespan(&v, problems)
    {
        svc.backoff_min = Some(d);
        svc.backoff_max = Some(d);
    }
    if let Some(v) = r.last("Service", "RestartMaxDelaySec")
        && let Some(d) = timespan(&v, problems)
    {
        svc.backoff_max = Some(d);
    }
    if let Some(v) = r.last("Unit", "StartLimitBurst") {
        match v.text.parse::<u32>() {
            Ok(n) => svc.max_restarts = Some(n.max(1)),
            Err(_) => problems.push(at(v.at, "not a number")),
        }
    }
    let interval = r
        .last("Unit", "StartLimitIntervalSec")
        .or_else(|| r.last("Service", "StartLimitInterval"));
    if let Some(v) = interval {
        match timespan(&v, problems) {
            None => {}
            Some(d) if d.is_zero() => svc.note(
                format!("{}={}", v.at.key, v.text),
                "systemd never stops restarting it; upkeep always has a limit (max_restarts within window)",
            ),
            Some(d) => svc.window = Some(d.max(Duration::from_secs(1))),
        }
    }
}

/// `KillSignal=`, `TimeoutStopSec=` (or `TimeoutSec=`), `KillMode=`.
fn stopping(r: &mut Reader, svc: &mut Service, problems: &mut Vec<ImportError>) {
    if let Some(v) = r.last("Service", "KillSignal") {
        let upper = v.text.to_ascii_uppercase();
        svc.stop_signal = Some(
            if upper.starts_with("SIG") || upper.parse::<i32>().is_ok() {
                upper
            } else {
                format!("SIG{upper}")
            },
        );
    }
    let timeout = r
        .last("Service", "TimeoutStopSec")
        .or_else(|| r.last("Service", "TimeoutSec"));
    if let Some(v) = timeout {
        // systemd reads 0 as "no timeout", not "kill at once".
        if v.text == "infinity" || values::timespan(&v.text).is_some_and(|t| t.is_zero()) {
            svc.note(
                format!("{}={}", v.at.key, v.text),
                "no timeout: upkeep always ends a stop, with SIGKILL after stop_timeout",
            );
        } else {
            svc.stop_timeout = timespan(&v, problems);
        }
    }
    let why = match r.last("Service", "KillMode").map(|v| v.text).as_deref() {
        None | Some("control-group") => return,
        Some("mixed") => {
            "upkeep sends the stop signal to the whole process group, not to the main process alone"
        }
        Some("process") | Some("none") => {
            "upkeep stops the whole process group: what the main process started (sshd: open sessions) ends with it, at a stop and at a restart"
        }
        Some(_) => "not a KillMode upkeep knows; it stops the whole process group",
    };
    let mode = r
        .unit
        .last("Service", "KillMode")
        .map_or("", |a| a.value.as_str());
    svc.note(format!("KillMode={mode}"), why);
}

/// `MemoryMax=` (or the older `MemoryLimit=`) as a memory probe.
fn memory(r: &mut Reader, svc: &mut Service) {
    let Some(v) = r
        .last("Service", "MemoryMax")
        .or_else(|| r.last("Service", "MemoryLimit"))
    else {
        return;
    };
    match values::bytes(&v.text) {
        Some(n) if n >= 1 << 20 => svc.memory_max = Some(n),
        _ => svc.note(
            format!("{}={}", v.at.key, v.text),
            "not carried over: a memory probe needs a size of at least 1MiB (a percentage or infinity has no equivalent)",
        ),
    }
}

/// `Type=`: how systemd knew the service had started.
fn kind(r: &mut Reader, svc: &mut Service, ty: &str) {
    let reason = match ty {
        "simple" | "exec" | "idle" | "notify" | "notify-reload" | "forking" => return,
        "oneshot" => {
            "it runs once; upkeep runs it once too (restart = \"never\") and shows it exited"
        }
        "dbus" => "upkeep does not watch the bus name; the service counts as up once it runs",
        _ => "not a Type upkeep knows; it runs the command as a simple service",
    };
    svc.note(format!("Type={ty}"), reason);
    for key in ["BusName", "RemainAfterExit", "NotifyAccess"] {
        r.used.push(("Service", key));
    }
}

/// Every setting upkeep will support later, mapped in one place: dependencies, readiness,
/// forking daemons, reload signals. [`Pending::carried`] says which upkeep takes today.
fn pending(r: &mut Reader, svc: &mut Service) {
    let ty = r
        .unit
        .last("Service", "Type")
        .map_or("simple", |a| a.value.as_str());
    let (timeout, watchdog) = start_limits(r, svc, ty);
    if ty == "notify" || ty == "notify-reload" {
        svc.pending.push((
            format!("Type={ty}"),
            Pending::ReadyNotify { timeout, watchdog },
        ));
    }
    if ty == "notify-reload" {
        let sig = r
            .last("Service", "ReloadSignal")
            .map_or("SIGHUP".into(), |v| v.text);
        svc.pending
            .push((format!("Type={ty}"), Pending::ReloadSignal(sig)));
    }
    if ty == "forking" {
        let pid_file = r.last("Service", "PIDFile").map(|v| v.text);
        if pid_file.is_none() {
            // systemd guesses the main process; upkeep follows only a PID file's word, and
            // run as it is, the command would exit at once and leave its daemon unwatched.
            svc.autostart = Some(false);
            svc.note(
                "autostart = false",
                "its command starts a daemon in the background and exits, and the unit names no PIDFile= to follow it by; set pid_file to where the daemon writes its pid, or run the program in the foreground, and set autostart = true",
            );
        }
        svc.pending
            .push(("Type=forking".into(), Pending::Forking { pid_file }));
    }
    for v in r.list("Service", "ExecReload") {
        match values::kill_signal(&v.text) {
            Some(sig) => svc.pending.push((
                format!("ExecReload={}", v.at.value),
                Pending::ReloadSignal(sig),
            )),
            None => svc.note(
                format!("ExecReload={}", v.at.value),
                "not carried over: upkeep does not run reload commands; set reload_signal to the signal the program reloads on (nginx: SIGHUP), and `upkeep reload NAME` sends it",
            ),
        }
    }
    for v in r.list("Service", "ExecStop") {
        match values::kill_signal(&v.text) {
            Some(sig) if svc.stop_signal.is_none() => svc.stop_signal = Some(sig),
            _ => svc.note(format!("ExecStop={}", v.at.value), "upkeep stops with stop_signal, then SIGKILL after stop_timeout; the command does not run"),
        }
    }
    let mut services = Vec::new();
    let mut others = Vec::new();
    for key in [
        "Requires",
        "Wants",
        "BindsTo",
        "Requisite",
        "PartOf",
        "Upholds",
        "After",
    ] {
        for v in r.list("Unit", key) {
            for u in v.text.split_whitespace() {
                let list = if u.ends_with(".service") {
                    &mut services
                } else {
                    &mut others
                };
                list.push(format!("{key}={u}"));
            }
        }
    }
    let mut names: Vec<String> = services
        .iter()
        .filter_map(|s| {
            s.split_once('=')
                .map(|(_, u)| u.trim_end_matches(".service"))
        })
        .filter_map(|u| service_name(u).ok().map(|(n, _)| n.to_string()))
        .collect();
    names.sort();
    names.dedup();
    if !names.is_empty() {
        svc.pending
            .push((services.join(" "), Pending::DependsOn(names)));
    }
    if !others.is_empty() {
        svc.note(others.join(" "), "ordering against systemd targets and other units; upkeep starts its services once it runs");
    }
}

/// `TimeoutStartSec=` (or `TimeoutSec=`) and `WatchdogSec=`: how long a `Type=notify` unit may
/// take to send READY=1, and how often it must send WATCHDOG=1 after: upkeep's `ready_timeout`
/// and `watchdog`, which go with `ready = "notify"` (the caller writes them there). Of another
/// type they are notes. A value upkeep cannot take is a note too, and left out (systemd
/// itself ignores a setting it cannot parse).
fn start_limits(
    r: &mut Reader,
    svc: &mut Service,
    ty: &str,
) -> (Option<Duration>, Option<Duration>) {
    let start = r.last("Service", "TimeoutStartSec");
    // TimeoutSec= is the stop timeout too (`stopping` reads it): only its start half is here.
    let both = start.is_none();
    let start = start.or_else(|| r.last("Service", "TimeoutSec"));
    let watchdog = r.last("Service", "WatchdogSec");
    if !(ty == "notify" || ty == "notify-reload") {
        if let Some(v) = start.filter(|_| !both) {
            let why = match ty {
                "oneshot" => "upkeep has no run-time limit for a command that runs once".into(),
                "forking" => "upkeep gives the command as long as it takes to fork, then pid_file_timeout (30s unless set) for its PID file".into(),
                _ => format!("upkeep counts a Type={ty} service started once it runs: there is no start to time (ready_timeout goes with ready = \"notify\")"),
            };
            svc.note(format!("TimeoutStartSec={}", v.text), why);
        }
        if let Some(v) = watchdog {
            svc.note(
                format!("WatchdogSec={}", v.text),
                format!("upkeep's watchdog goes with ready = \"notify\" (READY=1, then WATCHDOG=1 pings), and a Type={ty} unit does not send READY=1"),
            );
        }
        return (None, None);
    }
    // upkeep's bounds (upkeep-config's bounds.rs: READY_TIMEOUT, WATCHDOG).
    const DAY: Duration = Duration::from_secs(86_400);
    let mut span = |v: Option<Val>, key: &str, min: Duration, off: &str| {
        let v = v?;
        let setting = format!("{}={}", v.at.key, v.text);
        let why = match values::timespan(&v.text) {
            // systemd reads 0 and infinity as "none".
            _ if v.text == "infinity" => off.to_owned(),
            Some(d) if d.is_zero() => off.to_owned(),
            Some(d) if d >= min && d <= DAY => return Some(d),
            Some(_) => format!(
                "upkeep's {key} is {} to 1d; set one in that range by hand",
                super::show_duration(min)
            ),
            None => "not a time span systemd reads (it ignores the line too)".to_owned(),
        };
        svc.note(setting, why);
        None
    };
    let timeout = span(
        start,
        "ready_timeout",
        Duration::from_millis(10),
        "no start timeout: ready_timeout is left out, so upkeep waits for READY=1 as long as it takes",
    );
    let watchdog = span(
        watchdog,
        "watchdog",
        Duration::from_millis(100),
        "the watchdog is off: watchdog is left out",
    );
    (timeout, watchdog)
}

/// systemd's time spans: "5", "5s", "1min 30s", "500ms", "2h"; a bare number is seconds.
/// One that is not goes to `problems`.
fn timespan(v: &Val, problems: &mut Vec<ImportError>) -> Option<Duration> {
    let d = values::timespan(&v.text);
    if d.is_none() {
        problems.push(at(v.at, format!("`{}` is not a time span", v.text)));
    }
    d
}

#[cfg(test)]
mod tests;
