//! `upkeep import pm2 [FILE]`: PM2 apps as upkeep services.
//!
//! Two sources, one mapping ([`app`]):
//! - an ecosystem file (`.config.js`, `.cjs`, `.mjs`, `.json`): JavaScript, so `node`
//!   evaluates it and prints the exported object as JSON; nothing here parses JS.
//!   Apps without `cwd` run in the file's folder (PM2 uses the folder `pm2 start` ran in).
//!   `--env NAME` merges `env_NAME` over `env`, as `pm2 start --env NAME` does.
//! - a running PM2 (`pm2 jlist`, `$PM2_HOME` or ~/.pm2): each process's settings as PM2
//!   resolved them (script path, interpreter, cwd). Its `env` holds the whole environment of
//!   the shell that started PM2, so variables equal to this shell's and PM2's own are left
//!   out. A PM2 that is not running is not started.
//!
//! `pm2/source.rs` gets the apps (node, `pm2 jlist`); this file maps each ([`app`]);
//! `pm2/command.rs` builds its argv as PM2 would (script lookup, interpreter, `args` split with
//! PM2's own pattern). PM2's keys and their aliases are its schema's (`lib/API/schema.json`).
//! PM2 stops with SIGINT, so imports say `stop_signal = "SIGINT"`. [`pending`] maps what
//! upkeep will support later (cron restarts, watching files).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};
use upkeep_config::RestartPolicy;

use super::{Command, ImportError, Pending, Service, service_name};

mod command;
mod source;

pub use source::{read_file, read_running};

/// PM2's name for an app: `name`, else the script's file name without its extension.
fn app_name(app: &Map<String, Value>, i: usize) -> Result<String, ImportError> {
    if let Some(n) = app.get("name").and_then(Value::as_str) {
        return Ok(n.to_owned());
    }
    let script = get(app, &["script", "exec"]).and_then(Value::as_str);
    let stem = script
        .and_then(|s| Path::new(s).file_stem())
        .map(|s| s.to_string_lossy().into_owned());
    stem.ok_or_else(|| {
        ImportError::Invalid(format!("app {} has neither a name nor a script", i + 1))
    })
}

/// Every key of PM2's app schema (aliases included), so unknown ones are noted.
const SCHEMA_KEYS: &[&str] = &[
    "script",
    "exec",
    "name",
    "cwd",
    "args",
    "exec_interpreter",
    "interpreter",
    "node_args",
    "interpreterArgs",
    "interpreter_args",
    "out_file",
    "out",
    "output",
    "out_log",
    "error_file",
    "error",
    "err",
    "err_file",
    "err_log",
    "log_file",
    "log",
    "pid_file",
    "pid",
    "cron_restart",
    "cron",
    "merge_logs",
    "combine_logs",
    "uid",
    "user",
    "gid",
    "env",
    "instances",
    "exec_mode",
    "autorestart",
    "autostart",
    "max_restarts",
    "min_uptime",
    "restart_delay",
    "exp_backoff_restart_delay",
    "kill_timeout",
    "max_memory_restart",
    "watch",
    "ignore_watch",
    "watch_delay",
    "watch_options",
    "time",
    "log_date_format",
    "log_type",
    "disable_logs",
    "wait_ready",
    "listen_timeout",
    "shutdown_with_message",
    "stop_exit_codes",
    "port",
    "filter_env",
    "namespace",
    "vizion",
    "automation",
    "pmx",
    "treekill",
    "instance_var",
    "source_map_support",
    "disable_source_map_support",
    "windowsHide",
    "kill_retry_time",
    "increment_var",
    "append_env_to_name",
    "name_prefix",
    "io",
    "trace",
    "deep_monitoring",
    "disable_trace",
    "event_loop_inspector",
    "v8",
    "post_update",
    "force",
    "install_url",
    "execute_command",
    "write",
];

/// Output keys: upkeep captures output itself.
const LOG_KEYS: &[&str] = &[
    "out_file",
    "out",
    "output",
    "out_log",
    "error_file",
    "error",
    "err",
    "err_file",
    "err_log",
    "log_file",
    "log",
    "merge_logs",
    "combine_logs",
    "time",
    "log_date_format",
    "log_type",
    "disable_logs",
];

/// What the reading of an app found beside its keys, for its notes.
#[derive(Debug, Default)]
struct Extra {
    /// `env_*` profiles not applied.
    skipped_profiles: Vec<String>,
    /// Variables of a running app left out (this shell's, or PM2's own).
    dropped_env: usize,
}

/// The first of `keys` (a key and its aliases) the app sets.
fn get<'a>(app: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a Value> {
    keys.iter()
        .find_map(|k| app.get(*k))
        .filter(|v| !v.is_null())
}

