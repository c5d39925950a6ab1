//! `upkeep import pm2 [FILE]`: PM2 apps as upkeep services.
//!
//! Two sources, one mapping ([`app`]):
//! - an ecosystem file (`.config.js`, `.cjs`, `.mjs`, `.json`): JavaScript, so `node`
//!   evaluates it and prints the exported object as JSON ([`EVAL`]); nothing here parses JS.
//!   Apps without `cwd` run in the file's folder (PM2 uses the folder `pm2 start` ran in).
//!   `--env NAME` merges `env_NAME` over `env`, as `pm2 start --env NAME` does.
//! - a running PM2 (`pm2 jlist`, `$PM2_HOME` or ~/.pm2): each process's settings as PM2
//!   resolved them (script path, interpreter, cwd). Its `env` holds the whole environment of
//!   the shell that started PM2, so variables equal to this shell's and PM2's own are left
//!   out ([`running_env`]). A PM2 that is not running is not started.
//!
//! PM2's keys and their aliases are its schema's (`lib/API/schema.json`); string `args` are
//! split with its own pattern ([`split_args`]); the interpreter is chosen as PM2 chooses it
//! ([`interpreter`]). PM2 stops with SIGINT, so imports say `stop_signal = "SIGINT"`.
//! [`pending`] maps what upkeep will support later (cron restarts, watching files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use upkeep_config::RestartPolicy;

use super::{Command, Import, ImportError, Pending, Service, service_name};

/// Prints the object an ecosystem file exports as JSON: CommonJS through `require`, an ES
/// module through `import()` (its default export).
const EVAL: &str = r#"
const path = require('path');
const file = path.resolve(process.argv[1]);
(async () => {
  let m;
  if (file.endsWith('.json')) {
    m = JSON.parse(require('fs').readFileSync(file, 'utf8'));
  } else {
    try { m = require(file); } catch (e) {
      if (e.code !== 'ERR_REQUIRE_ESM') throw e;
      m = await import(require('url').pathToFileURL(file).href);
    }
    if (m && m.__esModule !== undefined || (m && m.default && !m.apps)) m = m.default;
  }
  process.stdout.write(JSON.stringify(m === undefined ? null : m));
})().catch(e => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(1); });
"#;

/// How long node or pm2 may take: an ecosystem file is a program and could hang.
const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads the apps of an ecosystem file.
pub fn read_file(path: &Path, profile: Option<&str>) -> Result<Import, ImportError> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    if !path.is_file() {
        return Err(ImportError::Read {
            path,
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
        return Err(ImportError::Invalid(format!(
            "{}: YAML ecosystem files are not read; write it as ecosystem.config.js or .json",
            path.display()
        )));
    }
    let out = run_tool(
        "node",
        &["-e", EVAL, &path.to_string_lossy()],
        "install Node.js (apt-get install nodejs); it evaluates the ecosystem file",
    )?
    .map_err(|said| {
        ImportError::Invalid(format!(
            "node could not evaluate {}:\n{said}",
            path.display()
        ))
    })?;
    let exported: Value = serde_json::from_str(&out).map_err(|e| {
        ImportError::Invalid(format!(
            "{}: node printed something that is not JSON: {e}",
            path.display()
        ))
    })?;
    let apps = apps_of(exported).ok_or_else(|| {
        ImportError::Invalid(format!(
            "{}: the file exports no apps (expected module.exports = {{ apps: [...] }})",
            path.display()
        ))
    })?;
    let base = path.parent().unwrap_or(Path::new("/")).to_owned();
    let mut import = Import::default();
    let mut profile_found = profile.is_none();
    for (i, app_value) in apps.into_iter().enumerate() {
        let Value::Object(mut app) = app_value else {
            return Err(ImportError::Invalid(format!(
                "{}: app {} is not an object",
                path.display(),
                i + 1
            )));
        };
        let mut extra = Extra::default();
        profile_found |= apply_profile(&mut app, profile, &mut extra);
        let name = app_name(&app, i)?;
        let origin = format!("pm2 app `{name}` in {}", path.display());
        import.push(self::app(&app, &name, origin, &base, &extra)?)?;
    }
    if !profile_found {
        let p = profile.unwrap_or_default();
        return Err(ImportError::Invalid(format!(
            "--env {p}: no app in {} has env_{p}",
            path.display()
        )));
    }
    Ok(import)
}

/// `{ apps: [...] }`, `{ apps: {...} }`, `[...]`, or one app object.
fn apps_of(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(apps) => Some(apps),
        Value::Object(mut o) => match o.remove("apps") {
            Some(Value::Array(apps)) => Some(apps),
            Some(one @ Value::Object(_)) => Some(vec![one]),
            Some(_) => None,
            None if o.contains_key("script") => Some(vec![Value::Object(o)]),
            None => None,
        },
        _ => None,
    }
}

