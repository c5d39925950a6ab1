//! A unit's command for upkeep: `ExecStart=` as an argv, or one shell line when it refers to
//! the environment or has something to run first (`RuntimeDirectory=` made, then each
//! `ExecStartPre=`, then `exec` of the main command, in systemd's order). Notes say what the
//! `Exec*=` prefixes meant, since upkeep runs every command alike.

use super::exec::{self, ExecLine};
use super::locate::Found;
use super::unit::Assignment;
use super::{Reader, at};
use crate::import::{Command, ImportError};

/// The command: `ExecStart=`, with `RuntimeDirectory=` made and `ExecStartPre=` run before
/// it (in systemd's order) when there are any, and notes on what the prefixes meant; None
/// if any of them has a problem (each goes to `problems`).
pub(super) fn command(
    r: &mut Reader,
    found: &Found,
    ty: &str,
    user: Option<&str>,
    problems: &mut Vec<ImportError>,
) -> Option<(Command, Vec<(String, String)>)> {
    let before_problems = problems.len();
    let mut notes = Vec::new();
    let starts = r.list("Service", "ExecStart");
    let Some(first) = starts.first() else {
        problems.push(ImportError::Syntax {
            path: found.path.clone(),
            line: 1,
            message: format!("{} has no ExecStart=: there is nothing to run", found.name),
        });
        return None;
    };
    if starts.len() > 1 && ty != "oneshot" {
        problems.push(at(
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
    let main = exec::exec_line(&first.text)
        .map_err(|m| problems.push(at(first.at, m)))
        .ok();
    let mut before = Vec::new();
    match runtime_dirs(r, user, &mut notes) {
        Ok(dirs) => before.extend(dirs),
        Err(e) => problems.push(e),
    }
    for pre in r.list("Service", "ExecStartPre") {
        let step = exec::exec_line(&pre.text)
            .map_err(|m| at(pre.at, m))
            .and_then(|line| {
                prefix_notes(&mut notes, pre.at, &line);
                shell_of(&line, pre.at, !line.prefixes.ignore_failure)
            });
        match step {
            Ok(step) => before.push(step),
            Err(e) => problems.push(e),
        }
    }
    let main = main?;
    prefix_notes(&mut notes, first.at, &main);
    if let Some(a0) = &main.argv0 {
        notes.push((
            format!("argv[0] {a0}"),
            "upkeep passes the program's path as argv[0]".into(),
        ));
    }
    let command = match (before.is_empty(), main.argv()) {
        (true, Some(argv)) => Command::Argv(argv),
        _ => {
            let main = main
                .shell()
                .map_err(|m| problems.push(at(first.at, m)))
                .ok()?;
            before.push(format!("exec {main}"));
            Command::Shell(before.join(" && "))
        }
    };
    (problems.len() == before_problems).then_some((command, notes))
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

/// Notes on the prefixes upkeep does not honour: what each meant under systemd. `-` on a
/// pre-command is carried (its failure is ignored), and `@` has a note of its own.
fn prefix_notes(notes: &mut Vec<(String, String)>, a: &Assignment, line: &ExecLine) {
    let mut p = line.prefixes;
    if a.key == "ExecStartPre" {
        p.ignore_failure = false;
    }
    p.argv0 = false;
    for meaning in p.meanings() {
        notes.push((
            format!("{}={}", a.key, a.value),
            format!("{meaning}; upkeep runs it like the others"),
        ));
    }
}
