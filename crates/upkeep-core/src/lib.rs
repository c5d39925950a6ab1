//! The shared words of upkeep: what every stage says to every other.
//!
//! This crate owns the vocabulary (service names, events, commands, statuses and the JSON API
//! types that the daemon serves and the CLI reads). It does no I/O and holds no logic beyond
//! validation of names, so every other crate can depend on it without pulling anything in.
//!
//! Layout:
//! - `budget.rs`: [`budget::Budget`], at most N of something per hour for everyone together.
//! - `clock.rs`: [`Clock`], the injected time, and [`TestClock`], the one tests move.
//! - `deps.rs`: [`Condition`], [`OnDependencyDown`] and [`Permit`]: start order and readiness.
//! - `name.rs`: [`ServiceName`], the validated identifier of a service.
//! - `event.rs`: [`Event`] and [`EventKind`], immutable facts with a time.
//! - `status.rs`: [`State`] and [`ServiceStatus`], what `ls` shows.
//! - `api.rs`: request and response bodies of the JSON API (socket and, later, TCP).
//! - `subscription.rs`: the subscriber API's bodies (subscribe, a subscriber as listed).
//! - `feedback.rs`: the feedback form's body and a message as operators list it.
//! - `report.rs`: availability report inputs, tallies (what rollups keep) and figures.
//! - `latency.rs`: probe latency histograms (they add across hours; percentiles do not) and
//!   the book probes record into until the store keeps them.
//! - `window.rs`: maintenance windows as operators write them and the API shows them.
//! - `incident.rs`: what people write about incidents (updates, priority, post-mortem).
//! - `i18n.rs`: user-facing text in English and Simplified Chinese.
//! - `job.rs`: jobs and their runs as the API shows them.
//! - `account.rs`: admin users as the API shows them, and the rules for their names.
//! - `when.rs`: times and zones as people type them (the CLI and the admin form alike).

pub mod account;
pub mod api;
pub mod budget;
mod clock;
mod deps;
pub mod duration;
mod event;
pub mod feedback;
pub mod files;
pub mod i18n;
pub mod incident;
pub mod job;
pub mod latency;
mod name;
pub mod report;
mod status;
pub mod subscription;
pub mod text;
pub mod when;
pub mod window;

pub use clock::{Clock, TestClock};
pub use deps::{Condition, Dependency, OnDependencyDown, Permit};
pub use event::{Actor, Committed, Event, EventKind, ExitStatus, Principal, Via};
pub use name::{NameError, ServiceName};
pub use status::{
    Desired, Health, LastCheck, Maintenance, ProbeStatus, ServiceStatus, State, Unfinished,
};
