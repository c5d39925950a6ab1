//! From a [`ManagedConfig`] to a running process group.
//!
//! With a cgroup: `clone3(CLONE_INTO_CGROUP)`, so the process starts inside it (see
//! `upkeep_sys::clone` for why neither moving it afterwards nor before exec will do). Without:
//! std's `Command` (not tokio's: its exits would race the reaper's `waitpid(-1)`) with
//! `process_group(0)`, which std turns into `posix_spawn` with `POSIX_SPAWN_SETPGROUP`
//! (vfork-fast) unless a user switch or a passed descriptor (`ready = { fd = N }`) forces a
//! plain fork.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Stdio;

use tokio::sync::oneshot;
use upkeep_config::ManagedConfig;
use upkeep_core::ExitStatus;
use upkeep_sys::{Cgroup, Reaper, clone};

const PIPE_SIZE: i32 = 1024 * 1024;

pub(crate) struct Spawned {
    pub pid: u32,
    pub start_ticks: u64,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub exit: oneshot::Receiver<ExitStatus>,
}

/// Spawns the service's process with `mark` in its environment (after the service's own
/// variables, so that none can override it: the readiness variables, then the mark), inside
/// `cgroup` if it has one, with `pass_fd` (ours, theirs) as its fd `theirs`.
pub(crate) fn spawn(
    reaper: &Reaper,
    mark: &[(&'static str, String)],
    cgroup: Option<&Cgroup>,
    cfg: &ManagedConfig,
    pass_fd: Option<(RawFd, i32)>,
) -> std::io::Result<Spawned> {
    let spawned = match cgroup {
        Some(cg) => match spawn_into(reaper, mark, cg, cfg, pass_fd) {
            Ok(s) => Some(s),
            // An old kernel, or a cgroup we may not create into: run it outside, in its
            // process group, with its mark and run record.
            Err(clone::SpawnError::Clone(e)) => {
                tracing::warn!("spawning outside the service's cgroup: clone3 failed: {e}");
                None
            }
            Err(clone::SpawnError::Child(e)) => return Err(e),
        },
        None => None,
    };
    let (pid, stdout, stderr, exit) = match spawned {
        Some(s) => s,
        None => spawn_command(reaper, mark, cfg, pass_fd)?,
    };
    for fd in [&stdout, &stderr] {
        // A 1 MiB pipe (the default limit for unprivileged users, pipe-max-size) absorbs
        // bursts so that a chatty service does not block on a full 64 KiB pipe while the
        // reader is busy. Pages are allocated only when used. Best effort.
        let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE));
    }
    // The process exists until the reaper collects it, so /proc has it (0 only if it already
    // exited; a stored 0 never matches a live process).
    let start_ticks = upkeep_sys::procfs::start_ticks(pid).unwrap_or(0);
    Ok(Spawned {
        pid,
        start_ticks,
        stdout,
        stderr,
        exit,
    })
}

type Started = (u32, OwnedFd, OwnedFd, oneshot::Receiver<ExitStatus>);

/// With std's `Command` (posix_spawn: vfork-fast), where there is no cgroup.
fn spawn_command(
    reaper: &Reaper,
    mark: &[(&'static str, String)],
    cfg: &ManagedConfig,
    pass_fd: Option<(RawFd, i32)>,
) -> std::io::Result<Started> {
    let mut cmd = cfg.program.command(cfg.cwd.as_deref());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    if let Some(user) = &cfg.user {
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd.env_clear()
        .envs(upkeep_sys::environ::inherited())
        .envs(overrides(mark, cfg));
    // Number `to` is held for the spawn (if free), so that std's own descriptors (its error
    // pipe) cannot take it and be overwritten in the child.
    let _held = match pass_fd {
        Some((from, to)) => {
            // SAFETY: dup2 is async-signal-safe, and `from` stays open in this process until
            // the spawn returns.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::dup2(from, to) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            hold(to)
        }
        None => None,
    };
    let (mut child, exit) = reaper.spawn(&mut cmd)?;
    let stdout: OwnedFd = child.stdout.take().expect("stdout is piped").into();
    let stderr: OwnedFd = child.stderr.take().expect("stderr is piped").into();
    // `child` is dropped without waiting: the reaper owns its exit.
    Ok((child.id(), stdout, stderr, exit))
}

/// Takes descriptor number `n` with /dev/null, if nothing has it, until dropped. Race-free:
/// `F_DUPFD` takes the lowest free number from `n` up, so another thread opening a file can
/// never be overwritten here.
fn hold(n: i32) -> Option<OwnedFd> {
    let null = std::fs::File::open("/dev/null").ok()?;
    // SAFETY: duplicates a descriptor we own into a fresh one that only we hold.
    let got = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, n) };
    if got < 0 {
        return None;
    }
    // SAFETY: fcntl just made it.
    let fd = unsafe { OwnedFd::from_raw_fd(got) };
    (got == n).then_some(fd)
}

/// Straight into the service's cgroup (see `upkeep_sys::clone`).
fn spawn_into(
    reaper: &Reaper,
    mark: &[(&'static str, String)],
    cgroup: &Cgroup,
    cfg: &ManagedConfig,
    pass_fd: Option<(RawFd, i32)>,
) -> Result<Started, clone::SpawnError> {
    let exec = clone::Exec {
        path: &cfg.program.path,
        argv: &cfg.program.argv,
        env: clone::child_env(overrides(mark, cfg)),
        cwd: cfg.cwd.as_deref(),
        user: cfg.user.as_ref().map(|u| (u.uid, u.gid)),
        pass_fd,
    };
    let (pid, (stdout, stderr), exit) = reaper.spawn_with(|| {
        let s = clone::spawn_into(&exec, cgroup.dir())?;
        Ok((s.pid, (s.stdout, s.stderr)))
    })?;
    Ok((pid, stdout, stderr, exit))
}

/// What the service's environment adds to the daemon's, in order (a later one wins): the
/// user's HOME, USER and LOGNAME, then its `env_file` and `env`, then the mark.
fn overrides<'a>(
    mark: &'a [(&'static str, String)],
    cfg: &'a ManagedConfig,
) -> impl Iterator<Item = (&'a OsStr, &'a OsStr)> {
    let user = cfg.user.iter().flat_map(|u| {
        [
            (OsStr::new("HOME"), u.home.as_os_str()),
            (OsStr::new("USER"), OsStr::new(u.name.as_str())),
            (OsStr::new("LOGNAME"), OsStr::new(u.name.as_str())),
        ]
    });
    let env = cfg
        .env
        .iter()
        .map(|(k, v)| (OsStr::new(k.as_str()), OsStr::new(v.as_str())));
    let mark = mark
        .iter()
        .map(|(k, v)| (OsStr::new(*k), OsStr::new(v.as_str())));
    user.chain(env).chain(mark)
}
