//! The upkeep binary: the daemon and the CLI that talks to it.
//!
//! `daemon.rs` builds the stages and wires them (supervisors → state → store writer, and the
//! API over the control socket); `control.rs` is what the API can ask of the daemon; `cli/`
//! is a thin client of that API plus the commands that need no daemon (`check`, `startup`,
//! `export`, `import`); `import/` reads other supervisors' set-ups; `upgrade.rs` re-executes the daemon
//! without restarting a service; `fdstore.rs` keeps the services' pipes in systemd's fd store
//! so that a daemon systemd restarts after a crash adopts them. Exit codes: 0 ok, 1 an operation failed, 2 usage or config error.

mod accounts;
mod cli;
mod control;
mod daemon;
mod deps;
mod fdstore;
mod feedback;
mod handover;
mod hashing;
mod heartbeat;
mod hidden;
mod import;
mod intent;
mod listeners;
mod notices;
mod ops;
mod pace;
mod planner;
mod public;
mod schedule;
mod statuspage;
mod subscriptions;
mod systemd;
mod takeover;
mod tokens;
mod upgrade;
mod watch;
mod wiring;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::main()
}
