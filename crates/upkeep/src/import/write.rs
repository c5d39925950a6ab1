//! The one writer of imports: [`Import`] → `[services.NAME]` tables in the config file's text.
//!
//! [`settle`] first turns what the config cannot take into notes (a [`Pending`] setting
//! upkeep does not carry yet, a stop timeout the daemon's shutdown would cut short); then
//! [`tables`] builds one toml_edit table per service, with where it came from and its notes as
//! comments above it, and `upkeep_config::put_services` puts them into the file, keeping its
//! comments and layout. Only keys that differ from upkeep's defaults are written. Validating the
//! result (`upkeep_config::parse`) and writing the file are the caller's (`cli/import.rs`).

use std::collections::BTreeSet;
use std::time::Duration;

use toml_edit::{Item, Table, value};
use upkeep_core::ServiceName;

use super::{Command, Import, Note, Pending, Service, show_duration};

/// Makes `import` fit this config, whose services are `existing`: a pending setting upkeep
/// does not carry becomes a note, so do dependencies on services that are neither in the
/// config nor in this import (the config would refuse them), and a stop timeout at least as
/// long as the daemon's `shutdown_timeout` (which the config refuses: the daemon would exit
/// before the service stopped) is shortened, with a note.
pub fn settle(import: &mut Import, shutdown_timeout: Duration, existing: &BTreeSet<String>) {
    let known: BTreeSet<String> = import
        .services
        .iter()
        .map(|s| s.name.to_string())
        .chain(existing.iter().cloned())
        .collect();
    for s in &mut import.services {
        let pending = std::mem::take(&mut s.pending);
        for (setting, p) in pending {
            let p = match p {
                Pending::DependsOn(names) => {
                    let (here, missing): (Vec<String>, Vec<String>) = names
                        .into_iter()
                        .filter(|n| *n != s.name.as_str())
                        .partition(|n| known.contains(n));
                    if !missing.is_empty() {
                        s.note(setting.clone(), Pending::DependsOn(missing).reason());
                    }
                    if here.is_empty() {
                        continue;
                    }
                    Pending::DependsOn(here)
                }
                p => p,
            };
            if p.carried() {
                s.pending.push((setting, p));
            } else {
                s.note(setting, p.reason());
            }
        }
        if let Some(stop) = s.stop_timeout
            && stop >= shutdown_timeout
        {
            let fits = shutdown_timeout.saturating_sub(Duration::from_secs(1));
            s.stop_timeout = Some(fits);
            s.note(
                format!("stop timeout {}", show_duration(stop)),
                format!(
                    "shortened to {}: the daemon's shutdown_timeout is {} (raise it, then stop_timeout)",
                    show_duration(fits),
                    show_duration(shutdown_timeout)
                ),
            );
        }
    }
}

/// One table per service, in order.
pub fn tables(import: &Import) -> Vec<(ServiceName, Table)> {
    import
        .services
        .iter()
        .map(|s| (s.name.clone(), table(s)))
        .collect()
}

/// The imported tables alone, as the TOML `--dry-run` prints, after the notes that belong to
/// no service (a supervisord `[group:x]` or `[eventlistener:x]`: break-it, session 12, they
/// were in no dry run) as comments.
pub fn preview(import: &Import) -> String {
    let text = upkeep_config::put_services("", tables(import), false)
        .expect("an empty document has a services table and no service");
    let mut out = String::new();
    if !import.notes.is_empty() {
        out.push_str("# Not carried over:\n");
        for n in &import.notes {
            let line = format!("{}: {}", n.subject, note_text(n));
            out.push_str(&format!("#   {}\n", one_line(&line)));
        }
        out.push('\n');
    }
    out.push_str(text.trim_start());
    out
}

