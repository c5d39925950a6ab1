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
}

impl Tree<'_> {
    /// True while any of it is left (the group's zombies included, which the reaper is about
    /// to collect).
    pub fn exists(&self) -> bool {
        group_exists(self.pgid) || self.cgroup.is_some_and(Cgroup::populated)
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
    if reaper.wait_until(gone, Instant::now() + timeout).await {
        return out;
    }
    out.killed = tree.signal(Signal::SIGKILL);
    out.lingering = !reaper.wait_until(gone, Instant::now() + KILL_GRACE).await;
    if out.lingering {
        tracing::warn!(
            pgid = tree.pgid,
            "processes of the service survive SIGKILL (uninterruptible sleep?)"
        );
    }
    out
}

/// Stops what an earlier daemon left of a service (see `upkeep_sys::Lineage::leftovers`).
/// Those processes are not our children (they went to PID 1, or to whoever was subreaper,
/// when that daemon died), so no SIGCHLD tells us when they are gone: this is the one place
/// that checks on a short timer, once per service at start-up.
pub async fn stop_leftovers(left: &Leftovers, signal: i32, timeout: Duration) -> StopOutcome {
    let mut out = StopOutcome {
        signalled: left.signal(to_signal(signal)),
        ..Default::default()
    };
    left.signal(Signal::SIGCONT);
    let gone = |deadline: Instant| async move {
        while Instant::now() < deadline {
            if !left.alive() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        !left.alive()
    };
    if !gone(Instant::now() + timeout).await {
        out.killed = left.signal(Signal::SIGKILL);
        out.lingering = !gone(Instant::now() + KILL_GRACE).await;
    }
    out
}
