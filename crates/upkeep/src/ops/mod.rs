//! Operations: what an operator can ask of the running daemon, as plain async functions over
//! the [`Daemon`](crate::control::Daemon), each naming who asked ([`Principal`]) and returning
//! [`OpsError`]. They know nothing of HTTP: `control.rs` calls them for the API and maps their
//! errors to status codes in one place (`From<OpsError> for ApiError`).
//!
//! Layout: `services.rs` (start, stop, restart), `maintenance.rs` (begin, change, end),
//! `reload.rs` (reload the file, add a service to it, apply a config over the running one),
//! `drill.rs` (inject a fault, measure detection and recovery; its own [`drill::DrillError`]),
//! `reports.rs` (the report, events, incidents; [`reports::ReportError`]), `incidents.rs`
//! (what people write to incidents; [`incidents::IncidentError`]), `windows.rs`
//! (maintenance windows; [`windows::WindowError`]), `pages.rs` (pages of the admin lists, with
//! an offset), `notify.rs` (the outbox: list, retry,
//! test; [`notify::NotifyError`]), `signal.rs` (a signal or a reload to a running service;
//! [`signal::SignalError`]), `jobs.rs` (jobs and their recent runs). Service details,
//! logs and metrics are still answered in `control.rs` (issue 15, item 7 goes on).
//!
//! [`Principal`]: upkeep_core::Principal

pub mod drill;
pub mod incidents;
pub mod jobs;
pub mod maintenance;
pub mod notify;
pub mod pages;
pub mod reload;
pub mod reports;
pub mod services;
pub mod signal;
pub mod windows;

use std::path::PathBuf;

use upkeep_core::ServiceName;

/// The store is unreachable, as the event writer last found it: reads of history fail at
/// once instead of waiting out a connection timeout.
#[derive(Debug, thiserror::Error)]
#[error("the store ({engine}) is unreachable: {error}")]
pub struct StoreAway {
    pub engine: String,
    pub error: String,
    pub journaled: u64,
}

/// Why an operation did not happen. Variants name the operation and its subject; failures of
/// what the daemon depends on keep their source, so the log shows the whole chain.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("no service named `{0}` is configured")]
    UnknownService(ServiceName),
    #[error(
        "service `{name}` is external (probes only): upkeep does not run it, so it cannot {action} it"
    )]
    External {
        name: ServiceName,
        action: &'static str,
    },
    #[error("service `{0}` is not in maintenance")]
    NotInMaintenance(ServiceName),
    #[error(
        "service `{name}` is in maintenance window {window}: `upkeep maint finish|extend|cancel {window}` instead"
    )]
    InWindow { name: ServiceName, window: i64 },
    #[error("data_dir changed from {from} to {to}: a running daemon cannot move its data")]
    DataDirMoved { from: PathBuf, to: PathBuf },
    /// The file does not validate: the running config stays.
    #[error("{0}")]
    InvalidConfig(upkeep_config::ConfigError),
    /// `add` cannot edit the file as asked.
    #[error("{0}")]
    Edit(upkeep_config::EditError),
    #[error("the config revision cannot be stored; nothing was changed")]
    RevisionNotStored(#[source] upkeep_store::Error),
    /// What the operator asked cannot be kept in the data dir: nothing was done.
    #[error("keeping what was asked; nothing was done")]
    IntentNotSaved(#[source] crate::intent::IntentError),
    /// `add`: the file as it is does not load, so nothing is added to it.
    #[error("the config file does not load as it is, so nothing can be added to it: {0}")]
    FileDoesNotLoad(upkeep_config::ConfigError),
    /// `add`: the file has edits the daemon does not run (keys as `services.NAME (changed)`),
    /// which applying it would apply too.
    #[error(
        "the config file has changes the daemon has not applied: {}; an add would apply them with its service",
        .0.join(", ")
    )]
    EditsWaiting(Vec<String>),
    /// `add`: the file with the service would not validate; it was not written.
    #[error("service `{name}` was not added (the config file is unchanged): {}", not_added(.why))]
    NotAdded {
        name: ServiceName,
        why: upkeep_config::ConfigError,
    },
    #[error("writing the config file {path}")]
    WriteConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a blocking task of the daemon failed")]
    Task(#[from] tokio::task::JoinError),
    /// An upgrade's hand-over has begun: nothing stops a service now.
    #[error(transparent)]
    Upgrading(#[from] upkeep_supervisor::Sealed),
}

/// Why the file with an added service does not validate, by key: the lines a file error
/// points to are in a text that was never written.
fn not_added(e: &upkeep_config::ConfigError) -> String {
    let problems = e.problems();
    if problems.is_empty() {
        return e.to_string();
    }
    problems
        .iter()
        .map(|p| match p.key.as_str() {
            "" => p.message.clone(),
            key => format!("{key}: {}", p.message),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