fn table(s: &Service) -> Table {
    let mut t = Table::new();
    t.decor_mut().set_prefix(comments(s));
    t.insert(
        "command",
        match &s.command {
            Command::Argv(argv) => {
                value(toml_edit::Array::from_iter(argv.iter().map(String::as_str)))
            }
            Command::Shell(line) => value(line.as_str()),
        },
    );
    let text = |t: &mut Table, key: &str, v: &Option<String>| {
        if let Some(v) = v {
            t.insert(key, value(v.as_str()));
        }
    };
    text(&mut t, "cwd", &s.cwd);
    text(&mut t, "env_file", &s.env_file);
    if !s.env.is_empty() {
        t.insert("env", env(s));
    }
    text(&mut t, "user", &s.user);
    if let Some(r) = s.restart {
        t.insert("restart", value(r.as_str()));
    }
    if let Some(a) = s.autostart {
        t.insert("autostart", value(a));
    }
    text(&mut t, "stop_signal", &s.stop_signal);
    let durations = [
        ("stop_timeout", s.stop_timeout),
        ("backoff_min", s.backoff_min),
        ("backoff_max", s.backoff_max),
        ("min_uptime", s.min_uptime),
    ];
    for (key, d) in durations {
        if let Some(d) = d {
            t.insert(key, value(show_duration(d)));
        }
    }
    if let Some(n) = s.max_restarts {
        t.insert("max_restarts", value(i64::from(n)));
    }
    if let Some(w) = s.window {
        t.insert("window", value(show_duration(w)));
    }
    for (_, p) in s.pending.iter().filter(|(_, p)| p.carried()) {
        for (key, v) in p.future_toml() {
            t.insert(key, Item::Value(v));
        }
    }
    if let Some(max) = s.memory_max {
        let mut probe = Table::new();
        probe.insert("kind", value("memory"));
        probe.insert("max", value(show_bytes(max)));
        let mut probes = toml_edit::ArrayOfTables::new();
        probes.push(probe);
        t.insert("probes", Item::ArrayOfTables(probes));
    }
    t
}

/// A few variables inline, more as a table of their own (one per line reads better).
fn env(s: &Service) -> Item {
    let pairs = s.env.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    if s.env.len() <= 3 {
        value(toml_edit::InlineTable::from_iter(pairs))
    } else {
        Item::Table(Table::from_iter(pairs))
    }
}

/// The comment lines above a service's table: where it came from, then its notes.
fn comments(s: &Service) -> String {
    // A blank line before: the file's last line may be anything.
    let mut out = format!("\n# {}", one_line(&s.origin));
    if let Some(d) = &s.description {
        out.push_str(&format!(": {}", one_line(d)));
    }
    out.push('\n');
    if !s.notes.is_empty() {
        out.push_str("# Not carried over:\n");
        for n in &s.notes {
            out.push_str(&format!("#   {}\n", one_line(&note_text(n))));
        }
    }
    out
}

/// `setting: reason`, as listed under a service.
pub fn note_text(n: &Note) -> String {
    format!("{}: {}", n.setting, n.reason)
}

/// Text for a comment line: control characters (a newline would end the comment and make the
/// rest TOML) and bidi or invisible formatting characters (a U+202E turns the rest of the line
/// around: break-it, session 11) shown escaped, as the CLI shows them.
fn one_line(text: &str) -> String {
    crate::cli::escape::field(text).into_owned()
}

