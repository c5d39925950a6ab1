//! The JSON API: served over the daemon's Unix socket now, over TCP with the status page and
//! `/metrics` later (issue 5 and 10).
//!
//! Web does not own any state: every handler asks a [`Control`], which the daemon implements
//! by reading state and the store and by sending commands to supervisors. So this crate depends
//! on nothing but `upkeep-core`, and a test can serve the router over any `Control`.
//!
//! Layout: `api.rs` (routes and handlers), `error.rs` ([`ApiError`], the one error answer),
//! `metrics.rs` (`/metrics` in the Prometheus text format), `serve.rs` (one way to serve a
//! router on any listener, with connection caps and timeouts).

mod api;
mod error;
mod metrics;
mod serve;

pub use api::{Action, Control, LogStream, Target, metrics_router, router};
pub use error::ApiError;
pub use metrics::{MetricsData, ProcessStats};
pub use serve::{Limits, serve};
