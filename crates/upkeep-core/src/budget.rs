//! [`Budget`]: at most N of something per hour for everyone together (feedback messages
//! kept), on the daemon's clock. (Confirmation mails have a budget of the same shape counted
//! from the store's outbox instead, so that no restart refills it: `upkeep`'s
//! `subscriptions.rs`.) Limits per
//! client address stop one client; a budget stops many (a botnet, or a script that changes
//! its source address) from turning the status page into a mail cannon or a disk filler.
//!
//! A sliding hour, not a bucket: what was spent is forgotten exactly an hour after it was
//! spent, so "try again in N minutes" is true. In memory: a restarted daemon starts with a
//! full budget, which costs at most one more hour's worth. The time is an argument, so the
//! decision is a pure function of what was spent and now.

use std::collections::VecDeque;
use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

const HOUR: SignedDuration = SignedDuration::from_secs(3600);

/// At most `per_hour` spends in any hour.
#[derive(Debug)]
pub struct Budget {
    per_hour: usize,
    spent: Mutex<VecDeque<Timestamp>>,
}

impl Budget {
    pub fn per_hour(n: u32) -> Budget {
        Budget {
            per_hour: n as usize,
            spent: Mutex::new(VecDeque::new()),
        }
    }

    /// Spends one at `now`, or says how long until one is free again.
    pub fn take(&self, now: Timestamp) -> Result<(), std::time::Duration> {
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        while spent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= HOUR)
        {
            spent.pop_front();
        }
        if spent.len() < self.per_hour {
            spent.push_back(now);
            return Ok(());
        }
        let oldest = spent.front().copied().unwrap_or(now);
        let wait = HOUR - now.duration_since(oldest);
        Err(std::time::Duration::try_from(wait).unwrap_or(std::time::Duration::from_secs(1)))
    }

    /// Gives back one spent at `at` (what it paid for did not happen after all).
    pub fn refund(&self, at: Timestamp) {
        let mut spent = self.spent.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = spent.iter().rposition(|t| *t == at) {
            spent.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(min: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + min * 60).unwrap()
    }

    #[test]
    fn at_most_n_in_any_hour_and_the_wait_is_true() {
        let b = Budget::per_hour(3);
        assert_eq!(b.take(at(0)), Ok(()));
        assert_eq!(b.take(at(10)), Ok(()));
        assert_eq!(b.take(at(20)), Ok(()));
        // The fourth waits until the first is an hour old: 30 minutes from minute 30.
        assert_eq!(b.take(at(30)), Err(std::time::Duration::from_secs(30 * 60)));
        assert_eq!(b.take(at(59)), Err(std::time::Duration::from_secs(60)));
        assert_eq!(b.take(at(60)), Ok(()));
        assert!(b.take(at(61)).is_err());
        // A refund frees one at once.
        b.refund(at(60));
        assert_eq!(b.take(at(62)), Ok(()));
    }

    #[test]
    fn a_budget_of_none_refuses_everything() {
        let b = Budget::per_hour(0);
        assert!(b.take(at(0)).is_err());
    }
}
