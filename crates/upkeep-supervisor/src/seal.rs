//! [`Seal`]: the one moment an upgrade may begin, decided in one step against every stop
//! under way.
//!
//! The hand-over (`upkeep upgrade`) waits for a stop in progress, up to its `stop_timeout`,
//! and nothing is supervised meanwhile (break-it, session 9). Refusing the upgrade while the
//! status said `stopping` left a window: a stop that began between that check and the
//! hand-over still held it (break-it, session 10). Now whatever stops a process (an operator's
//! stop or restart, a heal, a planned restart, a dependency's stop, a reload's restart) first
//! [`enter`](Seal::enter)s, and the daemon [`seal`](Seal::seal)s before it hands over: under
//! one lock, the seal is refused while anything is inside, and once sealed nothing enters
//! (an operator's action is refused, "try again"; what the supervisors would have done on
//! their own is left to the next image, which takes their state over). A std `Mutex`: held
//! for a few instructions, never across an await.
//!
//! Not here: what the hand-over carries (`adopt.rs`), the upgrade itself (`upkeep/src/upgrade.rs`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Shared by the daemon and every supervisor (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct Seal(Arc<Mutex<Inner>>);

#[derive(Debug, Default)]
struct Inner {
    sealed: bool,
    next: u64,
    /// What is inside, by ticket: a service and what it does (`web (stopping)`).
    inside: BTreeMap<u64, String>,
}

/// Refused: the hand-over has begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an upgrade is under way: try again once it is done")]
pub struct Sealed;

/// Inside (see [`Seal::enter`]) until dropped.
#[derive(Debug)]
pub struct Inside {
    seal: Seal,
    ticket: u64,
}

impl Drop for Inside {
    fn drop(&mut self) {
        self.seal.lock().inside.remove(&self.ticket);
    }
}

impl Seal {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing is left half-written by a panic while it is held.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters to do `what` (a stop, say), unless the hand-over has begun; inside until the
    /// answer is dropped, and no seal meanwhile.
    pub fn enter(&self, what: impl Into<String>) -> Result<Inside, Sealed> {
        let mut inner = self.lock();
        if inner.sealed {
            return Err(Sealed);
        }
        inner.next += 1;
        let ticket = inner.next;
        inner.inside.insert(ticket, what.into());
        Ok(Inside {
            seal: self.clone(),
            ticket,
        })
    }

    /// Seals, so that nothing enters from now on, unless something is inside: then what is
    /// (each once, in order), and nothing changes.
    pub fn seal(&self) -> Result<(), Vec<String>> {
        let mut inner = self.lock();
        if inner.inside.is_empty() {
            inner.sealed = true;
            return Ok(());
        }
        let mut what: Vec<String> = inner.inside.values().cloned().collect();
        what.sort();
        what.dedup();
        Err(what)
    }

    /// Whether the hand-over has begun.
    pub fn is_sealed(&self) -> bool {
        self.lock().sealed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_waits_for_no_one_and_once_made_lets_no_one_in() {
        let seal = Seal::default();
        let a = seal.enter("web (stopping)").unwrap();
        let b = seal.enter("web (stopping)").unwrap();
        let c = seal.enter("db (restarting)").unwrap();
        assert_eq!(
            seal.seal(),
            Err(vec!["db (restarting)".into(), "web (stopping)".into()])
        );
        assert!(!seal.is_sealed());
        drop((a, c));
        assert_eq!(seal.seal(), Err(vec!["web (stopping)".into()]));
        drop(b);
        assert_eq!(seal.seal(), Ok(()));
        assert!(seal.is_sealed());
        assert_eq!(seal.enter("web (stopping)").unwrap_err(), Sealed);
    }
}
