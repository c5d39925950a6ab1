//! The supervisor owns child processes and nothing else: spawn, reap, restart, stop whole
//! process groups, and capture their output.
//!
//! One [`Supervisor`] task per managed service runs its process in its own process group and
//! applies the restart policy (backoff, crash-loop limit). One [`Reaper`] task per daemon reaps
//! every child, including orphans of services (the daemon is a child subreaper), the moment
//! SIGCHLD arrives (it lives in `upkeep-sys`, shared with the exec probes), and hands each exit to the supervisor that is waiting for it. Output goes
//! through [`LogHub`] to per-service files, never blocking the child.
//!
//! It does not decide health (probes do), does not store anything (it sends [`upkeep_core::Event`]s
//! to whoever wired it, and restarts first, reports right after), and does not read config files.
//!
//! Start at [`Supervisor::spawn`]; the restart rules are in `policy.rs`.
//!
//! Layout:
//! - `adopt.rs`: handing a running service to the next image of the daemon (`upkeep upgrade`).
//! - `group.rs`: stopping a service's tree (process group and cgroup: signal, timeout, SIGKILL),
//!   and what an earlier daemon left.
//! - `policy.rs`: restart policy, backoff with jitter, crash-loop limit (pure, tested on instants).
//! - `spawn.rs`: a `ManagedConfig` to a running process group.
//! - `forking.rs`: a forking daemon followed through its PID file (`type = "forking"`).
//! - `ready/`: readiness signals (the notify socket with its sender check, the readiness
//!   pipe of `ready = { fd = N }`, the log line watch), as notes to the supervisor.
//! - `supervisor.rs`: the per-service task.
//! - `seal.rs`: stops under way against the start of an upgrade's hand-over, in one step.
//! - `logs/`: capture (pipe readers), writer thread, rotation, the keeper of pipes.

mod adopt;
mod forking;
mod group;
mod logs;
mod policy;
mod ready;
mod seal;
mod spawn;
mod supervisor;

pub use adopt::{Adoption, Carried, HandedJob, HandedPipe, Handover, Released, RunNote, TakeOver};
pub use group::{StopOutcome, stop_leftovers};
pub use logs::{LogHub, PipeKeeper, Stream, tail, tail_start};
pub use seal::{Inside, Seal, Sealed};
pub use supervisor::{
    Begin, ChangeRestart, JobStart, SignalError, Signalled, Supervisor, SupervisorCommand,
    SupervisorDeps, SupervisorHandle,
};
pub use upkeep_sys::{
    Leftovers, Lineage, Reaper, RecordedRun, drop_startup_pages, environ, pidfd, procfs,
    raise_open_files, set_child_subreaper, trust,
};
