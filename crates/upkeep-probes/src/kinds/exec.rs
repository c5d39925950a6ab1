//! `exec`: a command that exits 0 within the timeout.
//!
//! Spawned through the daemon's reaper (which `waitpid`s every child), in its own process
//! group, which is killed once the check is over (what the command left running in the
//! background, `sleep 9 & true`, piled up by the dozen before: issue 14) or abandoned at its
//! timeout.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

use upkeep_config::{ExecProbeConfig, Program};
use upkeep_sys::Reaper;

use crate::probe::ProbeOutcome;

pub(crate) struct ExecProbe {
    program: Program,
    cwd: Option<PathBuf>,
    reaper: Reaper,
}

/// Kills the probe's process group when the check ends, however it ends.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0 as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

impl ExecProbe {
    pub fn new(cfg: &ExecProbeConfig, reaper: Reaper) -> Self {
        Self {
            program: cfg.program.clone(),
            cwd: cfg.cwd.clone(),
            reaper,
        }
    }

    pub async fn check(&self) -> ProbeOutcome {
        let start = Instant::now();
        let mut cmd = self.program.command(self.cwd.as_deref());
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        // What services get of the daemon's environment: never its secrets.
        cmd.env_clear().envs(upkeep_sys::environ::inherited());
        let (child, exit) = match self.reaper.spawn(&mut cmd) {
            Ok(x) => x,
            Err(e) => {
                return ProbeOutcome::down(
                    format!("cannot run {}: {e}", self.program.display),
                    start.elapsed(),
                );
            }
        };
        let _group = KillOnDrop(child.id());
        let status = exit.await;
        match status {
            Ok(s) if s.success() => ProbeOutcome::up("exit code 0", start.elapsed()),
            Ok(s) => ProbeOutcome::down(
                format!("`{}` ended with {s}", self.program.display),
                start.elapsed(),
            ),
            Err(_) => ProbeOutcome::down("exit status lost", start.elapsed()),
        }
    }
}
