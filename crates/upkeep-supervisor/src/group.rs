//! Process groups: every service runs in its own, and stop, restart and crash clean-up act on
//! the whole group, never on the leader alone.

use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::time::Instant;

use upkeep_sys::{Reaper, group_exists};

/// How a group stop went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StopOutcome {
    /// The stop signal was sent (something was still running).
    pub signalled: bool,
    /// The group outlived `stop_timeout` and got SIGKILL.
    pub killed: bool,
    /// Processes were still there even after SIGKILL and a grace period (uninterruptible sleep).
    pub lingering: bool,
}

/// After SIGKILL, how long to wait for the kernel to tear processes down before giving up.
const KILL_GRACE: Duration = Duration::from_secs(5);

fn signal_group(pgid: u32, signal: i32) -> bool {
    let sig = Signal::try_from(signal).unwrap_or(Signal::SIGTERM);
    killpg(Pid::from_raw(pgid as i32), sig).is_ok()
}

/// Stops group `pgid`: `signal` to every member, wait up to `timeout`, then SIGKILL to the
/// group. Returns once the group is gone (or lingers past a grace period after SIGKILL).
pub(crate) async fn stop_group(
    reaper: &Reaper,
    pgid: u32,
    signal: i32,
    timeout: Duration,
) -> StopOutcome {
    let mut out = StopOutcome::default();
    if !group_exists(pgid) {
        return out;
    }
    out.signalled = signal_group(pgid, signal);
    // A stopped (SIGSTOP) process does not act on SIGTERM until continued.
    signal_group(pgid, Signal::SIGCONT as i32);
    if reaper.wait_group_gone(pgid, Instant::now() + timeout).await {
        return out;
    }
    out.killed = signal_group(pgid, Signal::SIGKILL as i32);
    out.lingering = !reaper
        .wait_group_gone(pgid, Instant::now() + KILL_GRACE)
        .await;
    if out.lingering {
        tracing::warn!(
            pgid,
            "processes of the group survive SIGKILL (uninterruptible sleep?)"
        );
    }
    out
}

/// Stops a group left behind by an earlier daemon. Those processes are not our children (they
/// went to PID 1 when that daemon died), so no SIGCHLD tells us when they are gone: this is
/// the one place that checks on a short timer, once per stale service at start-up.
/// Only acts if `pid` still has `start_ticks` (so a reused pid is never touched).
pub async fn stop_stale_group(
    pid: u32,
    start_ticks: u64,
    signal: i32,
    timeout: Duration,
) -> Option<StopOutcome> {
    if upkeep_sys::procfs::start_ticks(pid) != Some(start_ticks) {
        return None;
    }
    let mut out = StopOutcome {
        signalled: signal_group(pid, signal),
        ..Default::default()
    };
    signal_group(pid, Signal::SIGCONT as i32);
    let gone = |deadline: Instant| async move {
        while Instant::now() < deadline {
            if upkeep_sys::procfs::group_live_members(pid) == 0 {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        upkeep_sys::procfs::group_live_members(pid) == 0
    };
    if !gone(Instant::now() + timeout).await {
        out.killed = signal_group(pid, Signal::SIGKILL as i32);
        out.lingering = !gone(Instant::now() + KILL_GRACE).await;
    }
    Some(out)
}
