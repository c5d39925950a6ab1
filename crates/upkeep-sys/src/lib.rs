//! Process plumbing that more than one stage needs, and so no stage owns.
//!
//! The [`Reaper`] is process-wide: the daemon is a child subreaper and collects every child's
//! exit with `waitpid(-1)`, so *everything* that spawns a process (the supervisor for services,
//! the exec probes for checks) must spawn through it. `procfs` reads start times and
//! per-group CPU and memory, for the supervisor (recognising its processes), the probes
//! (memory and cpu thresholds) and `upkeep ls`.
//!
//! `limits` raises the daemon's open-file limit and gives children the one it started with.
//!
//! `pages` drops start-up code from the page tables once the daemon is up.
//!
//! `lineage` knows which processes are the daemon's own, even after the daemon is SIGKILLed
//! (a cgroup per service, run records, a mark in the environment); `trust` checks that the
//! data dir and its files are the daemon's own before it acts on them.
//!
//! `clone` spawns a process straight into its cgroup; `environ` is the environment it gets
//! (the daemon's, less the secrets the config names).
//!
//! `pidfd` watches the end of a process that is not our child (one a killed daemon left).
//!
//! Layout: `reaper.rs`, `procfs.rs`, `lineage.rs`, `clone.rs`, `environ.rs`, `pidfd.rs`, `trust.rs`, `limits.rs`,
//! `pages.rs`.

pub mod clone;
pub mod environ;
mod limits;
pub mod lineage;
mod pages;
pub mod pidfd;
pub mod procfs;
mod reaper;
pub mod trust;

pub use limits::raise_open_files;
pub use lineage::{Cgroup, Leftovers, Lineage, RecordedRun, ServiceLineage};
pub use pages::drop_startup_pages;
pub use reaper::{Reaper, group_exists, set_child_subreaper};