/// One app as a service.
fn app(
    app: &Map<String, Value>,
    name: &str,
    origin: String,
    base: &Path,
    extra: &Extra,
) -> Result<Service, ImportError> {
    let bad = |what: String| ImportError::Invalid(format!("app `{name}`: {what}"));
    let (sname, renamed) = service_name(name)?;
    let cwd = match get(app, &["cwd"]).and_then(Value::as_str) {
        Some(c) => base.join(c),
        None => base.to_owned(),
    };
    let argv = command::command(app, &cwd).map_err(bad)?;
    let mut svc = Service::new(sname, origin, Command::Argv(argv));
    if let Some(r) = renamed {
        svc.note(format!("name = {name}"), r);
    }
    svc.cwd = Some(cwd.display().to_string());
    svc.env = env(app);
    svc.stop_signal = Some("SIGINT".into());
    if let Some(port) = app.get("port") {
        svc.env.insert("PORT".into(), text(port));
    }
    settings(app, &mut svc).map_err(bad)?;
    pending(app, &mut svc);
    notes(app, extra, &mut svc);
    Ok(svc)
}

/// The app's `env`, every value as text.
fn env(app: &Map<String, Value>) -> BTreeMap<String, String> {
    let Some(Value::Object(env)) = app.get("env") else {
        return BTreeMap::new();
    };
    env.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), text(v)))
        .collect()
}

/// A JSON value as PM2 puts it in the environment: strings as they are, the rest as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The settings with an upkeep equivalent.
fn settings(app: &Map<String, Value>, svc: &mut Service) -> Result<(), String> {
    if get(app, &["autorestart"]).and_then(Value::as_bool) == Some(false) {
        svc.restart = Some(RestartPolicy::Never);
    }
    if get(app, &["autostart"]).and_then(Value::as_bool) == Some(false) {
        svc.autostart = Some(false);
    }
    if let Some(n) = number(app, "max_restarts")? {
        if n < 1.0 {
            svc.note(
                "max_restarts = 0",
                "upkeep restarts at least once within its window; max_restarts = 1",
            );
        }
        svc.max_restarts = Some(n.clamp(1.0, 1_000_000.0) as u32);
    }
    if let Some(d) = time(app, "min_uptime")? {
        svc.min_uptime = Some(d);
    }
    if let Some(d) = time(app, "restart_delay")?.filter(|d| !d.is_zero()) {
        svc.backoff_min = Some(d);
        svc.backoff_max = Some(d);
    }
    if let Some(d) = time(app, "exp_backoff_restart_delay")? {
        svc.backoff_min = Some(d);
        // PM2 doubles the delay up to 15 s.
        svc.backoff_max = Some(d.max(Duration::from_secs(15)));
    }
    if let Some(d) = time(app, "kill_timeout")? {
        svc.stop_timeout = Some(d);
    }
    if let Some(v) = get(app, &["max_memory_restart"]) {
        let bytes =
            size(v).ok_or_else(|| format!("max_memory_restart `{}` is not a size", text(v)))?;
        if bytes >= 1 << 20 {
            svc.memory_max = Some(bytes);
        } else {
            svc.note(
                format!("max_memory_restart = {}", text(v)),
                "below 1MiB no process fits: a memory probe would restart it forever",
            );
        }
    }
    if let Some(u) = get(app, &["uid", "user"]) {
        svc.user = Some(match u {
            Value::Number(n) => {
                let uid = n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or("uid is not a user id")?;
                match nix::unistd::User::from_uid(uid.into()) {
                    Ok(Some(user)) => user.name,
                    _ => return Err(format!("no user has uid {uid} on this host")),
                }
            }
            other => text(other),
        });
    }
    Ok(())
}

/// Everything upkeep will support later, mapped in one place: cron restarts and watching.
fn pending(app: &Map<String, Value>, svc: &mut Service) {
    if let Some(cron) = get(app, &["cron_restart", "cron"]).and_then(Value::as_str) {
        svc.pending.push((
            format!("cron_restart = {cron}"),
            Pending::RestartAt(cron.to_owned()),
        ));
    }
    let paths = match get(app, &["watch"]) {
        Some(Value::Bool(true)) => Some(Vec::new()),
        Some(Value::String(p)) => Some(vec![p.clone()]),
        Some(Value::Array(list)) => Some(list.iter().map(text).collect()),
        _ => None,
    };
    if let Some(paths) = paths {
        let shown = app.get("watch").map(text).unwrap_or_default();
        svc.pending
            .push((format!("watch = {shown}"), Pending::Watch(paths)));
    }
}

