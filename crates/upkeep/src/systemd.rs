//! systemd: readiness and watchdog notifications, and the units `upkeep startup` and
//! `upkeep export systemd` write.
//!
//! Under `Type=notify` the daemon says READY=1 once its socket answers and pings the watchdog
//! at half of `WatchdogSec`, so systemd restarts a daemon that hangs, not only one that exits.
//!
//! Units are text systemd parses line by line, so every value from the config goes through
//! [`quote`] or [`plain`]: a value either reaches the process exactly as configured or the unit
//! is refused with a [`UnitError`], never written so that systemd reads something else.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use upkeep_config::{Config, ManagedConfig, RestartPolicy};
use upkeep_core::ServiceName;

pub fn notify_ready() {
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
}

/// Starts the watchdog pings if systemd asked for them (WATCHDOG_USEC).
pub fn spawn_watchdog() -> Option<tokio::task::JoinHandle<()>> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let every = Duration::from_micros(usec) / 2;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Watchdog]);
        }
    }))
}

/// A value a unit cannot carry as written: the unit is refused rather than written wrong.
#[derive(Debug, thiserror::Error)]
#[error("{subject} cannot be written as a systemd unit: {problem}")]
pub struct UnitError {
    /// `service `web`` or `the upkeep daemon`.
    subject: String,
    problem: String,
    hint: Option<String>,
}

impl UnitError {
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

/// Where a value goes, which decides what systemd makes of it (systemd.syntax(7),
/// systemd.service(5), systemd.exec(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A word of `ExecStart=`: quotes and C-style escapes (`\n`, `\x1b`) are read, `%` is a
    /// specifier and `$` a variable, so both are doubled.
    Exec,
    /// One `Environment=` assignment: quotes and C-style escapes are read, `%` is a
    /// specifier, but `$` means nothing and is written as it is.
    Environment,
}

/// Quotes one word for `place`. A word with whitespace, quotes, a backslash, `;` or a control
/// character is double-quoted, and its control characters are written as C-style escapes, so
/// a newline in an argument or a value stays in it instead of starting a directive of its own
/// (issue 14, D18b). Only NUL has no escape (systemd refuses `\x00`); it returns `Err`.
fn quote(word: &str, place: Place) -> Result<String, ()> {
    let mut inner = String::with_capacity(word.len());
    let mut needs_quotes = word.is_empty();
    for c in word.chars() {
        match c {
            '\0' => return Err(()),
            '%' => inner.push_str("%%"),
            '$' if place == Place::Exec => inner.push_str("$$"),
            '\\' | '"' => {
                needs_quotes = true;
                inner.push('\\');
                inner.push(c);
            }
            '\n' | '\t' | '\r' => {
                needs_quotes = true;
                inner.push_str(match c {
                    '\n' => r"\n",
                    '\t' => r"\t",
                    _ => r"\r",
                });
            }
            c if c.is_control() => {
                needs_quotes = true;
                if (c as u32) < 0x80 {
                    inner.push_str(&format!("\\x{:02x}", c as u32));
                } else {
                    inner.push_str(&format!("\\u{:04x}", c as u32));
                }
            }
            c => {
                needs_quotes |= c.is_whitespace() || c == '\'' || c == ';';
                inner.push(c);
            }
        }
    }
    Ok(if needs_quotes {
        format!("\"{inner}\"")
    } else {
        inner
    })
}

/// A value of a setting systemd reads as the rest of the line, with no quotes and no escapes
/// (`WorkingDirectory=`, `User=`): `%` is doubled, and what the line cannot carry (a control
/// character, whitespace or a backslash at the end) is refused.
fn plain(value: &str) -> Result<String, &'static str> {
    if value.contains(|c: char| c.is_control()) {
        return Err("a control character");
    }
    if value.ends_with(|c: char| c.is_whitespace() || c == '\\') {
        return Err("whitespace or a backslash at its end");
    }
    if value.starts_with(char::is_whitespace) {
        return Err("whitespace at its start");
    }
    Ok(value.replace('%', "%%"))
}

/// A name systemd takes in `Environment=` (env_name_is_valid: letters, digits and `_`, not
/// starting with a digit); another is dropped with a warning, so the unit would differ.
fn systemd_env_name(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with(|c: char| c.is_ascii_digit())
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A path as text, or why not: systemd reads units as UTF-8.
fn path_text<'a>(path: &'a Path, what: &str) -> Result<&'a str, String> {
    path.to_str()
        .ok_or_else(|| format!("its {what} {} is not UTF-8", path.display()))
}

