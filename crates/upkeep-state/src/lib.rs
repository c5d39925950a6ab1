//! State: the one place that decides what state each service is in.
//!
//! [`ServiceModel`] is the status machine (pure, table-tested): lifecycle and probe events
//! in; status transitions, heal requests and incidents out. The [`StateTask`] owns every
//! model (it is their single writer, so nothing needs a lock), publishes a snapshot for web,
//! the CLI and the probe runners, passes every event on to the store writer, sends heal
//! requests to the daemon, and wakes for incident deadlines.
//!
//! [`report::compute`] turns stored facts into the availability figures.
//!
//! [`deps::Gate`] judges the dependency graph against the snapshot: which services may start,
//! which must stop or restart (the daemon runs it and hands the permits to supervisors).
//!
//! Layout: `machine.rs` (the machine), `task.rs` (the task), `report.rs` (availability),
//! `deps.rs` (the dependency gate's judgement).

pub mod deps;
mod machine;
pub mod report;
mod task;

pub use machine::{CarriedModel, FLAP_WINDOW, Output, Readiness, ServiceModel, ServiceSpec};
pub use task::{Heal, Snapshot, StateChannels, StateControl, StateTask};
