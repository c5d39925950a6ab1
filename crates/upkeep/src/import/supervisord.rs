//! `upkeep import supervisord FILE`: `[program:x]` sections as upkeep services.
//!
//! Reads the file (`supervisord/ini.rs` parses the dialect) and the files its `[include]`
//! names (glob patterns, relative to the main file, read once: supervisord does not follow an
//! include's own `[include]`), then maps each program in [`program`]. Values are expanded as
//! supervisord does (`supervisord/expand.rs`: `%(program_name)s`, `%(here)s`...); `command`
//! is split like Python's `shlex.split` (supervisord runs it without a shell) and
//! `environment` read as supervisord reads `KEY="v",KEY2=v2`. Errors name the file
//! and line. Sections that are supervisord's own (`[supervisord]`, `[unix_http_server]`...)
//! are skipped; `[group:x]`, `[eventlistener:x]` and `[fcgi-program:x]` become notes.

mod expand;
mod ini;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use upkeep_config::RestartPolicy;

use super::{Command, Import, ImportError, Note, Service};
use expand::{Vars, expand};

/// A section with the file it came from (`%(here)s` is that file's folder).
struct Located {
    section: ini::Section,
    file: PathBuf,
}

/// Reads `path` and its includes into an [`Import`]. Every problem of every file is
/// reported (each with its file and line), as `upkeep check` reports a config's; a file that
/// cannot be read at all ends the reading.
pub fn read(path: &Path) -> Result<Import, ImportError> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let mut problems = Vec::new();
    let mut sections = read_file(&path, &mut problems)?;
    let mut files = vec![path.clone()];
    for file in includes(&path, &sections, &mut problems) {
        match read_file(&file, &mut problems) {
            Ok(more) => sections.extend(more),
            Err(e) => problems.push(e),
        }
        files.push(file);
    }
    let global_env = match sections.iter().find(|s| s.section.name == "supervisord") {
        Some(s) => environment(s, &Vars::new(&s.file, "supervisord")).unwrap_or_else(|e| {
            problems.push(e);
            BTreeMap::new()
        }),
        None => BTreeMap::new(),
    };
    let mut import = Import::default();
    for s in &sections {
        let name = s.section.name.as_str();
        if let Some(program) = name.strip_prefix("program:") {
            if let Some(service) = self::program(s, program, &global_env, &mut problems)
                && let Err(e) = import.push(service)
            {
                problems.push(e);
            }
        } else if let Some(note) = other_section(s) {
            import.notes.push(note);
        }
    }
    // A file's bad lines were found first: in the order of the files and lines instead.
    super::sort_by_place(&mut problems, &files);
    ImportError::all(problems)?;
    Ok(import)
}

/// A file's sections; its bad lines go to `problems`.
fn read_file(path: &Path, problems: &mut Vec<ImportError>) -> Result<Vec<Located>, ImportError> {
    let text = std::fs::read_to_string(path).map_err(|source| ImportError::Read {
        path: path.to_owned(),
        source,
    })?;
    let (sections, errors) = ini::parse(&text);
    problems.extend(errors.into_iter().map(|e| ImportError::Syntax {
        path: path.to_owned(),
        line: e.line,
        message: e.message,
    }));
    Ok(sections
        .into_iter()
        .map(|section| Located {
            section,
            file: path.to_owned(),
        })
        .collect())
}

/// The files `[include] files = ...` names, each pattern's matches sorted, as supervisord
/// globs them; a pattern that cannot be read goes to `problems`.
fn includes(main: &Path, sections: &[Located], problems: &mut Vec<ImportError>) -> Vec<PathBuf> {
    let Some(s) = sections.iter().find(|s| s.section.name == "include") else {
        return Vec::new();
    };
    let Some(entry) = s.section.get("files") else {
        return Vec::new();
    };
    let patterns = match expand(&entry.value, &Vars::new(&s.file, "include")) {
        Ok(p) => p,
        Err(m) => {
            problems.push(at(s, entry, m));
            return Vec::new();
        }
    };
    let base = main.parent().unwrap_or(Path::new("/"));
    let mut files = Vec::new();
    for pattern in patterns.split_whitespace() {
        let full = base.join(pattern);
        let full = full.to_string_lossy();
        match glob::glob(&full) {
            Ok(found) => {
                let mut matched: Vec<PathBuf> = found.filter_map(Result::ok).collect();
                matched.sort();
                files.extend(matched);
            }
            Err(e) => problems.push(at(
                s,
                entry,
                format!("`{pattern}` is not a glob pattern: {e}"),
            )),
        }
    }
    files
}