/// Merges `env_PROFILE` over `env` (true if the app has it) and drops every `env_*`; the
/// profiles not chosen go to `extra`.
fn apply_profile(app: &mut Map<String, Value>, profile: Option<&str>, extra: &mut Extra) -> bool {
    let profiles: Vec<String> = app
        .keys()
        .filter(|k| k.starts_with("env_"))
        .cloned()
        .collect();
    let mut found = false;
    for key in profiles {
        let value = app.remove(&key);
        if Some(&key[4..]) == profile {
            found = true;
            if let (Some(Value::Object(over)), Some(env)) = (value, env_object(app)) {
                env.extend(over);
            }
        } else {
            extra.skipped_profiles.push(key);
        }
    }
    found
}

fn env_object(app: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    let env = app
        .entry("env")
        .or_insert_with(|| Value::Object(Map::new()));
    env.as_object_mut()
}

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

/// Reads the processes of a running PM2 through `pm2 jlist`.
pub fn read_running() -> Result<Import, ImportError> {
    let home = std::env::var_os("PM2_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pm2")))
        .unwrap_or_else(|| PathBuf::from(".pm2"));
    // Any pm2 command starts a PM2 daemon when none runs: look for its socket first.
    if !home.join("rpc.sock").exists() {
        return Err(ImportError::Tool {
            message: format!("no PM2 daemon runs for PM2_HOME={} (no rpc.sock there)", home.display()),
            hint: Some("name its ecosystem file: upkeep import pm2 ecosystem.config.js, or set PM2_HOME to the PM2 you run".into()),
        });
    }
    let out = run_tool(
        "pm2",
        &["jlist"],
        "install PM2 or put it on PATH, or name the ecosystem file instead",
    )?
    .map_err(|said| ImportError::Tool {
        message: format!("`pm2 jlist` failed:\n{said}"),
        hint: None,
    })?;
    // pm2 may print notices before the JSON.
    let json = out.find('[').map_or(out.as_str(), |i| &out[i..]);
    let procs: Vec<Value> = serde_json::from_str(json).map_err(|e| ImportError::Tool {
        message: format!("`pm2 jlist` did not print a JSON list: {e}"),
        hint: None,
    })?;
    let mut import = Import::default();
    let mut seen = std::collections::BTreeSet::new();
    for p in procs {
        let Some((app, extra)) = from_jlist(&p) else {
            continue;
        };
        let name = app_name(&app, 0)?;
        // Each cluster instance is a process of its own, under one name.
        if seen.insert(name.clone()) {
            let origin = format!("pm2 app `{name}` (running, from pm2 jlist)");
            let cwd = app
                .get("cwd")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_owned();
            import.push(self::app(&app, &name, origin, Path::new(&cwd), &extra)?)?;
        }
    }
    Ok(import)
}

