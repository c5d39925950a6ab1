//! From a [`ManagedConfig`] to a running process group.
//!
//! std's `Command` (not tokio's: its exits would race the reaper's `waitpid(-1)`) with
//! `process_group(0)`, which std turns into `posix_spawn` with `POSIX_SPAWN_SETPGROUP`
//! (vfork-fast) unless a user switch or entering the service's cgroup before exec forces a
//! plain fork.

use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use tokio::sync::oneshot;
use upkeep_config::ManagedConfig;
use upkeep_core::ExitStatus;

use upkeep_sys::{Cgroup, Reaper};

const PIPE_SIZE: i32 = 1024 * 1024;

pub(crate) struct Spawned {
    pub pid: u32,
    pub start_ticks: u64,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub exit: oneshot::Receiver<ExitStatus>,
}

/// Spawns the service's process with `mark` in its environment (after the service's own
/// variables, so that none can override it).
pub(crate) fn spawn(
    reaper: &Reaper,
    mark: &[(&'static str, String)],
    cgroup: Option<&Cgroup>,
    cfg: &ManagedConfig,
) -> std::io::Result<Spawned> {
    let mut cmd = cfg.program.command(cfg.cwd.as_deref());
    if let Some(cg) = cgroup {
        cg.enter_before_exec(&mut cmd);
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(user) = &cfg.user {
        cmd.uid(user.uid)
            .gid(user.gid)
            .env("HOME", &user.home)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
    }
    cmd.envs(cfg.env.iter().map(|(k, v)| (k, v)));
    cmd.envs(mark.iter().map(|(k, v)| (k, v)));
    let (mut child, exit) = reaper.spawn(&mut cmd)?;
    let pid = child.id();
    let stdout: OwnedFd = child.stdout.take().expect("stdout is piped").into();
    let stderr: OwnedFd = child.stderr.take().expect("stderr is piped").into();
    for fd in [&stdout, &stderr] {
        // A 1 MiB pipe (the default limit for unprivileged users, pipe-max-size) absorbs
        // bursts so that a chatty service does not block on a full 64 KiB pipe while the
        // reader is busy. Pages are allocated only when used. Best effort.
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
    // The process exists until the reaper collects it, so /proc has it (0 only if it already
    // exited; a stored 0 never matches a live process).
    let start_ticks = upkeep_sys::procfs::start_ticks(pid).unwrap_or(0);
    // `child` is dropped without waiting: the reaper owns its exit.
    Ok(Spawned {
        pid,
        start_ticks,
        stdout,
        stderr,
        exit,
    })
}
