//! State: the one place that turns events into service statuses.
//!
//! [`apply`] is the status machine, pure and table-tested. The [`StateTask`] owns every
//! status (it is their single writer, so nothing needs a lock), publishes a snapshot for web
//! and the CLI, and passes each event on to the store writer. Issue 10 adds probe events,
//! incidents and heal commands here.
//!
//! Layout: `status.rs` (the machine), `task.rs` (the task).

mod status;
mod task;

pub use status::apply;
pub use task::{Snapshot, StateTask};
