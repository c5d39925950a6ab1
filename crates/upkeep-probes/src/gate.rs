//! At most [`PER_HOST`] network checks in flight to one host and port.
//!
//! Without a cap, overload feeds itself: checks that start while others are still connecting
//! each open a connection of their own, the extra connections cost CPU, checks slow down, more
//! of them overlap, and at 20,000 checks a second the daemon held 20,000 sockets and ran out of
//! file descriptors. With the cap, checks of a busy host wait their turn (the wait shows as
//! lag) and reuse the connections already open. The cap is per host, not global, so probes of
//! a slow or dead host never hold up the probes of others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

/// Checks in flight per host. Each takes about a millisecond on loopback, so this allows far
/// more than 10,000 a second to one host; it is also the most connections one host gets.
pub(crate) const PER_HOST: usize = 256;

/// One semaphore per `host:port`, shared by every probe of that host.
#[derive(Clone, Default)]
pub struct HostGates {
    gates: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl HostGates {
    pub(crate) fn for_host(&self, host: &str) -> Arc<Semaphore> {
        self.gates
            .lock()
            .expect("host gates poisoned")
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(PER_HOST)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gate_per_host() {
        let gates = HostGates::default();
        let a = gates.for_host("127.0.0.1:80");
        assert!(Arc::ptr_eq(&a, &gates.for_host("127.0.0.1:80")));
        assert!(!Arc::ptr_eq(&a, &gates.for_host("127.0.0.1:81")));
        assert_eq!(a.available_permits(), PER_HOST);
    }
}