/// A note for a section that is not a program, or None for supervisord's own.
fn other_section(s: &Located) -> Option<Note> {
    let name = &s.section.name;
    let (subject, reason) = if let Some(group) = name.strip_prefix("group:") {
        let programs = s.section.get("programs").map_or("", |e| e.value.as_str());
        (
            format!("group {group}"),
            format!(
                "upkeep starts and stops each service on its own (nothing like `supervisorctl start {group}:*`): its programs ({programs}) are services of their own; upkeep's `group` key only heads services on the status page"
            ),
        )
    } else if let Some(x) = name.strip_prefix("eventlistener:") {
        let command = s.section.get("command").map_or("", |e| e.value.as_str());
        (
            format!("event listener {x}"),
            format!(
                "its command ({command}) is not run: it reads supervisord's own events on stdin, which upkeep does not send (`upkeep events -f` streams upkeep's, and [notify] channels send them)"
            ),
        )
    } else if let Some(x) = name.strip_prefix("fcgi-program:") {
        (
            format!("fcgi program {x}"),
            "upkeep does not hold sockets for its services; make it a [program:x] that listens itself".into(),
        )
    } else if matches!(
        name.as_str(),
        "supervisord" | "supervisorctl" | "unix_http_server" | "inet_http_server" | "include"
    ) || name.starts_with("rpcinterface:")
    {
        return None;
    } else {
        (
            format!("[{name}]"),
            "not a section supervisord defines".into(),
        )
    };
    Some(Note {
        subject,
        setting: format!("[{name}]"),
        reason,
    })
}

/// Keys upkeep does not carry, and why; every other key is mapped in [`program`] or unknown.
const NOT_CARRIED: &[(&str, &str)] = &[
    (
        "priority",
        "upkeep orders starts by dependency, not by number: write `depends_on` where one service needs another",
    ),
    (
        "umask",
        "upkeep does not set a umask; wrap the command (sh -c 'umask 022; exec ...')",
    ),
    ("serverurl", "upkeep's services do not talk to a supervisor"),
    ("numprocs_start", "one process runs"),
    (
        "exitcodes",
        "upkeep counts every exit but 0 as a failure (restart = \"on-failure\")",
    ),
];

/// Log keys: upkeep captures output itself.
const LOG_KEYS: &[&str] = &[
    "redirect_stderr",
    "stdout_logfile",
    "stdout_logfile_maxbytes",
    "stdout_logfile_backups",
    "stdout_capture_maxbytes",
    "stdout_events_enabled",
    "stdout_syslog",
    "stderr_logfile",
    "stderr_logfile_maxbytes",
    "stderr_logfile_backups",
    "stderr_capture_maxbytes",
    "stderr_events_enabled",
    "stderr_syslog",
];

/// Keys with nothing to carry: upkeep always signals the whole group, and names the one
/// process it runs after the service (`numprocs` says when there were more).
const SAME_IN_UPKEEP: &[&str] = &["stopasgroup", "killasgroup", "process_name"];

