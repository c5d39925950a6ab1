//! Process trees: every service runs in its own process group (and, where the daemon may make
//! one, its own cgroup), and stop, restart and crash clean-up act on the whole tree, never on
//! the leader alone.

use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::time::Instant;

use upkeep_sys::{Cgroup, Leftovers, Reaper, group_exists};

/// How a stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StopOutcome {
    /// The stop signal was sent (something was still running).
    pub signalled: bool,
    /// The tree outlived `stop_timeout` and got SIGKILL.
    pub killed: bool,
    /// Processes were still there even after SIGKILL and a grace period (uninterruptible sleep).
    pub lingering: bool,
}

/// After SIGKILL, how long to wait for the kernel to tear processes down before giving up.
const KILL_GRACE: Duration = Duration::from_secs(5);

fn to_signal(signal: i32) -> Signal {
    Signal::try_from(signal).unwrap_or(Signal::SIGTERM)
}

/// One run of a service: the leader's process group, and the service's cgroup, which also
/// holds what left the group (a double fork with `setsid`).
#[derive(Clone, Copy)]
pub(crate) struct Tree<'a> {
    pub pgid: u32,
    pub cgroup: Option<&'a Cgroup>,
    /// Its processes are not our children: a run adopted from a daemon that was killed
    /// (`fdstore.rs` in the binary), whose processes went to systemd. No SIGCHLD comes when
    /// they end, so a stop checks on them on a short timer instead.
    pub orphaned: bool,
}

impl Tree<'_> {
    /// True while any of it is left (the group's zombies included, which the reaper is about
    /// to collect).
    pub fn exists(&self) -> bool {
        group_exists(self.pgid) || self.cgroup.is_some_and(Cgroup::populated)
    }

    /// Sends `signal` once to each live process of the tree (its group's members and its
    /// cgroup's, together): an operator's signal, which a process must get once (two
    /// SIGHUPs are two reloads). Stops use [`Tree::signal`], where twice does no harm. True
    /// if any got it.
    pub(crate) fn signal_each_once(&self, signal: Signal) -> bool {
        let mut pids: std::collections::BTreeSet<u32> = upkeep_sys::procfs::group_states(self.pgid)
            .into_iter()
            .filter(|(_, state)| *state != 'Z')
            .map(|(pid, _)| pid)
            .collect();
        if let Some(cg) = self.cgroup {
            pids.extend(cg.pids());
        }
        let mut any = false;
        for pid in pids {
            any |= nix::sys::signal::kill(Pid::from_raw(pid as i32), signal).is_ok();
        }
        any
    }

    fn signal(&self, signal: Signal) -> bool {
        let group = killpg(Pid::from_raw(self.pgid as i32), signal).is_ok();
        let cgroup = self.cgroup.is_some_and(|c| c.signal(signal));
        group || cgroup
    }
}

/// Stops `tree`: `signal` to every member, wait up to `timeout`, then SIGKILL. Returns once it
/// is gone (or lingers past a grace period after SIGKILL).
pub(crate) async fn stop_tree(
    reaper: &Reaper,
    tree: Tree<'_>,
    signal: i32,
    timeout: Duration,
) -> StopOutcome {
    let mut out = StopOutcome::default();
    if !tree.exists() {
        return out;
    }
    out.signalled = tree.signal(to_signal(signal));
    // A stopped (SIGSTOP) process does not act on SIGTERM until continued.
    tree.signal(Signal::SIGCONT);
    let gone = || !tree.exists();
    let wait = |deadline: Instant| async move {
        if tree.orphaned {
            wait_on_timer(gone, deadline).await
        } else {
            reaper.wait_until(gone, deadline).await
        }
    };
    if wait(Instant::now() + timeout).await {
        return out;
    }
    out.killed = tree.signal(Signal::SIGKILL);
    // Once more a moment later, for a child forked while the first round went by.
    if !wait(Instant::now() + Duration::from_millis(200)).await {
        tree.signal(Signal::SIGKILL);
    }
    out.lingering = !wait(Instant::now() + KILL_GRACE).await;
    if out.lingering {
        tracing::warn!(
            pgid = tree.pgid,
            "processes of the service survive SIGKILL (uninterruptible sleep?)"
        );
    }
    out
}

/// Waits until `gone()` holds, checked every 20 ms, or `deadline`: for processes that are not
/// our children, whose ends no SIGCHLD tells us of (as in [`stop_leftovers`]).
async fn wait_on_timer(gone: impl Fn() -> bool, deadline: Instant) -> bool {
    loop {
        if gone() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep((deadline - now).min(Duration::from_millis(20))).await;
    }
}

/// Stops what earlier daemons left (see `upkeep_sys::Lineage::leftovers`), each with its
/// service's stop signal and timeout, all at once. Those processes are not our children (they
/// went to PID 1, or to whoever was subreaper, when that daemon died), so no SIGCHLD tells us
/// when they are gone: this is the one place that checks on a short timer, once at start-up,
/// with one pass over /proc per check for all of them.
pub async fn stop_leftovers(all: &[(&Leftovers, i32, Duration)]) -> Vec<StopOutcome> {
    let start = Instant::now();
    let mut out: Vec<StopOutcome> = all
        .iter()
        .map(|(left, signal, _)| {
            let signalled = left.signal(to_signal(*signal));
            left.signal(Signal::SIGCONT);
            StopOutcome {
                signalled,
                ..Default::default()
            }
        })
        .collect();
    let mut alive: Vec<bool> = vec![true; all.len()];
    loop {
        let procs = tokio::task::spawn_blocking(upkeep_sys::procfs::all_processes)
            .await
            .unwrap_or_default();
        let now = Instant::now();
        let mut waiting = false;
        for (i, (left, _, timeout)) in all.iter().enumerate() {
            alive[i] = alive[i] && left.alive_in(&procs);
            if !alive[i] {
                continue;
            }
            if !out[i].killed && now >= start + *timeout {
                out[i].killed = left.signal(Signal::SIGKILL);
            }
            if out[i].killed && now >= start + *timeout + KILL_GRACE {
                out[i].lingering = true;
            } else {
                waiting = true;
            }
        }
        if !waiting {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// One that stops on its signal, one that ignores it and is killed at its timeout: both
    /// handled in one pass, each on its own clock.
    #[tokio::test]
    async fn leftovers_are_stopped_together_each_on_its_own_timeout() {
        let spawn = |script: &str| {
            std::process::Command::new("sh")
                .args(["-c", script])
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let mut polite = spawn("exec sleep 100");
        let mut stubborn = spawn("trap '' TERM; sleep 100 & wait");
        // Let the trap be set before the signal comes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let left = |pid: u32| Leftovers {
            pgids: [pid].into(),
            ..Default::default()
        };
        let (a, b) = (left(polite.id()), left(stubborn.id()));
        let out = stop_leftovers(&[
            (&a, 15, Duration::from_secs(10)),
            (&b, 15, Duration::from_millis(300)),
        ])
        .await;
        assert!(out[0].signalled && !out[0].killed, "{:?}", out[0]);
        assert!(
            out[1].signalled && out[1].killed && !out[1].lingering,
            "{:?}",
            out[1]
        );
        polite.wait().unwrap();
        stubborn.wait().unwrap();
        // Its background sleep too (a zombie until PID 1 reaps it, which is not ours to wait).
        assert_eq!(upkeep_sys::procfs::group_live_members(stubborn.id()), 0);
    }
}
