//! End-to-end tests: the real `upkeep` binary, real child processes and signals, real SQLite.
//! Every daemon is started through `upkeep_testkit::TestDaemon`.

mod cli;
mod config;
mod daemon;
mod drills;
mod logs;
mod maintenance;
mod metrics;
mod probes;
mod report;
mod supervise;
mod systemd;

use upkeep_testkit::TestDaemon;

pub const BIN: &str = env!("CARGO_BIN_EXE_upkeep");
pub const LONG: std::time::Duration = std::time::Duration::from_secs(20);

pub fn daemon(services: &str) -> TestDaemon {
    TestDaemon::start(BIN, services)
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