/// Notes for what has no upkeep equivalent.
fn notes(app: &Map<String, Value>, extra: &Extra, svc: &mut Service) {
    let instances = app.get("instances").map(text);
    let cluster = app
        .get("exec_mode")
        .and_then(Value::as_str)
        .is_some_and(|m| m.starts_with("cluster"));
    if cluster || instances.as_deref().is_some_and(|n| n != "1") {
        let mode = if cluster { "cluster mode" } else { "fork mode" };
        svc.note(
            format!("instances = {}, {mode}", instances.unwrap_or("1".into())),
            "upkeep runs one process per service (no Node cluster master): put a load balancer in front of several services, or use node's cluster module in the app",
        );
    }
    if let Some(Value::Object(env)) = app.get("env") {
        let empty: Vec<String> = env
            .iter()
            .filter(|(_, v)| v.is_null())
            .map(|(k, _)| format!("env.{k}"))
            .collect();
        if !empty.is_empty() {
            svc.note(
                empty.join(", "),
                "no value to carry over: null, or a number JSON cannot hold (1e400, NaN), which node writes as null; set them in env by hand",
            );
        }
    }
    if !extra.skipped_profiles.is_empty() {
        svc.note(
            extra.skipped_profiles.join(", "),
            "profiles not applied: choose one with --env NAME",
        );
    }
    if extra.dropped_env > 0 {
        svc.note(
            format!("{} inherited variables", extra.dropped_env),
            "left out: they equal this shell's environment, or are PM2's own",
        );
    }
    let logs: Vec<&str> = LOG_KEYS
        .iter()
        .copied()
        .filter(|k| app.contains_key(*k))
        .collect();
    if !logs.is_empty() {
        svc.note(
            logs.join(", "),
            "upkeep captures output itself, into <data_dir>/logs/NAME.{out,err}.log",
        );
    }
    let reasons: &[(&str, &str)] = &[
        ("gid", "upkeep runs a service with its user's primary group"),
        (
            "pid_file",
            "upkeep keeps its own run records in its data dir",
        ),
        ("pid", "upkeep keeps its own run records in its data dir"),
        (
            "wait_ready",
            "upkeep does not wait for process.send('ready'); a probe tells when it answers",
        ),
        (
            "listen_timeout",
            "upkeep does not wait for process.send('ready'); a probe tells when it answers",
        ),
        (
            "shutdown_with_message",
            "upkeep stops with a signal (SIGINT), not a message",
        ),
        (
            "stop_exit_codes",
            "upkeep counts every exit but 0 as a failure",
        ),
        ("ignore_watch", "goes with watch"),
        ("watch_delay", "goes with watch"),
        ("watch_options", "goes with watch"),
    ];
    for (k, v) in app {
        if let Some((_, why)) = reasons.iter().find(|(r, _)| r == k) {
            svc.note(format!("{k} = {}", text(v)), *why);
        } else if !SCHEMA_KEYS.contains(&k.as_str()) {
            svc.note(
                format!("{k} = {}", text(v)),
                "not a PM2 setting upkeep knows",
            );
        }
    }
}

/// A number, or a string of one (PM2 parses those).
fn number(app: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match app.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| format!("{key} `{s}` is not a number")),
        Some(other) => Err(format!("{key} `{other}` is not a number")),
    }
}

/// PM2's times: milliseconds, or "10s", "5m", "1h".
fn time(app: &Map<String, Value>, key: &str) -> Result<Option<Duration>, String> {
    let Some(v) = app.get(key).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let bad = || {
        format!(
            "{key} `{}` is not a time (milliseconds, or 10s, 5m, 1h)",
            text(v)
        )
    };
    let ms = match v {
        Value::Number(n) => n.as_f64().ok_or_else(bad)?,
        Value::String(s) => {
            let unit = match s.chars().last() {
                Some('h') => 3_600_000.0,
                Some('m') => 60_000.0,
                Some('s') => 1000.0,
                _ => 1.0,
            };
            let digits = s.trim_end_matches(['h', 'm', 's']);
            digits.trim().parse::<f64>().map_err(|_| bad())? * unit
        }
        _ => return Err(bad()),
    };
    if !(0.0..=1e12).contains(&ms) {
        return Err(bad());
    }
    Ok(Some(Duration::from_millis(ms as u64)))
}

/// PM2's sizes: bytes, or "150M", "1G", "512K" (powers of 1024).
fn size(v: &Value) -> Option<u64> {
    let (n, unit) = match v {
        Value::Number(n) => (n.as_f64()?, 1.0),
        Value::String(s) => {
            let unit = match s.chars().last()? {
                'G' => 1024.0 * 1024.0 * 1024.0,
                'M' => 1024.0 * 1024.0,
                'K' => 1024.0,
                _ => 1.0,
            };
            (
                s.trim_end_matches(['G', 'M', 'K']).trim().parse().ok()?,
                unit,
            )
        }
        _ => return None,
    };
    let bytes = n * unit;
    (0.0..1e18).contains(&bytes).then_some(bytes as u64)
}

#[cfg(test)]
mod tests;
