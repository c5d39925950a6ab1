//! The end of a process that is not our child, seen through a pidfd (pidfd_open(2)).
//!
//! A daemon killed under systemd with `KillMode=process` leaves its services running; their
//! parent is then systemd (or whichever subreaper is nearest), which reaps them, so the next
//! daemon cannot `waitpid` them and never learns their exit status. A pidfd becomes readable
//! the moment the process ends, whoever reaps it: that is all this module offers, and why the
//! exit it reports has no code and no signal.
//!
//! It does not decide what to adopt (the binary's `fdstore.rs` does) and reaps nothing (the
//! [`crate::Reaper`] reaps our own children).

use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;
use upkeep_core::ExitStatus;

/// A pidfd for `pid` if it is the process that started at `start_ticks` and is still running
/// (not a zombie). The pidfd is taken first and the start time checked after: a pidfd names
/// one process for good, so a pid reused after the check cannot be mistaken for it.
pub fn open(pid: u32, start_ticks: u64) -> Option<OwnedFd> {
    let pid_t = libc::pid_t::try_from(pid).ok().filter(|p| *p > 1)?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid_t, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: a descriptor the kernel just gave us, owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // pidfd_open(2) gives no close-on-exec flag of its own before PIDFD_NONBLOCK; set it.
    let _ = nix::fcntl::fcntl(
        &fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    (crate::procfs::running_start_ticks(pid) == Some(start_ticks)).then_some(fd)
}

/// Watches `pid` (which started at `start_ticks`) end: the receiver gets an exit with no code
/// and no signal (unknown: another process reaped it) when it does. None if it is not that
/// process or has ended already. Needs a tokio runtime.
pub fn watch_exit(pid: u32, start_ticks: u64) -> Option<oneshot::Receiver<ExitStatus>> {
    let fd = open(pid, start_ticks)?;
    // SAFETY: an OwnedFd's descriptor is valid and stays the same until the AsyncFd drops it.
    let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok()?;
    let (tx, rx) = oneshot::channel();
    tokio::spawn(async move {
        // Readable once the process has ended (a zombie counts: it runs no more).
        let _ = fd.readable().await;
        let _ = tx.send(ExitStatus {
            code: None,
            signal: None,
        });
    });
    Some(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that is not the test's child (a grandchild, left to PID 1 or a subreaper):
    /// its end is seen; a wrong start time is refused.
    #[tokio::test]
    async fn the_end_of_a_process_that_is_not_our_child_is_seen() {
        // Its output elsewhere: `output()` waits for every writer of the pipe, and a sleep
        // holding it had ended by then (CI, session 10: "it runs" failed).
        let out = std::process::Command::new("sh")
            .args(["-c", "sleep 1000 >/dev/null 2>&1 & echo $!"])
            .output()
            .unwrap();
        let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
        let ticks = crate::procfs::start_ticks(pid).unwrap();
        assert!(open(pid, ticks + 1).is_none(), "another start time");
        let exit = watch_exit(pid, ticks).expect("it runs");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let status = tokio::time::timeout(std::time::Duration::from_secs(20), exit)
            .await
            .expect("its end within 20 s")
            .unwrap();
        assert_eq!(status.code, None);
        assert_eq!(status.signal, None);
        assert!(watch_exit(pid, ticks).is_none(), "ended: nothing to watch");
    }
}