/// The unit that runs the upkeep daemon itself.
pub fn daemon_unit(exe: &Path, config: &Config, user_mode: bool) -> Result<String, UnitError> {
    let err = |problem: String| UnitError {
        subject: "the upkeep daemon".into(),
        problem,
        hint: Some("move the binary or the config file to a path without such characters".into()),
    };
    let exec = |path: &Path, what: &str| {
        quote(path_text(path, what).map_err(err)?, Place::Exec)
            .map_err(|()| err(format!("its {what} path holds a NUL byte")))
    };
    let exe = exec(exe, "binary")?;
    let cfg = exec(&config.path, "config file")?;
    let stop = config.daemon.shutdown_timeout.as_secs() + 15;
    let mut u = String::new();
    let _ = write!(
        u,
        "[Unit]\nDescription=upkeep: keeps services running\nDocumentation=man:upkeep(1)\nAfter=network-online.target\nWants=network-online.target\n\n\
         [Service]\nType=notify\nNotifyAccess=main\nExecStart={exe} daemon -c {cfg}\nExecReload={exe} reload -c {cfg}\n\
         Restart=always\nRestartSec=1\nWatchdogSec=30\n\
         # `systemctl stop` (SIGTERM) stops every service; a crash, kill -9 or watchdog\n\
         # restart leaves them running, and the next daemon adopts them through the fd store.\n\
         KillMode=process\nFileDescriptorStoreMax=4096\nTimeoutStopSec={stop}\n\
         # upkeep gives each service a cgroup of its own below the unit's.\n\
         Delegate=yes\n\n\
         [Install]\nWantedBy={}\n",
        if user_mode {
            "default.target"
        } else {
            "multi-user.target"
        }
    );
    Ok(u)
}

