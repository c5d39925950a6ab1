//! The environment services inherit: the daemon's own, less what is the daemon's alone.
//!
//! Secrets reach the daemon through its environment (`password_env`, `url_env`,
//! `secret_env`, `store_password_env`: the config names the variable, never the value), and a
//! service inherits the daemon's environment, as under PM2 or supervisord. Left there, every
//! service, even one run as another `user`, could read the SMTP password or the webhook's
//! secret in `/proc/self/environ`. So the variables the config names as secrets are
//! withheld, and so are those that speak to the daemon alone: systemd's notification socket
//! and watchdog, its socket activation, the state an upgrade hands the next image. A service
//! that needs one of them sets it in its own `env`, which is added after.
//!
//! The environment is the process's, so what is withheld from it is too: set at start-up
//! and at each reload ([`withhold`]), read at each spawn ([`inherited`]).

use std::ffi::{OsStr, OsString};
use std::sync::{Arc, RwLock};

/// Never passed on, whatever the config says.
const DAEMONS_OWN: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "UPKEEP_UPGRADE_STATE",
    "UPKEEP_TEST_UPGRADE_PAUSE",
];

static WITHHELD: RwLock<Option<Arc<[OsString]>>> = RwLock::new(None);

/// From now on, services do not inherit the variables `names` (the secrets the config
/// names), beside the daemon's own.
pub fn withhold(names: impl IntoIterator<Item = impl Into<OsString>>) {
    let names: Arc<[OsString]> = names.into_iter().map(Into::into).collect();
    *WITHHELD.write().unwrap_or_else(|e| e.into_inner()) = Some(names);
}

/// The daemon's environment less what is withheld: what a service starts from.
pub fn inherited() -> Vec<(OsString, OsString)> {
    let withheld = WITHHELD
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| Arc::from([]));
    let kept = |k: &OsStr| !DAEMONS_OWN.iter().any(|d| k == *d) && !withheld.iter().any(|w| w == k);
    std::env::vars_os().filter(|(k, _)| kept(k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_names_a_secret_and_the_daemons_own_are_never_inherited() {
        // SAFETY: this test alone touches these variables; no other thread reads them.
        unsafe {
            std::env::set_var("ENVIRON_TEST_SECRET", "hunter2");
            std::env::set_var("ENVIRON_TEST_PLAIN", "fine");
            std::env::set_var("NOTIFY_SOCKET", "/run/systemd/notify");
        }
        withhold(["ENVIRON_TEST_SECRET"]);
        let env = inherited();
        let has = |k: &str| env.iter().any(|(ek, _)| ek == k);
        assert!(!has("ENVIRON_TEST_SECRET"));
        assert!(!has("NOTIFY_SOCKET"));
        assert!(has("ENVIRON_TEST_PLAIN"));
        // A reload naming other secrets gives the old one back.
        withhold(Vec::<String>::new());
        assert!(inherited().iter().any(|(k, _)| k == "ENVIRON_TEST_SECRET"));
    }
}