/// One `[program:NAME]` as a service, or None if it has problems: each goes to `problems`
/// (every value is read, so that all of them are reported at once).
fn program(
    s: &Located,
    program: &str,
    global_env: &BTreeMap<String, String>,
    problems: &mut Vec<ImportError>,
) -> Option<Service> {
    let before = problems.len();
    let vars = Vars::new(&s.file, program);
    // Every value expanded once, in the section's order; one that cannot be is a problem.
    let mut values: Vec<(&ini::Entry, String)> = Vec::new();
    for e in &s.section.entries {
        match expand(&e.value, &vars) {
            Ok(v) => values.push((e, v)),
            Err(m) => problems.push(at(s, e, m)),
        }
    }
    let get = |key: &str| {
        values
            .iter()
            .find(|(e, _)| e.key == key)
            .map(|(e, v)| (*e, v.clone()))
    };
    let argv = match (s.section.get("command"), get("command")) {
        (None, _) => {
            problems.push(ImportError::Syntax {
                path: s.file.clone(),
                line: s.section.line,
                message: format!("[program:{program}] has no command"),
            });
            None
        }
        // Not expanded: said above.
        (Some(_), None) => None,
        (Some(_), Some((entry, line))) => {
            let argv = shlex::split(&line).filter(|a| !a.is_empty());
            if argv.is_none() {
                problems.push(at(
                    s,
                    entry,
                    "the command has an unclosed quote, or is empty".into(),
                ));
            }
            argv
        }
    };
    // The rest is read whatever the above found, for its own problems.
    let (name, renamed) = super::name_or_stand_in(program, problems);
    let origin = format!("supervisord [program:{program}] in {}", s.file.display());
    let mut svc = Service::new(name, origin, Command::Argv(argv.unwrap_or_default()));
    if let Some(r) = renamed {
        svc.note(format!("[program:{program}]"), r);
    }
    svc.env = global_env.clone();
    if let Some((e, text)) = get("environment") {
        match key_value_pairs(&text) {
            Ok(env) => svc.env.extend(env),
            Err(m) => problems.push(at(s, e, m)),
        }
    }
    svc.cwd = get("directory").map(|(_, v)| v);
    svc.user = get("user").map(|(_, v)| v);
    // supervisord's default is `unexpected`: restart unless the exit code is expected (0).
    svc.restart = Some(RestartPolicy::OnFailure);
    for (e, value) in &values {
        if let Err(m) = setting(&mut svc, &e.key, value) {
            problems.push(at(s, e, m));
        }
    }
    let logs: Vec<&str> = s
        .section
        .entries
        .iter()
        .map(|e| e.key.as_str())
        .filter(|k| LOG_KEYS.contains(k))
        .collect();
    if !logs.is_empty() {
        svc.note(
            logs.join(", "),
            "upkeep captures output itself, into <data_dir>/logs/NAME.{out,err}.log (see `log` for rotation)",
        );
    }
    (problems.len() == before).then_some(svc)
}

/// Maps one key of a program (already expanded) onto `svc`, or notes it. Keys read whole in
/// [`program`] (command, directory, environment, user) and log keys pass through.
fn setting(svc: &mut Service, key: &str, value: &str) -> Result<(), String> {
    match key {
        "command" | "directory" | "environment" | "user" => {}
        "autostart" => svc.autostart = Some(boolean(value)?).filter(|a| !a),
        "autorestart" => {
            svc.restart = Some(match value.to_ascii_lowercase().as_str() {
                "unexpected" => RestartPolicy::OnFailure,
                _ if boolean(value)? => RestartPolicy::Always,
                _ => RestartPolicy::Never,
            })
        }
        "startsecs" => svc.min_uptime = Some(seconds(value)?),
        "startretries" => {
            let n: u32 = value
                .parse()
                .map_err(|_| format!("`{value}` is not a number"))?;
            if n == 0 {
                svc.note(
                    "startretries = 0",
                    "upkeep restarts at least once within its window; max_restarts = 1",
                );
            }
            svc.max_restarts = Some(n.max(1));
        }
        "stopsignal" => svc.stop_signal = Some(signal(value)),
        "stopwaitsecs" => svc.stop_timeout = Some(seconds(value)?),
        "numprocs" => {
            if value != "1" {
                svc.note(
                    format!("numprocs = {value}"),
                    "upkeep runs one process per service; import it once per copy you need, under other names",
                );
            }
        }
        k if LOG_KEYS.contains(&k) || SAME_IN_UPKEEP.contains(&k) => {}
        k => match NOT_CARRIED.iter().find(|(n, _)| *n == k) {
            Some((_, why)) => svc.note(format!("{k} = {value}"), *why),
            None => svc.note(
                format!("{k} = {value}"),
                "not a program setting upkeep knows",
            ),
        },
    }
    Ok(())
}

/// The `environment` of a section, as supervisord reads it: `KEY="value",KEY2=value2`.
fn environment(s: &Located, vars: &Vars) -> Result<BTreeMap<String, String>, ImportError> {
    let Some(e) = s.section.get("environment") else {
        return Ok(BTreeMap::new());
    };
    let text = expand(&e.value, vars).map_err(|m| at(s, e, m))?;
    key_value_pairs(&text).map_err(|m| at(s, e, m))
}

