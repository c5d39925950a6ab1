//! The argv PM2 would run for an app: its script found as PM2 finds it, the interpreter PM2
//! would choose (`resolveInterpreter`), and arguments split as PM2 splits them.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{get, text};

/// The argv PM2 would run: the interpreter, its args, the script, the script's args; or the
/// script alone when it runs without one.
pub(super) fn command(app: &Map<String, Value>, cwd: &Path) -> Result<Vec<String>, String> {
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
pub(super) fn resolve_script(script: &str, cwd: &Path) -> Option<(PathBuf, String)> {
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
pub(super) fn interpreter(explicit: Option<&str>, script: &Path) -> Option<String> {
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
pub(super) fn list(v: Option<&Value>) -> Vec<String> {
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
pub(super) fn split_args(s: &str) -> Vec<String> {
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
