//! Where PM2 apps come from: an ecosystem file, evaluated by `node` ([`EVAL`], with a time
//! limit: the file is a program), or a running PM2 through `pm2 jlist`, whose processes are
//! turned back into ecosystem apps ([`from_jlist`]). Both hand each app, as JSON, to the
//! mapping in `pm2.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

use super::{Extra, LOG_KEYS, SCHEMA_KEYS, app, app_name};
use crate::import::{Import, ImportError};

/// Writes the object an ecosystem file exports as JSON to the file named second (CommonJS
/// through `require`, an ES module through `import()`, its default export), with its type:
/// `{ "type": "object", "value": ... }`. Not to stdout: the ecosystem file's code may print
/// there (a `console.log` while it builds its apps), and PM2 loads such files.
const EVAL: &str = r#"
const fs = require('fs');
const path = require('path');
const file = path.resolve(process.argv[1]);
(async () => {
  let m;
  if (file.endsWith('.json')) {
    m = JSON.parse(fs.readFileSync(file, 'utf8'));
  } else {
    try { m = require(file); } catch (e) {
      if (e.code !== 'ERR_REQUIRE_ESM') throw e;
      m = await import(require('url').pathToFileURL(file).href);
    }
    if (m && m.__esModule !== undefined || (m && m.default && !m.apps)) m = m.default;
  }
  const type = m === null ? 'null' : Array.isArray(m) ? 'array' : typeof m;
  const value = type === 'object' || type === 'array' ? m : null;
  fs.writeFileSync(process.argv[2], JSON.stringify({ type, value }));
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
    let apps = apps_of(evaluate(&path)?).ok_or_else(|| {
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

/// What the ecosystem file exports, as node sees it: run in the file's folder, where apps
/// without `cwd` run too (and where people run `pm2 start` from). What it prints is not read.
fn evaluate(path: &Path) -> Result<Value, ImportError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let tool = |message: String| ImportError::Tool {
        message,
        hint: None,
    };
    let out_dir = tempfile::tempdir().map_err(|e| tool(format!("making a temp dir: {e}")))?;
    let out = out_dir.path().join("exports.json");
    run_tool(
        "node",
        &["-e", EVAL, &path.to_string_lossy(), &out.to_string_lossy()],
        dir,
        "install Node.js (apt-get install nodejs); it evaluates the ecosystem file",
    )?
    .map_err(|said| {
        ImportError::Invalid(format!(
            "node could not evaluate {}:\n{said}",
            path.display()
        ))
    })?;
    let text = match std::fs::read_to_string(&out) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImportError::Invalid(format!(
                "{}: node exited before the file had exported anything (does it call process.exit?)",
                path.display()
            )));
        }
        Err(e) => return Err(tool(format!("reading what node wrote: {e}"))),
    };
    #[derive(serde::Deserialize)]
    struct Exported {
        r#type: String,
        value: Value,
    }
    let exported: Exported = serde_json::from_str(&text)
        .map_err(|e| tool(format!("node wrote something that is not JSON: {e}")))?;
    match exported.r#type.as_str() {
        // PM2 does not call a function it is given (`pm2 start` fails on the file).
        "function" => Err(ImportError::Invalid(format!(
            "{}: the file exports a function, which PM2 does not call: export the object itself (module.exports = {{ apps: [...] }})",
            path.display()
        ))),
        // Anything else but an object or an array is null here: no apps.
        _ => Ok(exported.value),
    }
}

/// `{ apps: [...] }`, `{ apps: {...} }`, `[...]`, or one app object.
pub(super) fn apps_of(v: Value) -> Option<Vec<Value>> {
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
pub(super) fn apply_profile(
    app: &mut Map<String, Value>,
    profile: Option<&str>,
    extra: &mut Extra,
) -> bool {
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
        Path::new("/"),
        "install PM2 or put it on PATH, or name the ecosystem file instead",
    )?
    .map_err(|said| ImportError::Tool {
        message: format!("`pm2 jlist` failed:\n{said}"),
        hint: None,
    })?;
    // pm2 may print notices ("[PM2][WARN] ...") around the JSON, which is one line.
    let json = out
        .lines()
        .find(|l| l.starts_with("[{") || l.trim() == "[]")
        .unwrap_or(&out);
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
pub(super) fn from_jlist(p: &Value) -> Option<(Map<String, Value>, Extra)> {
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
pub(super) fn running_env(
    env: Option<&Map<String, Value>>,
    name: &str,
) -> (Map<String, Value>, usize) {
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

/// Runs `program` with `args` (at most [`TOOL_TIMEOUT`]): its standard output, or, if it
/// failed, the start of what it said (up to its stack trace). Err: it could not run.
fn run_tool(
    program: &str,
    args: &[&str],
    cwd: &Path,
    hint: &str,
) -> Result<Result<String, String>, ImportError> {
    // The hint says how to get the program: only for a program that is not there.
    let tool = |message: String| ImportError::Tool {
        message,
        hint: None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| tool(format!("starting the async runtime: {e}")))?;
    let out = rt.block_on(async {
        let child = tokio::process::Command::new(program)
            .args(args)
            .current_dir(cwd)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(TOOL_TIMEOUT, child).await
    });
    let out = match out {
        Err(_) => {
            return Err(ImportError::Tool {
                message: format!(
                    "`{program}` did not finish within {} s",
                    TOOL_TIMEOUT.as_secs()
                ),
                hint: Some(
                    "what it ran never ended: an ecosystem file must only export its apps (no loop, no server), and a PM2 daemon must answer"
                        .into(),
                ),
            });
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImportError::Tool {
                message: format!("`{program}` was not found on PATH"),
                hint: Some(hint.to_owned()),
            });
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