/// A `pm2 jlist` process as an ecosystem app: the schema's keys of its `pm2_env`, with the
/// script, cwd and interpreter PM2 resolved.
fn from_jlist(p: &Value) -> Option<(Map<String, Value>, Extra)> {
    let e = p.get("pm2_env")?.as_object()?;
    // Log settings are left out: PM2 fills them in (merge_logs) whatever the app said.
    let mut app: Map<String, Value> = e
        .iter()
        .filter(|(k, _)| SCHEMA_KEYS.contains(&k.as_str()) && !LOG_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    app.insert("name".into(), p.get("name").or(e.get("name"))?.clone());
    app.insert("script".into(), e.get("pm_exec_path")?.clone());
    app.insert("cwd".into(), e.get("pm_cwd")?.clone());
    let name = app["name"].as_str().unwrap_or_default().to_owned();
    let (env, dropped) = running_env(e.get("env").and_then(Value::as_object), &name);
    app.insert("env".into(), Value::Object(env));
    let extra = Extra {
        dropped_env: dropped,
        ..Extra::default()
    };
    Some((app, extra))
}

/// The variables of a running app that are its own: those that differ from this shell's and
/// are not PM2's bookkeeping. Returns them and how many were left out.
fn running_env(env: Option<&Map<String, Value>>, name: &str) -> (Map<String, Value>, usize) {
    let pm2_own = |k: &str| {
        k.starts_with("PM2_")
            || k == name
            || matches!(
                k,
                "pm_id" | "unique_id" | "NODE_APP_INSTANCE" | "_" | "PWD" | "OLDPWD" | "SHLVL"
            )
    };
    let mut kept = Map::new();
    let mut dropped = 0;
    for (k, v) in env.into_iter().flatten() {
        let same = std::env::var(k)
            .ok()
            .is_some_and(|mine| Some(mine.as_str()) == v.as_str());
        if same || pm2_own(k) {
            dropped += 1;
        } else {
            kept.insert(k.clone(), v.clone());
        }
    }
    (kept, dropped)
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
    let argv = command(app, &cwd).map_err(bad)?;
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
    (bytes >= 0.0 && bytes < 1e18).then_some(bytes as u64)
}

/// The argv PM2 would run: the interpreter, its args, the script, the script's args; or the
/// script alone when it runs without one.
fn command(app: &Map<String, Value>, cwd: &Path) -> Result<Vec<String>, String> {
    let script = get(app, &["script", "exec"])
        .and_then(Value::as_str)
        .ok_or("no script")?;
    let (file, written) = resolve_script(script, cwd).ok_or_else(|| {
        format!(
            "script `{script}` is neither in {} nor on PATH (PM2 would refuse it too)",
            cwd.display()
        )
    })?;
    let args = list(get(app, &["args"]));
    let explicit = get(app, &["exec_interpreter", "interpreter"]).and_then(Value::as_str);
    let mut argv = match interpreter(explicit, &file) {
        None => vec![written],
        Some(interp) => {
            let mut v = vec![interp];
            v.extend(list(get(
                app,
                &["node_args", "interpreter_args", "interpreterArgs"],
            )));
            v.push(written);
            v
        }
    };
    argv.extend(args);
    Ok(argv)
}

/// The script as PM2 finds it: in the app's folder (written as a full path, without `.`
/// parts), else on PATH (written by its name: upkeep looks on PATH too). Returns the file and
/// the word for the command.
fn resolve_script(script: &str, cwd: &Path) -> Option<(PathBuf, String)> {
    let here: PathBuf = cwd
        .join(script)
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    if here.exists() {
        let written = here.display().to_string();
        return Some((here, written));
    }
    if script.contains('/') {
        return None;
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(script))
        .find(|p| p.is_file())
        .map(|p| (p, script.to_owned()))
}

/// PM2's choice (`resolveInterpreter`): the one named (`none`: no interpreter), else by
/// extension, else none for a binary and node for anything else.
fn interpreter(explicit: Option<&str>, script: &Path) -> Option<String> {
    if let Some(i) = explicit {
        return (i != "none").then(|| i.to_owned());
    }
    let ext = script
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    let by_ext = match ext {
        "sh" => "bash",
        "py" if on_path("python") => "python",
        "py" => "python3",
        "rb" => "ruby",
        "php" => "php",
        "pl" => "perl",
        "js" => "node",
        "coffee" => "coffee",
        "ls" => "lsc",
        "ts" | "tsx" if on_path("bun") => "bun",
        _ if is_binary(script) => return None,
        _ => "node",
    };
    Some(by_ext.to_owned())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// PM2's test: a NUL byte, or more than a tenth of odd control bytes, in the first 512.
fn is_binary(path: &Path) -> bool {
    use std::io::Read;
    let mut buf = [0u8; 512];
    let Ok(n) = std::fs::File::open(path).and_then(|mut f| f.read(&mut buf)) else {
        return false;
    };
    let head = &buf[..n];
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return false;
    }
    let odd = head
        .iter()
        .filter(|b| **b < 7 || (**b > 14 && **b < 32))
        .count();
    head.contains(&0) || odd * 10 > n.max(1)
}

/// An array of words, or a string split as PM2 splits it.
fn list(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(items)) => items.iter().map(text).collect(),
        Some(Value::String(s)) => split_args(s),
        Some(other) => vec![text(other)],
        None => Vec::new(),
    }
}