/// supervisord's `dict_of_key_value_pairs`: words of letters, digits and `_/.+-():`, or quoted
/// ('...' or "...", no escapes), as `KEY=VALUE` separated by commas.
fn key_value_pairs(text: &str) -> Result<BTreeMap<String, String>, String> {
    let word = |c: char| c.is_alphanumeric() || "_/.+-():".contains(c);
    let mut out = BTreeMap::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let key_end = rest.find(|c| !word(c)).unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = rest[key_end..].trim_start();
        let Some(after) = rest.strip_prefix('=').filter(|_| !key.is_empty()) else {
            return Err(format!(
                "not KEY=\"value\",KEY2=\"value\" (near `{}`)",
                text.trim()
            ));
        };
        rest = after.trim_start();
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                let end = rest[1..]
                    .find(q)
                    .ok_or_else(|| format!("the value of {key} has no closing {q}"))?;
                let v = &rest[1..=end];
                rest = &rest[end + 2..];
                v
            }
            _ => {
                let end = rest.find(|c| !word(c)).unwrap_or(rest.len());
                let v = &rest[..end];
                rest = &rest[end..];
                v
            }
        };
        out.insert(key.to_owned(), value.to_owned());
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after.trim_start();
        } else if !rest.is_empty() {
            return Err(format!(
                "expected `,` after the value of {key}; quote values with other characters"
            ));
        }
    }
    Ok(out)
}

/// supervisord's booleans.
fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("`{v}` is not true or false")),
    }
}

fn seconds(v: &str) -> Result<Duration, String> {
    v.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("`{v}` is not a number of seconds"))
}

/// TERM → SIGTERM; numbers stay numbers.
fn signal(v: &str) -> String {
    let upper = v.trim().to_ascii_uppercase();
    if upper.starts_with("SIG") || upper.parse::<i32>().is_ok() {
        upper
    } else {
        format!("SIG{upper}")
    }
}

