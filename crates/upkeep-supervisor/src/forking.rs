//! Following a forking daemon (`type = "forking"`, systemd's `Type=forking`): its start
//! command forks the real daemon into the background and exits; the daemon writes its pid to
//! `pid_file`. This file turns that into a main process the supervisor can watch.
//!
//! It does not stop anything on failure (the supervisor stops the run's tree) and does not
//! decide on restarts. Input: the start command's exit, the PID file, the service's cgroup.
//! Output: the daemon's pid, start time and exit, or why the start failed.
//!
//! Why trust the pid: a PID file is anyone's word (a stale one can name a stranger's process
//! after a reboot). The pid counts only if the process is the service's own: inside the
//! service's cgroup when it has one; without one, re-parented to this daemon (an orphan of
//! our tree: we are the child subreaper, so a daemon that forked away from the start
//! command comes to us, and nothing else does) and started after the start command.
//!
//! Its exit: once re-parented, the daemon is our child, and the reaper's `waitpid(-1)` reaps
//! it; [`Reaper::watch`] registers for that exit like a spawn does, so it comes the moment
//! the daemon ends, with its status.
//!
//! The PID file is looked at on a short timer, doubling from 5 ms to 100 ms: the daemon may
//! write it after its parent exited (nginx does), and this wait is bounded and once per
//! start, like the start-up sweep of leftovers.

use std::path::Path;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use upkeep_core::ExitStatus;
use upkeep_sys::{Cgroup, Reaper};

/// The daemon a forking service's start command left running.
pub(crate) struct Followed {
    pub pid: u32,
    pub start_ticks: u64,
    /// Its process group (the daemon's own after a `setsid`, else the start command's).
    pub pgid: u32,
    pub exit: oneshot::Receiver<ExitStatus>,
}

/// Waits for the start command (`starter`, whose exit is `starter_exit`) to exit and for
/// `pid_file` to name a process of the service, each within `timeout`.
pub(crate) async fn follow(
    reaper: &Reaper,
    starter: u32,
    starter_exit: oneshot::Receiver<ExitStatus>,
    pid_file: &Path,
    timeout: Duration,
    cgroup: Option<&Cgroup>,
) -> Result<Followed, String> {
    let starter_ticks = upkeep_sys::procfs::start_ticks(starter).unwrap_or(0);
    let status = match tokio::time::timeout(timeout, starter_exit).await {
        Ok(Ok(status)) => status,
        Ok(Err(_)) => ExitStatus {
            code: None,
            signal: None,
        },
        Err(_) => {
            return Err(format!(
                "the start command (pid {starter}) did not exit within {timeout:?}; a forking service's command must return once its daemon runs"
            ));
        }
    };
    if !status.success() {
        return Err(format!("the start command failed ({status})"));
    }
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    let mut last: String;
    loop {
        match read_pid(pid_file) {
            Ok(pid) => match belongs(pid, starter_ticks, cgroup) {
                Ok(()) => {
                    if let Some(exit) = reaper.watch(pid) {
                        let proc = upkeep_sys::procfs::process(pid);
                        return Ok(Followed {
                            pid,
                            start_ticks: proc.as_ref().map_or(0, |p| p.start_ticks),
                            pgid: proc.map_or(pid, |p| p.pgrp),
                            exit,
                        });
                    }
                    last = format!("it names pid {pid}, which has exited");
                }
                Err(why) => last = format!("it names pid {pid}, {why}"),
            },
            Err(why) => last = why,
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no usable PID file {} within {timeout:?} of the start command's exit: {last}",
                pid_file.display()
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The pid in a PID file: one decimal number (surrounding blanks allowed), above 1.
fn read_pid(path: &Path) -> Result<u32, String> {
    let text = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "it does not exist".to_owned(),
        _ => format!("it cannot be read ({e})"),
    })?;
    // A PID file is a line; anything longer is not one (and is not read further).
    let text = String::from_utf8_lossy(&text[..text.len().min(64)]).into_owned();
    match text.trim().parse::<u32>() {
        Ok(pid) if pid > 1 => Ok(pid),
        _ => Err(format!(
            "it does not hold a pid (`{}`)",
            text.trim().escape_debug()
        )),
    }
}

/// Whether `pid` is the service's (see the opening comment).
fn belongs(pid: u32, starter_ticks: u64, cgroup: Option<&Cgroup>) -> Result<(), String> {
    let Some(p) = upkeep_sys::procfs::process(pid) else {
        return Err("which is not running".into());
    };
    if p.state == 'Z' {
        return Err("which has exited".into());
    }
    match cgroup {
        Some(cg) if cg.pids().contains(&pid) => Ok(()),
        Some(_) => Err("which is not in the service's cgroup".into()),
        None if p.ppid == std::process::id() && p.start_ticks >= starter_ticks => Ok(()),
        None => Err(
            "which is not a process the start command left (its parent is not this daemon)".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_files_hold_one_number() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.pid");
        assert_eq!(read_pid(&f).unwrap_err(), "it does not exist");
        std::fs::write(&f, "4242\n").unwrap();
        assert_eq!(read_pid(&f), Ok(4242));
        std::fs::write(&f, "1\n").unwrap();
        assert!(read_pid(&f).is_err());
        std::fs::write(&f, "42x\n").unwrap();
        assert!(read_pid(&f).unwrap_err().contains("does not hold a pid"));
    }

    #[test]
    fn a_stranger_is_not_the_service() {
        // PID 1 is no orphan of ours.
        let e = belongs(std::process::id(), 0, None).unwrap_err();
        assert!(e.contains("parent is not this daemon"), "{e}");
    }
}
