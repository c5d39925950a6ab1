//! `upkeep import systemd UNIT...`: `.service` units as upkeep services.
//!
//! `systemd/locate.rs` finds a unit by path or by name, with its drop-ins; `systemd/unit.rs`
//! reads the syntax; `systemd/exec.rs` expands specifiers and splits command lines. [`service`] maps the settings, one small function per concern; every key it does not
//! read ends in [`leftovers`], which notes it by kind (sandboxing, process attributes,
//! logging...). [`pending`] holds every setting upkeep will support later, in one place.
//!
//! Commands: `ExecStart=` runs as an argv, unless it refers to the environment (`$FOO`), has
//! `ExecStartPre=` commands or a `RuntimeDirectory=` to make first: then one shell line runs
//! them in order and `exec`s the main command, as systemd would (`-` before a command: its
//! failure does not stop the start).

mod exec;
mod locate;
mod unit;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use upkeep_config::RestartPolicy;

use super::{Command, Import, ImportError, Pending, Service, service_name};
use exec::{ExecLine, Specifiers};
use locate::{Found, host_facts, load, locate};
use unit::{Assignment, Unit};

/// Reads each unit named in `args` into one [`Import`].
pub fn read(args: &[String]) -> Result<Import, ImportError> {
    let host = host_facts();
    let mut import = Import::default();
    for arg in args {
        let found = locate(arg)?;
        let unit = load(&found)?;
        let specs = Specifiers::for_unit(&found.name, &found.path, &host);
        import.push(service(&found, &unit, &specs)?)?;
    }
    Ok(import)
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

/// The whole unit as one service.
fn service(found: &Found, unit: &Unit, specs: &Specifiers) -> Result<Service, ImportError> {
    let mut r = Reader {
        unit,
        specs,
        used: Vec::new(),
        unexpanded: Vec::new(),
    };
    let stem = found.name.trim_end_matches(".service");
    let (name, renamed) = service_name(stem)?;
    let origin = format!("systemd unit {} ({})", found.name, found.path.display());
    let ty = r
        .last("Service", "Type")
        .map(|v| v.text)
        .unwrap_or("simple".into());
    let user = user(&mut r)?;
    let (command, command_notes) = command(&mut r, found, &ty, user.as_deref())?;
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
    environment(&mut r, &mut svc)?;
    restart(&mut r, &mut svc, &ty)?;
    stopping(&mut r, &mut svc)?;
    memory(&mut r, &mut svc);
    kind(&mut r, &mut svc, &ty);
    pending(&mut r, &mut svc);
    for (setting, c) in std::mem::take(&mut r.unexpanded) {
        svc.note(
            setting,
            format!("%{c} cannot be expanded outside systemd; the value is left as written"),
        );
    }
    leftovers(&r, &mut svc);
    Ok(svc)
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

/// The command: `ExecStart=`, with `RuntimeDirectory=` made and `ExecStartPre=` run before
/// it (in systemd's order) when there are any. Returns notes on what the prefixes meant.
fn command(
    r: &mut Reader,
    found: &Found,
    ty: &str,
    user: Option<&str>,
) -> Result<(Command, Vec<(String, String)>), ImportError> {
    let mut notes = Vec::new();
    let starts = r.list("Service", "ExecStart");
    let Some(first) = starts.first() else {
        return Err(ImportError::Syntax {
            path: found.path.clone(),
            line: 1,
            message: format!("{} has no ExecStart=: there is nothing to run", found.name),
        });
    };
    if starts.len() > 1 && ty != "oneshot" {
        return Err(at(
            starts[1].at,
            "more than one ExecStart= (only Type=oneshot may have several)",
        ));
    }
    for extra in &starts[1..] {
        notes.push((
            format!("ExecStart={}", extra.at.value),
            "only the first command of a oneshot unit runs".into(),
        ));
    }
    let main = exec::exec_line(&first.text).map_err(|m| at(first.at, m))?;
    let mut before = Vec::new();
    before.extend(runtime_dirs(r, user, &mut notes)?);
    for pre in r.list("Service", "ExecStartPre") {
        let line = exec::exec_line(&pre.text).map_err(|m| at(pre.at, m))?;
        prefix_notes(&mut notes, pre.at, &line, user);
        before.push(shell_of(&line, pre.at, !line.prefixes.ignore_failure)?);
    }
    prefix_notes(&mut notes, first.at, &main, user);
    if let Some(a0) = &main.argv0 {
        notes.push((
            format!("argv[0] {a0}"),
            "upkeep passes the program's path as argv[0]".into(),
        ));
    }
    let command = match (before.is_empty(), main.argv()) {
        (true, Some(argv)) => Command::Argv(argv),
        _ => {
            let main = main.shell().map_err(|m| at(first.at, m))?;
            before.push(format!("exec {main}"));
            Command::Shell(before.join(" && "))
        }
    };
    Ok((command, notes))
}

/// `RuntimeDirectory=` as a `mkdir` before the command, when the service runs as root (the
/// daemon's user); under another user it could not make folders in /run: a note says so.
fn runtime_dirs(
    r: &mut Reader,
    user: Option<&str>,
    notes: &mut Vec<(String, String)>,
) -> Result<Option<String>, ImportError> {
    let dirs = r.list("Service", "RuntimeDirectory");
    let mode = r.last("Service", "RuntimeDirectoryMode");
    let Some(first) = dirs.first() else {
        return Ok(None);
    };
    let paths: Vec<String> = dirs
        .iter()
        .flat_map(|d| d.text.split_whitespace().map(|n| format!("/run/{n}")))
        .collect();
    if let Some(u) = user.filter(|u| *u != "root") {
        notes.push((
            format!("RuntimeDirectory={}", first.at.value),
            format!(
                "upkeep does not make runtime folders: create {} owned by {u} before it starts",
                paths.join(", ")
            ),
        ));
        return Ok(None);
    }
    let mut argv = vec!["mkdir".to_owned(), "-p".to_owned()];
    if let Some(m) = mode {
        argv.extend(["-m".to_owned(), m.text]);
    }
    argv.extend(paths);
    shlex::try_join(argv.iter().map(String::as_str))
        .map(Some)
        .map_err(|_| at(first.at, "a NUL byte in the folder name"))
}

/// One pre-command as a shell step; a `-` prefix makes its failure harmless.
fn shell_of(line: &ExecLine, a: &Assignment, must_succeed: bool) -> Result<String, ImportError> {
    let text = line.shell().map_err(|m| at(a, m))?;
    Ok(if must_succeed {
        text
    } else {
        format!("{{ {text} || true; }}")
    })
}

/// Notes on prefixes that upkeep does not honour the same way. `-` on a pre-command is
/// carried (its failure is ignored), so only the main command's `-` is noted.
fn prefix_notes(
    notes: &mut Vec<(String, String)>,
    a: &Assignment,
    line: &ExecLine,
    user: Option<&str>,
) {
    let mut p = line.prefixes;
    if a.key == "ExecStartPre" {
        p.ignore_failure = false;
    }
    p.argv0 = false;
    if user.is_none() {
        // Without User= the command runs as the daemon's user either way.
        p.full_privileges = false;
        p.raised_privileges = false;
    }
    for meaning in p.meanings() {
        notes.push((
            format!("{}={}", a.key, a.value),
            format!("{meaning}; upkeep runs it like the others"),
        ));
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
        let home = svc
            .user
            .as_deref()
            .and_then(|u| nix::unistd::User::from_name(u).ok().flatten())
            .map_or("/root".into(), |u| u.dir.display().to_string());
        home
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
fn environment(r: &mut Reader, svc: &mut Service) -> Result<(), ImportError> {
    for v in r.list("Service", "Environment") {
        svc.env
            .extend(exec::environment(&v.text).map_err(|m| at(v.at, m))?);
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
    Ok(())
}

/// `Restart=`, `RestartSec=`, `StartLimitBurst=`/`StartLimitIntervalSec=`.
fn restart(r: &mut Reader, svc: &mut Service, ty: &str) -> Result<(), ImportError> {
    let policy = r.last("Service", "Restart").map(|v| (v.text.clone(), v));
    svc.restart = Some(match policy.as_ref().map(|(t, _)| t.as_str()) {
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
            return Err(at(
                policy.as_ref().expect("matched Some").1.at,
                format!("`{other}` is not a Restart= value"),
            ));
        }
    });
    if ty == "oneshot" {
        svc.restart = Some(RestartPolicy::Never);
    }
    if let Some(v) = r.last("Service", "RestartSec") {
        let d = timespan(&v)?;
        svc.backoff_min = Some(d);
        svc.backoff_max = Some(d);
    }
    if let Some(v) = r.last("Service", "RestartMaxDelaySec") {
        svc.backoff_max = Some(timespan(&v)?);
    }
    if let Some(v) = r.last("Unit", "StartLimitBurst") {
        let n: u32 = v.text.parse().map_err(|_| at(v.at, "not a number"))?;
        svc.max_restarts = Some(n.max(1));
    }
    let interval = r
        .last("Unit", "StartLimitIntervalSec")
        .or_else(|| r.last("Service", "StartLimitInterval"));
    if let Some(v) = interval {
        match timespan(&v)? {
            d if d.is_zero() => svc.note(
                format!("{}={}", v.at.key, v.text),
                "systemd never stops restarting it; upkeep always has a limit (max_restarts within window)",
            ),
            d => svc.window = Some(d.max(Duration::from_secs(1))),
        }
    }
    Ok(())
}

/// `KillSignal=`, `TimeoutStopSec=` (or `TimeoutSec=`), `KillMode=`.
fn stopping(r: &mut Reader, svc: &mut Service) -> Result<(), ImportError> {
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
        if v.text == "infinity" {
            svc.note(
                format!("{}=infinity", v.at.key),
                "upkeep always ends a stop: SIGKILL after stop_timeout",
            );
        } else {
            svc.stop_timeout = Some(timespan(&v)?);
        }
    }
    let why = match r.last("Service", "KillMode").map(|v| v.text).as_deref() {
        None | Some("control-group") => return Ok(()),
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
    Ok(())
}

/// `MemoryMax=` (or the older `MemoryLimit=`) as a memory probe.
fn memory(r: &mut Reader, svc: &mut Service) {
    let Some(v) = r
        .last("Service", "MemoryMax")
        .or_else(|| r.last("Service", "MemoryLimit"))
    else {
        return;
    };
    match bytes(&v.text) {
        Some(n) if n >= 1 << 20 => svc.memory_max = Some(n),
        _ => svc.note(
            format!("{}={}", v.at.key, v.text),
            "not carried over: a memory probe needs a size of at least 1MiB (a percentage or infinity has no equivalent)",
        ),
    }
}

/// systemd's sizes: bytes, or K, M, G, T (powers of 1024).
fn bytes(text: &str) -> Option<u64> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits.parse().ok()?;
    let shift = match unit {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
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
    if ty == "notify" || ty == "notify-reload" {
        svc.pending
            .push((format!("Type={ty}"), Pending::ReadyNotify));
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
        svc.pending
            .push(("Type=forking".into(), Pending::Forking { pid_file }));
        // Run as it is, its command would exit at once and leave its daemon unwatched.
        svc.autostart = Some(false);
        svc.note(
            "autostart = false",
            "its command starts a daemon in the background and exits; until upkeep supports that, run the program in the foreground (nginx: -g 'daemon off;') and set autostart = true",
        );
    }
    for v in r.list("Service", "ExecReload") {
        match kill_signal(&v.text) {
            Some(sig) => svc.pending.push((
                format!("ExecReload={}", v.at.value),
                Pending::ReloadSignal(sig),
            )),
            None => svc.note(
                format!("ExecReload={}", v.at.value),
                "upkeep reloads by restarting (reload_signal will send a signal instead)",
            ),
        }
    }
    for v in r.list("Service", "ExecStop") {
        match kill_signal(&v.text) {
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

/// `/bin/kill -HUP $MAINPID` (and `kill -s HUP $MAINPID`) → "SIGHUP".
fn kill_signal(line: &str) -> Option<String> {
    let words = exec::split_words(line.trim_start_matches(['-', '@', '+', '!', ':'])).ok()?;
    let (prog, rest) = words.split_first()?;
    if !(prog == "kill" || prog.ends_with("/kill")) {
        return None;
    }
    let sig = match rest {
        [s, pid] if s.starts_with('-') => {
            (pid == "$MAINPID" || pid == "${MAINPID}").then(|| s[1..].to_owned())
        }
        [flag, s, pid] if flag == "-s" => {
            (pid == "$MAINPID" || pid == "${MAINPID}").then(|| s.clone())
        }
        _ => None,
    }?;
    let upper = sig.to_ascii_uppercase();
    Some(if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    })
}

/// systemd's time spans: "5", "5s", "1min 30s", "500ms", "2h"; a bare number is seconds.
fn timespan(v: &Val) -> Result<Duration, ImportError> {
    parse_timespan(&v.text).ok_or_else(|| at(v.at, format!("`{}` is not a time span", v.text)))
}

fn parse_timespan(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..n_end].parse().ok()?;
        rest = rest[n_end..].trim_start();
        let u_end = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        let secs = match &rest[..u_end] {
            "us" | "usec" => 1e-6,
            "ms" | "msec" => 1e-3,
            "" | "s" | "sec" | "second" | "seconds" => 1.0,
            "m" | "min" | "minute" | "minutes" => 60.0,
            "h" | "hr" | "hour" | "hours" => 3600.0,
            "d" | "day" | "days" => 86400.0,
            "w" | "week" | "weeks" => 604_800.0,
            _ => return None,
        };
        total += Duration::try_from_secs_f64(n * secs).ok()?;
        rest = rest[u_end..].trim_start();
    }
    Some(total)
}

/// Keys that change nothing upkeep does, or are read through another key.
const SILENT: &[&str] = &[
    "Description",
    "Documentation",
    "DefaultDependencies",
    "RuntimeDirectoryPreserve",
    "SourcePath",
];

/// Notes for every key no function above read, grouped by what kind of setting it is.
fn leftovers(r: &Reader, svc: &mut Service) {
    let mut groups: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for a in &r.unit.assignments {
        if a.section == "Install" || r.used(a) || SILENT.contains(&a.key.as_str()) {
            continue;
        }
        let why = reason_for(&a.section, &a.key);
        let entry = groups.entry(why).or_default();
        let shown = format!("{}={}", a.key, a.value);
        if !entry.contains(&shown) {
            entry.push(shown);
        }
    }
    for (why, keys) in groups {
        svc.note(keys.join(", "), why);
    }
}

/// Why a key is not carried over, by what kind of setting it is.
fn reason_for(section: &str, key: &str) -> &'static str {
    const SANDBOX: &[&str] = &[
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateNetwork",
        "PrivateIPC",
        "PrivateUsers",
        "PrivateMounts",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "ProtectProc",
        "ProcSubset",
        "NoNewPrivileges",
        "CapabilityBoundingSet",
        "AmbientCapabilities",
        "SystemCallFilter",
        "SystemCallArchitectures",
        "SystemCallErrorNumber",
        "SystemCallLog",
        "RestrictAddressFamilies",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "RestrictFileSystems",
        "LockPersonality",
        "MemoryDenyWriteExecute",
        "ReadOnlyPaths",
        "ReadWritePaths",
        "InaccessiblePaths",
        "ExecPaths",
        "NoExecPaths",
        "TemporaryFileSystem",
        "BindPaths",
        "BindReadOnlyPaths",
        "RootDirectory",
        "RootImage",
        "MountAPIVFS",
        "DynamicUser",
        "RemoveIPC",
        "KeyringMode",
        "DevicePolicy",
        "DeviceAllow",
        "IPAddressAllow",
        "IPAddressDeny",
        "SecureBits",
        "SELinuxContext",
        "AppArmorProfile",
        "SmackProcessLabel",
        "NetworkNamespacePath",
    ];
    const LOGGING: &[&str] = &[
        "StandardInput",
        "StandardOutput",
        "StandardError",
        "SyslogIdentifier",
        "SyslogFacility",
        "SyslogLevel",
        "SyslogLevelPrefix",
        "LogLevelMax",
        "LogExtraFields",
        "LogRateLimitIntervalSec",
        "LogRateLimitBurst",
        "LogNamespace",
        "TTYPath",
    ];
    const DIRECTORIES: &[&str] = &[
        "StateDirectory",
        "CacheDirectory",
        "LogsDirectory",
        "ConfigurationDirectory",
        "StateDirectoryMode",
        "CacheDirectoryMode",
        "LogsDirectoryMode",
        "ConfigurationDirectoryMode",
    ];
    match key {
        k if SANDBOX.contains(&k) => {
            "sandboxing: upkeep does not sandbox services (run them under a user of their own)"
        }
        "SupplementaryGroups" => "upkeep runs a service with its user's primary group only",
        k if k.starts_with("Limit")
            || matches!(
                k,
                "UMask"
                    | "Nice"
                    | "OOMScoreAdjust"
                    | "CPUAffinity"
                    | "CPUQuota"
                    | "CPUWeight"
                    | "IOWeight"
                    | "TasksMax"
                    | "MemoryHigh"
                    | "MemoryLow"
                    | "MemorySwapMax"
            )
            || k.starts_with("IOScheduling")
            || k.starts_with("CPUScheduling") =>
        {
            "process limits and priorities: upkeep does not set them (wrap the command with prlimit or nice)"
        }
        k if LOGGING.contains(&k) => {
            "upkeep captures output itself, into <data_dir>/logs/NAME.{out,err}.log"
        }
        k if DIRECTORIES.contains(&k) => {
            "upkeep does not make or own folders for its services: create them beforehand"
        }
        k if k.starts_with("Condition") || k.starts_with("Assert") => {
            "upkeep starts the service whatever these conditions say"
        }
        "ExecStartPost" | "ExecStopPost" | "ExecCondition" => {
            "upkeep runs no commands after a start or a stop"
        }
        "Before"
        | "Conflicts"
        | "OnFailure"
        | "OnSuccess"
        | "PropagatesReloadTo"
        | "ReloadPropagatedFrom"
        | "JoinsNamespaceOf" => "relations between systemd units have no upkeep equivalent",
        "TimeoutStartSec" | "WatchdogSec" | "RuntimeMaxSec" | "TimeoutAbortSec" => {
            "upkeep has no start timeout, watchdog or run-time limit (probes tell it when a service hangs)"
        }
        "SuccessExitStatus" | "RestartPreventExitStatus" | "RestartForceExitStatus" => {
            "upkeep counts every exit but 0 as a failure"
        }
        "SendSIGKILL" | "SendSIGHUP" | "FinalKillSignal" | "RestartKillSignal" | "KillMode" => {
            "upkeep stops with stop_signal, then SIGKILL after stop_timeout"
        }
        _ if section == "Unit" || section == "Service" => "not a setting upkeep can take",
        _ => "a section upkeep does not read",
    }
}

#[cfg(test)]
mod tests;
