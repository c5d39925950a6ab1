//! upkeep.toml in, a validated [`Config`] out.
//!
//! Parsing and validation are two steps: `raw.rs` mirrors the TOML with serde
//! (`deny_unknown_fields`, defaults in one place) and `validate.rs` turns it into types that
//! cannot hold an invalid state (durations, resolved programs, signal numbers, uids). Every
//! problem is reported at once, each with file, line and column. Code past this crate never
//! re-checks config. This crate does not watch files or apply configs: the daemon does.
//!
//! Layout:
//! - `raw.rs`: the TOML as written.
//! - `validate.rs`: [`read`] (the file, bounded), [`load`] / [`parse`], building [`Config`]; all checks live under it:
//!   - `validate/probes/`: [`ProbeConfig`] and the registry of probe kinds ([`ProbeKind`]),
//!     one file per kind (`tcp.rs`, `http.rs`, `exec.rs`, `process.rs`, `memory.rs`,
//!     `cpu.rs`) with its keys, checks and tests; `mod.rs` says how to add one.
//!   - `validate/store.rs`: where history is kept ([`StoreConfig`]).
//!   - `validate/tls.rs`: `tls`, the HTTPS certificate and key, read and checked ([`TlsConfig`]).
//!   - `validate/deps.rs`: `depends_on`, `on_dependency_down`, unknown names and cycles.
//!   - `validate/ready.rs`: `ready`, `ready_timeout`, `watchdog` ([`Ready`]).
//!   - `validate/process.rs`: `type`, `pid_file`, `reload_signal` ([`ServiceType`],
//!     [`parse_signal`]).
//!   - `validate/notify.rs`: `[notify]`, into upkeep-outbox's `NotifyConfig`.
//!   - `validate/schedule.rs`: jobs (`schedule`, `catch_up`), `restart_at` and `watch`
//!     ([`Schedule`], [`JobConfig`], [`WatchConfig`]).
//! - `access.rs`: whether a service's user may enter its `cwd` and run its program, and why
//!   not: for `check` and for a start that failed ([`why_not_started`]).
//! - `bounds.rs`: every limit on a value (durations, counts, sizes), with why.
//! - `env_file.rs`: a service's `env_file` read into entries with line numbers; its errors
//!   never show the file's content.
//! - `error.rs`: [`ConfigError`] with its located [`Problem`]s.
//! - `locate.rs`: byte offsets and key paths to line:column.
//! - `edit.rs`: [`add_service`] and [`put_services`], editing the file in place and keeping
//!   comments and layout.
//! - `paths.rs`: where the config file and the data dir are when nobody says.

mod access;
mod bounds;
mod edit;
mod env_file;
mod error;
mod locate;
mod paths;
mod raw;
mod validate;

pub use access::{Refusal, Who, why_not_started};
pub use edit::{EditError, add_service, put_services};
pub use error::{ConfigError, Problem};
pub use paths::{default_config_path, default_data_dir};
pub use validate::{ALWAYS_IGNORED, EXPIRY_WARNING, JobConfig, Schedule, WatchConfig};
pub use validate::{
    Config, CpuProbeConfig, DaemonConfig, ExecProbeConfig, HttpProbeConfig, LogConfig, LogPattern,
    MaintenanceConfig, ManagedConfig, MemoryProbeConfig, OnPage, OnUnhealthy, ProbeConfig,
    ProbeKind, ProcessProbeConfig, Program, Ready, RestartPolicy, SecretSource, ServiceConfig,
    ServiceType, StoreConfig, TcpProbeConfig, TlsConfig, TlsProblem, UserIds, Validity,
    data_dir_problem, load, load_tls, parse, parse_signal, read, secret_in_url,
};
