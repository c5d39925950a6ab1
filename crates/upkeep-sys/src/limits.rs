//! The open-file limit: the daemon raises its own, its children get the one it started with.
//!
//! A daemon watching thousands of endpoints holds a socket per check in flight, plus two pipes
//! and two log files per service; the usual soft limit of 1,024 runs out long before the
//! hard limit does. Children must not inherit the raised limit: programs that use `select()`
//! break on descriptors past 1,023, which is why the soft limit is low in the first place
//! (systemd and Go's runtime do the same). std spawns through `posix_spawn`, which cannot set
//! a child's limits, so [`Reaper::spawn`](crate::Reaper::spawn) puts the old limit back with
//! `prlimit` on the child right after it starts.

use std::io;
use std::sync::OnceLock;

/// The soft limit the daemon started with, set only when [`raise_open_files`] raised it.
static INHERITED_SOFT: OnceLock<libc::rlim_t> = OnceLock::new();

fn get(pid: libc::pid_t) -> io::Result<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit with a null new limit only writes the current one into `lim`.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut lim) };
    if rc == 0 {
        Ok(lim)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn set(pid: libc::pid_t, lim: libc::rlimit) -> io::Result<()> {
    // SAFETY: `lim` is a valid rlimit; the old limit is not asked for.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &lim, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises this process's soft open-file limit to its hard limit. Returns (before, after).
/// Call it once, at start-up, before any child is spawned.
pub fn raise_open_files() -> io::Result<(libc::rlim_t, libc::rlim_t)> {
    let lim = get(0)?;
    if lim.rlim_cur >= lim.rlim_max {
        return Ok((lim.rlim_cur, lim.rlim_cur));
    }
    set(
        0,
        libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        },
    )?;
    let _ = INHERITED_SOFT.set(lim.rlim_cur);
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Gives a just-spawned child the soft limit the daemon started with. Best effort: a child
/// that is already gone, or that changed user without the daemon being root, keeps its own.
pub(crate) fn restore_for_child(pid: u32) {
    let Some(&soft) = INHERITED_SOFT.get() else {
        return;
    };
    let pid = pid as libc::pid_t;
    if let Ok(lim) = get(pid) {
        let _ = set(
            pid,
            libc::rlimit {
                rlim_cur: soft.min(lim.rlim_max),
                rlim_max: lim.rlim_max,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raised_in_the_daemon_restored_in_children() {
        // Lower the soft limit first (allowed without privilege), so there is something to raise.
        let hard = get(0).unwrap().rlim_max;
        let low = 512.min(hard);
        set(
            0,
            libc::rlimit {
                rlim_cur: low,
                rlim_max: hard,
            },
        )
        .unwrap();
        let (before, after) = raise_open_files().unwrap();
        assert_eq!((before, after), (low, hard));
        assert_eq!(get(0).unwrap().rlim_cur, hard);

        let child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        restore_for_child(child.id());
        let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let soft: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
        assert_eq!(soft, low, "{line}");
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
