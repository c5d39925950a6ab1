//! The supervisor owns child processes and nothing else: spawn, reap, restart, stop whole
//! process groups, and capture their output.
//!
//! One [`Supervisor`] task per managed service runs its process in its own process group and
//! applies the restart policy (backoff, crash-loop limit). One [`Reaper`] task per daemon reaps
//! every child, including orphans of services (the daemon is a child subreaper), the moment
//! SIGCHLD arrives, and hands each exit to the supervisor that is waiting for it. Output goes
//! through [`LogHub`] to per-service files, never blocking the child.
//!
//! It does not decide health (probes do), does not store anything (it sends [`upkeep_core::Event`]s
//! to whoever wired it, and restarts first, reports right after), and does not read config files.
//!
//! Start at [`Supervisor::spawn`]; the restart rules are in `policy.rs`.
//!
//! Layout:
//! - `reaper.rs`: SIGCHLD → waitpid → the waiting supervisor; subreaper; group-gone waits.
//! - `group.rs`: signalling process groups and stopping them (signal, timeout, SIGKILL).
//! - `procfs.rs`: /proc reads: process start times, per-group CPU and memory.
//! - `policy.rs`: restart policy, backoff with jitter, crash-loop limit (pure, tested on instants).
//! - `spawn.rs`: a `ServiceConfig` to a running process group.
//! - `supervisor.rs`: the per-service task.
//! - `logs/`: capture (pipe readers), writer thread, rotation.

mod group;
mod logs;
mod policy;
pub mod procfs;
mod reaper;
mod spawn;
mod supervisor;

pub use group::{StopOutcome, stop_stale_group};
pub use logs::{LogHub, Stream, tail};
pub use reaper::{Reaper, set_child_subreaper};
pub use supervisor::{Supervisor, SupervisorCommand, SupervisorHandle};
