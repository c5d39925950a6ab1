//! The reaper: one task that collects every child's exit, the moment SIGCHLD arrives.
//!
//! Why one reaper instead of tokio's per-child `wait`: the daemon is a child subreaper, so
//! orphans of services (node left behind by a killed npm) become our children, and someone has
//! to `waitpid(-1)` them or they linger as zombies that look alive. A `waitpid(-1)` would also
//! steal the exits tokio waits for, so all children go through here instead.
//!
//! Race-free hand-off: [`Reaper::spawn`] forks and registers the pid while holding the registry
//! lock; the reaper takes the same lock after `waitpid` returns, so it always finds the
//! registration of any pid it reaped. Nothing polls: the task sleeps on SIGCHLD.

use std::collections::HashMap;
use std::io;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use upkeep_core::ExitStatus;

/// Makes this process a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`): orphaned descendants
/// are re-parented to us instead of PID 1, so we reap them at once.
pub fn set_child_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

#[derive(Clone)]
pub struct Reaper {
    inner: Arc<Inner>,
}

struct Inner {
    /// pid → the supervisor waiting for its exit. A std Mutex: held only around fork and a
    /// hash map operation, never across an await.
    waiting: Mutex<HashMap<u32, oneshot::Sender<ExitStatus>>>,
    /// Bumped after every batch of reaps, so that stops waiting for a group to vanish wake up.
    reaped: watch::Sender<u64>,
}

impl Reaper {
    /// Installs the SIGCHLD handler and starts the reaper task. Call once, inside the runtime,
    /// before anything is spawned.
    pub fn start() -> io::Result<Reaper> {
        let mut sigchld = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::child())?;
        let reaper = Reaper {
            inner: Arc::new(Inner {
                waiting: Mutex::new(HashMap::new()),
                reaped: watch::Sender::new(0),
            }),
        };
        let task = reaper.clone();
        tokio::spawn(async move {
            // Children may have exited before the handler was installed.
            task.reap_all();
            while sigchld.recv().await.is_some() {
                task.reap_all();
            }
        });
        Ok(reaper)
    }

    /// Spawns `cmd` and registers its pid; the receiver yields its exit status.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<(Child, oneshot::Receiver<ExitStatus>)> {
        let mut waiting = self.inner.waiting.lock().expect("reaper registry poisoned");
        let child = cmd.spawn()?;
        crate::limits::restore_for_child(child.id());
        let (tx, rx) = oneshot::channel();
        waiting.insert(child.id(), tx);
        Ok((child, rx))
    }

    /// Spawns with `spawn` (which returns the child's pid and whatever else it made) and
    /// registers the pid, as [`Reaper::spawn`] does for a `Command`.
    pub fn spawn_with<T, E>(
        &self,
        spawn: impl FnOnce() -> Result<(u32, T), E>,
    ) -> Result<(u32, T, oneshot::Receiver<ExitStatus>), E> {
        let mut waiting = self.inner.waiting.lock().expect("reaper registry poisoned");
        let (pid, made) = spawn()?;
        crate::limits::restore_for_child(pid);
        let (tx, rx) = oneshot::channel();
        waiting.insert(pid, tx);
        Ok((pid, made, rx))
    }

    /// Registers for the exit of `pid`, a process that is already our child (a forking
    /// service's daemon, re-parented to us as subreaper when its starter exited). None if it
    /// is gone already: then no exit can come. Registered under the lock the reaper takes
    /// after `waitpid`, so an exit from here on is never missed, and the check after it
    /// covers one reaped before.
    pub fn watch(&self, pid: u32) -> Option<oneshot::Receiver<ExitStatus>> {
        let (tx, rx) = oneshot::channel();
        let mut waiting = self.inner.waiting.lock().expect("reaper registry poisoned");
        waiting.insert(pid, tx);
        // A zombie still exists (signal 0 succeeds): its reap is yet to come, and finds us.
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_ok();
        if !alive {
            waiting.remove(&pid);
            return None;
        }
        Some(rx)
    }

    /// Registers a child this process did not spawn in this image: one an earlier image of the
    /// daemon spawned before it re-executed itself (`upkeep upgrade`; execve keeps the pid, so
    /// the child is still ours). `start_ticks` is its start time from /proc, so a reused pid
    /// is never taken for it. None if it is gone, or not that process, or not our child:
    /// checked under the registry lock, after which its reap cannot be missed (a reap that
    /// came first left no entry in /proc; one that comes after finds this registration).
    pub fn adopt(&self, pid: u32, start_ticks: u64) -> Option<oneshot::Receiver<ExitStatus>> {
        let mut waiting = self.inner.waiting.lock().expect("reaper registry poisoned");
        let stat = crate::procfs::process(pid)?;
        if stat.start_ticks != start_ticks || stat.ppid != std::process::id() {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        waiting.insert(pid, tx);
        Some(rx)
    }

    /// Reaps every child that has exited, without blocking.
    fn reap_all(&self) {
        let mut any = false;
        loop {
            let (pid, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (
                    pid,
                    ExitStatus {
                        code: Some(code),
                        signal: None,
                    },
                ),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (
                    pid,
                    ExitStatus {
                        code: None,
                        signal: Some(sig as i32),
                    },
                ),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            };
            any = true;
            let pid = pid.as_raw() as u32;
            let waiter = self
                .inner
                .waiting
                .lock()
                .expect("reaper registry poisoned")
                .remove(&pid);
            match waiter {
                Some(tx) => {
                    let _ = tx.send(status);
                }
                None => tracing::debug!(pid, %status, "reaped orphan"),
            }
        }
        if any {
            self.inner.reaped.send_modify(|n| *n += 1);
        }
    }

    /// Waits until `gone()` holds (checked now and after each reap), or `deadline`. True
    /// when it holds. Members of our groups and cgroups are our children or, once orphaned,
    /// come to us as subreaper, so each of their ends wakes this: it never polls.
    pub async fn wait_until(&self, gone: impl Fn() -> bool, deadline: Instant) -> bool {
        let mut reaped = self.inner.reaped.subscribe();
        loop {
            reaped.borrow_and_update();
            if gone() {
                return true;
            }
            tokio::select! {
                changed = reaped.changed() => if changed.is_err() { return false },
                _ = tokio::time::sleep_until(deadline) => return gone(),
            }
        }
    }
}

/// True while any process (zombies included) is in group `pgid`.
pub fn group_exists(pgid: u32) -> bool {
    !matches!(
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid as i32), None),
        Err(nix::errno::Errno::ESRCH)
    )
}