/// PM2's own splitting of a string of arguments (lib/tools/Config.js): `k="a b"` stays one word
/// with its quotes, `"a b"` and `'a b'` lose theirs, anything else splits at whitespace; empty
/// words are dropped.
fn split_args(s: &str) -> Vec<String> {
    static WORD: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = WORD.get_or_init(|| {
        regex::Regex::new(r#"[^\s"'=]+="[^"]*"|[^\s"'=]+='[^']*'|"([^"]*)"|'([^']*)'|\S+"#)
            .expect("the pattern is valid")
    });
    re.find_iter(s)
        .map(|m| {
            let w = m.as_str();
            let quoted = w.len() >= 2
                && ((w.starts_with('"') && w.ends_with('"'))
                    || (w.starts_with('\'') && w.ends_with('\'')));
            if quoted {
                w[1..w.len() - 1].to_owned()
            } else {
                w.to_owned()
            }
        })
        .filter(|w| !w.trim().is_empty())
        .collect()
}

/// Runs `program` with `args` (at most [`TOOL_TIMEOUT`]): its standard output, or, if it
/// failed, the start of what it said (up to its stack trace). Err: it could not run.
fn run_tool(
    program: &str,
    args: &[&str],
    hint: &str,
) -> Result<Result<String, String>, ImportError> {
    let tool = |message: String| ImportError::Tool {
        message,
        hint: Some(hint.to_owned()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| tool(format!("starting the async runtime: {e}")))?;
    let out = rt.block_on(async {
        let child = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(TOOL_TIMEOUT, child).await
    });
    let out = match out {
        Err(_) => {
            return Err(tool(format!(
                "`{program}` did not finish within {} s",
                TOOL_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(tool(format!("`{program}` was not found on PATH")));
        }
        Ok(Err(e)) => return Err(tool(format!("`{program}` could not run: {e}"))),
        Ok(Ok(out)) => out,
    };
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = said
            .lines()
            .take_while(|l| !l.trim_start().starts_with("at "))
            .filter(|l| !l.trim().is_empty())
            .take(8)
            .map(|l| l.trim_end())
            .collect();
        let said = if lines.is_empty() {
            format!("it exited with {}", out.status)
        } else {
            lines.join("\n")
        };
        return Ok(Err(said));
    }
    String::from_utf8(out.stdout)
        .map(Ok)
        .map_err(|_| tool(format!("`{program}` printed something that is not UTF-8")))
}

#[cfg(test)]
mod tests;