/// A size as the memory probe's `max` takes it: "150MiB", "1GiB", or bytes.
fn show_bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    for (unit, size) in [("GiB", KIB * KIB * KIB), ("MiB", KIB * KIB), ("KiB", KIB)] {
        if n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::import::Pending;

    fn service(name: &str) -> Service {
        Service::new(
            ServiceName::new(name).unwrap(),
            format!("test `{name}`"),
            Command::Argv(vec!["sleep".into(), "100".into()]),
        )
    }

    fn import(services: Vec<Service>) -> Import {
        Import {
            services,
            notes: Vec::new(),
        }
    }

    /// Parses `text` as a config in a temp dir; the problems' text if invalid.
    fn check(text: &str) -> Result<upkeep_config::Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upkeep.toml");
        upkeep_config::parse(&path, text).map_err(|e| e.to_string())
    }

    #[test]
    fn writes_only_what_differs_and_the_result_validates() {
        let mut s = service("api");
        s.description = Some("the API\nsecond line \u{202e}gnp.exe".into());
        s.cwd = Some("/tmp".into());
        s.env = BTreeMap::from([("A".into(), "1".into()), ("B C".into(), "x\"y".into())]);
        s.restart = Some(upkeep_config::RestartPolicy::OnFailure);
        s.stop_signal = Some("SIGINT".into());
        s.stop_timeout = Some(Duration::from_millis(1600));
        s.max_restarts = Some(16);
        s.memory_max = Some(150 << 20);
        s.note("instances = 4", "one process runs");
        let mut im = import(vec![s, service("worker")]);
        settle(&mut im, Duration::from_secs(30), &BTreeSet::new());
        let text = preview(&im);
        assert!(
            text.starts_with(
                "# test `api`: the API\\nsecond line \\u{202e}gnp.exe\n# Not carried over:\n#   instances = 4: one process runs\n[services.api]\ncommand = [\"sleep\", \"100\"]\ncwd = \"/tmp\"\nenv = { A = \"1\", \"B C\" = 'x\"y' }\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("[[services.api.probes]]\nkind = \"memory\"\nmax = \"150MiB\"\n"),
            "{text}"
        );
        assert!(
            text.contains("\n# test `worker`\n[services.worker]\ncommand = [\"sleep\", \"100\"]\n"),
            "{text}"
        );
        let config = check(&text).unwrap();
        let api = &config.services[&ServiceName::new("api").unwrap()];
        let m = api.managed.as_ref().unwrap();
        assert_eq!(m.stop_timeout, Duration::from_millis(1600));
        assert_eq!(m.stop_signal, libc::SIGINT);
        assert_eq!(
            m.env,
            [("A".into(), "1".into()), ("B C".into(), "x\"y".into())]
        );
        assert_eq!(api.probes.len(), 1);
    }

    #[test]
    fn dependencies_on_services_this_config_will_not_have_and_long_stop_timeouts_become_notes() {
        let mut s = service("web");
        s.pending.push((
            "cron_restart".into(),
            Pending::RestartAt("0 * * * *".into()),
        ));
        s.pending.push((
            "Requires=db.service After=worker.service After=web.service".into(),
            Pending::DependsOn(vec!["db".into(), "worker".into(), "web".into()]),
        ));
        s.stop_timeout = Some(Duration::from_secs(90));
        let mut im = import(vec![s, service("worker")]);
        settle(&mut im, Duration::from_secs(30), &BTreeSet::new());
        let web = &im.services[0];
        let notes: Vec<String> = web.notes.iter().map(note_text).collect();
        assert_eq!(
            notes,
            [
                "Requires=db.service After=worker.service After=web.service: not in this config: add `depends_on = [\"db\"]` once those services are",
                "stop timeout 90s: shortened to 29s: the daemon's shutdown_timeout is 30s (raise it, then stop_timeout)",
            ]
        );
        // Carried: the schedule, and the dependency that comes with this import (not itself).
        let text = preview(&im);
        assert!(text.contains("restart_at = \"0 * * * *\""), "{text}");
        assert!(text.contains("depends_on = [\"worker\"]"), "{text}");
        check(&text).unwrap();

        // One already in the config counts too.
        let mut s = service("web");
        s.pending.push((
            "After=db.service".into(),
            Pending::DependsOn(vec!["db".into()]),
        ));
        let mut im = import(vec![s]);
        settle(
            &mut im,
            Duration::from_secs(30),
            &BTreeSet::from(["db".to_string()]),
        );
        assert!(im.services[0].notes.is_empty());
        assert!(preview(&im).contains("depends_on = [\"db\"]"));
    }

    #[test]
    fn many_variables_get_a_table_and_shell_lines_stay_strings() {
        let mut s = service("sh");
        s.command = Command::Shell("exec /bin/echo $A".into());
        s.env = (0..5).map(|i| (format!("V{i}"), i.to_string())).collect();
        s.memory_max = Some(1_500_000);
        let text = preview(&import(vec![s]));
        assert!(text.contains("command = \"exec /bin/echo $A\"\n"), "{text}");
        assert!(text.contains("[services.sh.env]\nV0 = \"0\"\n"), "{text}");
        assert!(text.contains("max = \"1500000B\""), "{text}");
        check(&text).unwrap();
    }
}