/// A unit that runs one service under plain systemd, with the same settings. Its
/// `Environment=` lines hold the service's `env` and `env_file` values: write it where only
/// its owner can read it.
pub fn service_unit(name: &ServiceName, svc: &ManagedConfig) -> Result<String, UnitError> {
    let err = |problem: String, hint: &str| UnitError {
        subject: format!("service `{name}`"),
        problem,
        hint: Some(hint.to_owned()),
    };
    let nul = |what: &str| {
        err(
            format!("{what} holds a NUL byte"),
            "no process can be given a NUL byte; remove it",
        )
    };
    let mut u = String::new();
    let _ = writeln!(
        u,
        "[Unit]\nDescription={name} (exported from upkeep)\nAfter=network-online.target"
    );
    let _ = writeln!(
        u,
        "StartLimitIntervalSec={}\nStartLimitBurst={}",
        svc.window.as_secs().max(1),
        svc.max_restarts.max(1)
    );
    let _ = writeln!(u, "\n[Service]\nType=simple");
    let program = path_text(&svc.program.path, "program")
        .map_err(|p| err(p, "give the program by a path that is UTF-8"))?;
    let mut exec = vec![quote(program, Place::Exec).map_err(|()| nul("its program path"))?];
    for (i, arg) in svc.program.argv.iter().enumerate().skip(1) {
        exec.push(quote(arg, Place::Exec).map_err(|()| nul(&format!("argument {i}")))?);
    }
    let _ = writeln!(u, "ExecStart={}", exec.join(" "));
    if let Some(cwd) = &svc.cwd {
        let hint = "set cwd to a path without such characters (a symlink to the directory will do)";
        let cwd = path_text(cwd, "cwd").map_err(|p| err(p, hint))?;
        let cwd = plain(cwd).map_err(|what| {
            err(
                format!("its cwd holds {what}, which WorkingDirectory= cannot carry"),
                hint,
            )
        })?;
        let _ = writeln!(u, "WorkingDirectory={cwd}");
    }
    if let Some(user) = &svc.user {
        let user_name = plain(&user.name).map_err(|what| {
            err(
                format!("its user's name holds {what}, which User= cannot carry"),
                "name the user by another name",
            )
        })?;
        let _ = writeln!(u, "User={user_name}");
    }
    for (k, v) in &svc.env {
        if !systemd_env_name(k) {
            return Err(err(
                format!(
                    "env `{}`: systemd takes only names of letters, digits and `_` that do not start with a digit, and would drop it",
                    k.escape_debug()
                ),
                "rename the variable, e.g. DATABASE_URL",
            ));
        }
        // Never the value in a message: it may be a secret.
        let assignment = quote(&format!("{k}={v}"), Place::Environment)
            .map_err(|()| nul(&format!("the value of env `{k}`")))?;
        let _ = writeln!(u, "Environment={assignment}");
    }
    let restart = match svc.restart {
        RestartPolicy::Always => "always",
        RestartPolicy::OnFailure => "on-failure",
        RestartPolicy::Never => "no",
    };
    let signal = nix::sys::signal::Signal::try_from(svc.stop_signal)
        .map(|s| s.as_str())
        .unwrap_or("SIGTERM");
    let _ = writeln!(
        u,
        "Restart={restart}\nRestartSec={}ms\nKillMode=control-group\nKillSignal={signal}\nTimeoutStopSec={}",
        svc.backoff_min.as_millis(),
        svc.stop_timeout.as_secs().max(1)
    );
    let _ = writeln!(u, "\n[Install]\nWantedBy=multi-user.target");
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(w: &str) -> String {
        quote(w, Place::Exec).unwrap()
    }

    #[test]
    fn quoting_follows_systemd_syntax() {
        assert_eq!(exec("plain"), "plain");
        assert_eq!(exec("a b"), "\"a b\"");
        assert_eq!(exec("50%"), "50%%");
        assert_eq!(exec("$HOME"), "$$HOME");
        assert_eq!(exec("say \"hi\""), "\"say \\\"hi\\\"\"");
        assert_eq!(exec(""), "\"\"");
        assert_eq!(exec("a;b"), "\"a;b\"");
        // `$` means nothing in Environment= (systemd.exec(5)): doubling it changes the value.
        assert_eq!(
            quote("A=$HOME 50%", Place::Environment).unwrap(),
            "\"A=$HOME 50%%\""
        );
    }

    #[test]
    fn issue_14_control_characters_become_c_escapes_inside_quotes() {
        assert_eq!(
            exec("a\nExecStartPre=/bin/sh"),
            r#""a\nExecStartPre=/bin/sh""#
        );
        assert_eq!(exec("\x1b[2J\t\r\x7f\u{9b}"), r#""\x1b[2J\t\r\x7f\u009b""#);
        assert_eq!(
            quote("K=v\nUser=root", Place::Environment).unwrap(),
            r#""K=v\nUser=root""#
        );
        assert!(quote("a\0b", Place::Exec).is_err());
    }

    #[test]
    fn issue_14_plain_settings_refuse_what_a_line_cannot_carry() {
        assert_eq!(plain("/srv/my app/50%").unwrap(), "/srv/my app/50%%");
        for bad in ["/a\nUser=root", "/a\tb", "/a ", "/a\\", " /a", "/a\x1b"] {
            assert!(plain(bad).is_err(), "{bad:?}");
        }
        assert!(systemd_env_name("DATABASE_URL") && systemd_env_name("_x1"));
        for bad in ["1A", "A-B", "a.b", "", "A\nB"] {
            assert!(!systemd_env_name(bad), "{bad:?}");
        }
    }

    /// The Debian package ships the unit `upkeep startup` writes for its paths (the binary in
    /// /usr/bin, the config it ships in /etc/upkeep): the same text, so the two never drift.
    #[test]
    fn the_packaged_unit_is_the_one_startup_writes() {
        let config_path = Path::new("/etc/upkeep/upkeep.toml");
        let shipped_config = include_str!("../debian/upkeep.toml");
        let cfg = upkeep_config::parse(config_path, shipped_config).unwrap();
        let unit = daemon_unit(Path::new("/usr/bin/upkeep"), &cfg, false).unwrap();
        assert_eq!(unit, include_str!("../debian/upkeep.service"));
        // A daemon that dies leaves its services to the next, which adopts them through the fd
        // store (issue 18, item 8): systemd must neither kill them nor refuse the store.
        assert!(unit.contains("\nKillMode=process\n"), "{unit}");
        assert!(unit.contains("\nFileDescriptorStoreMax=4096\n"), "{unit}");
    }

    #[test]
    fn service_unit_carries_the_settings() {
        let toml = "[services.web]\ncommand = \"sleep 1000 & wait\"\nrestart = \"on-failure\"\nenv = { A = \"x y\" }\n";
        let cfg = upkeep_config::parse(Path::new("/tmp/u.toml"), toml).unwrap();
        let unit = service_unit(
            &ServiceName::new("web").unwrap(),
            cfg.services
                .values()
                .next()
                .unwrap()
                .managed
                .as_ref()
                .unwrap(),
        )
        .unwrap();
        assert!(
            unit.contains("ExecStart=/bin/sh -c \"sleep 1000 & wait\"\n"),
            "{unit}"
        );
        assert!(unit.contains("Restart=on-failure\n"));
        assert!(unit.contains("Environment=\"A=x y\"\n"));
    }
}