/// An error in a value, at its line.
fn at(s: &Located, e: &ini::Entry, message: String) -> ImportError {
    ImportError::Syntax {
        path: s.file.clone(),
        line: e.line,
        message: format!("{}: {message}", e.key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_environment_like_supervisord() {
        let env = key_value_pairs("A=\"1, 2\",B=plain, C='x y' ,PATH=/usr/bin:/bin").unwrap();
        assert_eq!(
            env,
            BTreeMap::from([
                ("A".into(), "1, 2".into()),
                ("B".into(), "plain".into()),
                ("C".into(), "x y".into()),
                ("PATH".into(), "/usr/bin:/bin".into()),
            ])
        );
        assert!(key_value_pairs("A=\"open").is_err());
        assert!(key_value_pairs("A=x y").is_err());
        assert!(key_value_pairs("=x").is_err());
        assert_eq!(key_value_pairs("").unwrap(), BTreeMap::new());
    }

    fn import(files: &[(&str, &str)]) -> Result<Import, ImportError> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        read(&dir.path().join(files[0].0))
    }

    #[test]
    fn maps_programs_with_includes() {
        let im = import(&[
            (
                "supervisord.conf",
                "[supervisord]\nenvironment=SHARED=\"1\"\n[unix_http_server]\nfile=/tmp/x.sock\n[include]\nfiles = conf.d/*.conf\n[group:all]\nprograms=web,worker\n",
            ),
            (
                "conf.d/web.conf",
                "[program:web]\ncommand=/usr/bin/python3 -m http.server --directory \"%(here)s\" ; serve\ndirectory=/tmp\nenvironment=PORT=\"80%(process_num)02d\",SHARED=\"mine\"\nautorestart=true\nstopsignal=INT\nstopwaitsecs=20\nstartsecs=3\nstartretries=0\nstdout_logfile=/var/log/web.log\npriority=10\nnumprocs=2\nprocess_name=%(program_name)s_%(process_num)s\nautostart=false\nkillasgroup=true\n",
            ),
            ("conf.d/worker.conf", "[program:worker]\ncommand=sleep 1000\nuser=nobody\nautorestart=unexpected\n"),
        ])
        .unwrap();
        assert_eq!(im.services.len(), 2);
        let web = &im.services[0];
        let here = web
            .origin
            .rsplit_once(' ')
            .unwrap()
            .1
            .rsplit_once('/')
            .unwrap()
            .0;
        assert_eq!(
            web.command,
            Command::Argv(vec![
                "/usr/bin/python3".into(),
                "-m".into(),
                "http.server".into(),
                "--directory".into(),
                here.into()
            ])
        );
        assert_eq!(web.cwd.as_deref(), Some("/tmp"));
        assert_eq!(
            web.env,
            BTreeMap::from([
                ("PORT".into(), "8000".into()),
                ("SHARED".into(), "mine".into())
            ])
        );
        assert_eq!(web.restart, Some(RestartPolicy::Always));
        assert_eq!(web.autostart, Some(false));
        assert_eq!(web.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(web.stop_timeout, Some(Duration::from_secs(20)));
        assert_eq!(web.min_uptime, Some(Duration::from_secs(3)));
        assert_eq!(web.max_restarts, Some(1));
        let notes: Vec<&str> = web.notes.iter().map(|n| n.setting.as_str()).collect();
        assert_eq!(
            notes,
            [
                "startretries = 0",
                "priority = 10",
                "numprocs = 2",
                "stdout_logfile"
            ]
        );
        let worker = &im.services[1];
        assert_eq!(worker.user.as_deref(), Some("nobody"));
        assert_eq!(worker.restart, Some(RestartPolicy::OnFailure));
        assert_eq!(worker.env, BTreeMap::from([("SHARED".into(), "1".into())]));
        assert_eq!(im.notes.len(), 1);
        assert_eq!(im.notes[0].subject, "group all");
    }

    /// Only the first problem of a file was reported: fixed one by one, each import found the
    /// next. Every problem of every file now, each at its file and line, and nothing imported.
    #[test]
    fn every_problem_of_every_file_is_reported_with_its_line() {
        let e = import(&[
            (
                "s.conf",
                "[include]\nfiles = more.conf\n[program:a]\ncommand=echo \"open\nstopwaitsecs=soon\n[program:b]\ndirectory=/x\nstartretries=many\njust words\n[program:ok]\ncommand=sleep 1\n",
            ),
            (
                "more.conf",
                "[program:c]\ncommand=x\nautostart=maybe\nenvironment=A=\"open\n",
            ),
        ])
        .unwrap_err();
        let text = e.to_string();
        let lines: Vec<String> = text
            .lines()
            .skip(1)
            .map(|l| {
                let l = l.trim_start_matches("  --> ");
                let (file, rest) = l.rsplit_once('/').map_or(("", l), |(f, r)| (f, r));
                assert!(!file.is_empty(), "{text}");
                rest.to_owned()
            })
            .collect();
        assert_eq!(
            lines,
            [
                "s.conf:4: command: the command has an unclosed quote, or is empty",
                "s.conf:5: stopwaitsecs: `soon` is not a number of seconds",
                "s.conf:6: [program:b] has no command",
                "s.conf:8: startretries: `many` is not a number",
                "s.conf:9: neither a [section], a `key = value` line nor a comment",
                "more.conf:3: autostart: `maybe` is not true or false",
                "more.conf:4: environment: the value of A has no closing \"",
            ],
            "{text}"
        );
        assert!(
            text.starts_with("7 problems, nothing was imported\n"),
            "{text}"
        );
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = import(&[("s.conf", "[program:a]\ncommand=echo \"open\n")]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.ends_with("s.conf:2: command: the command has an unclosed quote, or is empty"),
            "{text}"
        );
        let e = import(&[("s.conf", "[program:a]\ndirectory=/x\n")]).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("s.conf:1: [program:a] has no command"),
            "{e}"
        );
        let e = import(&[("s.conf", "[program:a]\ncommand=x\nstopwaitsecs=soon\n")]).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("s.conf:3: stopwaitsecs: `soon` is not a number of seconds"),
            "{e}"
        );
        let e = import(&[("s.conf", "[program:a]\ncommand=%(bogus)s\n")]).unwrap_err();
        assert!(
            e.to_string().contains("s.conf:2: command: `%(bogus)`"),
            "{e}"
        );
        let e = import(&[("s.conf", "[program:a]\ncommand=x\nwhat is this\n")]).unwrap_err();
        assert!(e.to_string().contains("s.conf:3: neither"), "{e}");
    }
}
