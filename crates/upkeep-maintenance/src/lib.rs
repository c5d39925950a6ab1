//! Maintenance windows: planned work that people hear of in advance (issue 16). This crate
//! is the pure logic: it validates a window ([`spec`]), checks it against the lead-time
//! policy ([`policy`]), lists its occurrences ([`recur`], RFC 5545 rules in the window's own
//! zone, daylight-saving changes included) and decides which step of its life is due
//! ([`plan`]): announced, reminders, started, overrun, extended, completed, cancelled.
//!
//! It does no I/O and keeps no time of its own: the daemon's planner task (in the binary)
//! feeds it the stored windows, the steps already taken and the injected clock's now, stores
//! each due step once (with its notices), and puts the window's services in maintenance.
//! The data types are `upkeep_core::window`'s, shared with the API and the CLI.
//!
//! Layout: `spec.rs`, `policy.rs`, `recur.rs`, `plan.rs`.

pub mod plan;
pub mod policy;
pub mod recur;
pub mod spec;

pub use plan::{Plan, Rules, WindowState, plan};
pub use policy::{LeadTime, PolicyRefusal};
pub use recur::{RecurError, occurrences};
pub use spec::{AHEAD_MAX_DAYS, LENGTH_MAX_DAYS, SpecError, ahead, normalize, validate};
