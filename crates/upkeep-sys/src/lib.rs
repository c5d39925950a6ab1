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
//! Layout: `reaper.rs`, `procfs.rs`, `limits.rs`, `pages.rs`.

mod limits;
mod pages;
pub mod procfs;
mod reaper;

pub use limits::raise_open_files;
pub use pages::drop_startup_pages;
pub use reaper::{Reaper, group_exists, set_child_subreaper};
