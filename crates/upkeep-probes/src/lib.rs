//! Probes decide whether a service answers.
//!
//! One task per probe (a [`ProbeRunner`] starts them for a service) checks on its schedule and
//! sends a `ProbeChanged` event to `state` when its verdict changes: after `failures` failures
//! in a row it is down, after `successes` successes up again, and failures within `grace` of a
//! (re)start do not count. Probes never restart anything: that decision is `state`'s. Results
//! that change nothing send nothing, so a thousand probes a second cost the store nothing.
//!
//! Start at [`ProbeRunner::spawn`]. Each probe kind is one file in `kinds/`, listed once in
//! `kinds/mod.rs`.
//!
//! Layout: `probe.rs` (outcome, target, verdict counting), `runner.rs` (scheduling),
//! `lag.rs` (how late checks start), `gate.rs` (checks in flight per host),
//! `kinds/` (tcp, http, exec, process, memory, cpu).

mod gate;
mod kinds;
mod lag;
mod probe;
mod runner;

pub use gate::HostGates;
pub use kinds::HttpClients;
pub use lag::{LAG_BUCKETS, LagHistogram, LagSnapshot};
pub use probe::{ProbeOutcome, Target};
pub use runner::{ProbeDeps, ProbeRunner};
