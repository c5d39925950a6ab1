//! systemd: readiness and watchdog notifications, and the units `upkeep startup` and
//! `upkeep export systemd` write.
//!
//! Under `Type=notify` the daemon says READY=1 once its socket answers and pings the watchdog
//! at half of `WatchdogSec`, so systemd restarts a daemon that hangs, not only one that exits.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use upkeep_config::{Config, ManagedConfig, RestartPolicy};

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

/// Quotes one word for a systemd command line or assignment (systemd.syntax(7)): `%` and `$`
/// are doubled so systemd does not expand them, and words with spaces or quotes are quoted.
fn quote(word: &str) -> String {
    let escaped = word.replace('%', "%%").replace('$', "$$");
    if !escaped.is_empty() && !escaped.contains(|c: char| c.is_whitespace() || "\"'\\;".contains(c))
    {
        return escaped;
    }
    let inner = escaped.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{inner}\"")
}

/// The unit that runs the upkeep daemon itself.
pub fn daemon_unit(exe: &Path, config: &Config, user_mode: bool) -> String {
    let exe = quote(&exe.display().to_string());
    let cfg = quote(&config.path.display().to_string());
    let stop = config.daemon.shutdown_timeout.as_secs() + 15;
    let mut u = String::new();
    let _ = write!(
        u,
        "[Unit]\nDescription=upkeep: keeps services running\nAfter=network-online.target\nWants=network-online.target\n\n\
         [Service]\nType=notify\nNotifyAccess=main\nExecStart={exe} daemon -c {cfg}\nExecReload={exe} reload -c {cfg}\n\
         Restart=always\nRestartSec=1\nWatchdogSec=30\n\
         # upkeep stops every service's process group itself; then systemd cleans up the rest.\n\
         KillMode=mixed\nTimeoutStopSec={stop}\n\n\
         [Install]\nWantedBy={}\n",
        if user_mode {
            "default.target"
        } else {
            "multi-user.target"
        }
    );
    u
}

/// A unit that runs one service under plain systemd, with the same settings.
pub fn service_unit(name: &str, svc: &ManagedConfig) -> String {
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
    let argv: Vec<String> = svc.program.argv.iter().map(|a| quote(a)).collect();
    let mut exec = vec![quote(&svc.program.path.display().to_string())];
    exec.extend(argv.into_iter().skip(1));
    let _ = writeln!(u, "ExecStart={}", exec.join(" "));
    if let Some(cwd) = &svc.cwd {
        let _ = writeln!(u, "WorkingDirectory={}", quote(&cwd.display().to_string()));
    }
    if let Some(user) = &svc.user {
        let _ = writeln!(u, "User={}", user.name);
    }
    for (k, v) in &svc.env {
        let _ = writeln!(u, "Environment={}", quote(&format!("{k}={v}")));
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
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_follows_systemd_syntax() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("50%"), "50%%");
        assert_eq!(quote("$HOME"), "$$HOME");
        assert_eq!(quote("say \"hi\""), "\"say \\\"hi\\\"\"");
    }

    #[test]
    fn service_unit_carries_the_settings() {
        let toml = "[services.web]\ncommand = \"sleep 1000 & wait\"\nrestart = \"on-failure\"\nenv = { A = \"x y\" }\n";
        let cfg = upkeep_config::parse(Path::new("/tmp/u.toml"), toml).unwrap();
        let unit = service_unit(
            "web",
            cfg.services
                .values()
                .next()
                .unwrap()
                .managed
                .as_ref()
                .unwrap(),
        );
        assert!(
            unit.contains("ExecStart=/bin/sh -c \"sleep 1000 & wait\"\n"),
            "{unit}"
        );
        assert!(unit.contains("Restart=on-failure\n"));
        assert!(unit.contains("Environment=\"A=x y\"\n"));
    }
}
